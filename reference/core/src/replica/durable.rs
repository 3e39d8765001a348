//! The durable part of a replica, and the increments a shell persists.
//!
//! # What must survive a crash
//! The keyspace, the oplog (each entry with its dependencies, which the children it is forwarded
//! to after a restart must still wait for), the HLC, the frontier and horizon, and the last
//! sequence number issued. For the consensus registers (see `strong`): the acceptor's record of
//! every key (decision, promise, accepted proposal — a forgotten promise lets two values be
//! chosen) and the proposer's round high-water mark (a reused ballot does the same). Everything else — peers' cursors and acknowledgements, what is known
//! of other replicas' frontiers, pending requests, anti-entropy rounds, entries parked for their
//! dependencies, the running join of dependencies already sent, metrics — is soft state, rebuilt
//! from the first messages after a restart: a peer that restarts is resent entries from the start
//! of the retained log and its first ack moves the cursor on. Parked entries were never applied
//! nor acknowledged, so their senders still hold and resend them; forgetting the dependencies
//! already sent only makes the next entries carry more of them (see `session`).
//!
//! # The ordering rule
//! A shell that persists sets [`Config::track_durable`](super::Config::track_durable) and, after
//! every `handle_*` call, **first** takes [`Replica::take_durable`](super::Replica::take_durable)
//! and makes it durable, **then** sends what `poll_transmit` gives and releases what
//! `poll_reply` gives. Every reply and every message a call produced then describes durable
//! state only: an acknowledged write is on disk before the client hears of it, and an `Ack` never
//! claims an entry the acker could lose — which quorum acknowledgements rely on.

use super::api::Key;
use super::codec::{
    DecodeError, Reader, put_key, put_stamp, put_varint, put_vv, read_key, read_stamp, read_vv,
};
use super::config::ConfigError;
use super::oplog::Entry;
use super::state::{KeyState, put_state, read_state};
use super::strong_codec::{put_record, read_record};
use crate::consensus::KeyRecord;
use crate::{HlcTimestamp, ReplicaId, VectorClock};
use std::collections::BTreeMap;

/// The version byte of [`Durable::encode`]. Version 3 added the consensus state; a version-2
/// image (written before consensus existed) decodes with none, which is what it had.
const DURABLE_VERSION: u8 = 3;

/// The scalar part of the durable state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DurableMeta {
    /// The last timestamp the HLC issued or observed, so that a restart never re-issues a stamp.
    pub hlc: HlcTimestamp,
    /// The last sequence number this replica issued as an origin.
    pub last_seq: u64,
    /// The frontier (see `session`).
    pub frontier: VectorClock,
    /// The horizon (see `session`).
    pub horizon: VectorClock,
    /// The consensus proposer's round high-water mark: every ballot it issued has a round
    /// below it, so a restarted proposer never issues one twice.
    pub rounds_below: u64,
}

/// Everything a replica needs to restart: what [`Replica::recover`](super::Replica::recover)
/// takes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Durable {
    /// Clocks and counters.
    pub meta: DurableMeta,
    /// Every key's state.
    pub keys: BTreeMap<Key, KeyState>,
    /// The retained oplog, by origin then sequence number.
    pub oplog: Vec<Entry>,
    /// The consensus acceptor's record of every key it has voted on or learned.
    pub strong: BTreeMap<Key, KeyRecord>,
}

/// What changed since the last [`Replica::take_durable`](super::Replica::take_durable): apply it
/// to the stored [`Durable`] (as [`Durable::apply`] does in memory).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DurableDelta {
    /// The new meta, whole (it is small).
    pub meta: DurableMeta,
    /// Keys whose state changed, with their new state (replace, do not join).
    pub keys: Vec<(Key, KeyState)>,
    /// Entries appended to the oplog, in order.
    pub appended: Vec<Entry>,
    /// Per origin, the first sequence number still retained: delete the origin's entries below
    /// it. Applied after `appended`.
    pub truncated: Vec<(ReplicaId, u64)>,
    /// Consensus records that changed, with their new value (replace).
    pub strong: Vec<(Key, KeyRecord)>,
}

