//! The oplog's cursors: what was appended, what is durable, what each peer acknowledged, and how
//! far the on-disk log may be truncated.
//!
//! The driver moves `appended` when it hands local entries to the store and `durable` after the
//! group commit; peer reader tasks move a peer's `acked` when an acknowledgement arrives; the
//! metrics endpoint reads them all for lag and oplog length. Each cursor is one atomic moved with
//! `fetch_max`, so updates never block and never move a cursor back.
//!
//! # Invariants (under any interleaving)
//! - Every cursor is monotonic: a stale or reordered update is a no-op.
//! - `durable ≤ appended` and `acked(p) ≤ appended`: updates are clamped to the `appended` they
//!   read, and `appended` only grows afterwards.
//! - `truncated ≤ durable` and `truncated ≤ acked(p)` for every peer: it is the minimum of values
//!   those cursors held, and they only grow.
//! - [`LogCursors::snapshot`] satisfies the same inequalities: it reads the cursors in the order
//!   truncated, acked, durable, appended, each read acquiring the writes the previous bound was
//!   computed from, so every later read sees a value at least as large.
//!
//! Peers are fixed at construction; the set of regions does not change while a node runs.

use crate::sync::{AtomicU64, Ordering};

/// The cursors' values at one moment, for `/metrics` and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CursorSnapshot {
    /// The last local oplog sequence number handed to the store.
    pub appended: u64,
    /// The last sequence number committed to disk.
    pub durable: u64,
    /// The greatest truncation point handed out so far.
    pub truncated: u64,
    /// Each peer's cumulative acknowledgement, `(peer, seq)`, in the order given to `new`.
    pub acked: Vec<(u64, u64)>,
}

/// The oplog cursors of one node; see the module docs.
#[derive(Debug)]
pub struct LogCursors {
    appended: AtomicU64,
    durable: AtomicU64,
    truncated: AtomicU64,
    /// `(peer replica id, acked seq)`, without duplicates. A handful of regions: a linear scan is
    /// as fast as a map and needs no lock.
    acked: Box<[(u64, AtomicU64)]>,
}

impl LogCursors {
    /// Cursors at zero for the given peer replica ids (duplicates are ignored).
    pub fn new(peers: &[u64]) -> Self {
        let mut ids: Vec<u64> = Vec::with_capacity(peers.len());
        for &peer in peers {
            if !ids.contains(&peer) {
                ids.push(peer);
            }
        }
        LogCursors {
            appended: AtomicU64::new(0),
            durable: AtomicU64::new(0),
            truncated: AtomicU64::new(0),
            acked: ids.into_iter().map(|id| (id, AtomicU64::new(0))).collect(),
        }
    }

    /// Records that local entries up to `seq` were handed to the store (a lower `seq` is a no-op).
    pub fn append(&self, seq: u64) {
        self.appended.fetch_max(seq, Ordering::AcqRel);
    }

    /// Records that entries up to `seq` are on disk, clamped to `appended`.
    pub fn durable(&self, seq: u64) {
        let appended = self.appended.load(Ordering::Acquire);
        self.durable.fetch_max(seq.min(appended), Ordering::AcqRel);
    }

    /// Records `peer`'s cumulative acknowledgement of entries up to `seq`, clamped to `appended`
    /// (a peer cannot have seen entries this node has not written). False for an unknown peer.
    pub fn ack(&self, peer: u64, seq: u64) -> bool {
        let Some(acked) = self.peer(peer) else {
            return false;
        };
        let appended = self.appended.load(Ordering::Acquire);
        acked.fetch_max(seq.min(appended), Ordering::AcqRel);
        true
    }

    /// The entries every peer acknowledged and that are durable: safe to drop from the on-disk
    /// oplog. `min(durable, min over peers of acked)`, never lower than a point returned before.
    pub fn truncate_point(&self) -> u64 {
        let mut point = self.durable.load(Ordering::Acquire);
        for (_, acked) in self.acked.iter() {
            point = point.min(acked.load(Ordering::Acquire));
        }
        let previous = self.truncated.fetch_max(point, Ordering::AcqRel);
        previous.max(point)
    }

    /// How many appended entries `peer` has not acknowledged; `None` for an unknown peer.
    pub fn lag_entries(&self, peer: u64) -> Option<u64> {
        let acked = self.peer(peer)?.load(Ordering::Acquire);
        // Read after `acked`, so it is at least the `appended` that `acked` was clamped to.
        let appended = self.appended.load(Ordering::Acquire);
        Some(appended.saturating_sub(acked))
    }

    /// The cursors now, read in an order that keeps the invariants (see the module docs).
    pub fn snapshot(&self) -> CursorSnapshot {
        let truncated = self.truncated.load(Ordering::Acquire);
        let acked = self
            .acked
            .iter()
            .map(|(peer, acked)| (*peer, acked.load(Ordering::Acquire)))
            .collect();
        let durable = self.durable.load(Ordering::Acquire);
        let appended = self.appended.load(Ordering::Acquire);
        CursorSnapshot {
            appended,
            durable,
            truncated,
            acked,
        }
    }

    fn peer(&self, peer: u64) -> Option<&AtomicU64> {
        self.acked
            .iter()
            .find(|(id, _)| *id == peer)
            .map(|(_, acked)| acked)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn cursors_move_forward_only_and_clamp_to_appended() {
        let c = LogCursors::new(&[2, 3, 3]);
        c.append(10);
        c.append(5);
        c.durable(12);
        assert!(c.ack(2, 20));
        assert!(!c.ack(9, 1), "unknown peer");
        let s = c.snapshot();
        assert_eq!(s.appended, 10);
        assert_eq!(s.durable, 10, "clamped to appended");
        assert_eq!(s.acked, vec![(2, 10), (3, 0)], "clamped, deduplicated");
        c.durable(4);
        assert_eq!(c.snapshot().durable, 10, "monotonic");
    }

    #[test]
    fn truncate_point_is_the_minimum_and_monotonic() {
        let c = LogCursors::new(&[2, 3]);
        c.append(10);
        c.durable(8);
        c.ack(2, 6);
        assert_eq!(c.truncate_point(), 0, "peer 3 acked nothing");
        c.ack(3, 9);
        assert_eq!(c.truncate_point(), 6);
        c.ack(2, 10);
        assert_eq!(c.truncate_point(), 8, "bounded by durable");
        assert_eq!(c.snapshot().truncated, 8);
    }

    #[test]
    fn without_peers_durable_entries_are_truncatable() {
        let c = LogCursors::new(&[]);
        c.append(4);
        c.durable(3);
        assert_eq!(c.truncate_point(), 3);
    }

    #[test]
    fn lag_counts_unacknowledged_entries() {
        let c = LogCursors::new(&[7]);
        c.append(10);
        c.ack(7, 4);
        assert_eq!(c.lag_entries(7), Some(6));
        assert_eq!(c.lag_entries(8), None);
    }
}
