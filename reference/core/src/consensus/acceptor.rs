//! The acceptor: per key, the last decision, and the promise and accepted proposal of the
//! instance after it; all of it durable.
//!
//! # What must survive a crash, and why
//! Everything the acceptor keeps. A promise forgotten lets the acceptor accept a lower ballot
//! it promised to refuse, and a proposer that counted that promise may then propose its own
//! value while an older one is being chosen: two decisions for one instance ([`Bug`] is exactly
//! this). An accept forgotten may unchoose a chosen proposal. A decision forgotten would reopen
//! an instance whose promises and accepts were discarded when it was decided. So each record is
//! journaled on every change, and the ordering rule applies: [`Acceptor::take_durable`] after an
//! input, persisted, *before* anything [`Acceptor::poll_transmit`] gives is sent.
//!
//! # Invariants (checked by `KeyRecord::check` after every change)
//! - the accepted ballot is at most the promised one;
//! - the decision is well formed, and its instance never decreases;
//! - a new decision clears the promise and the accepted proposal (they were the old instance's).

use super::msg::{Ballot, Counter, Decision, Msg, Proposal};
use crate::ReplicaId;
use crate::replica::Key;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A deliberately broken acceptor, which the model and the randomized tests must catch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bug {
    /// The promise is not persisted: after a restart the acceptor remembers only the ballot of
    /// what it accepted, so it accepts ballots below a promise it gave before the crash.
    ForgetsPromiseOnRestart,
}

/// One key's consensus state at an acceptor.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyRecord {
    /// The last decision learned.
    pub decided: Decision,
    /// The ballot promised for instance `decided.instance + 1` ([`Ballot::ZERO`]: none).
    pub promised: Ballot,
    /// The proposal accepted for instance `decided.instance + 1`, with its ballot.
    pub accepted: Option<(Ballot, Proposal)>,
}

impl Default for KeyRecord {
    fn default() -> Self {
        KeyRecord {
            decided: Decision::default(),
            promised: Ballot::ZERO,
            accepted: None,
        }
    }
}

impl KeyRecord {
    /// The instance this record's promise and accept belong to.
    pub fn open_instance(&self) -> u64 {
        self.decided.instance + 1
    }

    /// Adopts `decision` if it is beyond the one held; the old instance's promise and accept
    /// are moot once it is decided. Returns whether anything changed.
    fn learn(&mut self, decision: &Decision) -> bool {
        if decision.instance <= self.decided.instance {
            return false;
        }
        self.decided = decision.clone();
        self.promised = Ballot::ZERO;
        self.accepted = None;
        true
    }

    /// Checks the module's invariants (debug builds).
    fn check(&self) {
        debug_assert!(
            self.accepted
                .as_ref()
                .is_none_or(|(b, _)| *b <= self.promised),
            "an accepted ballot above the promise: {self:?}"
        );
        debug_assert!(self.decided.is_valid(), "a malformed decision: {self:?}");
    }
}

/// What an acceptor persists: every key's record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AcceptorDurable {
    /// Each key's record.
    pub keys: BTreeMap<Key, KeyRecord>,
}

/// What changed since the last [`Acceptor::take_durable`]: records to store whole.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AcceptorDelta {
    /// Changed records (replace, do not merge).
    pub keys: Vec<(Key, KeyRecord)>,
}

impl AcceptorDurable {
    /// Applies a delta, as a shell's store would.
    pub fn apply(&mut self, delta: AcceptorDelta) {
        for (k, r) in delta.keys {
            self.keys.insert(k, r);
        }
    }
}

/// One region's acceptor for every key.
///
/// # Call protocol
/// - **Input**: [`handle`](Self::handle) a message from a proposer (`Prepare`, `Accept`,
///   `Commit`). Other messages are counted in [`ignored`](Self::ignored) and change nothing.
/// - **Outputs**, after every input, in this order: [`take_durable`](Self::take_durable)
///   (persist it), then [`poll_transmit`](Self::poll_transmit) until `None`.
///
/// The acceptor needs no clock: it only answers. It is `Clone + Eq + Hash + Debug` and
/// deterministic, so model checkers can hold it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Acceptor {
    me: ReplicaId,
    bug: Option<Bug>,
    keys: BTreeMap<Key, KeyRecord>,
    /// Keys changed since the last `take_durable`.
    dirty: BTreeSet<Key>,
    outbox: VecDeque<(ReplicaId, Msg)>,
    /// Messages that an acceptor does not take, or that are malformed.
    ignored: Counter,
}

