//! The oplog: the entries a replica still has to send, one gap-free log per origin.
//!
//! An entry is one write (or one read's write-back): its origin replica, its sequence number at
//! that origin (from 1, gap-free), its HLC stamp, its causal dependencies, its key and the δ-state
//! to join there. Applying an entry is joining its delta, so applying it twice changes nothing —
//! but the receiver still deduplicates by `(origin, seq)` so that its frontier means "applied in
//! order".
//!
//! # Dependencies
//! `deps` is a sparse vector of entries of *other* origins that a replica must hold before it may
//! apply the entry: the session token the write was served under, less what the origin's earlier
//! entries already required (see `session` § Causal delivery). It is empty for a write without a
//! token, which is what the hot path carries. It never names the entry's own origin: the origin's
//! earlier entries are implied by in-order application.
//!
//! A replica keeps the entries of origin `o` only if it has children for `o` (neighbours that
//! receive `o`'s writes through it, see `config::Routes`), and only until every such child has
//! acknowledged them — or until the log exceeds its cap, when the oldest go and anti-entropy
//! repairs whoever still needed them.
//!
//! # Invariants
//! - Each origin's log holds consecutive sequence numbers `first .. first + len`.
//! - Every entry in the log is at or below the replica's frontier (it was applied before being
//!   logged), and so are its dependencies (it was applied only once they were held).

use super::api::Key;
use super::codec::{
    DecodeError, Reader, put_key, put_replica, put_varint, put_vv, read_key, read_replica, read_vv,
};
use super::state::{KeyState, put_state, read_state};
use crate::{HlcTimestamp, ReplicaId, VectorClock};
use std::collections::{BTreeMap, VecDeque};

/// One replicated write.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    /// The replica that issued it.
    pub origin: ReplicaId,
    /// Its sequence number at the origin, from 1, gap-free.
    pub seq: u64,
    /// The origin's HLC when it issued it.
    pub stamp: HlcTimestamp,
    /// The entries of other origins a replica must hold before applying this one (sparse; never
    /// names `origin`; empty for a write served without a session token).
    pub deps: VectorClock,
    /// The key it changes.
    pub key: Key,
    /// The δ-state joined into the key.
    pub delta: KeyState,
    /// Whether the entry was *redacted* for a replica its key's residency pin excludes (see
    /// `config::Pin`): `key` is then empty and `delta` the bottom state, and applying it only
    /// advances the frontier. Kept in order so that logs stay gap-free where the data may not go.
    pub redacted: bool,
}

impl Entry {
    /// Appends the entry's binary encoding: origin, sequence number, the stamp's wall time, the
    /// stamp's logical counter shifted left by one with the low bit set when dependencies follow,
    /// the dependencies if so, the key and the delta.
    ///
    /// The flag shares the logical counter's varint so that an entry without dependencies —
    /// every write served without a session token, the hot path — costs no byte more than
    /// before dependencies existed (while the counter stays below 64, as it does unless one
    /// millisecond sees that many writes).
    ///
    /// A redacted entry (see [`Entry::redacted`]) sets the dependency flag and writes an empty
    /// vector clock — an encoding that no complete entry can have — then its dependencies
    /// (possibly none), and no key or delta.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        if self.redacted {
            return self.encode_redacted_into(out);
        }
        put_replica(out, self.origin);
        put_varint(out, self.seq);
        put_varint(out, self.stamp.wall_ms);
        let has_deps = !self.deps.is_empty();
        put_varint(
            out,
            (u64::from(self.stamp.logical) << 1) | u64::from(has_deps),
        );
        if has_deps {
            put_vv(out, &self.deps);
        }
        put_key(out, &self.key);
        put_state(out, &self.delta);
    }

    /// Appends the encoding of this entry redacted: origin, sequence number, stamp and
    /// dependencies, and neither key nor delta (see [`Entry::encode_into`]).
    pub fn encode_redacted_into(&self, out: &mut Vec<u8>) {
        put_replica(out, self.origin);
        put_varint(out, self.seq);
        put_varint(out, self.stamp.wall_ms);
        put_varint(out, (u64::from(self.stamp.logical) << 1) | 1);
        put_vv(out, &VectorClock::new());
        put_vv(out, &self.deps);
    }

    /// This entry with its key and delta removed (see [`Entry::redacted`]).
    pub fn redact(&self) -> Entry {
        Entry {
            origin: self.origin,
            seq: self.seq,
            stamp: self.stamp,
            deps: self.deps.clone(),
            key: Key::default(),
            delta: <KeyState as crate::Lattice>::bottom(),
            redacted: true,
        }
    }

    /// The entry's binary encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Decodes and validates one entry; never panics.
    pub fn decode(bytes: &[u8]) -> Result<Entry, DecodeError> {
        super::codec::decode_all(bytes, Entry::read)
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Entry, DecodeError> {
        let origin = read_replica(r)?;
        let seq = r.varint()?;
        if seq == 0 {
            return Err(DecodeError::Invalid("entry sequence number 0"));
        }
        let wall_ms = r.varint()?;
        let packed = r.varint()?;
        let logical = u32::try_from(packed >> 1).map_err(|_| DecodeError::TooLong(packed))?;
        let stamp = HlcTimestamp::new(wall_ms, logical);
        let deps = if packed & 1 == 1 {
            let deps = read_vv(r)?;
            // Flagged but empty marks a redacted entry: its dependencies follow, and no key or
            // delta (see `encode_into`).
            if deps.is_empty() {
                let deps = read_vv(r)?;
                if deps.get(origin) != 0 {
                    return Err(DecodeError::Invalid("entry depends on its own origin"));
                }
                return Ok(Entry {
                    origin,
                    seq,
                    stamp,
                    deps,
                    key: Key::default(),
                    delta: <KeyState as crate::Lattice>::bottom(),
                    redacted: true,
                });
            }
            deps
        } else {
            VectorClock::new()
        };
        // The origin's own earlier entries are implied by in-order application; naming them
        // would give one entry two encodings, and naming a later one could never be satisfied.
        if deps.get(origin) != 0 {
            return Err(DecodeError::Invalid("entry depends on its own origin"));
        }
        Ok(Entry {
            origin,
            seq,
            stamp,
            deps,
            key: read_key(r)?,
            delta: read_state(r)?,
            redacted: false,
        })
    }
}

