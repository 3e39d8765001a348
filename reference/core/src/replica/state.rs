//! The state of one key ([`KeyState`]): the six CRDTs as one join-semilattice, and its
//! canonical binary encoding — the bytes peers exchange and the Merkle tree hashes.
//!
//! # Invariants
//! - One state has exactly one encoding (sets and maps in their sorted order), and decoding
//!   refuses any other, so decode ∘ encode is the identity (see `codec` for the primitives).
//! - Decoding validates through the CRDTs' own checked constructors: a decoded state is one the
//!   type could have reached.
//! - The join is associative, commutative and idempotent across kinds (the ordinal sum below).

use super::api::{ClientError, KeyKind, Op, Scalar, Value};
use super::codec::{
    DecodeError, Reader, decode_all, put_bytes, put_replica, put_stamp, put_varint, put_vv,
    read_replica, read_stamp, read_vv,
};
use crate::crdt::{LwwEntry, Sibling};
use crate::{
    BoundedCounter, CausalContext, Dot, Dvv, GCounter, Lattice, LwwRegister, MvRegister, OrSet,
    PnCounter, ReplicaId, VectorClock,
};
use std::collections::{BTreeMap, BTreeSet};

/// The state of one key: one of the six CRDTs.
///
/// `KeyState` is itself a join-semilattice: the *ordinal sum* of the six, in [`KeyKind`] order.
/// Two states of one kind join as that kind does; of two kinds, the later kind's state wins and
/// the other is dropped. That only happens when two replicas concurrently create a key with
/// different types (each replica refuses a mismatched write with `WrongType`); it loses the
/// earlier kind's writes, but deterministically, the same at every replica, and it keeps the
/// join associative, commutative and idempotent. The bottom is the empty grow-only counter,
/// below every state of every kind.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// A grow-only counter.
    Counter(GCounter),
    /// A counter that also decrements.
    PnCounter(PnCounter),
    /// An add-wins set.
    Set(OrSet<Scalar>),
    /// A last-writer-wins register.
    Lww(LwwRegister<Scalar>),
    /// A multi-value register.
    Mv(MvRegister<Scalar>),
    /// A bounded (escrow) counter.
    Bounded(BoundedCounter),
}

impl KeyState {
    /// The bottom state of `kind`.
    pub fn empty(kind: KeyKind) -> KeyState {
        match kind {
            KeyKind::Counter => KeyState::Counter(GCounter::new()),
            KeyKind::PnCounter => KeyState::PnCounter(PnCounter::new()),
            KeyKind::Set => KeyState::Set(OrSet::new()),
            KeyKind::Lww => KeyState::Lww(LwwRegister::new()),
            KeyKind::Mv => KeyState::Mv(MvRegister::new()),
            KeyKind::Bounded => KeyState::Bounded(BoundedCounter::new()),
        }
    }

    /// The key's type.
    pub fn kind(&self) -> KeyKind {
        match self {
            KeyState::Counter(_) => KeyKind::Counter,
            KeyState::PnCounter(_) => KeyKind::PnCounter,
            KeyState::Set(_) => KeyKind::Set,
            KeyState::Lww(_) => KeyKind::Lww,
            KeyState::Mv(_) => KeyKind::Mv,
            KeyState::Bounded(_) => KeyKind::Bounded,
        }
    }

    /// What a read returns.
    pub fn value(&self) -> Value {
        match self {
            KeyState::Counter(c) => Value::Counter(i128::try_from(c.value()).unwrap_or(i128::MAX)),
            KeyState::PnCounter(c) => Value::Counter(c.value()),
            KeyState::Set(s) => Value::Set(s.iter().cloned().collect()),
            KeyState::Lww(l) => match l.get() {
                Some(v) => Value::Register(v.clone()),
                None => Value::Absent,
            },
            KeyState::Mv(m) => Value::Siblings {
                values: m.values().cloned().collect(),
                context: m.read_context(),
            },
            KeyState::Bounded(c) => Value::Counter(c.value()),
        }
    }

    /// The canonical binary encoding (the one the Merkle tree hashes and peers exchange).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_state(&mut out, self);
        out
    }

    /// Decodes and validates a state; never panics.
    pub fn decode(bytes: &[u8]) -> Result<KeyState, DecodeError> {
        decode_all(bytes, read_state)
    }
}

impl Lattice for KeyState {
    fn bottom() -> Self {
        KeyState::Counter(GCounter::new())
    }

    fn join(&mut self, other: Self) {
        match (self, other) {
            (KeyState::Counter(a), KeyState::Counter(b)) => a.join(b),
            (KeyState::PnCounter(a), KeyState::PnCounter(b)) => a.join(b),
            (KeyState::Set(a), KeyState::Set(b)) => a.join(b),
            (KeyState::Lww(a), KeyState::Lww(b)) => a.join(b),
            (KeyState::Mv(a), KeyState::Mv(b)) => a.join(b),
            (KeyState::Bounded(a), KeyState::Bounded(b)) => a.join(b),
            (this, other) => {
                if other.kind() > this.kind() {
                    *this = other;
                }
            }
        }
    }