impl Acceptor {
    /// An acceptor that has never run.
    pub fn new(me: ReplicaId) -> Acceptor {
        Acceptor {
            me,
            bug: None,
            keys: BTreeMap::new(),
            dirty: BTreeSet::new(),
            outbox: VecDeque::new(),
            ignored: Counter::default(),
        }
    }

    /// The broken variant `bug` (for the models and tests that must catch it).
    pub fn with_bug(mut self, bug: Bug) -> Acceptor {
        self.bug = Some(bug);
        self
    }

    /// Rebuilds an acceptor after a crash from what it persisted. Every promise and accept it
    /// answered before the crash is in `durable`, by the ordering rule, so it keeps them all.
    pub fn recover(me: ReplicaId, durable: AcceptorDurable, bug: Option<Bug>) -> Acceptor {
        let mut a = Acceptor::new(me);
        a.bug = bug;
        a.keys = durable.keys;
        if a.bug == Some(Bug::ForgetsPromiseOnRestart) {
            for r in a.keys.values_mut() {
                r.promised = r.accepted.as_ref().map_or(Ballot::ZERO, |(b, _)| *b);
            }
        }
        for r in a.keys.values() {
            r.check();
        }
        a
    }

    /// This acceptor's id.
    pub fn id(&self) -> ReplicaId {
        self.me
    }

    /// The record of `key` (a key never heard of reads as the default record).
    pub fn record(&self, key: &[u8]) -> KeyRecord {
        self.keys.get(key).cloned().unwrap_or_default()
    }

    /// Every record, by key.
    pub fn records(&self) -> &BTreeMap<Key, KeyRecord> {
        &self.keys
    }

    /// The whole durable state, as [`recover`](Self::recover) takes it.
    pub fn durable(&self) -> AcceptorDurable {
        AcceptorDurable {
            keys: self.keys.clone(),
        }
    }

    /// Messages ignored: not for an acceptor, or malformed.
    pub fn ignored(&self) -> u64 {
        self.ignored.0
    }

    /// Input: a message from `from`.
    pub fn handle(&mut self, from: ReplicaId, msg: Msg) {
        match msg {
            Msg::Prepare {
                key,
                instance,
                ballot,
                base,
            } => {
                let k = key.clone();
                self.vote(from, key, instance, &base, |r| {
                    if ballot >= r.promised {
                        // Equal: a duplicated prepare gets the same promise again, not a refusal.
                        r.promised = ballot;
                        Msg::Promise {
                            key: k,
                            instance,
                            ballot,
                            accepted: r.accepted.clone(),
                        }
                    } else {
                        Msg::Nack {
                            key: k,
                            instance,
                            ballot,
                            higher: r.promised,
                        }
                    }
                });
            }
            Msg::Accept {
                key,
                instance,
                ballot,
                proposal,
                base,
            } => {
                let k = key.clone();
                self.vote(from, key, instance, &base, |r| {
                    if ballot >= r.promised {
                        let id = proposal.id;
                        r.promised = ballot;
                        r.accepted = Some((ballot, proposal));
                        Msg::Accepted {
                            key: k,
                            instance,
                            ballot,
                            id,
                        }
                    } else {
                        Msg::Nack {
                            key: k,
                            instance,
                            ballot,
                            higher: r.promised,
                        }
                    }
                });
            }
            Msg::Commit { key, decision } => {
                if !decision.is_valid() {
                    self.ignored.0 += 1;
                    return;
                }
                let mut r = self.record(&key);
                let before = r.clone();
                r.learn(&decision);
                self.store(key, before, r);
            }
            Msg::Promise { .. } | Msg::Accepted { .. } | Msg::Nack { .. } => self.ignored.0 += 1,
        }
    }

