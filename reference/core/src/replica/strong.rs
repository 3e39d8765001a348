//! The consensus registers: compare-and-set, set and linearizable read, decided by single-decree
//! Paxos per key and instance (the protocol is `crate::consensus`'s; this part runs it inside
//! the replica), for what CRDTs cannot express — "reserve seat 5A" must not succeed twice.
//!
//! # What it owns
//! This replica's acceptor (its vote, per key and instance, and every decision it has learned),
//! its proposer (the client operations in consensus), the client requests waiting for their
//! operation, and the journal of what changed in either since the last `take_durable`.
//!
//! # What a consensus register means
//! - **A keyspace of its own.** A consensus register's value is its last decision, held by the
//!   acceptors; it is not a CRDT and is never merged, replicated through the oplog or repaired
//!   by anti-entropy (a lagging acceptor catches up from the first consensus message it gets,
//!   which carries the decision it builds on). So no CRDT write can change a register's value
//!   and no consensus operation can change a CRDT: that isolation holds everywhere, always.
//!   On top of it, a replica refuses to mix the two under one name where it can tell: a CRDT
//!   operation on a key its acceptor has a record of fails with `ConsensusKey`, and a consensus
//!   operation on a key that holds a CRDT here fails with `NotConsensusKey`. That refusal is
//!   per replica (a region that has not yet heard of the register accepts the CRDT write, into
//!   the CRDT keyspace), which is why the isolation, not the refusal, is the guarantee.
//! - **Quorum.** Every replica of the cluster is an acceptor, and a majority of all of them
//!   decides: with one replica per region (the usual deployment) a majority of regions, and any
//!   two majorities share an acceptor, which is all Paxos needs.
//! - **Levels.** `Cas` and `StrongSet` always run consensus, whatever level the request names:
//!   a weaker level cannot make a compare-and-set safe, and a level is never silently
//!   downgraded. `StrongGet` at `GlobalQuorum` runs phase 1 through a majority (linearizable);
//!   at a weaker level it answers the last decision the local acceptor learned, which may be
//!   stale — the price of not asking anyone.
//! - **Cost.** A set or compare-and-set that meets no contention takes two round trips to the
//!   nearest majority (prepare/promise, accept/accepted); the commit that teaches the decision
//!   to every acceptor leaves with the reply and is not waited for. A read takes one. A local
//!   write takes none. Contention costs a backoff (seeded, jittered, doubling) per attempt.
//! - **Outcomes.** `Ok`; `PreconditionFailed` (definite: a majority showed another value);
//!   `Unavailable` (definite: no majority in time, and no proposal of the operation can still be
//!   chosen); `Indefinite` (a proposal reached the accept phase and its fate is unknown);
//!   `Overloaded` beyond `pending_max` operations.
//!
//! # Invariants (checked by [`Strong::debug_check`])
//! - The ordering rule: a change to the acceptor's records or to the proposer's round mark is
//!   moved into the journal before any message of the same step is queued, so the replica's
//!   `take_durable` hands it out before `poll_transmit` can send what depends on it.
//! - Every waiting request has its proposer operation and every proposer operation its waiting
//!   request; the proposer ends each operation within its attempts, so every wait ends.
//! - At most `pending_max` operations are in consensus.

use super::api::{ClientError, Consistency, Done, Key, KeyKind, Op, Reply, Request, Scalar, Value};
use super::config::Bug;
use super::msg::RoutedBody;
use super::requests::Requests;
use super::session::SessionToken;
use super::shared::{Ctx, Shared};
use super::store::Store;
use crate::consensus::{
    Acceptor, Ballot, CasError, Decision, KeyRecord, Msg, OpId, Outcome, Proposal, Proposer,
    ProposerConfig, ProposerDurable, Refused, Want,
};
use crate::{ReplicaId, VectorClock};
use std::collections::BTreeMap;

