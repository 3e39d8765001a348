//! The compact binary encoding of replica data: varints, scalars, clocks, CRDT states, oplog
//! entries.
//!
//! Hand-written rather than CBOR because it sits on the replication hot path and because its
//! output is also the *canonical* form of a key state that the Merkle tree hashes: one state has
//! exactly one encoding (maps and sets are written in their sorted order), and the decoder
//! refuses any other (unsorted or repeated items, zero counters, non-compact contexts), so that
//! decode ∘ encode is the identity and encode ∘ decode is a fixed point.
//!
//! # Invariants
//! - Decoding never panics and never allocates more than the input can justify: every count is
//!   checked against the bytes left (each item takes at least one byte) before anything is
//!   reserved.
//! - Decoding validates through the CRDTs' own checked constructors, so a decoded state is one
//!   the type could have reached.

use super::api::{Key, Scalar};
use super::keyspace::KeyState;
use crate::crdt::{LwwEntry, Sibling};
use crate::{
    CausalContext, Dot, Dvv, GCounter, HlcTimestamp, LwwRegister, MvRegister, OrSet, PnCounter,
    ReplicaId, VectorClock,
};
use std::collections::BTreeSet;

/// Largest key accepted, in bytes.
pub const KEY_BYTES_MAX: usize = 64 * 1024;

/// Why bytes could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside a value.
    #[error("truncated input")]
    Truncated,
    /// The first byte is not the replica message magic.
    #[error("bad magic byte {0:#04x}")]
    BadMagic(u8),
    /// A format version this build does not speak.
    #[error("unsupported version {0}")]
    UnsupportedVersion(u8),
    /// A tag byte names no known variant.
    #[error("unknown tag {0}")]
    UnknownTag(u8),
    /// A varint longer than 10 bytes or beyond `u64`.
    #[error("varint overflow")]
    VarintOverflow,
    /// A length or count beyond what the input or the limits allow.
    #[error("length {0} beyond limit")]
    TooLong(u64),
    /// Well-formed bytes for a value that breaks an invariant.
    #[error("invalid value: {0}")]
    Invalid(&'static str),
    /// Bytes left after the value.
    #[error("{0} trailing bytes")]
    Trailing(usize),
    /// A compressed body that does not decompress to its announced size.
    #[error("bad compressed body")]
    Decompress,
}

/// Appends `v` as an LEB128 varint.
#[inline]
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a length-prefixed byte string.
#[inline]
pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A cursor over input bytes. Every read checks bounds and reports [`DecodeError`].
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.pos).ok_or(DecodeError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    #[inline]
    pub(crate) fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8()?;
            let bits = u64::from(b & 0x7f);
            if i == 9 && b > 1 {
                return Err(DecodeError::VarintOverflow);
            }
            v |= bits << (7 * i);
            if b & 0x80 == 0 {
                // Refuse over-long encodings (a trailing zero group) so that the encoding is
                // canonical.
                if i > 0 && b == 0 {
                    return Err(DecodeError::Invalid("over-long varint"));
                }
                return Ok(v);
            }
        }
        Err(DecodeError::VarintOverflow)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        let v = self.varint()?;
        u32::try_from(v).map_err(|_| DecodeError::TooLong(v))
    }

    /// A count of items each taking at least `min_item_bytes`, checked against the input left.
    pub(crate) fn count(&mut self, min_item_bytes: usize) -> Result<usize, DecodeError> {
        let n = self.varint()?;
        let max = self.remaining() / min_item_bytes.max(1);
        if n > max as u64 {
            return Err(DecodeError::TooLong(n));
        }
        Ok(n as usize)
    }

    pub(crate) fn bytes(&mut self, max: usize) -> Result<&'a [u8], DecodeError> {
        let n = self.varint()?;
        if n > self.remaining() as u64 || n > max as u64 {
            return Err(DecodeError::TooLong(n));
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.buf[start..self.pos])
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let rest = &self.buf[self.pos..];
        self.pos = self.buf.len();
        rest
    }

    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }
}

pub(crate) fn put_replica(out: &mut Vec<u8>, r: ReplicaId) {
    put_varint(out, r.0);
}

pub(crate) fn read_replica(r: &mut Reader<'_>) -> Result<ReplicaId, DecodeError> {
    Ok(ReplicaId(r.varint()?))
}

pub(crate) fn put_key(out: &mut Vec<u8>, key: &[u8]) {
    put_bytes(out, key);
}

pub(crate) fn read_key(r: &mut Reader<'_>) -> Result<Key, DecodeError> {
    Ok(r.bytes(KEY_BYTES_MAX)?.into())
}

