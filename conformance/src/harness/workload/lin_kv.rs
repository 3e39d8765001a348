//! Maelstrom's `lin-kv` workload: reads, writes and compare-and-sets on a few integer keys,
//! checked for linearizability by [`crate::check::linearizable`].

use super::Workload;
use crate::check::linearizable::{self, Budget, KvOp, Linearizability, Operation};
use crate::harness::check::{Check, Verdict};
use crate::harness::history::{Body, Event, History, Outcome};
use crate::harness::message::ErrorCode;
use crate::harness::rng::SeededDice;
use serde_json::{Value, json};

/// Keys are drawn from `0..KEYS` and values from `0..VALUES`: few, so that compare-and-sets
/// succeed often enough to matter.
const KEYS: u64 = 5;
const VALUES: u64 = 5;

#[derive(Default)]
pub(super) struct LinKv;

/// One history event as the linearizability checker sees it, or `None` if it is not a KV
/// operation. Times are the harness's observation order, finer than milliseconds.
fn operation(e: &Event) -> Option<Operation> {
    let int = |field: &str| e.request.get(field).and_then(Value::as_i64);
    let key = e.request.get("key").and_then(Value::as_u64)?;
    let op = match e.kind() {
        "read" => KvOp::Read { key },
        "write" => KvOp::Write {
            key,
            value: int("value")?,
        },
        "cas" => KvOp::Cas {
            key,
            from: int("from")?,
            to: int("to")?,
        },
        _ => return None,
    };
    const KEY_DOES_NOT_EXIST: u64 = ErrorCode::KeyDoesNotExist.code();
    let outcome = match (&e.outcome, op) {
        (Outcome::Ok { reply }, KvOp::Read { .. }) => {
            linearizable::KvOutcome::Ok(reply.get("value").and_then(Value::as_i64))
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

    fn next_op(&mut self, dice: &mut SeededDice) -> Value {
        let key = dice.below(KEYS);
        match dice.below(3) {
            0 => json!({"type": "read", "key": key}),
            1 => json!({"type": "write", "key": key, "value": dice.below(VALUES)}),
            _ => {
                json!({"type": "cas", "key": key, "from": dice.below(VALUES), "to": dice.below(VALUES)})
            }
        }
    }

    fn final_read(&self) -> Option<Value> {
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