/// The consensus part of a replica; see the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Strong {
    acceptor: Acceptor,
    proposer: Proposer,
    /// The client request behind each proposer operation.
    waiting: BTreeMap<OpId, Waiting>,
    /// Records changed since the last `take_durable`, with their latest value.
    journal: BTreeMap<Key, KeyRecord>,
    /// Whether the round mark moved since the last `take_durable`.
    rounds_moved: bool,
    /// Whether the shell takes durable changes (`Config::track_durable`); without it nothing
    /// is journaled, so the journal cannot grow unread.
    track: bool,
}

/// A client request in consensus.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Waiting {
    request_id: u64,
    /// The request's token: the reply's token is built on it.
    token: VectorClock,
    /// Whether the operation is a read (its `Ok` carries the value read).
    read: bool,
}

impl Strong {
    /// The part of a replica that has never run.
    pub(crate) fn new(shared: &Shared, now_ms: u64) -> Result<Strong, Refused> {
        Strong::recover(shared, BTreeMap::new(), ProposerDurable::default(), now_ms)
    }

    /// The part rebuilt from its durable records and round mark.
    pub(crate) fn recover(
        shared: &Shared,
        records: BTreeMap<Key, KeyRecord>,
        rounds: ProposerDurable,
        now_ms: u64,
    ) -> Result<Strong, Refused> {
        let c = &shared.config;
        let mut pc = ProposerConfig::new(c.me, shared.members.iter().copied().collect());
        pc.in_flight_max = c.pending_max.max(1);
        // Four phases fit in one quorum deadline, so a first attempt that meets no contention
        // always has time to finish, and tuning the deadline tunes both.
        pc.phase_timeout_ms = (c.quorum_timeout_ms / 4).max(1);
        pc.seed = c.seed ^ c.me.0.rotate_left(48);
        let proposer = Proposer::recover(pc, rounds, now_ms)?;
        let acceptor = Acceptor::recover(
            c.me,
            crate::consensus::AcceptorDurable { keys: records },
            None,
        );
        Ok(Strong {
            acceptor,
            proposer,
            waiting: BTreeMap::new(),
            journal: BTreeMap::new(),
            rounds_moved: false,
            track: c.track_durable,
        })
    }

    /// The acceptor's record of `key` (a default record if it has none).
    pub(crate) fn record(&self, key: &[u8]) -> KeyRecord {
        self.acceptor.record(key)
    }

    /// Whether this replica knows `key` as a consensus register.
    pub(crate) fn knows(&self, key: &[u8]) -> bool {
        self.acceptor.records().contains_key(key)
    }

    /// Every record, for the durable snapshot.
    pub(crate) fn records(&self) -> &BTreeMap<Key, KeyRecord> {
        self.acceptor.records()
    }

    /// The round mark, for the durable snapshot.
    pub(crate) fn rounds_below(&self) -> u64 {
        self.proposer.durable().rounds_below
    }

    /// Requests in consensus.
    pub(crate) fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Takes the records changed since the last call; `Some` (perhaps empty) also when only the
    /// round mark moved, which the replica reads from [`Strong::rounds_below`].
    pub(crate) fn take_durable(&mut self) -> Option<Vec<(Key, KeyRecord)>> {
        if self.journal.is_empty() && !std::mem::take(&mut self.rounds_moved) {
            return None;
        }
        self.rounds_moved = false;
        Some(std::mem::take(&mut self.journal).into_iter().collect())
    }

