//! The links: replication to and from the neighbours — applying entries, batching them,
//! acknowledgements, retransmission, truncation.
//!
//! # What it owns
//! Per neighbour, the cursors (`next`, `acked`), the retransmission timer and its backoff, and
//! whether an ack is owed; the entries parked for their dependencies; the frontiers known of
//! other replicas and the version gossip sends; the flush timer and the count of entries logged
//! since the last flush; the batch encoding buffer. It reads the store's frontier and oplog, and
//! changes the store only through `Store::apply` (the next entry of an origin) and
//! `Store::truncate` (entries every child acknowledged). What it learns for others it returns:
//! [`Links::apply_batch`] whether the frontier advanced, [`Links::apply_ack`] whether a
//! frontier was learned.
//!
//! # Invariants (checked by [`Links::debug_check`])
//! - Each origin's parked run holds consecutive sequence numbers from `F[origin] + 1` on, its
//!   first entry waits for a dependency not `≤ F`, and at most `parked_entries_max` are parked.
//! - An owed ack is always on its way: whenever a peer's `ack_due` is set, the flush is armed.
//! - A cursor never goes below what the neighbour acknowledged (`Peer::next`).
//!
//! # The write path
//! A local write joins its δ into the keyspace, becomes oplog entry `(me, seq)` and, once the
//! batch timer fires or a batch fills, goes to every child of `me` (in a full mesh: every
//! replica). A replica that applies an entry of origin `o` logs it again if it has children for
//! `o`, so writes flow down `o`'s spanning tree (see `config::Routes`) and reach every replica of
//! every topology.
//!
//! # Cursors, acks and go-back-N
//! For each neighbour and origin the sender keeps `next` (the next sequence number to send) and
//! `acked` (the neighbour's frontier as it last acknowledged it). A batch holds, per origin,
//! consecutive entries from `next` on, bounded by `batch_entries_max`, `batch_bytes_max` and the
//! window (`window_entries` unacknowledged per origin). The receiver applies each origin's
//! entries in order: an entry at or below its frontier is a duplicate and ignored; one beyond
//! the next expected sequence number is dropped with the rest of its origin in that batch (the
//! sender re-sends). After every batch the receiver acks its whole frontier — cumulative, so a
//! lost ack is repaired by the next. When no ack progress arrives for `retransmit_ms` (doubled per
//! consecutive timeout, up to 16×), the sender rewinds every cursor of that neighbour to
//! `acked + 1` and sends again. Duplicated, reordered, lost and
//! re-sent batches are therefore harmless: the frontier only moves by in-order application, and
//! joins are idempotent anyway.
//!
//! # Delayed acks
//! With a batch delay (`batch_delay_ms > 0`) the ack a batch earns is not sent at once: the
//! neighbour is marked as owed one (`Peer::ack_due`) and the flush timer is armed. The ack then
//! rides on the next batch to that neighbour (an acked batch), whenever one is sent first; the
//! flush sends it alone otherwise. Two neighbours that both take writes, the common case, thus
//! exchange one message per batch instead of two. An ack is therefore late by at most the batch
//! delay, which is what a quorum write waits longer; it is never lost for good, because the
//! flush that follows every owed ack sends it (and a lost ack is repaired by the next, as
//! before). With `batch_delay_ms == 0` (the models) every batch is acked at once, as it
//! always was.
//!
//! # Causal delivery
//! The next entry of an origin is applied only once the frontier covers its dependencies
//! (`Entry::deps`, see `session`). Until then it is *parked* — held, unapplied and
//! unacknowledged — together with the entries of its origin that follow it, up to
//! `parked_entries_max` in all (beyond that they are dropped and re-sent by go-back-N). Whenever
//! the frontier advances (an entry applied, an anti-entropy claim) the parked runs whose heads
//! became ready are applied, repeatedly, since one origin's entry may be what another's waits for.
//!
//! No cycle of waiting can form. A dependency was issued before the entry that names it (a
//! write is served only once its token is covered), so the oldest entry a replica lacks never
//! waits for another; it is the head of its origin's stream at the replica's parent for that
//! origin, which holds it by the same argument one hop closer to the origin, and the windows
//! are per origin, so a stream whose head waits never keeps another stream from being sent.
//! Parking never needs room for that oldest entry (it is applied at once), so a full parking
//! area only costs retransmissions. Entries whose only copies were truncated are covered by the
//! anti-entropy frontier claim, which then applies the parked entries they held up.
//!
//! # Residency
//! An entry whose key a neighbour may not hold (its residency pin excludes the neighbour's
//! region, see `config::Pin`) goes to that neighbour *redacted*: origin, sequence number, stamp
//! and dependencies, no key and no delta. The neighbour applies it like any other entry — its
//! frontier advances, its causal delivery and acks work unchanged — and forwards it redacted to
//! its own children for the origin. A redacted entry never reaches a replica that may hold its
//! key: the configuration is refused unless every route between two of a pin's replicas stays
//! among them (`ConfigError::PinRouteLeaves`), so a replica that has an entry only redacted has
//! no child for that origin that may hold the key. A complete entry of a key this replica may
//! not hold is refused with its whole batch (`batch_is_sane`).
//!
//! # Truncation
//! An entry is dropped from the oplog once every child for its origin has acknowledged it, or
//! when the log exceeds `oplog_entries_max` (oldest of the longest origin first). A child whose
//! cursor falls behind the truncation point can no longer be sent that origin's entries; its
//! anti-entropy rounds repair its state and then claim a frontier past the gap (see `anti_entropy`),
//! and its next ack moves the cursor on.

