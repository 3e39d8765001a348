//! The durable part of a replica, and the increments a shell persists.
//!
//! # What must survive a crash
//! The keyspace, the oplog (each entry with its dependencies, which the children it is forwarded
//! to after a restart must still wait for), the HLC, the frontier and horizon, and the last
//! sequence number issued. Everything else — peers' cursors and acknowledgements, what is known
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
    DecodeError, Reader, put_key, put_stamp, put_state, put_varint, put_vv, read_key, read_stamp,
    read_state, read_vv,
};
use super::keyspace::KeyState;
use super::oplog::Entry;
use crate::{HlcTimestamp, ReplicaId, VectorClock};
use std::collections::BTreeMap;

/// The version byte of [`Durable::encode`].
const DURABLE_VERSION: u8 = 2;

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
}

impl Durable {
    /// The durable state of a replica that has never run.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies a delta, as a shell's store would.
    pub fn apply(&mut self, delta: DurableDelta) {
        self.meta = delta.meta;
        for (k, s) in delta.keys {
            self.keys.insert(k, s);
        }
        self.oplog.extend(delta.appended);
        if !delta.truncated.is_empty() {
            let firsts: BTreeMap<ReplicaId, u64> = delta.truncated.into_iter().collect();
            self.oplog
                .retain(|e| firsts.get(&e.origin).is_none_or(|&first| e.seq >= first));
        }
        // An origin's log restarts (drops everything older) when the frontier jumped; keep the
        // stored log in the same shape: only the last gap-free run per origin.
        self.oplog.sort_by_key(|e| (e.origin, e.seq));
        let mut keep = vec![true; self.oplog.len()];
        for i in (1..self.oplog.len()).rev() {
            let (a, b) = (&self.oplog[i - 1], &self.oplog[i]);
            if a.origin == b.origin && (a.seq + 1 != b.seq || !keep[i]) {
                keep[i - 1] = false;
            }
        }
        let mut it = keep.into_iter();
        self.oplog.retain(|_| it.next().unwrap_or(true));
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
        out
    }

    /// Decodes a snapshot; never panics. [`Replica::recover`](super::Replica::recover) checks
    /// its consistency.
    pub fn decode(bytes: &[u8]) -> Result<Durable, DecodeError> {
        super::codec::decode_all(bytes, |r: &mut Reader<'_>| {
            let v = r.u8()?;
            if v != DURABLE_VERSION {
                return Err(DecodeError::UnsupportedVersion(v));
            }
            let meta = DurableMeta {
                hlc: read_stamp(r)?,
                last_seq: r.varint()?,
                frontier: read_vv(r)?,
                horizon: read_vv(r)?,
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
            Ok(Durable { meta, keys, oplog })
        })
    }
}

/// What a replica records between two `take_durable` calls (only with `track_durable`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Journal {
    pub(crate) dirty: bool,
    pub(crate) keys: std::collections::BTreeSet<Key>,
    pub(crate) appended: Vec<Entry>,
    pub(crate) truncated: BTreeMap<ReplicaId, u64>,
}
