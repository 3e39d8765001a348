//! The `or-set` workload: adds and removes of a few elements, so that adds and removes of one
//! element meet, checked for add-wins semantics from outside.
//!
//! With the same two relations as the register workloads (see `register.rs`):
//! - an element must be **absent** from every final read if each add of it that may have happened
//!   was removed by an acknowledged remove that definitely saw it (issued at the same node after
//!   the add was acknowledged there): an observed remove wins over the adds it observed;
//! - an element must be **present** if some acknowledged add of it could have been seen by no
//!   remove of it: an add concurrent with every remove wins.
//!
//! Anything in between is left undecided rather than guessed. And, as in the other set and
//! register workloads, no read of any phase may show an element that no add could have written:
//! one that had no add invoked before the read completed, other than adds that failed definitely.

use super::set::canonical;
use super::{Workload, verdicts};
use crate::harness::body::Kind;
use crate::harness::check::{Check, Verdict};
use crate::harness::history::{Body, Event, History, Outcome, Phase};
use crate::harness::rng::SeededDice;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Contested elements are drawn from `0..ELEMENTS`: few, so adds and removes at different nodes
/// collide (the add-wins cases).
const ELEMENTS: i64 = 8;
/// Private elements start here: each is added once by one client and maybe removed later by the
/// same client at the same node (the observed-remove cases).
const PRIVATE_BASE: i64 = 1_000_000;

#[derive(Default)]
pub(super) struct OrSet {
    next_private: i64,
    private: BTreeMap<usize, Vec<i64>>,
}

impl Workload for OrSet {
    fn name(&self) -> &'static str {
        "or-set"
    }

    fn next_op(&mut self, dice: &mut SeededDice) -> Body {
        self.next_op_for(0, dice)
    }

    fn next_op_for(&mut self, client: usize, dice: &mut SeededDice) -> Body {
        // Below `ELEMENTS`, so the conversion is exact.
        let contested = dice.below(ELEMENTS as u64) as i64;
        let kind = match dice.below(10) {
            0 | 1 => Kind::Read { key: None },
            2 | 3 => Kind::Remove { element: contested },
            4..=6 => Kind::AddElement { element: contested },
            7 | 8 => {
                self.next_private += 1;
                let element = PRIVATE_BASE + self.next_private;
                self.private.entry(client).or_default().push(element);
                Kind::AddElement { element }
            }
            _ => {
                // The client's previous request has completed, so a remove of one of its own
                // elements comes after that element's add at the same node.
                let mine = self.private.entry(client).or_default();
                if mine.is_empty() {
                    Kind::Read { key: None }
                } else {
                    let element = mine.swap_remove(dice.below(mine.len() as u64) as usize);
                    Kind::Remove { element }
                }
            }
        };
        kind.into()
    }

    fn final_read(&self) -> Option<Body> {
        Some(Kind::Read { key: None }.into())
    }

    fn final_value(&self, reply: &Body) -> Option<Value> {
        canonical(reply, "value")
    }

    fn check(&self, history: &History, nodes: usize) -> Vec<Check> {
        let reach = history.reach(nodes);
        let element = |e: &Event| e.request.element();
        let ops: Vec<(usize, &Event)> = history
            .events
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e.kind(), "add" | "remove"))
            .collect();
        let mut finals: BTreeMap<usize, BTreeSet<i64>> = BTreeMap::new();
        let mut malformed = Vec::new();
        for e in history.phase(Phase::Final) {
            let Some(reply) = e.reply() else { continue };
            match super::set::read_set(reply, "value") {
                Ok(set) => {
                    finals.insert(e.node, set.into_iter().collect());
                }
                Err(why) => malformed.push(format!("n{}: {why}", e.node)),
            }
        }
        let unexpected = unexpected(history);
        let mut problems = malformed;
        problems.extend(unexpected.iter().cloned());
        let elements: BTreeSet<i64> = ops.iter().filter_map(|(_, e)| element(e)).collect();
        for x in elements {
            let adds: Vec<&(usize, &Event)> = ops
                .iter()
                .filter(|(_, e)| e.kind() == "add" && element(e) == Some(x))
                .filter(|(_, e)| !matches!(e.outcome, Outcome::Fail { .. }))
                .collect();
            let removes: Vec<&(usize, &Event)> = ops
                .iter()
                .filter(|(_, e)| e.kind() == "remove" && element(e) == Some(x))
                .filter(|(_, e)| !matches!(e.outcome, Outcome::Fail { .. }))
                .collect();
            let observed_removed = |add: &Event| {
                add.complete_seq.is_some()
                    && removes.iter().any(|(_, r)| {
                        matches!(r.outcome, Outcome::Ok { .. })
                            && r.node == add.node
                            && add.complete_seq.is_some_and(|done| done < r.invoke_seq)
                    })
            };
            let must_be_absent = !adds.is_empty() && adds.iter().all(|(_, a)| observed_removed(a));
            let concurrent_add = adds.iter().find(|(_, a)| {
                matches!(a.outcome, Outcome::Ok { .. })
                    && removes.iter().all(|(i, _)| {
                        reach[*i]
                            .get(a.node)
                            .copied()
                            .flatten()
                            .is_none_or(|t| t < a.invoke_seq)
                    })
            });
            for (node, set) in &finals {
                if must_be_absent && set.contains(&x) {
                    problems.push(format!(
                        "n{node}'s final read shows {x}, but every add of it was removed by a remove that had seen it"
                    ));
                }
                if let Some((_, a)) = concurrent_add
                    && !set.contains(&x)
                {
                    problems.push(format!(
                        "n{node}'s final read lacks {x}, but its add at n{} was concurrent with every remove of it (add wins)",
                        a.node
                    ));
                }
            }
        }
        let mut checks = verdicts("add-wins", &finals, problems, nodes);
        // A read of something never added is wrong whether or not any node answered a final read.
        if let (Some(first), Some(add_wins)) = (unexpected.first(), checks.first_mut())
            && matches!(add_wins.verdict, Verdict::Unknown { .. })
        {
            add_wins.verdict = Verdict::Fail {
                detail: first.clone(),
            };
        }
        checks
    }
}