use super::api::Transmit;
use super::config::Bug;
use super::keyspace::Scratch;
use super::msg::{Ack, ack_frame, batch_frame, put_ack_parts};
use super::oplog::Entry;
use super::shared::{Ctx, Shared};
use super::store::Store;
use crate::{ReplicaId, VectorClock};
use smallvec::SmallVec;
use std::collections::{BTreeMap, VecDeque};

/// Received entries held back until the replica holds their dependencies (see the module
/// documentation). Soft state: they were neither applied nor acknowledged, so their senders
/// still hold them and send them again after a restart.
///
/// Invariants (checked by `Links::debug_check`): each origin's run holds consecutive sequence
/// numbers from `frontier + 1` on; its first entry's dependencies are not all held (it would
/// have been applied); `len` counts them all and stays within `parked_entries_max`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Parked {
    runs: BTreeMap<ReplicaId, VecDeque<Entry>>,
    len: usize,
}

impl Parked {
    /// Entries held, over all origins.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Entries of `origin` held.
    fn run_len(&self, origin: ReplicaId) -> u64 {
        if self.len == 0 {
            return 0;
        }
        self.runs.get(&origin).map_or(0, |r| r.len() as u64)
    }

    /// Holds `entry` after the rest of its origin's run.
    fn push(&mut self, entry: Entry) {
        let run = self.runs.entry(entry.origin).or_default();
        debug_assert!(run.back().is_none_or(|b| b.seq + 1 == entry.seq));
        run.push_back(entry);
        self.len += 1;
    }

    fn front(&self, origin: ReplicaId) -> Option<&Entry> {
        self.runs.get(&origin).and_then(VecDeque::front)
    }

    fn pop(&mut self, origin: ReplicaId) -> Option<Entry> {
        let run = self.runs.get_mut(&origin)?;
        let e = run.pop_front()?;
        if run.is_empty() {
            self.runs.remove(&origin);
        }
        self.len -= 1;
        Some(e)
    }

    fn origins(&self) -> SmallVec<[ReplicaId; 8]> {
        self.runs.keys().copied().collect()
    }

    /// Every run, by origin. Only the debug-build invariant checks read the runs whole.
    #[cfg(debug_assertions)]
    pub(crate) fn runs(&self) -> impl Iterator<Item = (ReplicaId, &VecDeque<Entry>)> {
        self.runs.iter().map(|(&o, r)| (o, r))
    }
}