pub(crate) fn put_stamp(out: &mut Vec<u8>, s: HlcTimestamp) {
    put_varint(out, s.wall_ms);
    put_varint(out, u64::from(s.logical));
}

pub(crate) fn read_stamp(r: &mut Reader<'_>) -> Result<HlcTimestamp, DecodeError> {
    Ok(HlcTimestamp::new(r.varint()?, r.u32()?))
}

/// A vector clock: count, then `(replica, counter)` with replicas strictly increasing and
/// counters positive.
pub(crate) fn put_vv(out: &mut Vec<u8>, vv: &VectorClock) {
    put_varint(out, vv.len() as u64);
    for (r, n) in vv.iter() {
        put_replica(out, r);
        put_varint(out, n);
    }
}

pub(crate) fn read_vv(r: &mut Reader<'_>) -> Result<VectorClock, DecodeError> {
    let n = r.count(2)?;
    let mut vv = VectorClock::new();
    let mut last: Option<ReplicaId> = None;
    for _ in 0..n {
        let id = read_replica(r)?;
        let counter = r.varint()?;
        if last.is_some_and(|l| l >= id) {
            return Err(DecodeError::Invalid("vector clock replicas not increasing"));
        }
        if counter == 0 {
            return Err(DecodeError::Invalid("vector clock counter 0"));
        }
        vv.raise(id, counter);
        last = Some(id);
    }
    Ok(vv)
}

fn put_dot(out: &mut Vec<u8>, d: Dot) {
    put_replica(out, d.replica);
    put_varint(out, d.counter);
}

fn read_dot(r: &mut Reader<'_>) -> Result<Dot, DecodeError> {
    let replica = read_replica(r)?;
    let counter = r.varint()?;
    if counter == 0 {
        return Err(DecodeError::Invalid("dot counter 0"));
    }
    Ok(Dot { replica, counter })
}

/// Dots strictly increasing.
fn read_dots(r: &mut Reader<'_>) -> Result<Vec<Dot>, DecodeError> {
    let n = r.count(2)?;
    let mut dots = Vec::with_capacity(n);
    for _ in 0..n {
        let d = read_dot(r)?;
        if dots.last().is_some_and(|l: &Dot| *l >= d) {
            return Err(DecodeError::Invalid("dots not increasing"));
        }
        dots.push(d);
    }
    Ok(dots)
}

pub(crate) fn put_context(out: &mut Vec<u8>, ctx: &CausalContext) {
    put_vv(out, ctx.version_vector());
    put_varint(out, ctx.cloud().len() as u64);
    for &d in ctx.cloud() {
        put_dot(out, d);
    }
}

pub(crate) fn read_context(r: &mut Reader<'_>) -> Result<CausalContext, DecodeError> {
    let vv = read_vv(r)?;
    let cloud: BTreeSet<Dot> = read_dots(r)?.into_iter().collect();
    CausalContext::from_parts(vv, cloud).ok_or(DecodeError::Invalid("causal context not compact"))
}

pub(crate) fn put_scalar(out: &mut Vec<u8>, s: &Scalar) {
    match s {
        Scalar::Int(i) => {
            out.push(0);
            // Zigzag, so that small negative numbers stay short.
            put_varint(out, ((*i << 1) ^ (*i >> 63)) as u64);
        }
        Scalar::Bytes(b) => {
            out.push(1);
            put_bytes(out, b);
        }
    }
}

pub(crate) fn read_scalar(r: &mut Reader<'_>) -> Result<Scalar, DecodeError> {
    match r.u8()? {
        0 => {
            let z = r.varint()?;
            Ok(Scalar::Int(((z >> 1) as i64) ^ -((z & 1) as i64)))
        }
        1 => Ok(Scalar::Bytes(r.bytes(usize::MAX)?.into())),
        t => Err(DecodeError::UnknownTag(t)),
    }
}

const TAG_COUNTER: u8 = 0;
const TAG_PN: u8 = 1;
const TAG_SET: u8 = 2;
const TAG_LWW: u8 = 3;
const TAG_MV: u8 = 4;

