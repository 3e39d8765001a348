//! Maelstrom's `g-counter` and `pn-counter` workloads.
//!
//! Two bounds, checked separately so that `--profile maelstrom` keeps Maelstrom's alone:
//! - `counter-bounds` (Maelstrom's): each final read lies between what acknowledged adds certainly
//!   added and what indefinite ones may have added too;
//! - `counter-read-bounds` (converge's): *every* read, of any phase at any node, lies within what
//!   the adds invoked before the read completed could have made of it. A read may be stale, so
//!   there is no floor of acknowledged adds; but it can never show more than every positive add
//!   invoked so far, nor less than every negative one (0 for a g-counter). Invoked means in the
//!   harness's total order of observations (`invoke_seq` before the read's `complete_seq`), which
//!   is finer than milliseconds and consistent with what the node saw.

use super::Workload;
use crate::harness::body::Kind;
use crate::harness::check::{Check, Verdict};
use crate::harness::history::{Body, History, Outcome, Phase};
use crate::harness::rng::SeededDice;
use serde_json::Value;
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

    fn next_op(&mut self, dice: &mut SeededDice) -> Body {
        // Mostly adds, some reads; reads during faults show availability and staleness.
        if dice.below(4) == 0 {
            return Kind::Read { key: None }.into();
        }
        let magnitude = 1 + dice.below(5) as i64;
        let delta = if self.negative && dice.below(2) == 0 {
            -magnitude
        } else {
            magnitude
        };
        Kind::Add { delta }.into()
    }

    fn order_independent(&self) -> bool {
        true
    }

    fn final_read(&self) -> Option<Body> {
        Some(Kind::Read { key: None }.into())
    }

    fn final_value(&self, reply: &Body) -> Option<Value> {
        reply.read_value().cloned()
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
                finals.insert(e.node, reply.read_value().and_then(Value::as_i64));
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
            Check::new("counter-read-bounds", false, read_bounds(history)),
        ]
    }
}

/// The sum of acknowledged adds, and the range a final read may show: acknowledged adds
/// certainly happened and indefinite ones may have, so a final read lies between the acknowledged
/// sum and that sum plus every indefinite add of its sign.
fn final_bounds(history: &History) -> (i64, i64, i64) {
    let (mut acked, mut maybe_up, mut maybe_down) = (0i64, 0i64, 0i64);
    for e in history.phase(Phase::Main).filter(|e| e.kind() == "add") {
        let delta = e.request.delta().unwrap_or(0);
        match e.outcome {
            Outcome::Ok { .. } => acked += delta,
            Outcome::Info { .. } if delta > 0 => maybe_up += delta,
            Outcome::Info { .. } => maybe_down += delta,
            Outcome::Fail { .. } => {}
        }
    }
    (acked, acked + maybe_down, acked + maybe_up)
}

/// At most this many out-of-bounds reads are named in a failure's detail; the count is always
/// given.
const SHOWN: usize = 3;