/// What the ack `me` sends `to` tells of other replicas' frontiers: in gossip topologies, all
/// it knows but `to`'s and its own; nothing in a full mesh, where every replica hears every ack
/// first-hand.
fn ack_table(
    known: &BTreeMap<ReplicaId, VectorClock>,
    gossip: bool,
    me: ReplicaId,
    to: ReplicaId,
) -> impl Iterator<Item = (ReplicaId, &VectorClock)> + Clone {
    known
        .iter()
        .filter(move |(r, _)| gossip && **r != to && **r != me)
        .map(|(r, vv)| (*r, vv))
}

/// What a replica knows of one neighbour's replication.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Peer {
    /// The neighbour's frontier as last acknowledged.
    pub(crate) acked: VectorClock,
    /// Per origin, the next sequence number to send (never below `acked + 1`, see `next`).
    next_send: BTreeMap<ReplicaId, u64>,
    /// When to retransmit if no ack progress arrives.
    pub(crate) rto_at: Option<u64>,
    /// The `known_version` last sent to this neighbour (gossip topologies).
    known_sent: u64,
    /// Consecutive retransmissions without ack progress; the timeout doubles with each, up to
    /// 16 times `retransmit_ms`, so a neighbour that is down costs one window per backoff.
    backoff: u8,
    /// Whether this neighbour sent a batch since we last acknowledged (see § Delayed acks).
    /// Whenever it is set, the flush timer is armed.
    pub(crate) ack_due: bool,
}

impl Peer {
    pub(crate) fn new() -> Self {
        Peer {
            acked: VectorClock::new(),
            next_send: BTreeMap::new(),
            rto_at: None,
            known_sent: 0,
            backoff: 0,
            ack_due: false,
        }
    }

    fn next(&self, origin: ReplicaId) -> u64 {
        let acked = self.acked.get(origin) + 1;
        self.next_send.get(&origin).map_or(acked, |&n| n.max(acked))
    }

    /// The first sequence number of `origin` beyond the window: entries from `acked + 1` up to
    /// it may be in flight.
    fn window_end(&self, origin: ReplicaId, window: u64) -> u64 {
        (self.acked.get(origin) + 1).saturating_add(window)
    }

    /// Entries sent and not acknowledged, over all origins.
    fn in_flight(&self) -> u64 {
        self.next_send
            .iter()
            .map(|(&o, &n)| n.saturating_sub(self.acked.get(o) + 1))
            .sum()
    }
}

/// The links to the neighbours; see the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Links {
    /// Replication state of each neighbour.
    peers: BTreeMap<ReplicaId, Peer>,
    /// Received entries waiting for their dependencies (see § Causal delivery).
    parked: Parked,
    /// The latest frontier heard of each other replica (first-hand from neighbours' acks,
    /// second-hand from their tables); soft state for quorum waits.
    known: BTreeMap<ReplicaId, VectorClock>,
    /// Bumped whenever `known` grows, so that gossip sends only news.
    known_version: u64,
    /// When the pending entries must be flushed.
    flush_at: Option<u64>,
    /// Entries logged since the last flush.
    unflushed: usize,
    /// Reusable encoding buffer for batches.
    scratch: Scratch,
}

impl Links {
    pub(crate) fn new(shared: &Shared) -> Links {
        Links {
            peers: shared
                .neighbours
                .iter()
                .map(|&n| (n, Peer::new()))
                .collect(),
            parked: Parked::default(),
            known: BTreeMap::new(),
            known_version: 0,
            flush_at: None,
            unflushed: 0,
            scratch: Scratch::default(),
        }
    }

    /// Whether `p` is a neighbour.
    #[inline]
    pub(crate) fn is_neighbour(&self, p: ReplicaId) -> bool {
        self.peers.contains_key(&p)
    }

    /// The latest frontier heard of `r`, if any.
    #[inline]
    pub(crate) fn known(&self, r: ReplicaId) -> Option<&VectorClock> {
        self.known.get(&r)
    }

    /// Entries parked, over all origins.
    #[inline]
    pub(crate) fn parked(&self) -> usize {
        self.parked.len()
    }

    /// The earliest of the flush and retransmission timers.
    #[inline]
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        let rto = self.peers.values().filter_map(|p| p.rto_at).min();
        match (self.flush_at, rto) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the flush timer is due at `now_ms`.
    #[inline]
    pub(crate) fn flush_due(&self, now_ms: u64) -> bool {
        self.flush_at.is_some_and(|t| t <= now_ms)
    }

