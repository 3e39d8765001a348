//! The `lww-register` and `mv-register` workloads: unique writes to one register, read back.
//!
//! Both check what a black box can soundly know about supersession, with two relations over the
//! history:
//! - *definitely saw*: a node had a write when it acknowledged it, and had every value one of its
//!   reads returned; a later write at that node definitely saw them all;
//! - *could have seen* ([`History::reach`]): a chain of messages (or service calls) the harness
//!   delivered links the earlier write's node, after its invocation, to the later write's node,
//!   before its invocation.
//!
//! A write that an acknowledged write definitely saw must never win or stay a sibling; a write
//! that no other write could have seen is concurrent with everything after it and must stay a
//! sibling of a multi-value register.
//!
//! This file holds the workloads and their checks; `seen` the indexes the two relations are
//! computed with, which depend on nothing here.

mod seen;
#[cfg(test)]
mod tests;

use super::{Workload, verdicts};
use crate::harness::body::Kind;
use crate::harness::check::Check;
use crate::harness::history::{Body, Event, History, Outcome, Phase};
use crate::harness::rng::SeededDice;
use seen::{Acked, FirstHad, NodeWrites, SeenBy};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// The register every request names.
const KEY: &str = "r";

/// Whether the register keeps one winner or every concurrent value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Flavor {
    /// Last writer wins: `read_ok.value` is one value or `null`.
    Lww,
    /// Multi-value: `read_ok.value` is the list of siblings.
    Mv,
}

pub(super) struct Register {
    flavor: Flavor,
    next: i64,
}

impl Register {
    pub(super) fn new(flavor: Flavor) -> Self {
        Register { flavor, next: 0 }
    }

    /// The values a read reply shows, or why it is malformed.
    fn values(&self, reply: &Body) -> Result<BTreeSet<i64>, String> {
        let value = reply.read_value().unwrap_or(&Value::Null);
        match (self.flavor, value) {
            (Flavor::Lww, Value::Null) => Ok(BTreeSet::new()),
            (Flavor::Lww, v) => v
                .as_i64()
                .map(|x| BTreeSet::from([x]))
                .ok_or_else(|| format!("read_ok value {v} is neither null nor an integer")),
            (Flavor::Mv, Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_i64()
                        .ok_or_else(|| format!("sibling {i} is not an integer"))
                })
                .collect(),
            (Flavor::Mv, v) => Err(format!("read_ok value {v} is not a list of siblings")),
        }
    }
}

impl Workload for Register {
    fn name(&self) -> &'static str {
        match self.flavor {
            Flavor::Lww => "lww-register",
            Flavor::Mv => "mv-register",
        }
    }

    fn next_op(&mut self, dice: &mut SeededDice) -> Body {
        let key = Some(KEY.into());
        if dice.below(3) == 0 {
            Kind::Read { key }.into()
        } else {
            self.next += 1;
            let value = self.next.into();
            Kind::Write { key, value }.into()
        }
    }

    fn final_read(&self) -> Option<Body> {
        Some(
            Kind::Read {
                key: Some(KEY.into()),
            }
            .into(),
        )
    }

    fn final_value(&self, reply: &Body) -> Option<Value> {
        self.values(reply).ok().map(|v| json!(v))
    }

    fn check(&self, history: &History, nodes: usize) -> Vec<Check> {
        // The writes by value, with their place in the history.
        let writes: BTreeMap<i64, (usize, &Event)> = history
            .events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.kind() == "write")
            .filter_map(|(i, e)| written(e).map(|v| (v, (i, e))))
            .collect();
        let attempted = |v: &i64| {
            writes
                .get(v)
                .is_some_and(|(_, e)| !matches!(e.outcome, Outcome::Fail { .. }))
        };
        let mut problems: Vec<String> = Vec::new();

        // What each node definitely had, from its acknowledged writes and its successful reads:
        // only the earliest time it had each value, which is all the checks below ask of it.
        let mut had = FirstHad::default();
        let mut finals: BTreeMap<usize, BTreeSet<i64>> = BTreeMap::new();
        for e in &history.events {
            match self.shown(e) {
                Some((done, Shown::Write(v))) => had.add(e.node, v, done),
                Some((done, Shown::Read(Ok(values)))) => {
                    if let Some(phantom) = values.iter().find(|v| !attempted(v)) {
                        problems.push(format!(
                            "n{} read {phantom}, which no write could have written",
                            e.node
                        ));
                    }
                    for &v in &values {
                        had.add(e.node, v, done);
                    }
                    if e.phase == Phase::Final {
                        finals.insert(e.node, values);
                    }
                }
                Some((_, Shown::Read(Err(why)))) => {
                    problems.push(format!("n{}: {why}", e.node));
                }
                None => {}
            }
        }
        // A write *supersedes* a value its node had before the write was invoked: the node
        // definitely saw it. Each node's acknowledged writes, by invocation, answer both
        // questions asked of that relation below with a binary search.
        let mut by_node: BTreeMap<usize, Vec<Acked>> = BTreeMap::new();
        for (&value, (_, w)) in &writes {
            if matches!(w.outcome, Outcome::Ok { .. }) {
                by_node.entry(w.node).or_default().push(Acked {
                    invoke: w.invoke_seq,
                    value,
                    done: w.complete_seq,
                });
            }
        }
        let by_node: BTreeMap<usize, NodeWrites> = by_node
            .into_iter()
            .map(|(node, acked)| (node, NodeWrites::new(acked)))
            .collect();
        // A node that acknowledged a write which superseded `old` must never show `old` again:
        // its own state already held something newer. The first read that does is reported,
        // naming the least such write and the first value it superseded, in the order the node
        // had them.
        for (i, e) in history.events.iter().enumerate() {
            if e.kind() != "read" {
                continue;
            }
            let Some(values) = e.reply().and_then(|r| self.values(r).ok()) else {
                continue;
            };
            let Some(writes_here) = by_node.get(&e.node) else {
                continue;
            };
            let broken = values.iter().any(|&old| {
                had.first(e.node, old).is_some_and(|since| {
                    writes_here
                        .earliest_ack_after(since, old)
                        .is_some_and(|done| done < e.invoke_seq)
                })
            });
            if broken {
                let (old, by) = self.first_superseded_shown(history, &writes, &had, i, &values);
                problems.push(format!(
                    "n{} read {old} after it had acknowledged write {by}, made when it already had {old}",
                    e.node
                ));
                break;
            }
        }
        // The least acknowledged write that superseded `v` anywhere.
        let superseded = |v: i64| {
            had.nodes_of(v)
                .filter_map(|(node, since)| by_node.get(&node)?.least_after(since, v))
                .min()
        };
        for (node, values) in &finals {
            for &v in values {
                if let Some(by) = superseded(v) {
                    problems.push(format!(
                        "n{node}'s final read shows {v}, but write {by} at n{} was made after that node had {v}, so {by} supersedes it",
                        writes[&by].1.node
                    ));
                }
            }
        }
        let any_acked = writes
            .values()
            .any(|(_, w)| matches!(w.outcome, Outcome::Ok { .. }));
        if any_acked && let Some((node, _)) = finals.iter().find(|(_, v)| v.is_empty()) {
            problems.push(format!(
                "n{node}'s final read is empty although writes were acknowledged"
            ));
        }
        let name = match self.flavor {
            Flavor::Lww => "lww-winner",
            Flavor::Mv => "mv-siblings",
        };
        // A multi-value register keeps every write nothing could have superseded.
        if self.flavor == Flavor::Mv {
            let seen = SeenBy::of(history, nodes, &writes);
            for (&v, &(i, w)) in &writes {
                if !matches!(w.outcome, Outcome::Ok { .. }) {
                    continue;
                }
                if !seen.by_another(i, w.node, w.invoke_seq) {
                    for (node, values) in &finals {
                        if !values.contains(&v) {
                            problems.push(format!(
                                "n{node}'s final read lacks {v}, an acknowledged write no other write could have seen"
                            ));
                        }
                    }
                }
            }
        }
        verdicts(name, &finals, problems, nodes)
    }
}