/// The retained entries of one origin.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct OriginLog {
    /// Sequence number of `entries[0]`, or of the next entry if the log is empty.
    first: u64,
    entries: VecDeque<Entry>,
}

impl OriginLog {
    /// Drops the entries with `seq <= upto`; returns how many.
    fn drop_upto(&mut self, upto: u64) -> usize {
        let mut n = 0;
        while self.first <= upto && !self.entries.is_empty() {
            self.entries.pop_front();
            self.first += 1;
            n += 1;
        }
        n
    }
}

/// Every origin's retained entries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Oplog {
    logs: BTreeMap<ReplicaId, OriginLog>,
    len: usize,
}

impl Oplog {
    /// Total entries retained.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Appends an entry. If it does not follow the origin's last retained entry (the frontier
    /// jumped through anti-entropy, or a restart), the older entries are dropped first: the log
    /// stays gap-free and children behind the jump are repaired by anti-entropy. Returns how
    /// many entries that dropped.
    pub(crate) fn append(&mut self, entry: Entry) -> usize {
        let log = self.logs.entry(entry.origin).or_insert_with(|| OriginLog {
            first: entry.seq,
            entries: VecDeque::new(),
        });
        let mut dropped = 0;
        if log.first + log.entries.len() as u64 != entry.seq {
            dropped = log.entries.len();
            self.len -= dropped;
            log.entries.clear();
            log.first = entry.seq;
        }
        log.entries.push_back(entry);
        self.len += 1;
        dropped
    }

    /// The first retained sequence number of `origin` (the next one if none is retained), or
    /// `None` if nothing of `origin` was ever logged here.
    pub(crate) fn first(&self, origin: ReplicaId) -> Option<u64> {
        self.logs.get(&origin).map(|l| l.first)
    }

    /// One past the last retained sequence number of `origin`.
    pub(crate) fn end(&self, origin: ReplicaId) -> Option<u64> {
        self.logs
            .get(&origin)
            .map(|l| l.first + l.entries.len() as u64)
    }

    /// The entry `(origin, seq)` if retained.
    pub(crate) fn get(&self, origin: ReplicaId, seq: u64) -> Option<&Entry> {
        let log = self.logs.get(&origin)?;
        let i = seq.checked_sub(log.first)?;
        log.entries.get(usize::try_from(i).ok()?)
    }