    /// Whether the entries logged must go now rather than at the flush timer: a batch is full,
    /// or there is no batch delay.
    #[inline]
    pub(crate) fn batch_ready(&self, shared: &Shared) -> bool {
        let c = &shared.config;
        self.unflushed > 0 && (self.unflushed >= c.batch_entries_max || c.batch_delay_ms == 0)
    }

    /// Checks the invariants of the module documentation (debug builds).
    pub(crate) fn debug_check(&self, store: &Store, shared: &Shared) {
        #[cfg(debug_assertions)]
        {
            // An owed ack is always on its way: the flush that pays it is armed.
            debug_assert!(
                self.flush_at.is_some() || self.peers.values().all(|p| !p.ack_due),
                "an ack is owed with no flush armed"
            );
            let frontier = store.frontier();
            debug_assert!(self.parked.len() <= shared.config.parked_entries_max);
            let mut parked = 0;
            for (origin, run) in self.parked.runs() {
                parked += run.len();
                for (expect, e) in (frontier.get(origin) + 1..).zip(run) {
                    debug_assert_eq!(e.seq, expect, "parked run not next and gap-free");
                }
                debug_assert!(
                    run.front().is_some_and(|e| !frontier.dominates(&e.deps)),
                    "a parked entry is ready but was not applied"
                );
            }
            debug_assert_eq!(parked, self.parked.len());
        }
        #[cfg(not(debug_assertions))]
        let _ = (store, shared);
    }

    /// Applies a batch [`batch_is_sane`] accepted, and owes its sender the ack. Returns whether
    /// the frontier advanced (session waits may then be answered).
    pub(crate) fn apply_batch(
        &mut self,
        store: &mut Store,
        cx: &mut Ctx<'_>,
        from: ReplicaId,
        entries: Vec<Entry>,
    ) -> bool {
        let mut stalled: SmallVec<[ReplicaId; 4]> = SmallVec::new();
        let mut advanced = false;
        for entry in entries {
            let origin = entry.origin;
            if stalled.contains(&origin) {
                cx.m.entries_out_of_order += 1;
                continue;
            }
            let held = store.frontier().get(origin);
            if entry.seq <= held {
                cx.m.entries_duplicate += 1;
                if cx.shared.config.bug == Some(Bug::ApplyWithoutDedup) {
                    store.reapply_duplicate(&entry);
                }
                continue;
            }
            // The next sequence number this origin's stream needs: past its parked run, if any.
            let parked = self.parked.run_len(origin);
            let next = held + 1 + parked;
            if entry.seq < next {
                // Parked already (a re-send while it waits for its dependencies).
                cx.m.entries_duplicate += 1;
                continue;
            }
            if entry.seq > next {
                stalled.push(origin);
                cx.m.entries_out_of_order += 1;
                continue;
            }
            if parked == 0 && store.holds(&entry.deps) {
                self.apply_entry(store, cx, entry);
                advanced = true;
                continue;
            }
            // Its dependencies (or those of the entry before it) are not held yet: applying it
            // would make it visible before what it depends on. Hold it while there is room;
            // otherwise drop it like an entry after a gap, and go-back-N sends it again.
            if self.parked.len() >= cx.shared.config.parked_entries_max {
                stalled.push(origin);
                cx.m.entries_out_of_order += 1;
                continue;
            }
            cx.m.entries_parked += 1;
            self.parked.push(entry);
        }
        if advanced {
            self.unpark(store, cx);
        }
        self.ack_later(store, cx, from);
        advanced
    }

    /// After the frontier advanced: applies every parked entry that is now next for its origin
    /// and whose dependencies are held, until none is, and drops those the frontier passed (an
    /// anti-entropy claim jumped over them).
    pub(crate) fn unpark(&mut self, store: &mut Store, cx: &mut Ctx<'_>) {
        let mut progress = self.parked.len() > 0;
        while progress {
            progress = false;
            for origin in self.parked.origins() {
                while let Some(e) = self.parked.front(origin) {
                    let held = store.frontier().get(origin);
                    if e.seq <= held {
                        self.parked.pop(origin);
                        cx.m.entries_duplicate += 1;
                    } else if e.seq == held + 1 && store.holds(&e.deps) {
                        if let Some(e) = self.parked.pop(origin) {
                            self.apply_entry(store, cx, e);
                        }
                        progress = true;
                    } else {
                        break;
                    }
                }
            }
        }
    }