/// What one operation shows its node had: an acknowledged write's value, or the values a
/// successful read returned (or why they are malformed).
enum Shown {
    Write(i64),
    Read(Result<BTreeSet<i64>, String>),
}

/// The value a `write` wrote, if it is one.
fn written(e: &Event) -> Option<i64> {
    match &e.request.kind {
        Kind::Write { value, .. } => value.as_i64(),
        _ => None,
    }
}

impl Register {
    /// What `e` shows its node had, and the place in the order of observations from which it
    /// definitely had it (the reply's), if anything.
    fn shown(&self, e: &Event) -> Option<(u64, Shown)> {
        let reply = e.reply()?;
        let done = e.complete_seq?;
        match e.kind() {
            "write" => {
                let v = written(e)?;
                Some((done, Shown::Write(v)))
            }
            "read" => Some((done, Shown::Read(self.values(reply)))),
            _ => None,
        }
    }

    /// For the read `history.events[read]`, known to show a value that a write its node had
    /// acknowledged before the read superseded: `(old, by)`, where `by` is the least such write
    /// and `old` the first value it superseded that the read shows, in the order the node had
    /// its values. Only the one read a report names comes here, so a scan is fine.
    fn first_superseded_shown(
        &self,
        history: &History,
        writes: &BTreeMap<i64, (usize, &Event)>,
        had: &FirstHad,
        read: usize,
        values: &BTreeSet<i64>,
    ) -> (i64, i64) {
        let e = &history.events[read];
        let by = writes
            .iter()
            .filter(|(_, (_, w))| w.node == e.node && matches!(w.outcome, Outcome::Ok { .. }))
            .filter(|(_, (_, w))| w.complete_seq.is_some_and(|done| done < e.invoke_seq))
            .find(|&(&v, (_, w))| {
                values.iter().any(|&old| {
                    old != v && had.first(e.node, old).is_some_and(|t| t < w.invoke_seq)
                })
            });
        let Some((&by, &(_, w))) = by else {
            unreachable!("the read was found to show a superseded value")
        };
        // The node's values in the order it had them, as the history shows them.
        let mut had_in_order = history
            .events
            .iter()
            .filter(|h| h.node == e.node)
            .filter_map(|h| self.shown(h))
            .flat_map(|(t, shown)| {
                let values: Vec<i64> = match shown {
                    Shown::Write(v) => vec![v],
                    Shown::Read(Ok(values)) => values.into_iter().collect(),
                    Shown::Read(Err(_)) => Vec::new(),
                };
                values.into_iter().map(move |v| (t, v))
            });
        let old = had_in_order
            .find(|&(t, old)| t < w.invoke_seq && old != by && values.contains(&old))
            .map_or(by, |(_, old)| old);
        (old, by)
    }
}