/// `counter-read-bounds`: every successful read, main or final, lies in `[down, up]`, where `up`
/// sums the positive deltas and `down` the negative deltas of every add invoked before the read
/// completed, except adds that failed definitely (they did not happen).
///
/// The adds are sorted by invocation once, with prefix sums of each sign; each read then finds
/// its bounds by one binary search on its completion: O((adds + reads) log adds).
fn read_bounds(history: &History) -> Verdict {
    let mut adds: Vec<(u64, i64)> = history
        .events
        .iter()
        .filter(|e| e.kind() == "add" && !matches!(e.outcome, Outcome::Fail { .. }))
        .map(|e| {
            let delta = e.request.delta().unwrap_or(0);
            (e.invoke_seq, delta)
        })
        .collect();
    adds.sort_unstable();
    // `up[k]` and `down[k]`: the positive and negative sums of the first `k` adds.
    let (mut up, mut down) = (vec![0i64], vec![0i64]);
    for &(_, delta) in &adds {
        let (u, d) = (up[up.len() - 1], down[down.len() - 1]);
        up.push(u.saturating_add(delta.max(0)));
        down.push(d.saturating_add(delta.min(0)));
    }
    let mut outside: Vec<String> = Vec::new();
    let mut count = 0usize;
    for e in history.events.iter().filter(|e| e.kind() == "read") {
        let (Some(reply), Some(done)) = (e.reply(), e.complete_seq) else {
            continue;
        };
        let Some(value) = reply.read_value().and_then(Value::as_i64) else {
            count += 1;
            if outside.len() < SHOWN {
                let shown = reply
                    .read_value()
                    .map_or("nothing".into(), Value::to_string);
                outside.push(format!(
                    "n{}'s read by c{} at {} ms returned {shown}, not an integer",
                    e.node, e.client, e.invoke_ms
                ));
            }
            continue;
        };
        let k = adds.partition_point(|&(invoked, _)| invoked < done);
        let (low, high) = (down[k], up[k]);
        if value < low || value > high {
            count += 1;
            if outside.len() < SHOWN {
                let phase = match e.phase {
                    Phase::Main => "read",
                    Phase::Final => "final read",
                };
                let bound = if value > high {
                    format!("above {high}, the sum of every positive add")
                } else {
                    format!("below {low}, the sum of every negative add")
                };
                outside.push(format!(
                    "n{}'s {phase} by c{} at {}–{} ms returned {value}: {bound} invoked before it completed ({k} adds)",
                    e.node,
                    e.client,
                    e.invoke_ms,
                    e.complete_ms.unwrap_or(e.invoke_ms),
                ));
            }
        }
    }
    if count == 0 {
        return Verdict::Pass;
    }
    Verdict::Fail {
        detail: format!("{count} reads out of bounds; {}", outside.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::history::Event;
    use serde_json::json;

    use crate::harness::workload::test_op as op;

    fn add(client: usize, delta: i64, seq: (u64, u64)) -> Event {
        let request = json!({"type": "add", "delta": delta});
        op(client, client, request, seq, json!({"type": "add_ok"}))
    }

    fn read(client: usize, node: usize, seq: (u64, u64), value: i64) -> Event {
        let reply = json!({"type": "read_ok", "value": value});
        op(client, node, json!({"type": "read"}), seq, reply)
    }

    fn final_read(node: usize, at: u64, value: i64) -> Event {
        let mut e = read(10 + node, node, (at, at + 1), value);
        e.phase = Phase::Final;
        e
    }

    /// The verdict of `name` on these events, over two nodes.
    fn verdict(negative: bool, events: Vec<Event>, name: &str) -> Verdict {
        let history = History {
            events,
            ..History::default()
        };
        Counter::new(negative)
            .check(&history, 2)
            .into_iter()
            .find(|c| c.name == name)
            .map(|c| c.verdict)
            .unwrap_or_else(|| panic!("no check {name}"))
    }

    fn detail(v: Verdict) -> String {
        match v {
            Verdict::Fail { detail } => detail,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn a_read_above_every_add_invoked_before_it_completed_fails_whichever_node_served_it() {
        // c0 adds 3 at n0; c1 reads 5 at n1 before c0's add of 2 is even invoked. The final
        // reads are right, so only the new check sees it.
        let events = vec![
            add(0, 3, (1, 4)),
            read(1, 1, (5, 8), 5),
            add(0, 2, (9, 12)),
            final_read(0, 20, 5),
            final_read(1, 20, 5),
        ];
        assert_eq!(
            verdict(false, events.clone(), "counter-bounds"),
            Verdict::Pass
        );
        let d = detail(verdict(false, events, "counter-read-bounds"));
        assert!(
            d.contains(
                "n1's read by c1 at 5–8 ms returned 5: above 3, the sum of every positive add invoked before it completed (1 adds)"
            ),
            "{d}"
        );
    }

    #[test]
    fn a_pn_counter_read_below_every_negative_add_fails_and_a_g_counter_may_not_go_below_zero() {
        let events = vec![
            add(0, 4, (1, 2)),
            add(1, -2, (3, 4)),
            read(0, 0, (5, 6), -3),
            final_read(0, 20, 2),
            final_read(1, 20, 2),
        ];
        let d = detail(verdict(true, events, "counter-read-bounds"));
        assert!(
            d.contains(
                "n0's read by c0 at 5–6 ms returned -3: below -2, the sum of every negative add"
            ),
            "{d}"
        );
        let events = vec![read(0, 0, (1, 2), -1)];
        let d = detail(verdict(false, events, "counter-read-bounds"));
        assert!(d.contains("returned -1: below 0"), "{d}");
    }

    #[test]
    fn a_final_read_counts_too_and_a_malformed_read_fails() {
        let events = vec![
            add(0, 1, (1, 2)),
            final_read(0, 20, 2),
            read(1, 1, (3, 4), 0),
        ];
        let d = detail(verdict(false, events, "counter-read-bounds"));
        assert!(d.contains("n0's final read by c10"), "{d}");
        let mut bad = read(1, 1, (3, 4), 0);
        bad.outcome = Outcome::Ok {
            reply: json!({"type": "read_ok", "value": "1"})
                .as_object()
                .cloned()
                .unwrap_or_default()
                .into(),
        };
        let d = detail(verdict(false, vec![bad], "counter-read-bounds"));
        assert!(d.contains("returned \"1\", not an integer"), "{d}");
    }

    #[test]
    fn stale_reads_and_reads_of_slow_or_unanswered_adds_pass() {
        // A correct but slow cluster: reads lag (0 long after adds were acknowledged), an add
        // still pending when a read returns it counts (it was invoked before the read
        // completed), so does one never answered, and a negative add may show before its ack.
        let mut unanswered = add(1, 5, (13, 0));
        unanswered.outcome = Outcome::Info {
            reason: "no reply".into(),
        };
        unanswered.complete_seq = None;
        unanswered.complete_ms = None;
        let events = vec![
            add(0, 3, (1, 2)),
            read(1, 1, (3, 40), 0),
            add(0, 4, (5, 30)),
            read(1, 1, (6, 7), 7),
            add(0, -2, (8, 31)),
            read(0, 1, (9, 10), 5),
            unanswered,
            read(1, 0, (14, 15), 10),
            final_read(0, 50, 10),
            final_read(1, 50, 10),
        ];
        for name in ["counter-bounds", "counter-read-bounds", "convergence"] {
            assert_eq!(verdict(true, events.clone(), name), Verdict::Pass, "{name}");
        }
    }

    #[test]
    fn an_add_invoked_after_the_read_completed_or_failed_definitely_does_not_count() {
        let failed = op(0, 0, json!({"type": "add", "delta": 9}), (1, 2), json!(11));
        let events = vec![failed, read(1, 1, (3, 4), 9)];
        assert!(matches!(
            verdict(false, events, "counter-read-bounds"),
            Verdict::Fail { .. }
        ));
        // Invoked the very step after the read completed: too late.
        let events = vec![read(1, 1, (3, 4), 1), add(0, 1, (5, 6))];
        assert!(matches!(
            verdict(false, events, "counter-read-bounds"),
            Verdict::Fail { .. }
        ));
        // Invoked the step before: in time.
        let events = vec![read(1, 1, (3, 5), 1), add(0, 1, (4, 6))];
        assert_eq!(verdict(false, events, "counter-read-bounds"), Verdict::Pass);
    }
}