    /// Applies the next entry of its origin through the store (see `Store::apply`), and counts
    /// it towards the next batch if the store logged it for forwarding.
    fn apply_entry(&mut self, store: &mut Store, cx: &mut Ctx<'_>, entry: Entry) {
        let logged = store.apply(entry, cx.now_ms, cx.shared, cx.m);
        self.logged(cx, logged);
    }

    /// The store logged an entry for forwarding: it goes in the next batch, which the flush
    /// timer (armed here if it is not) or a full batch sends.
    #[inline]
    pub(crate) fn logged(&mut self, cx: &mut Ctx<'_>, logged: bool) {
        if logged {
            self.unflushed += 1;
            self.schedule_flush(cx);
        }
    }

    #[inline]
    pub(crate) fn schedule_flush(&mut self, cx: &mut Ctx<'_>) {
        if self.flush_at.is_none() {
            self.flush_at = Some(cx.now_ms + cx.shared.config.batch_delay_ms);
        }
    }

    /// Sends everything pending to every neighbour, and gossip where the topology needs it.
    pub(crate) fn flush(&mut self, store: &mut Store, cx: &mut Ctx<'_>) {
        self.flush_at = None;
        self.unflushed = 0;
        self.truncate_acked(store, cx);
        let shared = cx.shared;
        for &p in &shared.neighbours {
            // A batch to `p` carries what we owe it; an ack not carried goes alone.
            self.send_to(store, cx, p);
            if self.peers.get(&p).is_some_and(|peer| {
                peer.ack_due || (shared.gossip && peer.known_sent < self.known_version)
            }) {
                self.send_ack(store, cx, p);
            }
        }
    }

    /// Acknowledges a batch from `to`: at once without a batch delay, otherwise at the next
    /// flush, on a batch to `to` if one goes first (see § Delayed acks).
    fn ack_later(&mut self, store: &mut Store, cx: &mut Ctx<'_>, to: ReplicaId) {
        if cx.shared.config.batch_delay_ms == 0 {
            return self.send_ack(store, cx, to);
        }
        if let Some(peer) = self.peers.get_mut(&to) {
            peer.ack_due = true;
        }
        self.schedule_flush(cx);
    }