    /// When the proposer next needs `on_timeout`.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.proposer.poll_timeout()
    }

    /// A client request for a consensus register (`request.op.is_strong()`).
    pub(crate) fn on_request(&mut self, store: &Store, cx: &mut Ctx<'_>, request: Request) {
        let Request {
            id,
            key,
            op,
            consistency,
            token,
        } = request;
        let token = token.map(|t| t.frontier().clone()).unwrap_or_default();
        if !token.iter().all(|(o, _)| cx.shared.members.contains(&o)) {
            return reply(store, cx, id, Err(ClientError::BadToken), &token);
        }
        if let Some(s) = store.keys().get(&key) {
            return reply(
                store,
                cx,
                id,
                Err(ClientError::NotConsensusKey(s.kind())),
                &token,
            );
        }
        let want = match op {
            Op::StrongGet if consistency != Consistency::GlobalQuorum => {
                let value = match self.acceptor.record(&key).decided.value {
                    Some(v) => Value::Register(v),
                    None => Value::Absent,
                };
                return reply(store, cx, id, Ok(value), &token);
            }
            Op::StrongGet => Want::Read,
            Op::StrongSet(v) => Want::Set(v),
            Op::Cas { from, to } if cx.shared.config.bug == Some(Bug::CasDecidedLocally) => {
                return self.cas_decided_locally(store, cx, id, key, from, to, &token);
            }
            Op::Cas { from, to } => Want::Cas { from, to },
            other => {
                // The dispatcher sends only consensus operations here; should another arrive,
                // it is still answered, since every request gets a reply.
                debug_assert!(false, "a CRDT operation reached the consensus part");
                let kind = other.kind().unwrap_or(KeyKind::Counter);
                let e = ClientError::NotConsensusKey(kind);
                return reply(store, cx, id, Err(e), &token);
            }
        };
        let read = !want.writes();
        let base = Some(self.acceptor.record(&key).decided);
        match self.proposer.submit(cx.now_ms, key, want, base) {
            Ok(op) => {
                self.waiting.insert(
                    op,
                    Waiting {
                        request_id: id,
                        token,
                        read,
                    },
                );
                self.pump(store, cx);
            }
            Err(Refused::Busy { .. }) => {
                cx.m.overloaded += 1;
                reply(store, cx, id, Err(ClientError::Overloaded), &token);
            }
            // The base is the local acceptor's decision, always well formed, and the proposer's
            // configuration was accepted at start: neither refusal can happen.
            Err(Refused::InvalidBase | Refused::InvalidConfig(_)) => {
                debug_assert!(false, "the proposer refused a well-formed operation");
                reply(store, cx, id, Err(ClientError::Overloaded), &token);
            }
        }
    }

    /// A consensus message from replica `from` (already known to be a member, not this one).
    pub(crate) fn on_message(&mut self, store: &Store, cx: &mut Ctx<'_>, from: ReplicaId, m: Msg) {
        match m {
            Msg::Prepare { .. } | Msg::Accept { .. } => self.acceptor.handle(from, m),
            Msg::Promise { .. } | Msg::Accepted { .. } | Msg::Nack { .. } => {
                self.proposer.handle(cx.now_ms, from, m)
            }
            // A decision teaches both roles: the acceptor adopts it if it is beyond its own,
            // and the proposer moves on any operation on the key.
            Msg::Commit { .. } => {
                self.acceptor.handle(from, m.clone());
                if self.proposer.in_flight() > 0 {
                    self.proposer.handle(cx.now_ms, from, m);
                }
            }
        }
        self.pump(store, cx);
    }

    /// Time has come: phase timeouts and backoffs end.
    pub(crate) fn on_timeout(&mut self, store: &Store, cx: &mut Ctx<'_>) {
        if self.proposer.poll_timeout().is_some_and(|t| t <= cx.now_ms) {
            self.proposer.handle_timeout(cx.now_ms);
            self.pump(store, cx);
        }
    }

    /// Moves the two state machines' outputs along until both are quiet: durable changes into
    /// the journal first, then messages (to this replica's own acceptor or proposer directly,
    /// to others routed), then finished operations into replies.
    fn pump(&mut self, store: &Store, cx: &mut Ctx<'_>) {
        let me = cx.shared.config.me;
        loop {
            self.journal_changes();
            let mut moved = false;
            while let Some((to, m)) = self.proposer.poll_transmit() {
                moved = true;
                if to == me {
                    self.acceptor.handle(me, m);
                } else {
                    Requests::send_routed(cx, to, RoutedBody::Consensus(m));
                }
            }
            // The local acceptor may have voted just now: its record goes to the journal before
            // its answer goes anywhere.
            self.journal_changes();
            while let Some((to, m)) = self.acceptor.poll_transmit() {
                moved = true;
                if to == me {
                    self.proposer.handle(cx.now_ms, me, m);
                } else {
                    Requests::send_routed(cx, to, RoutedBody::Consensus(m));
                }
            }
            if !moved {
                break;
            }
        }
        while let Some(outcome) = self.proposer.poll_outcome() {
            self.finish(store, cx, outcome);
        }
    }

    /// Takes the state machines' durable changes (always, since they must be taken before
    /// their messages leave) and journals them if the shell persists.
    fn journal_changes(&mut self) {
        if let Some(delta) = self.acceptor.take_durable()
            && self.track
        {
            self.journal.extend(delta.keys);
        }
        if self.proposer.take_durable().is_some() {
            self.rounds_moved = self.track;
        }
    }

    /// Answers the request behind a finished operation.
    fn finish(&mut self, store: &Store, cx: &mut Ctx<'_>, outcome: Outcome) {
        let Some(w) = self.waiting.remove(&outcome.op) else {
            debug_assert!(false, "an operation finished that no request waits for");
            return;
        };
        let m = &mut *cx.m;
        match &outcome.result {
            Ok(_) => m.consensus_ok += 1,
            Err(CasError::PreconditionFailed { .. }) => m.consensus_precondition_failed += 1,
            Err(CasError::Unavailable { .. }) => m.consensus_unavailable += 1,
            Err(CasError::Indefinite { .. }) => m.consensus_indefinite += 1,
        }
        let result = match outcome.result {
            Ok(ok) if w.read => Ok(ok.previous.map_or(Value::Absent, Value::Register)),
            Ok(_) => Ok(Value::Written),
            Err(CasError::PreconditionFailed { current }) => {
                Err(ClientError::PreconditionFailed { current })
            }
            Err(CasError::Unavailable { .. }) => Err(ClientError::Unavailable {
                level: Consistency::GlobalQuorum,
            }),
            Err(CasError::Indefinite { .. }) => Err(ClientError::Indefinite),
        };
        reply(store, cx, w.request_id, result, &w.token);
    }

    /// The deliberately broken compare-and-set of [`Bug::CasDecidedLocally`]: a "fast path"
    /// that compares against the local acceptor's last decision and, if it matches, declares
    /// the next instance decided and broadcasts the commit — no promise, no majority. Two
    /// regions that both see `from` both succeed.
    #[allow(clippy::too_many_arguments)]
    fn cas_decided_locally(
        &mut self,
        store: &Store,
        cx: &mut Ctx<'_>,
        id: u64,
        key: Key,
        from: Option<Scalar>,
        to: Scalar,
        token: &VectorClock,
    ) {
        let me = cx.shared.config.me;
        let decided = self.acceptor.record(&key).decided;
        if decided.value != from {
            let current = decided.value;
            return reply(
                store,
                cx,
                id,
                Err(ClientError::PreconditionFailed { current }),
                token,
            );
        }
        let instance = decided.instance + 1;
        let proposal = Proposal {
            id: Ballot {
                round: instance,
                proposer: me,
            },
            value: to,
        };
        let decision = Decision::chosen(instance, &proposal);
        for &a in &cx.shared.members {
            let commit = Msg::Commit {
                key: key.clone(),
                decision: decision.clone(),
            };
            if a == me {
                self.acceptor.handle(me, commit);
            } else {
                Requests::send_routed(cx, a, RoutedBody::Consensus(commit));
            }
        }
        self.journal_changes();
        reply(store, cx, id, Ok(Value::Written), token);
    }

    /// Checks the module's invariants (debug builds).
    pub(crate) fn debug_check(&self, shared: &Shared) {
        debug_assert_eq!(
            self.waiting.len(),
            self.proposer.in_flight(),
            "a consensus operation without its request, or a request without its operation"
        );
        debug_assert!(self.waiting.len() <= shared.config.pending_max.max(1));
    }
}

/// Queues the reply to request `id`. Its token covers everything the local state is built
/// from, as every reply's does (see `session`): a consensus operation reads no CRDT state, but
/// the token must never go back.
fn reply(
    store: &Store,
    cx: &mut Ctx<'_>,
    id: u64,
    result: Result<Value, ClientError>,
    token: &VectorClock,
) {
    let result = result.map(|value| {
        let mut t = token.clone();
        t.merge(store.horizon());
        Done {
            value,
            token: SessionToken::from_frontier(t),
        }
    });
    cx.replies.push_back(Reply { id, result });
}