impl Durable {
    /// The durable state of a replica that has never run.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies a delta, as a shell's store would.
    ///
    /// The cost is proportional to the delta, not to the stored log: the log is kept in its
    /// documented order (by origin, then sequence number, one gap-free run per origin), so each
    /// origin's run is found by binary search, appended entries that continue it are spliced in
    /// after it, and truncation removes a prefix of it. Only moving the entries of the origins
    /// stored after a changed run (one `memmove` per changed origin) depends on the log's size;
    /// a replica logs mostly its own writes, so that is usually nothing. A delta that does not
    /// continue an origin's run (the origin's log restarted after its frontier jumped) replaces
    /// that run with its last gap-free part, as the replica's own log does.
    pub fn apply(&mut self, delta: DurableDelta) {
        debug_assert!(
            self.oplog.is_sorted_by_key(|e| (e.origin, e.seq)),
            "stored oplog out of order"
        );
        self.meta = delta.meta;
        for (k, s) in delta.keys {
            self.keys.insert(k, s);
        }
        for (k, r) in delta.strong {
            self.strong.insert(k, r);
        }
        // `appended` is in the order the replica logged it: per origin, increasing sequence
        // numbers. Take it one origin's stretch at a time.
        let mut appended = delta.appended.into_iter().peekable();
        while let Some(first) = appended.next() {
            let origin = first.origin;
            let mut run = vec![first];
            while let Some(e) = appended.next_if(|e| e.origin == origin) {
                run.push(e);
            }
            self.append_run(origin, run);
        }
        for (origin, first) in delta.truncated {
            let (lo, hi) = self.run_of(origin);
            let Some(head) = self.oplog.get(lo).filter(|_| lo < hi).map(|e| e.seq) else {
                continue;
            };
            let drop = usize::try_from(first.saturating_sub(head))
                .unwrap_or(usize::MAX)
                .min(hi - lo);
            self.oplog.drain(lo..lo + drop);
        }
    }

    /// The stored entries of `origin`: `self.oplog[lo..hi]`.
    fn run_of(&self, origin: ReplicaId) -> (usize, usize) {
        let lo = self.oplog.partition_point(|e| e.origin < origin);
        let hi = lo + self.oplog[lo..].partition_point(|e| e.origin == origin);
        (lo, hi)
    }

    /// Adds `new`, entries of `origin` in the order the replica logged them, to its stored run.
    fn append_run(&mut self, origin: ReplicaId, new: Vec<Entry>) {
        let (lo, hi) = self.run_of(origin);
        let next = if lo < hi {
            self.oplog[hi - 1].seq + 1
        } else {
            new[0].seq
        };
        let gap_free = new.first().is_some_and(|e| e.seq == next)
            && new.windows(2).all(|w| w[0].seq + 1 == w[1].seq);
        if gap_free {
            // The common case: the run continues.
            self.oplog.splice(hi..hi, new);
            return;
        }
        // The origin's log restarted (or the delta is out of the replica's order): keep what the
        // replica keeps, the last gap-free run of the old and new entries together.
        let mut all: Vec<Entry> = self.oplog.drain(lo..hi).chain(new).collect();
        all.sort_by_key(|e| e.seq);
        let start = (1..all.len())
            .rev()
            .find(|&i| all[i - 1].seq + 1 != all[i].seq)
            .unwrap_or(0);
        self.oplog.splice(lo..lo, all.drain(start..));
    }

    /// A binary encoding of the whole snapshot (for shells that store it as one value, and for
    /// tests). Version 2 carries each oplog entry's dependencies; version-1 images (entries
    /// without them) are refused rather than recovered with dependencies they never recorded.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![DURABLE_VERSION];
        put_stamp(&mut out, self.meta.hlc);
        put_varint(&mut out, self.meta.last_seq);
        put_vv(&mut out, &self.meta.frontier);
        put_vv(&mut out, &self.meta.horizon);
        put_varint(&mut out, self.keys.len() as u64);
        for (k, s) in &self.keys {
            put_key(&mut out, k);
            put_state(&mut out, s);
        }
        put_varint(&mut out, self.oplog.len() as u64);
        for e in &self.oplog {
            e.encode_into(&mut out);
        }
        put_varint(&mut out, self.meta.rounds_below);
        put_varint(&mut out, self.strong.len() as u64);
        for (k, r) in &self.strong {
            put_key(&mut out, k);
            put_record(&mut out, r);
        }
        out
    }

    /// Decodes a snapshot; never panics. [`Replica::recover`](super::Replica::recover) checks
    /// its consistency.
    pub fn decode(bytes: &[u8]) -> Result<Durable, DecodeError> {
        super::codec::decode_all(bytes, |r: &mut Reader<'_>| {
            let v = r.u8()?;
            if v != DURABLE_VERSION && v != 2 {
                return Err(DecodeError::UnsupportedVersion(v));
            }
            let mut meta = DurableMeta {
                hlc: read_stamp(r)?,
                last_seq: r.varint()?,
                frontier: read_vv(r)?,
                horizon: read_vv(r)?,
                rounds_below: 0,
            };
            let n = r.count(2)?;
            let mut keys = BTreeMap::new();
            for _ in 0..n {
                let k = read_key(r)?;
                keys.insert(k, read_state(r)?);
            }
            let n = r.count(6)?;
            let mut oplog = Vec::with_capacity(n);
            for _ in 0..n {
                oplog.push(Entry::read(r)?);
            }
            let mut strong = BTreeMap::new();
            if v >= 3 {
                meta.rounds_below = r.varint()?;
                let n = r.count(4)?;
                for _ in 0..n {
                    let k = read_key(r)?;
                    let record = read_record(r)?;
                    if strong.insert(k, record).is_some() {
                        return Err(DecodeError::Invalid("a consensus key stored twice"));
                    }
                }
            }
            Ok(Durable {
                meta,
                keys,
                oplog,
                strong,
            })
        })
    }
}