    /// What a prepare and an accept share: a message whose `base` is not the decision of the
    /// instance before its own is ignored; otherwise the acceptor learns `base`, answers an
    /// instance it has already decided with that decision, and else lets `decide` change the
    /// key's record and name the reply. The record is journaled before the reply is queued, so
    /// the reply describes durable state only.
    fn vote(
        &mut self,
        from: ReplicaId,
        key: Key,
        instance: u64,
        base: &Decision,
        decide: impl FnOnce(&mut KeyRecord) -> Msg,
    ) {
        if !Self::well_based(instance, base) {
            self.ignored.0 += 1;
            return;
        }
        let mut r = self.record(&key);
        let before = r.clone();
        r.learn(base);
        let reply = if instance <= r.decided.instance {
            Msg::Commit {
                key: key.clone(),
                decision: r.decided.clone(),
            }
        } else {
            decide(&mut r)
        };
        self.store(key, before, r);
        self.outbox.push_back((from, reply));
    }

    /// Whether `base` is a well-formed decision of the instance before `instance`.
    fn well_based(instance: u64, base: &Decision) -> bool {
        base.is_valid() && base.instance.checked_add(1) == Some(instance)
    }

    /// Keeps `after` as `key`'s record and journals it, if it differs from `before`.
    fn store(&mut self, key: Key, before: KeyRecord, after: KeyRecord) {
        if after == before {
            return;
        }
        after.check();
        debug_assert!(
            after.decided.instance >= before.decided.instance,
            "a decision went back: {before:?} -> {after:?}"
        );
        self.dirty.insert(key.clone());
        self.keys.insert(key, after);
    }

    /// Output: the records changed since the last call, to persist before anything is sent.
    /// `None` when nothing changed.
    pub fn take_durable(&mut self) -> Option<AcceptorDelta> {
        if self.dirty.is_empty() {
            return None;
        }
        let keys = std::mem::take(&mut self.dirty)
            .into_iter()
            .map(|k| {
                let r = self.record(&k);
                (k, r)
            })
            .collect();
        Some(AcceptorDelta { keys })
    }

