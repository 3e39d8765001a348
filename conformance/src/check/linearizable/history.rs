//! The public vocabulary of the checker: the operations of a history ([`Operation`], [`KvOp`],
//! [`KvOutcome`]), the search [`Budget`] and the verdict ([`Linearizability`]).
//!
//! These are plain data, serialisable so that a history can be stored and checked again; they
//! know nothing of how [`super::check`] decides. An operation is taken as it was recorded: what
//! is well-formed is decided when the checker reads it (`KOp::from_operation`), not here.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What a client asked of the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KvOp {
    /// Read a key.
    Read {
        /// The key.
        key: u64,
    },
    /// Set a key.
    Write {
        /// The key.
        key: u64,
        /// The value written.
        value: i64,
    },
    /// Set a key to `to` if it holds `from`.
    Cas {
        /// The key.
        key: u64,
        /// The value the key must hold.
        from: i64,
        /// The value it is set to.
        to: i64,
    },
}

impl KvOp {
    /// The key the operation is on.
    pub fn key(&self) -> u64 {
        match *self {
            KvOp::Read { key } | KvOp::Write { key, .. } | KvOp::Cas { key, .. } => key,
        }
    }
}

/// What the client learnt of its operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KvOutcome {
    /// It took effect. For a read, the value read (`None`: the key was absent); for a write or a
    /// cas, `None`.
    Ok(Option<i64>),
    /// Definite failure: it did not take effect (a cas whose precondition failed, a read of a key
    /// that does not exist, a store that refused the request).
    Fail,
    /// Indefinite: a timeout or a crash. It may have taken effect at any time after its
    /// invocation, or never.
    Unknown,
}

/// One operation of a history.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Operation {
    /// The client that ran it; only used in reports.
    pub process: u64,
    /// When it was invoked.
    pub invoke_ns: u64,
    /// When it completed; `None` if its outcome is [`KvOutcome::Unknown`]. The time of an unknown
    /// outcome is ignored: it may take effect even after the client gave up.
    pub complete_ns: Option<u64>,
    /// What it asked for.
    pub op: KvOp,
    /// What came of it.
    pub outcome: KvOutcome,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = |v: Option<i64>| v.map_or_else(|| "absent".to_string(), |v| v.to_string());
        write!(f, "p{} ", self.process)?;
        match (self.op, self.outcome) {
            (KvOp::Read { key }, KvOutcome::Ok(v)) => write!(f, "read {key} -> {}", value(v))?,
            (KvOp::Read { key }, _) => write!(f, "read {key}")?,
            (KvOp::Write { key, value }, _) => write!(f, "write {key} := {value}")?,
            (KvOp::Cas { key, from, to }, _) => write!(f, "cas {key} {from} -> {to}")?,
        }
        match self.outcome {
            KvOutcome::Ok(_) if matches!(self.op, KvOp::Read { .. }) => {}
            KvOutcome::Ok(_) => write!(f, " ok")?,
            KvOutcome::Fail => write!(f, " failed")?,
            KvOutcome::Unknown => write!(f, " unknown")?,
        }
        match self.complete_ns {
            Some(c) if self.outcome != KvOutcome::Unknown => {
                write!(f, "  [{}, {c}]", self.invoke_ns)
            }
            _ => write!(f, "  [{}, ∞)", self.invoke_ns),
        }
    }
}

/// How much search [`check`](super::check) may spend before it answers
/// [`Linearizability::Unknown`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Budget {
    /// Most search steps on one key: attempts to linearize an operation, backtracks, and
    /// configurations compared in the memo. A step costs tens of nanoseconds. An ordinary history
    /// needs a few per operation; the default (50 million) allows keys of millions of operations,
    /// and gives up after a few seconds on a search that would not end.
    pub max_steps_per_key: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            max_steps_per_key: 50_000_000,
        }
    }
}

/// The verdict on a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Linearizability {
    /// Every key's history is linearizable.
    Linearizable,
    /// One key's history is not (the lowest such key; the keys after it were not checked).
    NotLinearizable {
        /// The key.
        key: u64,
        /// A small set of operations on `key`, in invocation order, that is not linearizable by
        /// itself and ends where the violation surfaces (see the module documentation).
        minimal: Vec<Operation>,
        /// What went wrong, in words, with `minimal` spelled out.
        explanation: String,
    },
    /// The checker could not decide: a key needed more search than the budget allows, or the
    /// history is malformed. No key was found to be non-linearizable.
    Unknown {
        /// Why.
        reason: String,
    },
}

impl Linearizability {
    /// Whether the history was found linearizable.
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Linearizability::Linearizable)
    }
}
