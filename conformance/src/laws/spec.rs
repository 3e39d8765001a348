//! The reference specifications reads are held to.

use super::{Kind, Op, ReplicaIdx};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// What a read of a replica shows, in the kind's vocabulary.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Observation {
    /// A counter's value.
    Count(i128),
    /// A set's elements.
    Set(BTreeSet<u8>),
    /// A register's values: at most one for LWW, the siblings for MV.
    Values(BTreeSet<u64>),
}

/// An operation as it ran: where, what its replica had observed by then, and whether the
/// specification grants it (always, except a bounded counter's spend beyond the replica's rights).
#[derive(Clone, Debug)]
pub(crate) struct Record {
    pub replica: ReplicaIdx,
    pub op: Op,
    pub past: BTreeSet<usize>,
    pub granted: bool,
}

/// The specification's read over the operations `observed` (indices into `ops`).
pub(crate) fn expected(kind: Kind, ops: &[Record], observed: &BTreeSet<usize>) -> Observation {
    let seen = || observed.iter().map(|&i| (i, &ops[i]));
    match kind {
        Kind::Counter | Kind::PnCounter | Kind::BoundedCounter => Observation::Count(
            seen()
                .filter(|(_, r)| r.granted)
                .map(|(_, r)| match r.op {
                    Op::Inc(n) => i128::from(n),
                    Op::Dec(n) => -i128::from(n),
                    _ => 0,
                })
                .sum(),
        ),
        Kind::AddWinsSet => Observation::Set(
            seen()
                .filter_map(|(i, r)| match r.op {
                    Op::Add(e) => {
                        let removed =
                            seen().any(|(_, x)| x.op == Op::Remove(e) && x.past.contains(&i));
                        (!removed).then_some(e)
                    }
                    _ => None,
                })
                .collect(),
        ),
        Kind::LwwRegister => Observation::Values(
            seen()
                .filter_map(|(_, r)| match r.op {
                    Op::Write { value, time } => Some(((time, r.replica), value)),
                    _ => None,
                })
                .max()
                .map(|(_, value)| value)
                .into_iter()
                .collect(),
        ),
        Kind::MvRegister => Observation::Values(
            seen()
                .filter_map(|(i, r)| match r.op {
                    Op::Write { value, .. } => {
                        let overwritten = seen()
                            .any(|(_, x)| matches!(x.op, Op::Write { .. }) && x.past.contains(&i));
                        (!overwritten).then_some(value)
                    }
                    _ => None,
                })
                .collect(),
        ),
    }
}

/// Whether the specification grants `op` at `replica`, which has observed `observed`: for the
/// bounded counter, a decrement or transfer is granted exactly when the rights `replica` holds
/// over what it observed cover the amount; every other operation is granted.
pub(crate) fn granted(
    kind: Kind,
    ops: &[Record],
    observed: &BTreeSet<usize>,
    replica: ReplicaIdx,
    op: &Op,
) -> bool {
    match (kind, op) {
        (Kind::BoundedCounter, Op::Dec(n) | Op::Transfer { amount: n, .. }) => {
            rights(ops, observed, replica) >= i128::from(*n)
        }
        _ => true,
    }
}

/// The rights `replica` holds over the operations `observed`: its increments, plus the granted
/// transfers to it, minus its granted decrements and transfers.
fn rights(ops: &[Record], observed: &BTreeSet<usize>, replica: ReplicaIdx) -> i128 {
    observed
        .iter()
        .map(|&i| &ops[i])
        .filter(|r| r.granted)
        .map(|r| match r.op {
            Op::Inc(n) if r.replica == replica => i128::from(n),
            Op::Dec(n) if r.replica == replica => -i128::from(n),
            Op::Transfer { amount, .. } if r.replica == replica => -i128::from(amount),
            Op::Transfer { to, amount } if to == replica => i128::from(amount),
            _ => 0,
        })
        .sum()
}

/// Whether `observed` holds the causal past of each of its operations.
pub(crate) fn causally_closed(ops: &[Record], observed: &BTreeSet<usize>) -> bool {
    observed.iter().all(|&i| ops[i].past.is_subset(observed))
}