    /// Sends neighbour `p` batches of what it lacks, as far as the window allows.
    pub(crate) fn send_to(&mut self, store: &mut Store, cx: &mut Ctx<'_>, p: ReplicaId) {
        let shared = cx.shared;
        let c = &shared.config;
        let Some(peer) = self.peers.get_mut(&p) else {
            return;
        };
        let mut sent_any = false;
        let mut body = std::mem::take(&mut self.scratch.0);
        let me = c.me;
        loop {
            body.clear();
            let mut count = 0usize;
            for origin in store.oplog().origins() {
                if !shared.children(origin).contains(&p) {
                    continue;
                }
                let mut seq = peer.next(origin);
                let (Some(first), Some(end)) =
                    (store.oplog().first(origin), store.oplog().end(origin))
                else {
                    continue;
                };
                if seq < first {
                    // Truncated past what `p` has: anti-entropy must repair it first.
                    cx.m.peer_behind_truncation += 1;
                    continue;
                }
                let start = seq;
                // Per origin, so that a stream whose head waits at `p` for its dependencies
                // never holds back the streams that carry them (see the module documentation).
                let window_end = peer.window_end(origin, c.window_entries);
                while seq < end
                    && count < c.batch_entries_max
                    && (count == 0 || body.len() < c.batch_bytes_max)
                    && seq < window_end
                {
                    if let Some(e) = store.oplog().get(origin, seq) {
                        // Residency: a neighbour that may not hold the key gets the entry
                        // without key and delta (see § Residency).
                        if e.redacted || shared.may_hold(p, &e.key) {
                            e.encode_into(&mut body);
                        } else {
                            cx.m.entries_redacted += 1;
                            e.encode_redacted_into(&mut body);
                        }
                    }
                    seq += 1;
                    count += 1;
                }
                if seq != start {
                    peer.next_send.insert(origin, seq);
                }
            }
            if count == 0 {
                break;
            }
            // The first batch carries the ack we owe `p`, if we owe one.
            let ack = peer.ack_due.then(|| {
                peer.ack_due = false;
                peer.known_sent = self.known_version;
                let mut ack = Vec::new();
                let table = ack_table(&self.known, shared.gossip, me, p);
                put_ack_parts(&mut ack, store.frontier(), table);
                ack
            });
            let frame = batch_frame(count, &body, c.compress_threshold_bytes, ack.as_deref());
            let m = &mut *cx.m;
            if ack.is_some() {
                m.acks_sent += 1;
                m.acks_piggybacked += 1;
            }
            m.entries_sent += count as u64;
            m.batches_sent += 1;
            m.bytes_raw += body.len() as u64;
            m.bytes_sent += frame.len() as u64;
            if frame.get(3) == Some(&1) {
                m.batches_compressed += 1;
            }
            cx.out.push_back(Transmit {
                to: p,
                payload: frame,
            });
            sent_any = true;
        }
        self.scratch.0 = body;
        if sent_any && peer.rto_at.is_none() {
            peer.rto_at = Some(cx.now_ms + (c.retransmit_ms << peer.backoff));
        }
    }

    /// Sends `to` our frontier (and, in gossip topologies, what we know of the others'), and
    /// so pays any ack we owe it.
    pub(crate) fn send_ack(&mut self, store: &mut Store, cx: &mut Ctx<'_>, to: ReplicaId) {
        let me = cx.shared.config.me;
        let table = ack_table(&self.known, cx.shared.gossip, me, to);
        let payload = ack_frame(store.frontier(), table);
        if let Some(peer) = self.peers.get_mut(&to) {
            peer.known_sent = self.known_version;
            peer.ack_due = false;
        }
        cx.m.acks_sent += 1;
        cx.out.push_back(Transmit { to, payload });
    }

    /// Takes an ack [`ack_is_sane`] accepted. Returns whether it taught us more of some
    /// replica's frontier (quorum waits may then be met).
    pub(crate) fn apply_ack(
        &mut self,
        store: &mut Store,
        cx: &mut Ctx<'_>,
        from: ReplicaId,
        ack: Ack,
    ) -> bool {
        let me = cx.shared.config.me;
        // Read before the ack moves the window. Entries it held back go at once, as the window
        // opens; entries that are merely waiting for the batch timer keep waiting for it.
        let held_back = self.window_held_back(store, cx.shared, from);
        let Some(peer) = self.peers.get_mut(&from) else {
            return false;
        };
        let progressed = !peer.acked.dominates(&ack.frontier);
        peer.acked.merge(&ack.frontier);
        if progressed {
            peer.backoff = 0;
        }
        if peer.in_flight() == 0 {
            peer.rto_at = None;
        } else if progressed {
            peer.rto_at = Some(cx.now_ms + cx.shared.config.retransmit_ms);
        }
        let mut learned = self.learn(cx, from, &ack.frontier);
        for (r, vv) in &ack.table {
            if *r != me {
                learned |= self.learn(cx, *r, vv);
            }
        }
        if progressed {
            self.truncate_acked(store, cx);
            // Without a flush armed, nothing else would send what the ack made sendable: the
            // entries past a truncation gap, once anti-entropy moved the neighbour's cursor
            // beyond it, wait for no timer.
            if held_back || self.flush_at.is_none() {
                self.send_to(store, cx, from);
            }
        }
        learned
    }