    /// Output: the next reply, `(to, message)`. Call [`take_durable`](Self::take_durable) (and
    /// persist it) first: a reply describes durable state only.
    pub fn poll_transmit(&mut self) -> Option<(ReplicaId, Msg)> {
        debug_assert!(
            self.dirty.is_empty() || self.outbox.is_empty(),
            "poll_transmit before take_durable: a reply would describe state not yet durable"
        );
        self.outbox.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::Scalar;

    fn b(round: u64, p: u64) -> Ballot {
        Ballot {
            round,
            proposer: ReplicaId(p),
        }
    }

    fn prepare(instance: u64, ballot: Ballot, base: Decision) -> Msg {
        Msg::Prepare {
            key: b"k".as_slice().into(),
            instance,
            ballot,
            base,
        }
    }

    fn accept(instance: u64, ballot: Ballot, value: i64) -> Msg {
        Msg::Accept {
            key: b"k".as_slice().into(),
            instance,
            ballot,
            proposal: Proposal {
                id: ballot,
                value: Scalar::Int(value),
            },
            base: Decision::default(),
        }
    }

    fn step(a: &mut Acceptor, from: u64, msg: Msg) -> (Option<AcceptorDelta>, Vec<Msg>) {
        a.handle(ReplicaId(from), msg);
        let d = a.take_durable();
        let mut out = Vec::new();
        while let Some((_, m)) = a.poll_transmit() {
            out.push(m);
        }
        (d, out)
    }

    #[test]
    fn a_promise_refuses_lower_ballots_and_reports_what_was_accepted() {
        let mut a = Acceptor::new(ReplicaId(0));
        let (d, out) = step(&mut a, 9, prepare(1, b(2, 9), Decision::default()));
        assert!(d.is_some(), "a promise is durable before it is sent");
        assert!(matches!(&out[..], [Msg::Promise { accepted: None, .. }]));
        // A lower ballot is refused in both phases and names the promise.
        let (d, out) = step(&mut a, 8, prepare(1, b(1, 8), Decision::default()));
        assert!(d.is_none());
        assert!(matches!(&out[..], [Msg::Nack { higher, .. }] if *higher == b(2, 9)));
        let (_, out) = step(&mut a, 8, accept(1, b(1, 8), 5));
        assert!(matches!(&out[..], [Msg::Nack { .. }]));
        // The promised ballot is accepted, and a later promise reports it.
        let (d, out) = step(&mut a, 9, accept(1, b(2, 9), 7));
        assert!(d.is_some());
        assert!(matches!(&out[..], [Msg::Accepted { .. }]));
        let (_, out) = step(&mut a, 7, prepare(1, b(3, 7), Decision::default()));
        match &out[..] {
            [
                Msg::Promise {
                    accepted: Some((ballot, p)),
                    ..
                },
            ] => {
                assert_eq!(*ballot, b(2, 9));
                assert_eq!(p.value, Scalar::Int(7));
            }
            other => panic!("expected a promise with the accepted proposal, got {other:?}"),
        }
    }

    #[test]
    fn a_duplicated_prepare_gets_the_same_promise_and_changes_nothing() {
        let mut a = Acceptor::new(ReplicaId(0));
        let (_, first) = step(&mut a, 9, prepare(1, b(2, 9), Decision::default()));
        let (d, again) = step(&mut a, 9, prepare(1, b(2, 9), Decision::default()));
        assert!(d.is_none());
        assert_eq!(first, again);
    }

    #[test]
    fn a_decided_instance_answers_with_its_decision_and_a_lagging_acceptor_catches_up() {
        let mut a = Acceptor::new(ReplicaId(0));
        let decided = Decision::chosen(
            3,
            &Proposal {
                id: b(4, 9),
                value: Scalar::Int(1),
            },
        );
        // A prepare for instance 4 carries instance 3's decision: the acceptor adopts it.
        let (d, out) = step(&mut a, 9, prepare(4, b(1, 9), decided.clone()));
        assert!(d.is_some());
        assert!(matches!(&out[..], [Msg::Promise { instance: 4, .. }]));
        assert_eq!(a.record(b"k").decided, decided);
        // A proposer behind asks about instance 1 and learns the decision instead.
        let (_, out) = step(&mut a, 8, prepare(1, b(9, 8), Decision::default()));
        assert!(matches!(&out[..], [Msg::Commit { decision, .. }] if *decision == decided));
        // A new decision clears the open instance's promise.
        let next = Decision::chosen(
            4,
            &Proposal {
                id: b(1, 9),
                value: Scalar::Int(2),
            },
        );
        step(
            &mut a,
            9,
            Msg::Commit {
                key: b"k".as_slice().into(),
                decision: next.clone(),
            },
        );
        assert_eq!(
            a.record(b"k"),
            KeyRecord {
                decided: next,
                ..KeyRecord::default()
            }
        );
    }

    #[test]
    fn malformed_and_misdirected_messages_are_counted_and_change_nothing() {
        let mut a = Acceptor::new(ReplicaId(0));
        // The base must be the instance just before.
        let (d, out) = step(&mut a, 9, prepare(3, b(1, 9), Decision::default()));
        assert!(d.is_none() && out.is_empty());
        let (d, out) = step(
            &mut a,
            9,
            Msg::Commit {
                key: b"k".as_slice().into(),
                decision: Decision {
                    instance: 2,
                    value: None,
                    id: None,
                },
            },
        );
        assert!(d.is_none() && out.is_empty());
        let (d, out) = step(
            &mut a,
            9,
            Msg::Nack {
                key: b"k".as_slice().into(),
                instance: 1,
                ballot: b(1, 1),
                higher: b(2, 2),
            },
        );
        assert!(d.is_none() && out.is_empty());
        assert_eq!(a.ignored(), 3);
        assert!(a.records().is_empty());
    }

    #[test]
    fn recovery_keeps_every_promise_and_the_broken_variant_forgets_them() {
        let mut a = Acceptor::new(ReplicaId(0));
        let mut disk = AcceptorDurable::default();
        a.handle(ReplicaId(9), prepare(1, b(5, 9), Decision::default()));
        disk.apply(a.take_durable().expect("a promise changes the record"));
        let recovered = Acceptor::recover(ReplicaId(0), disk.clone(), None);
        assert_eq!(recovered.record(b"k").promised, b(5, 9));
        let mut broken = Acceptor::recover(ReplicaId(0), disk, Some(Bug::ForgetsPromiseOnRestart));
        assert_eq!(broken.record(b"k").promised, Ballot::ZERO);
        // The broken acceptor now accepts a ballot below the promise it gave.
        let (_, out) = step(&mut broken, 8, accept(1, b(1, 8), 3));
        assert!(matches!(&out[..], [Msg::Accepted { .. }]));
    }
}
