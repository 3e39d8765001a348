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

use super::{Workload, verdicts};
use crate::harness::check::Check;
use crate::harness::history::{Body, Event, History, Outcome, Phase};
use crate::harness::rng::Dice;
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
        let value = reply.get("value").unwrap_or(&Value::Null);
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

    fn next_op(&mut self, dice: &mut Dice) -> Value {
        if dice.below(3) == 0 {
            json!({"type": "read", "key": KEY})
        } else {
            self.next += 1;
            json!({"type": "write", "key": KEY, "value": self.next})
        }
    }

    fn final_read(&self) -> Option<Value> {
        Some(json!({"type": "read", "key": KEY}))
    }

    fn final_value(&self, reply: &Body) -> Option<Value> {
        self.values(reply).ok().map(|v| json!(v))
    }

    fn check(&self, history: &History, nodes: usize) -> Vec<Check> {
        let writes: BTreeMap<i64, &Event> = history
            .events
            .iter()
            .filter(|e| e.kind() == "write")
            .filter_map(|e| {
                e.request
                    .get("value")
                    .and_then(Value::as_i64)
                    .map(|v| (v, e))
            })
            .collect();
        let attempted = |v: &i64| {
            writes
                .get(v)
                .is_some_and(|e| !matches!(e.outcome, Outcome::Fail { .. }))
        };
        let mut problems: Vec<String> = Vec::new();

        // What each node definitely had, as (time it had it, value), from its acknowledged
        // writes and its successful reads.
        let mut had: BTreeMap<usize, Vec<(u64, i64)>> = BTreeMap::new();
        let mut finals: BTreeMap<usize, BTreeSet<i64>> = BTreeMap::new();
        for e in &history.events {
            let Some(reply) = e.reply() else { continue };
            let Some(done) = e.complete_seq else { continue };
            match e.kind() {
                "write" => {
                    if let Some(v) = e.request.get("value").and_then(Value::as_i64) {
                        had.entry(e.node).or_default().push((done, v));
                    }
                }
                "read" => match self.values(reply) {
                    Ok(values) => {
                        if let Some(phantom) = values.iter().find(|v| !attempted(v)) {
                            problems.push(format!(
                                "n{} read {phantom}, which no write could have written",
                                e.node
                            ));
                        }
                        for &v in &values {
                            had.entry(e.node).or_default().push((done, v));
                        }
                        if e.phase == Phase::Final {
                            finals.insert(e.node, values);
                        }
                    }
                    Err(why) => problems.push(format!("n{}: {why}", e.node)),
                },
                _ => {}
            }
        }
        // Writes an acknowledged later write definitely saw: they are superseded for good.
        let mut superseded: BTreeMap<i64, i64> = BTreeMap::new();
        // (node, when its acknowledgement was seen, value it superseded, superseding value)
        let mut local: Vec<(usize, u64, i64, i64)> = Vec::new();
        for (&v, w) in &writes {
            if !matches!(w.outcome, Outcome::Ok { .. }) {
                continue;
            }
            for &(t, old) in had.get(&w.node).map(Vec::as_slice).unwrap_or(&[]) {
                // The harness saw the reply (or the read) before it sent the later write.
                if t < w.invoke_seq && old != v {
                    superseded.entry(old).or_insert(v);
                    if let Some(done) = w.complete_seq {
                        local.push((w.node, done, old, v));
                    }
                }
            }
        }
        // A node that acknowledged a write which superseded `old` must never show `old` again:
        // its own state already held something newer.
        //
        // `local` can hold a pair per write and earlier value of a node, so it is searched
        // through an index rather than scanned per read: by (node, superseded value), the
        // positions in `local` in order, each with the least acknowledgement time up to it. The
        // first position acknowledged before a read is then a binary search, and the earliest of
        // those over the read's values is the entry a scan of `local` would have found first.
        let by_old = LocalIndex::new(&local);
        for e in history.events.iter().filter(|e| e.kind() == "read") {
            let Some(values) = e.reply().and_then(|r| self.values(r).ok()) else {
                continue;
            };
            let first = by_old.first(e.node, e.invoke_seq, &values);
            if let Some(&(_, _, old, by)) = first.and_then(|i| local.get(i)) {
                problems.push(format!(
                    "n{} read {old} after it had acknowledged write {by}, made when it already had {old}",
                    e.node
                ));
                break;
            }
        }
        for (node, values) in &finals {
            for v in values {
                if let Some(by) = superseded.get(v) {
                    problems.push(format!(
                        "n{node}'s final read shows {v}, but write {by} at n{} was made after that node had {v}, so {by} supersedes it",
                        writes[by].node
                    ));
                }
            }
        }
        let any_acked = writes
            .values()
            .any(|w| matches!(w.outcome, Outcome::Ok { .. }));
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
            let reach = history.reach(nodes);
            let index: BTreeMap<*const Event, usize> = history
                .events
                .iter()
                .enumerate()
                .map(|(i, e)| (e as *const Event, i))
                .collect();
            for (&v, w) in &writes {
                if !matches!(w.outcome, Outcome::Ok { .. }) {
                    continue;
                }
                let could_be_seen = writes.values().any(|other| {
                    !std::ptr::eq(*other, *w)
                        && !matches!(other.outcome, Outcome::Fail { .. })
                        && index
                            .get(&(*other as *const Event))
                            .and_then(|&i| reach[i].get(w.node).copied().flatten())
                            .is_some_and(|t| t >= w.invoke_seq)
                });
                if !could_be_seen {
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

/// `local` of [`Register::check`] indexed by (node, superseded value): the positions in `local`,
/// in order, each with the least acknowledgement time up to it (non-increasing along a list).
struct LocalIndex(BTreeMap<(usize, i64), Vec<(usize, u64)>>);

impl LocalIndex {
    fn new(local: &[(usize, u64, i64, i64)]) -> Self {
        let mut by_old: BTreeMap<(usize, i64), Vec<(usize, u64)>> = BTreeMap::new();
        for (i, &(n, done, old, _)) in local.iter().enumerate() {
            let positions = by_old.entry((n, old)).or_default();
            let least = positions.last().map_or(done, |&(_, m)| m.min(done));
            positions.push((i, least));
        }
        LocalIndex(by_old)
    }

    /// The first position in `local` of `node` acknowledged before `before` whose superseded
    /// value is one of `values`: what `local.iter().position(..)` finds, by binary searches.
    fn first(&self, node: usize, before: u64, values: &BTreeSet<i64>) -> Option<usize> {
        values
            .iter()
            .filter_map(|&v| {
                let positions = self.0.get(&(node, v))?;
                let k = positions.partition_point(|&(_, least)| least >= before);
                positions.get(k).map(|&(i, _)| i)
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_finds_what_a_scan_finds() {
        for seed in 0..300u64 {
            let mut dice = Dice::new(seed);
            let local: Vec<(usize, u64, i64, i64)> = (0..dice.below(60))
                .map(|_| {
                    let node = dice.below(3) as usize;
                    (node, dice.below(100), dice.below(8) as i64, 0)
                })
                .collect();
            let index = LocalIndex::new(&local);
            for _ in 0..50 {
                let node = dice.below(3) as usize;
                let before = dice.below(110);
                let values: BTreeSet<i64> =
                    (0..dice.below(3)).map(|_| dice.below(8) as i64).collect();
                let scan = local.iter().position(|(n, done, old, _)| {
                    *n == node && *done < before && values.contains(old)
                });
                assert_eq!(
                    index.first(node, before, &values),
                    scan,
                    "seed {seed}; reproduce: cargo test -p converge-conformance the_index_finds"
                );
            }
        }
    }
}