/// Appends the canonical encoding of a key state.
pub(crate) fn put_state(out: &mut Vec<u8>, state: &KeyState) {
    match state {
        KeyState::Counter(c) => {
            out.push(TAG_COUNTER);
            put_vv(out, c.counts());
        }
        KeyState::PnCounter(c) => {
            out.push(TAG_PN);
            put_vv(out, c.increments().counts());
            put_vv(out, c.decrements().counts());
        }
        KeyState::Set(s) => {
            out.push(TAG_SET);
            put_varint(out, s.len() as u64);
            for (e, dots) in s.entries() {
                put_scalar(out, e);
                put_varint(out, dots.len() as u64);
                for &d in dots {
                    put_dot(out, d);
                }
            }
            put_context(out, s.context());
        }
        KeyState::Lww(l) => {
            out.push(TAG_LWW);
            match l.entry() {
                None => out.push(0),
                Some(e) => {
                    out.push(1);
                    put_stamp(out, e.stamp);
                    put_replica(out, e.replica);
                    put_scalar(out, &e.value);
                }
            }
        }
        KeyState::Mv(m) => {
            out.push(TAG_MV);
            put_varint(out, m.siblings().len() as u64);
            for s in m.siblings() {
                put_dot(out, s.dvv.dot());
                put_vv(out, s.dvv.past());
                put_scalar(out, &s.value);
            }
            put_context(out, m.context());
        }
    }
}

/// Decodes one key state, validating it.
pub(crate) fn read_state(r: &mut Reader<'_>) -> Result<KeyState, DecodeError> {
    Ok(match r.u8()? {
        TAG_COUNTER => KeyState::Counter(GCounter::from_counts(read_vv(r)?)),
        TAG_PN => {
            let p = GCounter::from_counts(read_vv(r)?);
            let n = GCounter::from_counts(read_vv(r)?);
            KeyState::PnCounter(PnCounter::from_halves(p, n))
        }
        TAG_SET => {
            let n = r.count(3)?;
            let mut entries: Vec<(Scalar, Vec<Dot>)> = Vec::with_capacity(n);
            for _ in 0..n {
                let e = read_scalar(r)?;
                if entries.last().is_some_and(|(l, _)| *l >= e) {
                    return Err(DecodeError::Invalid("set elements not increasing"));
                }
                let dots = read_dots(r)?;
                entries.push((e, dots));
            }
            let ctx = read_context(r)?;
            KeyState::Set(OrSet::from_parts(entries, ctx).map_err(DecodeError::Invalid)?)
        }
        TAG_LWW => KeyState::Lww(LwwRegister::from_entry(match r.u8()? {
            0 => None,
            1 => Some(LwwEntry {
                stamp: read_stamp(r)?,
                replica: read_replica(r)?,
                value: read_scalar(r)?,
            }),
            t => return Err(DecodeError::UnknownTag(t)),
        })),
        TAG_MV => {
            let n = r.count(4)?;
            let mut siblings = Vec::with_capacity(n);
            for _ in 0..n {
                let dot = read_dot(r)?;
                let past = read_vv(r)?;
                let dvv =
                    Dvv::new(dot, past).ok_or(DecodeError::Invalid("dvv past covers its dot"))?;
                siblings.push(Sibling {
                    dvv,
                    value: read_scalar(r)?,
                });
            }
            let ctx = read_context(r)?;
            KeyState::Mv(MvRegister::from_parts(siblings, ctx).map_err(DecodeError::Invalid)?)
        }
        t => return Err(DecodeError::UnknownTag(t)),
    })
}

/// Decodes a whole buffer as one value with `read`, refusing trailing bytes.
pub(crate) fn decode_all<T>(
    bytes: &[u8],
    read: impl FnOnce(&mut Reader<'_>) -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    let mut r = Reader::new(bytes);
    let v = read(&mut r)?;
    r.finish()?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_canonical() {
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(decode_all(&out, |r| r.varint()), Ok(v));
        }
        // Over-long zero and an 11-byte varint are refused.
        assert!(decode_all(&[0x80, 0x00], |r| r.varint()).is_err());
        assert_eq!(
            decode_all(&[0xff; 11], |r| r.varint()),
            Err(DecodeError::VarintOverflow)
        );
    }

    #[test]
    fn counts_cannot_claim_more_than_the_input_holds() {
        let mut out = Vec::new();
        put_varint(&mut out, 1 << 40);
        assert_eq!(
            decode_all(&out, read_vv),
            Err(DecodeError::TooLong(1 << 40))
        );
    }

    #[test]
    fn scalars_round_trip_with_zigzag() {
        for s in [
            Scalar::Int(0),
            Scalar::Int(-1),
            Scalar::Int(i64::MIN),
            Scalar::Int(i64::MAX),
            Scalar::bytes("héllo"),
        ] {
            let mut out = Vec::new();
            put_scalar(&mut out, &s);
            assert_eq!(decode_all(&out, read_scalar), Ok(s));
        }
    }

    #[test]
    fn unsorted_clocks_are_refused() {
        let out = [2, 5, 1, 3, 1];
        assert_eq!(
            decode_all(&out, read_vv),
            Err(DecodeError::Invalid("vector clock replicas not increasing"))
        );
    }
}
