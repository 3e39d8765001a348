//! The primitives of the compact binary encoding of replica data: varints, byte strings, replica
//! ids, keys, HLC stamps, vector clocks, and the bounded [`Reader`] every decoder reads with. Key
//! states are encoded in `state`, entries in `oplog`, messages in `msg`, all on top of these.
//! This module imports nothing of the replica: it is the bottom layer, which keeps the encoders
//! free of import circles.
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
//! - Decoding refuses non-canonical input (over-long varints, unsorted or repeated clock
//!   entries, zero counters), so every value has one encoding.

use crate::{HlcTimestamp, ReplicaId, VectorClock};

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

pub(crate) fn read_key(r: &mut Reader<'_>) -> Result<Box<[u8]>, DecodeError> {
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
    fn unsorted_clocks_are_refused() {
        let out = [2, 5, 1, 3, 1];
        assert_eq!(
            decode_all(&out, read_vv),
            Err(DecodeError::Invalid("vector clock replicas not increasing"))
        );
    }
}