/// At most this many elements are named in the detail; the count is always given.
const SHOWN: usize = 5;

/// Reads, of any phase, that show an element no add could have written by the time they
/// completed: an element with no add invoked before (in the harness's order of observations),
/// adds that failed definitely aside. One problem per element, with how many reads showed it and
/// the first that did; a read that is not a list of integers is a problem of its own.
///
/// Linear in the history (a map from element to its first add's invocation, then one lookup per
/// element shown), apart from the map's logarithm.
fn unexpected(history: &History) -> Vec<String> {
    let mut first_add: BTreeMap<i64, u64> = BTreeMap::new();
    let mut failed: BTreeSet<i64> = BTreeSet::new();
    for e in history.events.iter().filter(|e| e.kind() == "add") {
        let Some(x) = e.request.element() else {
            continue;
        };
        if matches!(e.outcome, Outcome::Fail { .. }) {
            failed.insert(x);
            continue;
        }
        let at = first_add.entry(x).or_insert(e.invoke_seq);
        *at = (*at).min(e.invoke_seq);
    }
    // Per element: how many reads showed it too early, and the first of them.
    let mut shown: BTreeMap<i64, (usize, &Event)> = BTreeMap::new();
    let mut malformed: Option<String> = None;
    for e in history.events.iter().filter(|e| e.kind() == "read") {
        let (Some(reply), Some(done)) = (e.reply(), e.complete_seq) else {
            continue;
        };
        let set = match super::set::read_set(reply, "value") {
            Ok(set) => set,
            Err(why) => {
                if e.phase == Phase::Main {
                    // Final reads' are reported with the final reads.
                    malformed.get_or_insert_with(|| format!("n{}: {why}", e.node));
                }
                continue;
            }
        };
        for x in set {
            if first_add.get(&x).is_none_or(|&invoked| invoked >= done) {
                shown.entry(x).or_insert((0, e)).0 += 1;
            }
        }
    }
    let mut problems = Vec::new();
    if !shown.is_empty() {
        let each: Vec<String> = shown
            .iter()
            .take(SHOWN)
            .map(|(&x, &(reads, e))| {
                let why = if first_add.contains_key(&x) {
                    "its first add was invoked only after that read completed"
                } else if failed.contains(&x) {
                    "every add of it failed definitely"
                } else {
                    "never added"
                };
                format!(
                    "{x} in {reads} reads, first n{}'s {}read by c{} at {}–{} ms ({why})",
                    e.node,
                    if e.phase == Phase::Final {
                        "final "
                    } else {
                        ""
                    },
                    e.client,
                    e.invoke_ms,
                    e.complete_ms.unwrap_or(e.invoke_ms),
                )
            })
            .collect();
        let more = if shown.len() > SHOWN { ", …" } else { "" };
        problems.push(format!(
            "unexpected: {} elements no add could have written by the time a read showed them: {}{more}",
            shown.len(),
            each.join(", ")
        ));
    }
    problems.extend(malformed);
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::harness::workload::test_op as op;

    fn add(node: usize, x: i64, seq: (u64, u64)) -> Event {
        let request = json!({"type": "add", "element": x});
        op(node, node, request, seq, json!({"type": "add_ok"}))
    }

    fn read(client: usize, node: usize, seq: (u64, u64), set: &[i64]) -> Event {
        let reply = json!({"type": "read_ok", "value": set});
        op(client, node, json!({"type": "read"}), seq, reply)
    }

    fn final_read(node: usize, at: u64, set: &[i64]) -> Event {
        let mut e = read(10 + node, node, (at, at + 1), set);
        e.phase = Phase::Final;
        e
    }

    /// The `add-wins` verdict on these events, over two nodes.
    fn add_wins(events: Vec<Event>) -> Verdict {
        let history = History {
            events,
            ..History::default()
        };
        let checks = OrSet::default().check(&history, 2);
        assert_eq!(checks[0].name, "add-wins");
        checks[0].verdict.clone()
    }

    fn detail(v: Verdict) -> String {
        match v {
            Verdict::Fail { detail } => detail,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn a_read_showing_an_element_before_any_add_of_it_was_invoked_fails() {
        // n1 shows 1000001 before n0's add of it was even sent, and 7, which nobody added.
        let d = detail(add_wins(vec![
            read(1, 1, (2, 3), &[1_000_001, 7]),
            add(0, 1_000_001, (5, 6)),
            final_read(0, 20, &[1_000_001]),
            final_read(1, 20, &[1_000_001]),
        ]));
        assert!(
            d.contains("unexpected: 2 elements no add could have written by the time a read showed them: 7 in 1 reads, first n1's read by c1 at 2–3 ms (never added), 1000001 in 1 reads, first n1's read by c1 at 2–3 ms (its first add was invoked only after that read completed)"),
            "{d}"
        );
    }

    #[test]
    fn an_element_whose_every_add_failed_definitely_is_unexpected_even_without_final_reads() {
        let failed = op(
            0,
            0,
            json!({"type": "add", "element": 3}),
            (1, 2),
            json!(11),
        );
        let d = detail(add_wins(vec![failed, read(1, 1, (3, 4), &[3])]));
        assert!(d.contains("3 in 1 reads"), "{d}");
        assert!(d.contains("every add of it failed definitely"), "{d}");
    }

    #[test]
    fn a_read_of_a_slow_or_unanswered_add_invoked_before_it_completed_passes() {
        // A correct but slow cluster: n0's add of 1000001 is acknowledged long after n1 already
        // shows it, and the add of 5 is never answered but shows anyway.
        let mut unanswered = add(0, 5, (7, 0));
        unanswered.outcome = Outcome::Info {
            reason: "no reply".into(),
        };
        unanswered.complete_seq = None;
        unanswered.complete_ms = None;
        let v = add_wins(vec![
            add(0, 1_000_001, (1, 40)),
            read(1, 1, (2, 3), &[1_000_001]),
            unanswered,
            read(1, 1, (6, 9), &[1_000_001, 5]),
            final_read(0, 50, &[5, 1_000_001]),
            final_read(1, 50, &[1_000_001, 5]),
        ]);
        assert_eq!(v, Verdict::Pass);
    }
}
