//! Operations as the checker sees them, once their outcomes are read: [`KOp`] and what it does
//! to the register, [`Act`]; and [`prefix`], a history cut at a point in time.
//!
//! Invariants: a [`KOp`] constrains something (definite failures and unknown reads never become
//! one), `ret` is `None` exactly for an indefinite operation, and `orig` is its index in the
//! history the caller gave, through which every report names it.

use super::history::{KvOp, KvOutcome, Operation};

/// What an operation does to the register, once its outcome is taken into account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Act {
    /// Observes the value.
    Read(Option<i64>),
    /// Sets the value.
    Write(i64),
    /// Sets the value to `.1` if it is `Some(.0)`. For an operation that completed, the value must
    /// be `Some(.0)`; for an indefinite one, which may not take effect, it may be anything.
    Cas(i64, i64),
}

impl Act {
    /// The value the register must hold for this operation to be linearized, if it needs one
    /// that an indefinite write or cas could provide.
    pub(super) fn needs(self) -> Option<i64> {
        match self {
            Act::Read(v) => v,
            Act::Cas(from, _) => Some(from),
            Act::Write(_) => None,
        }
    }

    /// The register after a completed operation runs on `state`; `None` if it cannot.
    pub(super) fn step(self, state: Option<i64>) -> Option<Option<i64>> {
        match self {
            Act::Read(v) => (v == state).then_some(state),
            Act::Write(v) => Some(Some(v)),
            Act::Cas(from, to) => (state == Some(from)).then_some(Some(to)),
        }
    }

    /// The value this operation writes, if it writes one.
    pub(super) fn writes(self) -> Option<i64> {
        match self {
            Act::Read(_) => None,
            Act::Write(v) | Act::Cas(_, v) => Some(v),
        }
    }
}

/// An operation as the search sees it: Fail outcomes and unknown reads are gone, and an
/// indefinite operation has no return time.
#[derive(Clone, Copy, Debug)]
pub(super) struct KOp {
    pub(super) key: u64,
    pub(super) invoke: u64,
    /// `None`: returns at +∞.
    pub(super) ret: Option<u64>,
    pub(super) act: Act,
    /// Index in the caller's history.
    pub(super) orig: usize,
}

impl KOp {
    /// `Ok(None)` for an operation that constrains nothing; `Err` for a malformed one.
    pub(super) fn from_operation(orig: usize, op: &Operation) -> Result<Option<KOp>, &'static str> {
        let (key, read) = (op.op.key(), matches!(op.op, KvOp::Read { .. }));
        let ret = match (op.outcome, op.complete_ns) {
            (KvOutcome::Unknown, _) => None,
            (KvOutcome::Ok(_) | KvOutcome::Fail, None) => {
                return Err("a definite outcome needs a completion time");
            }
            (_, Some(c)) if c < op.invoke_ns => return Err("it completes before it is invoked"),
            (KvOutcome::Fail, Some(_)) => return Ok(None),
            (KvOutcome::Ok(Some(_)), Some(_)) if !read => {
                return Err("a write or cas that succeeds returns no value");
            }
            (KvOutcome::Ok(_), Some(c)) => Some(c),
        };
        let act = match (op.op, op.outcome) {
            (KvOp::Read { .. }, KvOutcome::Ok(v)) => Act::Read(v),
            (KvOp::Read { .. }, _) => return Ok(None),
            (KvOp::Write { value, .. }, _) => Act::Write(value),
            (KvOp::Cas { from, to, .. }, _) => Act::Cas(from, to),
        };
        Ok(Some(KOp {
            key,
            invoke: op.invoke_ns,
            ret,
            act,
            orig,
        }))
    }
}

/// The ops of a history cut just after time `t`, in the order given: operations invoked later are
/// gone, and operations still running at `t` may or may not take effect (reads among them are
/// dropped, writes and cas become indefinite). `None` cuts before everything.
pub(super) fn prefix(ops: &[KOp], t: Option<u64>) -> Vec<KOp> {
    let Some(t) = t else {
        return Vec::new();
    };
    ops.iter()
        .filter(|op| op.invoke <= t)
        .filter_map(|op| match op.ret {
            Some(r) if r <= t => Some(*op),
            _ if matches!(op.act, Act::Read(_)) => None,
            _ => Some(KOp { ret: None, ..*op }),
        })
        .collect()
}
