//! Maelstrom's `g-counter` and `pn-counter` workloads.

use super::Workload;
use crate::harness::check::{Check, Verdict};
use crate::harness::history::{Body, History, Outcome, Phase};
use crate::harness::rng::Dice;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Maelstrom's `g-counter` and `pn-counter`: `add {delta}` → `add_ok`, `read` → `read_ok {value}`.
pub(super) struct Counter {
    negative: bool,
}

impl Counter {
    /// A g-counter workload, or a pn-counter one if `negative`.
    pub(super) fn new(negative: bool) -> Self {
        Counter { negative }
    }
}

impl Workload for Counter {
    fn name(&self) -> &'static str {
        if self.negative {
            "pn-counter"
        } else {
            "g-counter"
        }
    }

    fn next_op(&mut self, dice: &mut Dice) -> Value {
        // Mostly adds, some reads; reads during faults show availability and staleness.
        if dice.below(4) == 0 {
            return json!({"type": "read"});
        }
        let magnitude = 1 + dice.below(5) as i64;
        let delta = if self.negative && dice.below(2) == 0 {
            -magnitude
        } else {
            magnitude
        };
        json!({"type": "add", "delta": delta})
    }

    fn order_independent(&self) -> bool {
        true
    }

    fn final_read(&self) -> Option<Value> {
        Some(json!({"type": "read"}))
    }

    fn final_value(&self, reply: &Body) -> Option<Value> {
        reply.get("value").cloned()
    }

    fn unexplained_change(&self, history: &History, from: &Value, to: &Value) -> Option<String> {
        let (from, to) = (from.as_i64()?, to.as_i64()?);
        let (acked, low, high) = final_bounds(history);
        if !self.negative && to < from {
            return Some("a grow-only counter went down".into());
        }
        // A value outside the bounds may still be moving toward them (a backlog draining after
        // the heal); a move that takes it farther from them than it was has no add to explain
        // it, whether it starts inside them or already outside.
        let distance = |v: i64| (low - v).max(v - high).max(0);
        (distance(to) > distance(from)).then(|| {
            format!(
                "acknowledged adds sum to {acked} and indefinite ones allow [{low}, {high}], so no add explains a move away from those bounds"
            )
        })
    }

    fn check(&self, history: &History, nodes: usize) -> Vec<Check> {
        let (acked, low, high) = final_bounds(history);
        let mut finals: BTreeMap<usize, Option<i64>> = (0..nodes).map(|n| (n, None)).collect();
        for e in history.phase(Phase::Final) {
            if let Some(reply) = e.reply() {
                finals.insert(e.node, reply.get("value").and_then(Value::as_i64));
            }
        }
        let read: Vec<(usize, i64)> = finals
            .iter()
            .filter_map(|(&n, v)| v.map(|v| (n, v)))
            .collect();
        let missing: Vec<usize> = finals
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(&n, _)| n)
            .collect();
        let out_of_bounds: Vec<String> = read
            .iter()
            .filter(|(_, v)| *v < low || *v > high)
            .map(|(n, v)| format!("n{n} read {v}"))
            .collect();
        let bounds = if read.is_empty() {
            Verdict::Unknown {
                reason: "no node answered a final read".into(),
            }
        } else if out_of_bounds.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Fail {
                detail: format!(
                    "{}; acknowledged adds sum to {acked}, so a final read must lie in [{low}, {high}] (a value below {acked} lost acknowledged writes)",
                    out_of_bounds.join(", ")
                ),
            }
        };
        let converged = if !missing.is_empty() {
            Verdict::Fail {
                detail: format!(
                    "no final read from {} after heal and quiescence",
                    missing
                        .iter()
                        .map(|n| format!("n{n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        } else if read.windows(2).all(|w| w[0].1 == w[1].1) {
            Verdict::Pass
        } else {
            Verdict::Fail {
                detail: format!(
                    "final reads differ after heal and quiescence: {}",
                    read.iter()
                        .map(|(n, v)| format!("n{n}={v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        };
        vec![
            Check::new("counter-bounds", true, bounds),
            Check::new("convergence", false, converged),
        ]
    }
}

/// The sum of acknowledged adds, and the range a final read may show: acknowledged adds
/// certainly happened and indefinite ones may have, so a final read lies between the acknowledged
/// sum and that sum plus every indefinite add of its sign.
fn final_bounds(history: &History) -> (i64, i64, i64) {
    let (mut acked, mut maybe_up, mut maybe_down) = (0i64, 0i64, 0i64);
    for e in history.phase(Phase::Main).filter(|e| e.kind() == "add") {
        let delta = e.request.get("delta").and_then(Value::as_i64).unwrap_or(0);
        match e.outcome {
            Outcome::Ok { .. } => acked += delta,
            Outcome::Info { .. } if delta > 0 => maybe_up += delta,
            Outcome::Info { .. } => maybe_down += delta,
            Outcome::Fail { .. } => {}
        }
    }
    (acked, acked + maybe_down, acked + maybe_up)
}
