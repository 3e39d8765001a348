//! `consensus-seat`: two clients race to reserve seat 5A with set-if-absent compare-and-sets on
//! the real consensus core, and at most one of them gets it (spec MODEL-9).
//!
//! # The system
//! Three real [`Acceptor`]s and two real [`Proposer`]s of `converge_core::consensus`, each
//! wrapped as a stateright [`Actor`]. Each proposer runs one operation for its client,
//! `cas(seat, from: None, to: its client's value)`: the seat case. An acceptor's shell does what
//! a node's would: after every input it takes [`Acceptor::take_durable`] and applies it to its
//! disk *before* it sends anything (the ordering rule). Stateright owns the network: unordered
//! and duplicating (a delivered message stays deliverable, and may never be delivered at all).
//!
//! **The crash.** Acceptor 1 may restart once, at any point: a `Restart` timer that, when it
//! fires, throws away the acceptor's whole state and rebuilds it with [`Acceptor::recover`] from
//! its disk, which holds only what `take_durable` handed out. Messages in flight survive the
//! restart (a quick one), so replies sent before it may still arrive after it. Which acceptor
//! restarts does not matter: with three, each one is shared by the two clients' majorities in
//! some run.
//!
//! # Bounds, and what they leave out
//! - The network does not lose messages. For these `always` properties that leaves nothing out:
//!   every run with a loss is matched by one where the lost message is simply never delivered,
//!   which the duplicating network allows, and the states differ only by that message.
//! - The proposers' timers are not armed and each operation has one attempt: a proposer that
//!   hears no majority just waits. Timeouts, retries with higher ballots, backoff and the
//!   definite and indefinite errors are checked by the seeded runs of
//!   `reference/core/tests/consensus.rs` instead; here they would multiply the states without
//!   adding a way to choose a second value that the two competing ballots do not already have.
//! - The search is bounded by depth ([`DEPTH`]): every `sometimes` example is within it.
//!
//! # What is chosen: the ghost
//! The model's history (stateright's `record_msg_out`) watches every `Accepted` an acceptor
//! sends, which is after its record reached its disk: a proposal accepted by a majority at one
//! ballot is *chosen* for its instance. The history remembers every choice ever made, so a
//! later accept cannot hide an earlier choice.
//!
//! # Properties
//! - `always` [`AT_MOST_ONE_CHOSEN`]: no instance has two proposals chosen.
//! - `always` [`AT_MOST_ONE_HOLDS`]: at most one client was told it holds the seat.
//! - `always` [`TOLD_OK_HOLDS`]: a client told it holds the seat proposed the value chosen for
//!   the seat's first instance (a set-if-absent can succeed only there).
//! - `sometimes` [`SOME_CLIENT_HOLDS`]: a client was told it holds the seat (the companion of
//!   both client properties), [`SOME_VALUE_CHOSEN`]: a value was chosen (the companion of the
//!   first), and [`RESTARTED_AFTER_PROMISE`]: acceptor 1 restarted after it had promised, so
//!   the crash that the promise's durability guards against is explored.
//!
//! # The broken variant
//! `consensus-seat-forgets-promise` gives every acceptor [`Bug::ForgetsPromiseOnRestart`] and
//! must break [`AT_MOST_ONE_CHOSEN`]. It runs under the partition that makes its counterexample
//! shortest — client A's messages never reach acceptor 2, client B's never reach acceptor 0, so
//! their majorities share only the restarting acceptor 1 — and claims only that property (see
//! [`model`]). The counterexample (13 steps): A is promised by 0 and 1; B (the higher ballot) by
//! 1 and 2; acceptor 1 restarts and forgets B's promise; A's accept is taken by 0 and 1 (A's
//! seat chosen), B's by 1 and 2 (B's seat chosen).

use converge_core::ReplicaId;
use converge_core::consensus::{
    Acceptor, AcceptorDurable, Ballot, Bug, Cas, CasError, CasOk, Msg, ProposalId, Proposer,
    ProposerConfig, majority,
};
use converge_core::replica::Scalar;
use stateright::Expectation;
use stateright::actor::{
    Actor, ActorModel, ActorModelState, Envelope, Id, Network, Out, model_timeout,
};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

