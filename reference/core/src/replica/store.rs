//! The store: a replica's durable state, and the only code that writes it.
//!
//! # What it owns
//! - the keyspace (typed CRDT states by key, with the Merkle tree over them, see `keyspace`);
//! - the oplog: the entries still to be forwarded to children (see `oplog`);
//! - the frontier `F` and the horizon `V` (see `session`), and the last sequence number issued;
//! - the hybrid logical clock that stamps this replica's writes;
//! - the journal: what changed since the last `take_durable` (only with `track_durable`);
//! - `deps_sent`, the join of the dependencies every entry issued since the start (or the
//!   restart) named: soft state, but it only ever shapes the entries the store issues.
//!
//! Every change to any of these goes through a method here, and every such method records it in
//! the journal, so a durable delta can never miss a change: that is why the store is the one
//! writer. The other parts read it (`frontier`, `keys`, `oplog`, ...) and ask it to change
//! through narrow methods: [`Store::write`] and [`Store::write_back`] (a client write, a quorum
//! read's write-back), [`Store::apply`] (the next entry of an origin), [`Store::join_key`]
//! (state from anti-entropy or a quorum read), [`Store::raise_horizon`],
//! [`Store::claim_frontier`] (an anti-entropy claim) and [`Store::truncate`].
//!
//! A method that logs an entry for forwarding says so (`logged`), and the dispatcher arms the
//! links' flush: the store knows what is in the log, the links know when to send it.
//!
//! # Invariants (checked by [`Store::debug_check`] after every input)
//! - `F ⊑ V` and `F[me] = V[me] = last_seq`.
//! - The state is above the delta of every entry `≤ F` and built from entries `≤ V` only: an
//!   entry is applied (joined, then `F` and `V` raised) only as the next of its origin, and state
//!   joined from outside the oplog raises `V` by the horizon it was built under.
//! - `F` is causally closed: [`Store::apply`] requires `F` to cover the entry's dependencies.
//! - Every retained oplog entry, and each of its dependencies, is `≤ F`; each origin's retained
//!   entries are gap-free (see `oplog`).
//! - `deps_sent ⊑ F`: a dependency is only named once held.
//! - Every Merkle node is the sum of the hashes below it (see `keyspace`).

use super::api::{ClientError, Key, KeyKind, Op, Value};
use super::codec::KEY_BYTES_MAX;
use super::config::Bug;
use super::durable::{Durable, DurableDelta, DurableMeta, Journal, RecoverError};
use super::keyspace::Keyspace;
use super::oplog::{Entry, Oplog};
use super::shared::Shared;
use super::state::{KeyState, check_counter_range};
use super::stats::Counters;
use crate::{BoundedCounter, BoundedError, Hlc, HlcTimestamp, Lattice, ReplicaId, VectorClock};

/// The durable state of a replica; see the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Store {
    hlc: Hlc,
    /// Last sequence number issued as an origin.
    last_seq: u64,
    /// `F`: entries held, per origin, gap-free (see `session`).
    frontier: VectorClock,
    /// `V`: upper bound of the entries the state is built from.
    horizon: VectorClock,
    keys: Keyspace,
    oplog: Oplog,
    /// The join of the dependencies of every entry issued since the start (or the restart):
    /// what a receiver already holds when it applies our next entry, so that entry need not name
    /// it again (see `session` § Causal delivery). Soft state: forgetting it only makes the next
    /// entries name more.
    deps_sent: VectorClock,
    journal: Option<Journal>,
}

/// An entry the store issued as this replica's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Issued {
    /// Its sequence number.
    pub(crate) seq: u64,
    /// Whether it was logged for forwarding (the links then owe a flush).
    pub(crate) logged: bool,
}