    /// Origins with a log, in order.
    pub(crate) fn origins(&self) -> impl Iterator<Item = ReplicaId> + '_ {
        self.logs.keys().copied()
    }

    /// Drops the entries of `origin` with `seq <= upto`; returns how many.
    pub(crate) fn truncate(&mut self, origin: ReplicaId, upto: u64) -> usize {
        let Some(log) = self.logs.get_mut(&origin) else {
            return 0;
        };
        let n = log.drop_upto(upto);
        self.len -= n;
        n
    }

    /// Drops, of every origin, the entries with `seq <= upto(origin)`, in one pass over the
    /// logs; tells `dropped` each origin that lost entries and its first retained sequence
    /// number after. Returns how many went in all.
    pub(crate) fn truncate_each(
        &mut self,
        mut upto: impl FnMut(ReplicaId) -> u64,
        mut dropped: impl FnMut(ReplicaId, u64),
    ) -> usize {
        let mut total = 0;
        for (&origin, log) in &mut self.logs {
            let n = log.drop_upto(upto(origin));
            if n > 0 {
                dropped(origin, log.first);
            }
            total += n;
        }
        self.len -= total;
        total
    }

    /// The origin with the most retained entries (the smallest id on ties).
    pub(crate) fn longest(&self) -> Option<ReplicaId> {
        self.logs
            .iter()
            .filter(|(_, l)| !l.entries.is_empty())
            .max_by(|a, b| a.1.entries.len().cmp(&b.1.entries.len()).then(b.0.cmp(a.0)))
            .map(|(&o, _)| o)
    }

    /// Every retained entry, by origin then sequence number.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.logs.values().flat_map(|l| l.entries.iter())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::GCounter;

    /// An entry of `origin` numbered `seq` with an empty counter delta (shared with `durable`'s tests).
    pub(in crate::replica) fn entry(origin: u64, seq: u64) -> Entry {
        Entry {
            origin: ReplicaId(origin),
            seq,
            stamp: HlcTimestamp::new(seq, 0),
            deps: VectorClock::new(),
            key: b"k".as_slice().into(),
            delta: KeyState::Counter(GCounter::new()),
            redacted: false,
        }
    }

    #[test]
    fn logs_stay_gap_free_through_truncation_and_restarts() {
        let mut log = Oplog::default();
        for s in 1..=5 {
            log.append(entry(1, s));
        }
        log.append(entry(2, 1));
        assert_eq!(log.len(), 6);
        assert_eq!(log.truncate(ReplicaId(1), 2), 2);
        assert_eq!(log.first(ReplicaId(1)), Some(3));
        assert_eq!(log.get(ReplicaId(1), 2), None);
        assert_eq!(log.get(ReplicaId(1), 4).map(|e| e.seq), Some(4));
        assert_eq!(log.longest(), Some(ReplicaId(1)));
        // A jump (the frontier moved by anti-entropy) restarts the origin's log.
        assert_eq!(log.append(entry(1, 9)), 3);
        assert_eq!(log.first(ReplicaId(1)), Some(9));
        assert_eq!(log.end(ReplicaId(1)), Some(10));
        assert_eq!(log.len(), 2);
        assert_eq!(log.truncate(ReplicaId(1), u64::MAX), 1);
        assert_eq!(log.first(ReplicaId(1)), Some(10));
    }

    #[test]
    fn an_entry_round_trips_and_seq_zero_is_refused() {
        let e = entry(3, 7);
        assert_eq!(Entry::decode(&e.encode()), Ok(e.clone()));
        let mut d = e.clone();
        d.deps = [(ReplicaId(1), 4), (ReplicaId(9), 300)]
            .into_iter()
            .collect();
        assert_eq!(Entry::decode(&d.encode()), Ok(d.clone()));
        // An entry naming its own origin among its dependencies is refused.
        d.deps.raise(ReplicaId(3), 6);
        assert_eq!(
            Entry::decode(&d.encode()),
            Err(DecodeError::Invalid("entry depends on its own origin"))
        );
        // The flag with an empty clock marks a redacted entry: dependencies follow, and no key
        // or delta, so a complete entry flagged that way is refused (its key and delta are
        // left over, or misread as a clock).
        let mut flagged = e.encode();
        let at = 3; // after origin, seq and wall time, one byte each here
        assert_eq!(flagged[at], 0, "logical 0, no dependencies");
        flagged[at] = 1;
        flagged.insert(at + 1, 0);
        assert!(Entry::decode(&flagged).is_err());
        // A redacted entry keeps origin, seq, stamp and dependencies, and round-trips.
        let mut dependent = e.clone();
        dependent.deps = [(ReplicaId(1), 4)].into_iter().collect();
        let r = dependent.redact();
        assert!(r.redacted && r.key.is_empty() && r.deps == dependent.deps);
        assert_eq!(Entry::decode(&r.encode()), Ok(r.clone()));
        let bare = e.redact();
        assert_eq!(Entry::decode(&bare.encode()), Ok(bare.clone()));
        assert!(bare.encode().len() < e.encode().len());
        // Without dependencies an entry costs what it did before they existed: origin, seq,
        // wall time, logical counter and flag, key, delta.
        assert_eq!(e.encode().len(), 1 + 1 + 1 + 1 + 2 + 2);
        let mut bad = entry(3, 1).encode();
        bad[1] = 0;
        assert_eq!(
            Entry::decode(&bad),
            Err(DecodeError::Invalid("entry sequence number 0"))
        );
    }
}