/// The default depth bound of the correct variant: every `sometimes` example is within it (the
/// longest, a client told it holds the seat, takes 8 steps).
pub const DEPTH: usize = 10;
/// The default depth bound of the broken variant: its 13-step counterexample is within it, and
/// the search stops once it is found.
pub const DEPTH_FORGETS_PROMISE: usize = 15;

/// `always`: at most one proposal is chosen per instance.
pub const AT_MOST_ONE_CHOSEN: &str = "at most one value is chosen per instance";
/// `always`: at most one client was told it holds the seat.
pub const AT_MOST_ONE_HOLDS: &str = "at most one client is told it holds the seat";
/// `always`: a client told it holds the seat holds it.
pub const TOLD_OK_HOLDS: &str = "a client told it holds the seat holds it";
/// `sometimes`: a client was told it holds the seat.
pub const SOME_CLIENT_HOLDS: &str = "a client is told it holds the seat";
/// `sometimes`: some proposal was chosen.
pub const SOME_VALUE_CHOSEN: &str = "a value is chosen";
/// `sometimes`: the restarting acceptor restarted after promising a ballot.
pub const RESTARTED_AFTER_PROMISE: &str = "an acceptor restarted after promising";

const ACCEPTORS: usize = 3;
/// The acceptor that may restart.
const RESTARTING: usize = 1;
const SEAT: &[u8] = b"5A";

/// Which acceptors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// The acceptor as built: every promise persisted.
    Correct,
    /// [`Bug::ForgetsPromiseOnRestart`] in every acceptor.
    ForgetsPromise,
}

/// An actor of the model.
#[derive(Clone, Debug)]
pub enum Node {
    /// An acceptor; `restarts` if it may restart once.
    Acceptor {
        /// The deliberately broken variant, if any.
        bug: Option<Bug>,
        /// Whether it may restart.
        restarts: bool,
    },
    /// A client with its proposer, reserving the seat for `value`.
    Client {
        /// The proposer's configuration.
        config: Box<ProposerConfig>,
        /// The client's name on the seat.
        value: i64,
        /// The acceptor this client's messages never reach, if partitioned from one.
        cut_from: Option<usize>,
    },
}

/// An actor's state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NodeState {
    /// An acceptor, with its disk.
    Acceptor {
        /// The running acceptor.
        acceptor: Box<Acceptor>,
        /// What it persisted: only `take_durable` deltas reach it.
        disk: AcceptorDurable,
        /// Whether it has restarted.
        restarted: bool,
        /// Whether it had promised some ballot when it restarted.
        restarted_after_promise: bool,
    },
    /// A client.
    Client {
        /// Its proposer.
        proposer: Box<Proposer>,
        /// How its operation ended, and its proposals.
        outcome: Option<ClientOutcome>,
    },
}

/// How a client's operation ended, with the proposals it sent to phase 2 (each with its
/// instance).
pub type ClientOutcome = (Result<CasOk, CasError>, Vec<(u64, ProposalId)>);

/// The actors' one timer: the restarting acceptor restarts from its disk.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Restart;

/// What the ghost knows: per (instance, ballot), the proposal accepted there and by whom; per
/// instance, every proposal ever chosen.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ghost {
    accepts: BTreeMap<(u64, Ballot), (ProposalId, BTreeSet<usize>)>,
    chosen: BTreeMap<u64, BTreeSet<ProposalId>>,
}

impl Ghost {
    /// Every proposal ever chosen at `instance`.
    pub fn chosen(&self, instance: u64) -> impl Iterator<Item = &ProposalId> {
        self.chosen.get(&instance).into_iter().flatten()
    }
}

/// Hands a proposer's outputs to the network. No timer is armed for its `poll_timeout`: see
/// the module documentation.
fn flush_client(
    proposer: &mut Proposer,
    outcome: &mut Option<ClientOutcome>,
    cut_from: Option<usize>,
    o: &mut Out<Node>,
) {
    // The proposers of this model do not crash, so their round high-water mark is not kept;
    // taking it first still follows the ordering rule.
    let _ = proposer.take_durable();
    while let Some((to, msg)) = proposer.poll_transmit() {
        if cut_from != Some(to.0 as usize) {
            o.send(Id::from(to.0 as usize), msg);
        }
    }
    if let Some(done) = proposer.poll_outcome() {
        *outcome = Some((done.result, done.proposals));
    }
}

