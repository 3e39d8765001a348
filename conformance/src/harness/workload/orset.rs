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
//! Anything in between is left undecided rather than guessed.

use super::set::canonical;
use super::{Workload, verdicts};
use crate::harness::check::Check;
use crate::harness::history::{Body, Event, History, Outcome, Phase};
use crate::harness::rng::Dice;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// Contested elements are drawn from `0..ELEMENTS`: few, so adds and removes at different nodes
/// collide (the add-wins cases).
const ELEMENTS: u64 = 8;
/// Private elements start here: each is added once by one client and maybe removed later by the
/// same client at the same node (the observed-remove cases).
const PRIVATE_BASE: u64 = 1_000_000;

#[derive(Default)]
pub(super) struct OrSet {
    next_private: u64,
    private: BTreeMap<usize, Vec<u64>>,
}

impl Workload for OrSet {
    fn name(&self) -> &'static str {
        "or-set"
    }

    fn next_op(&mut self, dice: &mut Dice) -> Value {
        self.next_op_for(0, dice)
    }

    fn next_op_for(&mut self, client: usize, dice: &mut Dice) -> Value {
        let contested = dice.below(ELEMENTS);
        match dice.below(10) {
            0 | 1 => json!({"type": "read"}),
            2 | 3 => json!({"type": "remove", "element": contested}),
            4..=6 => json!({"type": "add", "element": contested}),
            7 | 8 => {
                self.next_private += 1;
                let element = PRIVATE_BASE + self.next_private;
                self.private.entry(client).or_default().push(element);
                json!({"type": "add", "element": element})
            }
            _ => {
                // The client's previous request has completed, so a remove of one of its own
                // elements comes after that element's add at the same node.
                let mine = self.private.entry(client).or_default();
                if mine.is_empty() {
                    return json!({"type": "read"});
                }
                let element = mine.swap_remove(dice.below(mine.len() as u64) as usize);
                json!({"type": "remove", "element": element})
            }
        }
    }

    fn final_read(&self) -> Option<Value> {
        Some(json!({"type": "read"}))
    }

    fn final_value(&self, reply: &Body) -> Option<Value> {
        canonical(reply, "value")
    }

    fn check(&self, history: &History, nodes: usize) -> Vec<Check> {
        let reach = history.reach(nodes);
        let element = |e: &Event| e.request.get("element").and_then(Value::as_i64);
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
        let mut problems = malformed;
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
        verdicts("add-wins", &finals, problems, nodes)
    }
}
