//! Ballots, proposals, decisions and the six messages of the protocol (see the module above).

use crate::ReplicaId;
use crate::replica::{Key, Scalar};

/// A ballot: ordered by `round`, then by `proposer`, so two proposers never share one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ballot {
    /// The round, which a proposer never issues twice.
    pub round: u64,
    /// The proposer that issued it.
    pub proposer: ReplicaId,
}

impl Ballot {
    /// Below every ballot a proposer issues (proposers start at round 1): "promised nothing".
    pub const ZERO: Ballot = Ballot {
        round: 0,
        proposer: ReplicaId(0),
    };
}

/// A proposal's identity: the ballot at which its proposer first proposed it. It stays the same
/// when the proposal is re-proposed at a higher ballot (by anyone), so that its proposer can
/// tell whether the decision it learns is its own operation's.
pub type ProposalId = Ballot;

/// A proposed value for one instance: the key's new value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Proposal {
    /// Who proposed it first, and when.
    pub id: ProposalId,
    /// The key's value if it is chosen.
    pub value: Scalar,
}

/// A decision: the key's value after `instance` successful compare-and-sets. Instance 0 is the
/// absent key, which every acceptor holds from the start.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Decision {
    /// The instance decided.
    pub instance: u64,
    /// The key's value (absent only at instance 0).
    pub value: Option<Scalar>,
    /// The chosen proposal's identity (absent only at instance 0).
    pub id: Option<ProposalId>,
}

impl Decision {
    /// The decision that the chosen `proposal` makes at `instance`.
    pub fn chosen(instance: u64, proposal: &Proposal) -> Decision {
        Decision {
            instance,
            value: Some(proposal.value.clone()),
            id: Some(proposal.id),
        }
    }

    /// Whether the decision is well formed: instance 0 is the absent key, and every later
    /// instance has a value and the proposal that chose it.
    pub fn is_valid(&self) -> bool {
        (self.instance == 0) == (self.value.is_none() && self.id.is_none())
            && self.value.is_some() == self.id.is_some()
    }
}

/// A message between proposers and acceptors. Each names its key, so one pair of state machines
/// runs every key's instances. (Ordered only so that model checkers can keep messages in sets.)
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Msg {
    /// Proposer → acceptors: phase 1 for `instance`, building on `base` (the decision of
    /// `instance - 1`, which a lagging acceptor adopts).
    Prepare {
        /// The key.
        key: Key,
        /// The instance prepared.
        instance: u64,
        /// The proposer's ballot.
        ballot: Ballot,
        /// The decision of the instance before.
        base: Decision,
    },
    /// Acceptor → proposer: the acceptor promised `ballot` for `instance`; `accepted` is the
    /// highest-ballot proposal it accepted there, if any.
    Promise {
        /// The key.
        key: Key,
        /// The instance.
        instance: u64,
        /// The ballot promised.
        ballot: Ballot,
        /// What the acceptor accepted for the instance.
        accepted: Option<(Ballot, Proposal)>,
    },
    /// Proposer → acceptors: phase 2 — accept `proposal` at `ballot` for `instance`.
    Accept {
        /// The key.
        key: Key,
        /// The instance.
        instance: u64,
        /// The proposer's ballot (promised by a majority).
        ballot: Ballot,
        /// What to accept.
        proposal: Proposal,
        /// The decision of the instance before.
        base: Decision,
    },
    /// Acceptor → proposer: the proposal `id` was accepted at `ballot` for `instance`.
    Accepted {
        /// The key.
        key: Key,
        /// The instance.
        instance: u64,
        /// The ballot accepted.
        ballot: Ballot,
        /// The accepted proposal's identity.
        id: ProposalId,
    },
    /// Acceptor → proposer: `ballot` was refused for `instance`; the acceptor promised `higher`.
    Nack {
        /// The key.
        key: Key,
        /// The instance.
        instance: u64,
        /// The refused ballot.
        ballot: Ballot,
        /// The ballot the acceptor has promised, above or equal to the refused one.
        higher: Ballot,
    },
    /// A decision. Proposer → acceptors after a majority accepted (the learn step), and
    /// acceptor → proposer when asked about an instance it has already decided. Every learner
    /// (acceptor or proposer) adopts a decision beyond the one it knows.
    Commit {
        /// The key.
        key: Key,
        /// The decision.
        decision: Decision,
    },
}

impl Msg {
    /// The key the message is about.
    pub fn key(&self) -> &Key {
        match self {
            Msg::Prepare { key, .. }
            | Msg::Promise { key, .. }
            | Msg::Accept { key, .. }
            | Msg::Accepted { key, .. }
            | Msg::Nack { key, .. }
            | Msg::Commit { key, .. } => key,
        }
    }
}

/// A count of what a state machine did on the way (messages ignored). It is excluded from
/// equality and hashing: it observes, it is not state, and a model checker must not split
/// states by it (a duplicated stale reply would otherwise make a new state at every delivery).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counter(pub(crate) u64);

impl PartialEq for Counter {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Counter {}

impl std::hash::Hash for Counter {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}
