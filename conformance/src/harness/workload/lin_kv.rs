//! Maelstrom's `lin-kv` workload: reads, writes and compare-and-sets on a few integer keys,
//! checked for linearizability by [`crate::check::linearizable`].

use super::Workload;
use crate::check::linearizable::{self, Budget, KvOp, Linearizability, Operation};
use crate::harness::body::{Cas, Kind};
use crate::harness::check::{Check, Verdict};
use crate::harness::history::{Body, Event, History, Outcome};
use crate::harness::message::ErrorCode;
use crate::harness::rng::SeededDice;
use serde_json::Value;

/// Keys are drawn from `0..KEYS` and values from `0..VALUES`: few, so that compare-and-sets
/// succeed often enough to matter.
const KEYS: u64 = 5;
const VALUES: u64 = 5;

#[derive(Default)]
pub(super) struct LinKv;

/// One history event as the linearizability checker sees it, or `None` if it is not a KV
/// operation. Times are the harness's observation order, finer than milliseconds.
fn operation(e: &Event) -> Option<Operation> {
    let op = match &e.request.kind {
        Kind::Read { key: Some(key) } => KvOp::Read { key: key.as_u64()? },
        Kind::Write {
            key: Some(key),
            value,
        } => KvOp::Write {
            key: key.as_u64()?,
            value: value.as_i64()?,
        },
        Kind::Cas(cas) => KvOp::Cas {
            key: cas.key.as_u64()?,
            from: cas.from.as_i64()?,
            to: cas.to.as_i64()?,
        },
        _ => return None,
    };
    const KEY_DOES_NOT_EXIST: u64 = ErrorCode::KeyDoesNotExist.code();
    let outcome = match (&e.outcome, op) {
        (Outcome::Ok { reply }, KvOp::Read { .. }) => {
            linearizable::KvOutcome::Ok(reply.read_value().and_then(Value::as_i64))
        }
        (Outcome::Ok { .. }, _) => linearizable::KvOutcome::Ok(None),
        // key-does-not-exist answers a read: the key was absent.
        (
            Outcome::Fail {
                code: KEY_DOES_NOT_EXIST,
            },
            KvOp::Read { .. },
        ) => linearizable::KvOutcome::Ok(None),
        (Outcome::Fail { .. }, _) => linearizable::KvOutcome::Fail,
        (Outcome::Info { .. }, _) => linearizable::KvOutcome::Unknown,
    };
    let complete_ns = match outcome {
        linearizable::KvOutcome::Unknown => None,
        _ => e.complete_seq,
    };
    Some(Operation {
        process: e.client as u64,
        invoke_ns: e.invoke_seq,
        complete_ns,
        op,
        outcome,
    })
}

impl Workload for LinKv {
    fn name(&self) -> &'static str {
        "lin-kv"
    }

    fn next_op(&mut self, dice: &mut SeededDice) -> Body {
        let key: Value = dice.below(KEYS).into();
        let kind = match dice.below(3) {
            0 => Kind::Read { key: Some(key) },
            1 => Kind::Write {
                key: Some(key),
                value: dice.below(VALUES).into(),
            },
            _ => {
                // `from` is drawn before `to`, as it always was: same seed, same operations.
                let from = dice.below(VALUES).into();
                let to = dice.below(VALUES).into();
                Kind::Cas(Box::new(Cas { key, from, to }))
            }
        };
        kind.into()
    }

    fn final_read(&self) -> Option<Body> {
        None
    }

    fn final_value(&self, _reply: &Body) -> Option<Value> {
        None
    }

    fn check(&self, history: &History, _nodes: usize) -> Vec<Check> {
        let ops: Vec<Operation> = history.events.iter().filter_map(operation).collect();
        let verdict = if !ops
            .iter()
            .any(|o| matches!(o.outcome, linearizable::KvOutcome::Ok(_)))
        {
            Verdict::Unknown {
                reason: "no operation succeeded".into(),
            }
        } else {
            match linearizable::check(&ops, Budget::default()) {
                Linearizability::Linearizable => Verdict::Pass,
                Linearizability::NotLinearizable { explanation, .. } => Verdict::Fail {
                    detail: explanation,
                },
                Linearizability::Unknown { reason } => Verdict::Unknown { reason },
            }
        };
        vec![Check::new("linearizable", true, verdict)]
    }
}