    fn leq(&self, other: &Self) -> bool {
        match (self, other) {
            (KeyState::Counter(a), KeyState::Counter(b)) => a.leq(b),
            (KeyState::PnCounter(a), KeyState::PnCounter(b)) => a.leq(b),
            (KeyState::Set(a), KeyState::Set(b)) => a.leq(b),
            (KeyState::Lww(a), KeyState::Lww(b)) => a.leq(b),
            (KeyState::Mv(a), KeyState::Mv(b)) => a.leq(b),
            (KeyState::Bounded(a), KeyState::Bounded(b)) => a.leq(b),
            (a, b) => a.kind() < b.kind(),
        }
    }
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
const TAG_BOUNDED: u8 = 5;

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
        KeyState::Bounded(c) => {
            // `P`, `N`, then the transfer rows by giver (increasing), each a clock of receivers.
            out.push(TAG_BOUNDED);
            put_vv(out, c.increments());
            put_vv(out, c.decrements());
            put_varint(out, c.transfers().len() as u64);
            for (&giver, row) in c.transfers() {
                put_replica(out, giver);
                put_vv(out, row);
            }
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
        TAG_BOUNDED => KeyState::Bounded(read_bounded(r)?),
        t => return Err(DecodeError::UnknownTag(t)),
    })
}

/// A bounded counter's `P`, `N` and transfer rows (givers strictly increasing), validated by
/// [`BoundedCounter::from_parts`]: no transfer to oneself, no empty row, no replica below zero
/// rights.
fn read_bounded(r: &mut Reader<'_>) -> Result<BoundedCounter, DecodeError> {
    let increments = read_vv(r)?;
    let decrements = read_vv(r)?;
    // A row is at least a giver and an empty clock: two bytes.
    let n = r.count(2)?;
    let mut transfers: BTreeMap<ReplicaId, VectorClock> = BTreeMap::new();
    for _ in 0..n {
        let giver = read_replica(r)?;
        if transfers.last_key_value().is_some_and(|(&l, _)| l >= giver) {
            return Err(DecodeError::Invalid("transfer givers not increasing"));
        }
        transfers.insert(giver, read_vv(r)?);
    }
    BoundedCounter::from_parts(increments, decrements, transfers)
        .map_err(|_| DecodeError::Invalid("bounded counter breaks its invariants"))
}

/// Refuses with [`ClientError::Overflow`] a counter operation that would carry the value this
/// replica reads outside `i64`, the integers RESP and Maelstrom's JSON carry: a client told of
/// an overflow must be able to retry, so the refusal comes before anything is applied, logged
/// or replicated. Only the local view is checked; concurrent increments in other regions can
/// still merge into a value beyond `i64`, which reads then report as out of range.
pub(super) fn check_counter_range(state: Option<&KeyState>, op: &Op) -> Result<(), ClientError> {
    let by = match op {
        Op::Incr(by) => i128::from(*by),
        Op::PnAdd(n) | Op::BoundedAdd(n) => i128::from(*n),
        _ => return Ok(()),
    };
    let value = match state {
        // A grow-only counter's u128 sum beyond i128 is certainly beyond i64 too.
        Some(KeyState::Counter(c)) => i128::try_from(c.value()).unwrap_or(i128::MAX),
        Some(KeyState::PnCounter(c)) => c.value(),
        Some(KeyState::Bounded(c)) => c.value(),
        // Absent, or of another kind (which the caller refuses as WRONGTYPE).
        _ => 0,
    };
    match value.checked_add(by).map(i64::try_from) {
        Some(Ok(_)) => Ok(()),
        _ => Err(ClientError::Overflow),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn bounded_counters_round_trip_and_impossible_ones_are_refused() {
        let (a, b) = (ReplicaId(0), ReplicaId(1));
        let mut c = BoundedCounter::new();
        c.increment(a, 5).unwrap();
        c.transfer(a, b, 2).unwrap();
        c.decrement(b, 1).unwrap();
        let state = KeyState::Bounded(c);
        // Pinned: tag, P {r0: 5}, N {r1: 1}, one row: r0 gave r1 2 (each clock a count, then
        // replica and total pairs).
        assert_eq!(state.encode(), [5, 1, 0, 5, 1, 1, 1, 1, 0, 1, 1, 2]);
        assert_eq!(KeyState::decode(&state.encode()), Ok(state.clone()));
        assert_eq!(state.value(), Value::Counter(4));
        // Hand-built bodies: P, N, then the transfer rows.
        let body = |p: &[(u64, u64)], n: &[(u64, u64)], t: &[(u64, &[(u64, u64)])]| {
            let vv = |e: &[(u64, u64)]| e.iter().map(|&(r, c)| (ReplicaId(r), c)).collect();
            let mut out = vec![TAG_BOUNDED];
            put_vv(&mut out, &vv(p));
            put_vv(&mut out, &vv(n));
            put_varint(&mut out, t.len() as u64);
            for &(giver, row) in t {
                put_replica(&mut out, ReplicaId(giver));
                put_vv(&mut out, &vv(row));
            }
            out
        };
        assert!(KeyState::decode(&body(&[(0, 5)], &[], &[(0, &[(1, 2)])])).is_ok());
        for (bytes, why) in [
            (body(&[(0, 1)], &[(0, 2)], &[]), "spent more than it had"),
            (
                body(&[(0, 1)], &[], &[(0, &[(1, 2)])]),
                "gave more than it had",
            ),
            (body(&[(0, 5)], &[], &[(0, &[(0, 1)])]), "gave to itself"),
            (body(&[(0, 5)], &[], &[(0, &[])]), "an empty row"),
            (
                body(&[(0, 5), (1, 5)], &[], &[(1, &[(0, 1)]), (0, &[(1, 1)])]),
                "givers out of order",
            ),
        ] {
            assert!(
                matches!(KeyState::decode(&bytes), Err(DecodeError::Invalid(_))),
                "{why}"
            );
        }
    }
}