impl Store {
    pub(crate) fn new(shared: &Shared) -> Store {
        let c = &shared.config;
        Store {
            hlc: Hlc::new(c.max_drift_ms),
            last_seq: 0,
            frontier: VectorClock::new(),
            horizon: VectorClock::new(),
            keys: Keyspace::with_pins(
                c.merkle_fanout_bits,
                c.merkle_depth,
                c.residency
                    .iter()
                    .map(|p| p.prefix.clone().into_boxed_slice())
                    .collect(),
            ),
            oplog: Oplog::default(),
            deps_sent: VectorClock::new(),
            journal: c.track_durable.then(Journal::default),
        }
    }

    /// Loads `durable` into a store that has never run, refusing a state no replica could have
    /// written. Leaves the journal empty: what was loaded is durable already.
    pub(crate) fn recover(
        &mut self,
        durable: Durable,
        shared: &Shared,
    ) -> Result<(), RecoverError> {
        let Durable {
            meta, keys, oplog, ..
        } = durable;
        let me = shared.config.me;
        if !meta
            .frontier
            .iter()
            .all(|(o, _)| shared.members.contains(&o))
            || !meta
                .horizon
                .iter()
                .all(|(o, _)| shared.members.contains(&o))
        {
            return Err(RecoverError::Inconsistent(
                "frontier names a replica outside the cluster",
            ));
        }
        if !meta.horizon.dominates(&meta.frontier) {
            return Err(RecoverError::Inconsistent("frontier above horizon"));
        }
        if meta.frontier.get(me) != meta.last_seq || meta.horizon.get(me) != meta.last_seq {
            return Err(RecoverError::Inconsistent(
                "own frontier differs from the last sequence number",
            ));
        }
        let mut hlc_last = meta.hlc;
        for e in &oplog {
            if e.seq > meta.frontier.get(e.origin) {
                return Err(RecoverError::Inconsistent("oplog entry above the frontier"));
            }
            if self.oplog.end(e.origin).is_some_and(|end| end != e.seq) {
                return Err(RecoverError::Inconsistent("oplog not gap-free"));
            }
            // Children will apply the entry only once they hold its dependencies, which must be
            // members, and held here since it was applied here.
            if e.deps.get(e.origin) != 0
                || !e.deps.iter().all(|(o, _)| shared.members.contains(&o))
                || !meta.frontier.dominates(&e.deps)
            {
                return Err(RecoverError::Inconsistent(
                    "oplog entry depends on entries not held",
                ));
            }
            if e.origin == me {
                hlc_last = hlc_last.max(e.stamp);
            }
            self.oplog.append(e.clone());
        }
        for (k, s) in keys {
            if k.len() > KEY_BYTES_MAX {
                return Err(RecoverError::Inconsistent("key too long"));
            }
            self.keys.join(&k, s);
        }
        self.hlc = Hlc::resume(hlc_last, shared.config.max_drift_ms);
        self.last_seq = meta.last_seq;
        self.frontier = meta.frontier;
        self.horizon = meta.horizon;
        if let Some(j) = &mut self.journal {
            *j = Journal::default();
        }
        Ok(())
    }

    // ----- reads -----

    /// `F`: per origin, the entries held, gap-free.
    #[inline]
    pub(crate) fn frontier(&self) -> &VectorClock {
        &self.frontier
    }

    /// `V`: the state is built from entries at or below it.
    #[inline]
    pub(crate) fn horizon(&self) -> &VectorClock {
        &self.horizon
    }