fn flush_acceptor(acceptor: &mut Acceptor, disk: &mut AcceptorDurable, o: &mut Out<Node>) {
    if let Some(delta) = acceptor.take_durable() {
        disk.apply(delta);
    }
    while let Some((to, msg)) = acceptor.poll_transmit() {
        o.send(Id::from(to.0 as usize), msg);
    }
}

impl Node {
    fn cut_from(&self) -> Option<usize> {
        match self {
            Node::Client { cut_from, .. } => *cut_from,
            Node::Acceptor { .. } => None,
        }
    }
}

impl Actor for Node {
    type Msg = Msg;
    type State = NodeState;
    type Timer = Restart;
    type Random = ();
    type Storage = ();

    fn on_start(&self, id: Id, _storage: &Option<()>, o: &mut Out<Self>) -> NodeState {
        match self {
            Node::Acceptor { bug, restarts } => {
                let me = ReplicaId(usize::from(id) as u64);
                let acceptor = match bug {
                    Some(bug) => Acceptor::new(me).with_bug(*bug),
                    None => Acceptor::new(me),
                };
                if *restarts {
                    o.set_timer(Restart, model_timeout());
                }
                NodeState::Acceptor {
                    acceptor: Box::new(acceptor),
                    disk: AcceptorDurable::default(),
                    restarted: false,
                    restarted_after_promise: false,
                }
            }
            Node::Client {
                config,
                value,
                cut_from,
            } => {
                let mut proposer =
                    Proposer::new((**config).clone(), 0).expect("the model's configuration");
                let mut outcome = None;
                let cas = Cas {
                    key: SEAT.into(),
                    from: None,
                    to: Scalar::Int(*value),
                    base: None,
                };
                proposer
                    .cas(0, cas)
                    .expect("a fresh proposer has room for one operation");
                flush_client(&mut proposer, &mut outcome, *cut_from, o);
                NodeState::Client {
                    proposer: Box::new(proposer),
                    outcome,
                }
            }
        }
    }

    fn on_msg(&self, _id: Id, state: &mut Cow<NodeState>, src: Id, msg: Msg, o: &mut Out<Self>) {
        // Deliver to a copy first, so that a duplicate that changes nothing and sends nothing
        // leaves the state borrowed: not a step.
        let mut next = (**state).clone();
        let mut out = Out::new();
        let from = ReplicaId(usize::from(src) as u64);
        match &mut next {
            NodeState::Acceptor { acceptor, disk, .. } => {
                acceptor.handle(from, msg);
                flush_acceptor(acceptor, disk, &mut out);
            }
            NodeState::Client { proposer, outcome } => {
                let now = proposer.now_ms();
                proposer.handle(now, from, msg);
                flush_client(proposer, outcome, self.cut_from(), &mut out);
            }
        }
        let sends = out
            .iter()
            .any(|c| matches!(c, stateright::actor::Command::Send(..)));
        if next == **state && !sends {
            return;
        }
        *state.to_mut() = next;
        o.append(&mut out);
    }

    fn on_timeout(&self, id: Id, state: &mut Cow<NodeState>, _: &Restart, _o: &mut Out<Self>) {
        let (
            Node::Acceptor { bug, .. },
            NodeState::Acceptor {
                acceptor,
                disk,
                restarted,
                restarted_after_promise,
            },
        ) = (self, state.to_mut())
        else {
            return;
        };
        // Everything but the disk is lost; the acceptor is rebuilt from it.
        *restarted_after_promise = acceptor
            .records()
            .values()
            .any(|r| r.promised != Ballot::ZERO);
        let me = ReplicaId(usize::from(id) as u64);
        **acceptor = Acceptor::recover(me, disk.clone(), *bug);
        *restarted = true;
    }
}