    /// Whether the window keeps entries from neighbour `p` now: some origin `p` is a child for
    /// has entries past the window that were never sent.
    fn window_held_back(&self, store: &Store, shared: &Shared, p: ReplicaId) -> bool {
        let Some(peer) = self.peers.get(&p) else {
            return false;
        };
        let window = shared.config.window_entries;
        store.oplog().origins().into_iter().any(|o| {
            let next = peer.next(o);
            store.oplog().end(o).is_some_and(|end| next < end)
                && next >= peer.window_end(o, window)
                && shared.children(o).contains(&p)
        })
    }

    /// Raises what we know of `r`'s frontier; returns whether it grew.
    fn learn(&mut self, cx: &mut Ctx<'_>, r: ReplicaId, vv: &VectorClock) -> bool {
        let known = self.known.entry(r).or_default();
        if known.dominates(vv) {
            return false;
        }
        known.merge(vv);
        self.known_version += 1;
        if cx.shared.gossip {
            self.schedule_flush(cx);
        }
        true
    }

    /// Rewinds and re-sends to every neighbour whose retransmission timer is due.
    #[inline]
    pub(crate) fn retransmit_due(&mut self, store: &mut Store, cx: &mut Ctx<'_>) {
        let now = cx.now_ms;
        let due: SmallVec<[ReplicaId; 8]> = self
            .peers
            .iter()
            .filter(|(_, p)| p.rto_at.is_some_and(|t| t <= now))
            .map(|(&id, _)| id)
            .collect();
        for p in due {
            if let Some(peer) = self.peers.get_mut(&p) {
                peer.next_send.clear();
                peer.rto_at = None;
                peer.backoff = (peer.backoff + 1).min(4);
            }
            cx.m.retransmits += 1;
            self.send_to(store, cx, p);
        }
    }

    /// Drops entries every child has acknowledged.
    pub(crate) fn truncate_acked(&mut self, store: &mut Store, cx: &mut Ctx<'_>) {
        let (peers, shared) = (&self.peers, cx.shared);
        let n = store.truncate(|origin| {
            shared
                .children(origin)
                .iter()
                .map(|k| peers.get(k).map_or(0, |p| p.acked.get(origin)))
                .min()
                .unwrap_or(u64::MAX)
        });
        cx.m.truncated_acked += n as u64;
    }

    /// Per neighbour, the entries it lacks that we would send it.
    pub(crate) fn peer_lag(&self, store: &Store, shared: &Shared) -> Vec<(ReplicaId, u64)> {
        self.peers
            .iter()
            .map(|(&p, peer)| {
                let lag = store
                    .frontier()
                    .iter()
                    .filter(|&(o, _)| shared.children(o).contains(&p))
                    .map(|(o, n)| n.saturating_sub(peer.acked.get(o)))
                    .sum();
                (p, lag)
            })
            .collect()
    }

    /// Tells every neighbour our frontier (after it jumped through anti-entropy, so that
    /// senders stuck behind a truncation point move on).
    pub(crate) fn ack_all(&mut self, store: &mut Store, cx: &mut Ctx<'_>) {
        let shared = cx.shared;
        for &p in &shared.neighbours {
            self.send_ack(store, cx, p);
        }
    }
}

/// Whether a batch could have come from a correct neighbour: no entry of an origin outside the
/// cluster, no complete entry of a key this replica may not hold (residency), and none of our own writes we never issued — as an entry, or as a dependency, which
/// could never be covered.
#[inline]
pub(crate) fn batch_is_sane(entries: &[Entry], store: &Store, shared: &Shared) -> bool {
    let me = shared.config.me;
    let members = &shared.members;
    !entries.iter().any(|e| {
        !members.contains(&e.origin)
            || (!e.redacted && !shared.may_hold(me, &e.key))
            || (e.origin == me && e.seq > store.last_seq())
            || (!e.deps.is_empty() && !store.plausible(&e.deps, shared))
    })
}

/// Whether an ack could have come from a correct neighbour: every clock names members only and
/// claims none of our writes that we never issued.
#[inline]
pub(crate) fn ack_is_sane(ack: &Ack, store: &Store, shared: &Shared) -> bool {
    let sane = |vv: &VectorClock| store.plausible(vv, shared);
    sane(&ack.frontier)
        && ack
            .table
            .iter()
            .all(|(r, vv)| shared.members.contains(r) && sane(vv))
}