/// The encoding of one consensus record, for shells that store each key's record as its own
/// value (the node's redb table).
pub fn encode_record(record: &KeyRecord) -> Vec<u8> {
    let mut out = Vec::new();
    put_record(&mut out, record);
    out
}

/// Decodes what [`encode_record`] wrote; never panics, refuses trailing bytes and a record whose
/// accepted ballot is above its promise.
pub fn decode_record(bytes: &[u8]) -> Result<KeyRecord, DecodeError> {
    super::codec::decode_all(bytes, read_record)
}

/// A durable state that cannot be recovered from.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecoverError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The durable state is inconsistent.
    #[error("inconsistent durable state: {0}")]
    Inconsistent(&'static str),
    /// The durable state holds keys that the configuration's residency pins forbid this
    /// replica (the pins changed since they were written): starting would keep serving and
    /// replicating data that must not be here.
    #[error(
        "the durable state holds {count} keys that residency pins forbid in this region \
         (first: {first:?}); the pins changed since they were stored: remove them first"
    )]
    Forbidden {
        /// How many (keyspace and oplog together).
        count: usize,
        /// One of them, lossily as text.
        first: String,
    },
}

/// What a replica records between two `take_durable` calls (only with `track_durable`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Journal {
    pub(crate) dirty: bool,
    pub(crate) keys: std::collections::BTreeSet<Key>,
    pub(crate) appended: Vec<Entry>,
    pub(crate) truncated: BTreeMap<ReplicaId, u64>,
}

#[cfg(test)]
mod tests {
    use super::super::oplog::tests::entry;
    use super::*;
    use proptest::prelude::*;

    /// The former `apply`: extend, truncate, sort the whole log and keep each origin's last
    /// gap-free run. The reference the delta-proportional version must agree with.
    fn apply_by_rewrite(d: &mut Durable, delta: DurableDelta) {
        d.meta = delta.meta;
        for (k, s) in delta.keys {
            d.keys.insert(k, s);
        }
        d.strong.extend(delta.strong);
        d.oplog.extend(delta.appended);
        if !delta.truncated.is_empty() {
            let firsts: BTreeMap<ReplicaId, u64> = delta.truncated.into_iter().collect();
            d.oplog
                .retain(|e| firsts.get(&e.origin).is_none_or(|&first| e.seq >= first));
        }
        d.oplog.sort_by_key(|e| (e.origin, e.seq));
        let mut keep = vec![true; d.oplog.len()];
        for i in (1..d.oplog.len()).rev() {
            let (a, b) = (&d.oplog[i - 1], &d.oplog[i]);
            if a.origin == b.origin && (a.seq + 1 != b.seq || !keep[i]) {
                keep[i - 1] = false;
            }
        }
        let mut it = keep.into_iter();
        d.oplog.retain(|_| it.next().unwrap_or(true));
    }

    /// One step of a replica's journal for a few origins: per origin, entries that continue its
    /// log or (rarely) jump ahead, and truncations of a prefix; what `take_durable` hands out.
    fn deltas() -> impl Strategy<Value = Vec<Vec<(u64, u8, u8, u8)>>> {
        // (origin, appended count, jump, truncate count) per origin touched in a delta.
        prop::collection::vec(
            prop::collection::vec((0u64..4, 0u8..6, 0u8..8, 0u8..5), 0..4),
            1..40,
        )
    }

    proptest! {
        #[test]
        fn apply_agrees_with_rewriting_the_whole_log(steps in deltas()) {
            let (mut fast, mut slow) = (Durable::new(), Durable::new());
            // The next sequence number and the first retained one, per origin, as a replica's
            // own oplog would have them.
            let mut next = [1u64; 4];
            let mut first = [1u64; 4];
            for step in steps {
                let mut delta = DurableDelta::default();
                let mut truncated = BTreeMap::new();
                for (o, n, jump, cut) in step {
                    let i = o as usize;
                    if jump == 0 {
                        // The frontier jumped (anti-entropy): the origin's log restarts.
                        next[i] += 3;
                        first[i] = next[i];
                    }
                    for _ in 0..n {
                        delta.appended.push(entry(o, next[i]));
                        next[i] += 1;
                    }
                    first[i] = (first[i] + u64::from(cut)).min(next[i]);
                    if cut > 0 {
                        truncated.insert(ReplicaId(o), first[i]);
                    }
                }
                delta.truncated = truncated.into_iter().collect();
                apply_by_rewrite(&mut slow, delta.clone());
                fast.apply(delta);
                prop_assert_eq!(&fast, &slow);
            }
        }
    }
}