fn record_out(_: &(), ghost: &Ghost, env: Envelope<&Msg>) -> Option<Ghost> {
    let Msg::Accepted {
        instance,
        ballot,
        id,
        ..
    } = env.msg
    else {
        return None;
    };
    let mut ghost = ghost.clone();
    let (accepted, by) = ghost
        .accepts
        .entry((*instance, *ballot))
        .or_insert_with(|| (*id, BTreeSet::new()));
    // A ballot belongs to one proposer, which proposes one proposal per ballot.
    debug_assert_eq!(accepted, id, "two proposals at one ballot");
    by.insert(usize::from(env.src));
    if by.len() >= majority(ACCEPTORS) {
        let chosen = *accepted;
        ghost.chosen.entry(*instance).or_default().insert(chosen);
    }
    Some(ghost)
}

/// The model's state.
pub type State = ActorModelState<Node, Ghost>;

/// The clients' outcomes: (their proposals, the result).
fn outcomes(state: &State) -> impl Iterator<Item = &ClientOutcome> {
    state.actor_states.iter().filter_map(|s| match &**s {
        NodeState::Client {
            outcome: Some(o), ..
        } => Some(o),
        _ => None,
    })
}

/// The actor model of `variant`.
pub fn model(variant: Variant) -> ActorModel<Node, (), Ghost> {
    let bug = match variant {
        Variant::Correct => None,
        Variant::ForgetsPromise => Some(Bug::ForgetsPromiseOnRestart),
    };
    let acceptors: Vec<ReplicaId> = (0..ACCEPTORS as u64).map(ReplicaId).collect();
    // The broken variant runs under the partition that makes its counterexample shortest
    // (each client reaches a different majority, which share only the restarting acceptor);
    // the correct variant under none, which also covers that partition, since the duplicating
    // network may leave any message undelivered forever.
    let partitioned = variant == Variant::ForgetsPromise;
    let client = |me: u64, value: i64, cut: usize| {
        let mut config = ProposerConfig::new(ReplicaId(me), acceptors.clone());
        // One attempt, and no timer is armed (see the module documentation), so the phase
        // timeout and the backoff never come into play here.
        config.attempts_max = 1;
        config.seed = me;
        Node::Client {
            config: Box::new(config),
            value,
            cut_from: partitioned.then_some(cut),
        }
    };
    let mut actors: Vec<Node> = (0..ACCEPTORS)
        .map(|a| Node::Acceptor {
            bug,
            restarts: a == RESTARTING,
        })
        .collect();
    actors.push(client(ACCEPTORS as u64, 1, 2));
    actors.push(client(ACCEPTORS as u64 + 1, 2, 0));
    let m = ActorModel::new((), Ghost::default())
        .actors(actors)
        .init_network(Network::new_unordered_duplicating([]))
        .record_msg_out(record_out)
        .property(Expectation::Always, AT_MOST_ONE_CHOSEN, |_, state| {
            state.history.chosen.values().all(|c| c.len() <= 1)
        })
        .property(Expectation::Sometimes, SOME_VALUE_CHOSEN, |_, state| {
            !state.history.chosen.is_empty()
        })
        .property(
            Expectation::Sometimes,
            RESTARTED_AFTER_PROMISE,
            |_, state| {
                state.actor_states.iter().any(|s| {
                    matches!(
                        &**s,
                        NodeState::Acceptor {
                            restarted_after_promise: true,
                            ..
                        }
                    )
                })
            },
        );
    // The broken variant claims only what it is built to break: its counterexample is 15 steps
    // deep, and a property expected to hold would keep the breadth-first search going through
    // every state of that depth after the counterexample is found.
    if variant != Variant::Correct {
        return m;
    }
    m.property(Expectation::Always, AT_MOST_ONE_HOLDS, |_, state| {
        outcomes(state).filter(|(r, _)| r.is_ok()).count() <= 1
    })
    .property(Expectation::Always, TOLD_OK_HOLDS, |_, state| {
        outcomes(state).all(|(r, proposals)| match r {
            Ok(ok) => {
                ok.instance == 1
                    && proposals
                        .last()
                        .is_some_and(|(_, id)| state.history.chosen(1).any(|chosen| chosen == id))
            }
            Err(_) => true,
        })
    })
    .property(Expectation::Sometimes, SOME_CLIENT_HOLDS, |_, state| {
        outcomes(state).any(|(r, _)| r.is_ok())
    })
}