    /// The last sequence number this replica issued.
    #[inline]
    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq
    }

    #[inline]
    pub(crate) fn keys(&self) -> &Keyspace {
        &self.keys
    }

    #[inline]
    pub(crate) fn oplog(&self) -> &Oplog {
        &self.oplog
    }

    /// Hashes every write so far into the Merkle tree (see [`Store::fresh_tree`]).
    pub(crate) fn refresh_keys(&mut self) {
        self.keys.refresh();
    }

    /// Whether `F` covers `deps`, so that an entry depending on them may be applied.
    #[inline]
    pub(crate) fn holds(&self, deps: &VectorClock) -> bool {
        deps.is_empty() || self.frontier.dominates(deps)
    }

    /// Whether a frontier or horizon from a peer is possible: only members, and none of our own
    /// writes beyond what we issued.
    #[inline]
    pub(crate) fn plausible(&self, vv: &VectorClock, shared: &Shared) -> bool {
        vv.iter().all(|(o, _)| shared.members.contains(&o))
            && vv.get(shared.config.me) <= self.last_seq
    }

    /// What the durable state is now, as [`Store::recover`] takes it.
    pub(crate) fn durable(&self) -> Durable {
        Durable {
            meta: self.durable_meta(),
            keys: self
                .keys
                .iter()
                .map(|(k, s)| (k.clone(), s.clone()))
                .collect(),
            oplog: self.oplog.iter().cloned().collect(),
            // The consensus records are the `strong` part's; the replica adds them.
            strong: Default::default(),
        }
    }

    /// The meta as the store knows it; the replica adds the consensus round mark.
    pub(crate) fn durable_meta(&self) -> DurableMeta {
        DurableMeta {
            hlc: self.hlc.last(),
            last_seq: self.last_seq,
            frontier: self.frontier.clone(),
            horizon: self.horizon.clone(),
            rounds_below: 0,
        }
    }

    /// What changed since the last call (`None` if nothing did, or without a journal).
    pub(crate) fn take_durable(&mut self) -> Option<DurableDelta> {
        let meta = self.durable_meta();
        let journal = self.journal.as_mut()?;
        if !journal.dirty {
            return None;
        }
        let j = std::mem::take(journal);
        let keys = j
            .keys
            .into_iter()
            .filter_map(|k| {
                let s = self.keys.get(&k)?.clone();
                Some((k, s))
            })
            .collect();
        Some(DurableDelta {
            meta,
            keys,
            appended: j.appended,
            truncated: j.truncated.into_iter().collect(),
            strong: Vec::new(),
        })
    }

    // ----- writes -----

    /// Applies a write served under session token `token` locally: type check, δ-mutator, oplog
    /// entry. Returns the entry issued and the reply value. On error nothing changed. It takes
    /// the key by value so that the request's key becomes the entry's without a copy.
    pub(crate) fn write(
        &mut self,
        key: Key,
        op: Op,
        token: &VectorClock,
        now_ms: u64,
        shared: &Shared,
        m: &mut Counters,
    ) -> Result<(Issued, Value), ClientError> {
        let Some(kind) = op.kind() else {
            debug_assert!(false, "write of a read");
            return Err(ClientError::Overloaded);
        };
        if let Some(s) = self.keys.get(&key)
            && s.kind() != kind
        {
            return Err(ClientError::WrongType {
                key: s.kind(),
                op: kind,
            });
        }
        // Before the stamp, so a refused operation leaves no trace, not even a clock tick.
        check_counter_range(self.keys.get(&key), &op)?;
        let stamp = match &op {
            Op::Put(_) => self.lww_stamp(&key, now_ms, shared.config.max_drift_ms)?,
            _ => self.hlc.now(now_ms).map_err(|_| ClientError::ClockDrift)?,
        };
        let me = shared.config.me;
        let forge = shared.config.bug == Some(Bug::EscrowLocalCheck);
        let (result, changed) = self.keys.modify(&key, |slot| {
            let state = slot.get_or_insert_with(|| KeyState::empty(kind));
            mutate(state, me, stamp, op, forge)
        });
        let (delta, value) = result?;
        if changed {
            self.journal_key(&key);
        }
        let issued = self.issue(key, stamp, delta, token, shared, m);
        Ok((issued, value))
    }

    /// Transfers `by` of this replica's rights on bounded counter `key` to `to`, as an ordinary
    /// logged write of this replica (its δ reaches `to` through replication like any other).
    /// `None`, with nothing changed, if the key is not a bounded counter, this replica holds
    /// fewer than `by` rights, or the clock refuses a stamp. The entry depends on nothing: a
    /// bounded counter's spend δ carries its own backing (see `crdt::bounded`).
    pub(crate) fn transfer_rights(
        &mut self,
        key: &[u8],
        to: ReplicaId,
        by: u64,
        now_ms: u64,
        shared: &Shared,
        m: &mut Counters,
    ) -> Option<Issued> {
        let me = shared.config.me;
        if !matches!(self.keys.get(key), Some(KeyState::Bounded(c)) if c.rights(me) >= i128::from(by))
        {
            return None;
        }
        let stamp = self.hlc.now(now_ms).ok()?;
        let (delta, changed) = self.keys.modify(key, |slot| match slot {
            Some(KeyState::Bounded(c)) => c.transfer(me, to, by).ok(),
            _ => None,
        });
        let delta = delta?;
        if changed {
            self.journal_key(key);
        }
        let token = VectorClock::new();
        Some(self.issue(
            key.into(),
            stamp,
            KeyState::Bounded(delta),
            &token,
            shared,
            m,
        ))
    }

    /// A global-quorum read's write-back (ABD's second phase): `state`, which the keyspace
    /// already holds, issued again as a new entry of this replica.
    pub(crate) fn write_back(
        &mut self,
        key: Key,
        state: KeyState,
        token: &VectorClock,
        now_ms: u64,
        shared: &Shared,
        m: &mut Counters,
    ) -> Issued {
        let stamp = self.hlc.now(now_ms).unwrap_or(self.hlc.last());
        self.issue(key, stamp, state, token, shared, m)
    }

    /// Issues the next oplog entry of this replica, for a write served under session token
    /// `token`.
    fn issue(
        &mut self,
        key: Key,
        stamp: HlcTimestamp,
        delta: KeyState,
        token: &VectorClock,
        shared: &Shared,
        m: &mut Counters,
    ) -> Issued {
        let me = shared.config.me;
        let deps = self.entry_deps(token, me);
        self.last_seq += 1;
        let seq = self.last_seq;
        // The state already holds `delta`: F and V may cover the entry.
        self.frontier.raise(me, seq);
        self.horizon.raise(me, seq);
        self.journal_meta();
        let logged = self.log_entry(
            Entry {
                origin: me,
                seq,
                stamp,
                deps,
                key,
                delta,
                redacted: false,
            },
            shared,
            m,
        );
        Issued { seq, logged }
    }

    /// The dependencies of the next entry, written under session token `token`: everything the
    /// writing session has observed (see `session` § Causal delivery), less what is implied.
    ///
    /// Our own entries are implied by in-order application. So is whatever an earlier entry of
    /// ours already named (`deps_sent`): a receiver applies our entries in order, each only once
    /// its frontier covers that entry's dependencies, and frontiers only grow. What remains is
    /// usually nothing, or one or two origins a moving session brings along.
    ///
    /// A write is served only once its token is covered, so the token is below the frontier; the
    /// clamp to the frontier keeps every frontier causally closed even under
    /// [`Bug::ReadIgnoresToken`](super::config::Bug::ReadIgnoresToken), whose reads may write back under a token they never waited for.
    fn entry_deps(&mut self, token: &VectorClock, me: ReplicaId) -> VectorClock {
        let implied = |o: ReplicaId, n: u64| o == me || n <= self.deps_sent.get(o);
        if token.iter().all(|(o, n)| implied(o, n)) {
            return VectorClock::new();
        }
        let deps: VectorClock = token
            .iter()
            .filter(|&(o, n)| !implied(o, n))
            .map(|(o, n)| (o, n.min(self.frontier.get(o))))
            .collect();
        self.deps_sent.merge(&deps);
        deps
    }

    /// A stamp above both the HLC and the key's current winner, so that a write served after
    /// its session's token is covered beats every write the session saw (monotonic writes,
    /// writes-follow-reads), and a global-quorum write beats every completed one.
    fn lww_stamp(
        &mut self,
        key: &[u8],
        now_ms: u64,
        drift: u64,
    ) -> Result<HlcTimestamp, ClientError> {
        let winner = match self.keys.get(key) {
            Some(KeyState::Lww(l)) => l.entry().map(|e| e.stamp),
            _ => None,
        };
        if let Some(w) = winner
            && w >= self.hlc.last()
        {
            if w.wall_ms > now_ms.saturating_add(drift) {
                return Err(ClientError::ClockDrift);
            }
            self.hlc = Hlc::resume(w, drift);
        }
        self.hlc.now(now_ms).map_err(|_| ClientError::ClockDrift)
    }

    /// Applies the next entry of its origin: joins the delta, advances `F` and `V`, and logs it
    /// for the children of its origin. Returns whether it was logged.
    ///
    /// Keeps both session invariants: the state joins exactly this entry's delta, so it stays
    /// above every delta `≤ F` once `F[origin]` becomes `seq`, and `V[origin]` moves with it.
    ///
    /// Keeps causal delivery: it is called only once the frontier covers the entry's
    /// dependencies, so the entry is never visible here before what it depends on.
    pub(crate) fn apply(
        &mut self,
        entry: Entry,
        now_ms: u64,
        shared: &Shared,
        m: &mut Counters,
    ) -> bool {
        debug_assert_eq!(entry.seq, self.frontier.get(entry.origin) + 1);
        debug_assert!(self.holds(&entry.deps), "applied before its dependencies");
        if self.hlc.observe(entry.stamp, now_ms).is_err() {
            m.clock_rejects += 1;
        }
        let (origin, seq) = (entry.origin, entry.seq);
        if entry.redacted {
            // Residency: the key and delta were withheld from this replica (see `config::Pin`);
            // the entry only moves the frontier, and goes on redacted to the children, which
            // the pin's route validation keeps outside the key's regions too.
            self.after_apply(&[], origin, seq, false, false, m);
            return !shared.children(origin).is_empty() && self.log_entry(entry, shared, m);
        }
        if shared.children(origin).is_empty() {
            // Nobody needs the entry after this: move the delta instead of cloning it.
            let Entry { key, delta, .. } = entry;
            let (changed, conflict) = self.keys.join(&key, delta);
            self.after_apply(&key, origin, seq, changed, conflict, m);
            false
        } else {
            let (changed, conflict) = self.keys.join(&entry.key, entry.delta.clone());
            self.after_apply(&entry.key, origin, seq, changed, conflict, m);
            self.log_entry(entry, shared, m)
        }
    }

    fn after_apply(
        &mut self,
        key: &[u8],
        origin: ReplicaId,
        seq: u64,
        changed: bool,
        conflict: bool,
        m: &mut Counters,
    ) {
        if changed {
            self.journal_key(key);
        }
        m.entries_applied += 1;
        if conflict {
            m.type_conflicts += 1;
        }
        self.frontier.raise(origin, seq);
        self.horizon.raise(origin, seq);
        self.journal_meta();
    }

    /// [`Bug::ApplyWithoutDedup`](super::config::Bug::ApplyWithoutDedup): what an op-based replica that forgot its dedup does with a
    /// duplicate — applies it again. A counter entry adds one more increment of its origin.
    pub(crate) fn reapply_duplicate(&mut self, entry: &Entry) {
        if entry.redacted {
            return;
        }
        let (origin, key) = (entry.origin, &entry.key);
        let (_, changed) = self.keys.modify(key, |slot| match slot {
            Some(KeyState::Counter(c)) => {
                let _ = c.increment(origin, 1);
            }
            Some(KeyState::PnCounter(c)) => {
                let _ = c.increment(origin, 1);
            }
            _ => {}
        });
        if changed {
            self.journal_key(key);
        }
    }

    /// Logs an entry for forwarding, if its origin has children here; returns whether it did.
    fn log_entry(&mut self, entry: Entry, shared: &Shared, m: &mut Counters) -> bool {
        if shared.children(entry.origin).is_empty() {
            return false;
        }
        if let Some(j) = &mut self.journal {
            j.dirty = true;
            j.appended.push(entry.clone());
        }
        self.oplog.append(entry);
        if self.oplog.len() > shared.config.oplog_entries_max {
            self.enforce_cap(shared.config.oplog_entries_max, m);
        }
        true
    }

    /// Joins `state` into `key` (state from anti-entropy or a quorum read); returns whether the
    /// key changed and whether two kinds met.
    pub(crate) fn join_key(&mut self, key: &[u8], state: KeyState) -> (bool, bool) {
        let (changed, conflict) = self.keys.join(key, state);
        if changed {
            self.journal_key(key);
        }
        (changed, conflict)
    }

    /// Raises the horizon to cover `v` (state arrived that was built from entries `≤ v`).
    pub(crate) fn raise_horizon(&mut self, v: &VectorClock) {
        if !self.horizon.dominates(v) {
            self.horizon.merge(v);
            self.journal_meta();
        }
    }

    /// An anti-entropy frontier claim (see `anti_entropy` § The frontier claim): raises `F` to cover
    /// `f`; returns whether it moved.
    pub(crate) fn claim_frontier(&mut self, f: &VectorClock) -> bool {
        if self.frontier.dominates(f) {
            return false;
        }
        self.frontier.merge(f);
        self.journal_meta();
        true
    }

    /// Drops, of every origin, the entries up to `upto(origin)`; returns how many went.
    #[inline]
    pub(crate) fn truncate(&mut self, upto: impl FnMut(ReplicaId) -> u64) -> usize {
        let Store { oplog, journal, .. } = self;
        oplog.truncate_each(upto, |origin, first| {
            if let Some(j) = journal {
                j.dirty = true;
                j.truncated.insert(origin, first);
            }
        })
    }

    /// Truncates the oldest entries of the longest origin until the log fits its cap.
    fn enforce_cap(&mut self, cap: usize, m: &mut Counters) {
        while self.oplog.len() > cap {
            let Some(origin) = self.oplog.longest() else {
                break;
            };
            let first = self.oplog.first(origin).unwrap_or(0);
            let excess = (self.oplog.len() - cap) as u64;
            let n = self.oplog.truncate(origin, first + excess - 1);
            m.truncated_cap += n as u64;
            self.journal_truncation(origin);
            if n == 0 {
                break;
            }
        }
    }

    // ----- the journal -----

    /// Records that `key` changed.
    fn journal_key(&mut self, key: &[u8]) {
        if let Some(j) = &mut self.journal {
            j.dirty = true;
            if !j.keys.contains(key) {
                j.keys.insert(key.into());
            }
        }
    }

    fn journal_meta(&mut self) {
        if let Some(j) = &mut self.journal {
            j.dirty = true;
        }
    }

    #[inline]
    fn journal_truncation(&mut self, origin: ReplicaId) {
        if let Some(j) = &mut self.journal
            && let Some(first) = self.oplog.first(origin)
        {
            j.dirty = true;
            j.truncated.insert(origin, first);
        }
    }

    /// Checks the invariants of the module documentation (debug builds; the scans are bounded
    /// so that large runs stay fast).
    pub(crate) fn debug_check(&self, me: ReplicaId) {
        #[cfg(debug_assertions)]
        {
            debug_assert!(
                self.horizon.dominates(&self.frontier),
                "frontier above horizon"
            );
            debug_assert_eq!(self.frontier.get(me), self.last_seq);
            debug_assert_eq!(self.horizon.get(me), self.last_seq);
            if self.oplog.len() <= 256 {
                for e in self.oplog.iter() {
                    debug_assert!(e.seq <= self.frontier.get(e.origin), "oplog above frontier");
                    debug_assert!(
                        self.frontier.dominates(&e.deps),
                        "oplog entry above the frontier's causal closure"
                    );
                }
            }
            debug_assert!(
                self.frontier.dominates(&self.deps_sent),
                "dependencies sent that are not held"
            );
            if self.keys.len() <= 64 {
                debug_assert!(self.keys.check(), "Merkle tree out of date");
            }
        }
        #[cfg(not(debug_assertions))]
        let _ = me;
    }
}

/// Runs `op`'s δ-mutator on `state` (of the right kind); returns the delta and the reply value.
/// `forge` is [`Bug::EscrowLocalCheck`].
fn mutate(
    state: &mut KeyState,
    me: ReplicaId,
    stamp: HlcTimestamp,
    op: Op,
    forge: bool,
) -> Result<(KeyState, Value), ClientError> {
    Ok(match (state, op) {
        (KeyState::Counter(c), Op::Incr(by)) => {
            let d = c.increment(me, by).map_err(|_| ClientError::Overflow)?;
            (
                KeyState::Counter(d),
                Value::Counter(i128::try_from(c.value()).unwrap_or(i128::MAX)),
            )
        }
        (KeyState::PnCounter(c), Op::PnAdd(n)) => {
            let d = if n >= 0 {
                c.increment(me, n.unsigned_abs())
            } else {
                c.decrement(me, n.unsigned_abs())
            }
            .map_err(|_| ClientError::Overflow)?;
            (KeyState::PnCounter(d), Value::Counter(c.value()))
        }
        (KeyState::Set(s), Op::SetAdd(x)) => {
            let fresh = !s.contains(&x);
            (KeyState::Set(s.add(me, x)), Value::Changed(fresh))
        }
        (KeyState::Set(s), Op::SetRemove(x)) => {
            let present = s.contains(&x);
            (KeyState::Set(s.remove(&x)), Value::Changed(present))
        }
        (KeyState::Lww(l), Op::Put(v)) => (KeyState::Lww(l.set(me, stamp, v)), Value::Written),
        (KeyState::Mv(m), Op::MvPut { value, seen }) => {
            (KeyState::Mv(m.write_seen(me, value, &seen)), Value::Written)
        }
        (KeyState::Bounded(c), Op::BoundedAdd(n)) => {
            let by = n.unsigned_abs();
            let d = if n >= 0 {
                c.increment(me, by)
            } else if forge {
                forged_decrement(c, me, by)
            } else {
                c.decrement(me, by)
            }
            .map_err(|e| match e {
                BoundedError::InsufficientRights { .. } => ClientError::InsufficientRights {
                    short_balance: c.value() < i128::from(by),
                },
                BoundedError::Overflow { .. } | BoundedError::SelfTransfer { .. } => {
                    ClientError::Overflow
                }
            })?;
            // A replica never spends rights it does not hold (unless deliberately broken).
            debug_assert!(forge || c.rights(me) >= 0, "spent rights not held");
            (KeyState::Bounded(d), Value::Counter(c.value()))
        }
        (state, op) => {
            // The caller checked the kind; this is unreachable, and harmless if reached.
            return Err(ClientError::WrongType {
                key: state.kind(),
                op: op.kind().unwrap_or(KeyKind::Counter),
            });
        }
    })
}

/// [`Bug::EscrowLocalCheck`]: withdraws `by` if the local view of the value covers it, taking
/// whatever rights `me` lacks from the replicas that hold them in that view, as transfers they
/// never made. Refused with no effect only if the value itself is short.
fn forged_decrement(
    c: &mut BoundedCounter,
    me: ReplicaId,
    by: u64,
) -> Result<BoundedCounter, BoundedError> {
    let held = c.rights(me);
    if held >= i128::from(by) || c.value() < i128::from(by) {
        return c.decrement(me, by);
    }
    let before = c.clone();
    let mut delta = BoundedCounter::new();
    let mut missing = i128::from(by) - held;
    for holder in c.holders().into_iter().filter(|&h| h != me) {
        if missing <= 0 {
            break;
        }
        let take = u64::try_from(c.rights(holder).min(missing)).unwrap_or(0);
        match c.transfer(holder, me, take) {
            Ok(d) => {
                delta.join(d);
                missing -= i128::from(take);
            }
            Err(e) => {
                *c = before;
                return Err(e);
            }
        }
    }
    match c.decrement(me, by) {
        Ok(d) => {
            delta.join(d);
            Ok(delta)
        }
        Err(e) => {
            *c = before;
            Err(e)
        }
    }
}
