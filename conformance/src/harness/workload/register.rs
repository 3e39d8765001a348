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
        // The writes by value, with their place in the history.
        let writes: BTreeMap<i64, (usize, &Event)> = history
            .events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.kind() == "write")
            .filter_map(|(i, e)| {
                e.request
                    .get("value")
                    .and_then(Value::as_i64)
                    .map(|v| (v, (i, e)))
            })
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

impl Register {
    /// What `e` shows its node had, and the place in the order of observations from which it
    /// definitely had it (the reply's), if anything.
    fn shown(&self, e: &Event) -> Option<(u64, Shown)> {
        let reply = e.reply()?;
        let done = e.complete_seq?;
        match e.kind() {
            "write" => {
                let v = e.request.get("value").and_then(Value::as_i64)?;
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

/// The earliest place in the order of observations at which each node definitely had each
/// value, by (value, node).
#[derive(Default)]
struct FirstHad(BTreeMap<(i64, usize), u64>);

impl FirstHad {
    fn add(&mut self, node: usize, value: i64, at: u64) {
        self.0
            .entry((value, node))
            .and_modify(|t| *t = (*t).min(at))
            .or_insert(at);
    }

    fn first(&self, node: usize, value: i64) -> Option<u64> {
        self.0.get(&(value, node)).copied()
    }

    /// The nodes that had `value`, each with the earliest time it did.
    fn nodes_of(&self, value: i64) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.0
            .range((value, 0)..=(value, usize::MAX))
            .map(|(&(_, node), &t)| (node, t))
    }
}

/// An acknowledged write: when it was invoked, its value, and when its reply was seen.
#[derive(Clone, Copy)]
struct Acked {
    invoke: u64,
    value: i64,
    done: Option<u64>,
}

/// One node's acknowledged writes by invocation, with, for every suffix, its two least values
/// and its two earliest acknowledgements (two, so that one write can be left out).
///
/// "The writes invoked after `t`" is a suffix, so each question below is a binary search and a
/// look at two entries: linear memory, where a list of every (write, earlier value) pair grew
/// with the square of the run.
struct NodeWrites {
    acked: Vec<Acked>,
    /// Positions in `acked` of the suffix's two least values.
    least: Vec<[Option<usize>; 2]>,
    /// Positions in `acked` of the suffix's two earliest acknowledgements.
    earliest: Vec<[Option<usize>; 2]>,
}

impl NodeWrites {
    fn new(mut acked: Vec<Acked>) -> Self {
        acked.sort_by_key(|a| a.invoke);
        let least = suffix_two_least(&acked, |a| Some(a.value));
        let earliest = suffix_two_least(&acked, |a| a.done);
        NodeWrites {
            acked,
            least,
            earliest,
        }
    }

    /// Where the writes invoked strictly after `t` begin.
    fn after(&self, t: u64) -> usize {
        self.acked.partition_point(|a| a.invoke <= t)
    }

    /// The first of `two` whose write's value is not `except`.
    fn other_than(&self, two: Option<&[Option<usize>; 2]>, except: i64) -> Option<&Acked> {
        two?.iter()
            .flatten()
            .map(|&k| &self.acked[k])
            .find(|a| a.value != except)
    }

    /// The least value of a write invoked after `t`, other than `except`.
    fn least_after(&self, t: u64, except: i64) -> Option<i64> {
        let k = self.after(t);
        self.other_than(self.least.get(k), except).map(|a| a.value)
    }

    /// The earliest acknowledgement of a write invoked after `t`, other than the write of
    /// `except`.
    fn earliest_ack_after(&self, t: u64, except: i64) -> Option<u64> {
        let k = self.after(t);
        self.other_than(self.earliest.get(k), except)
            .and_then(|a| a.done)
    }
}

/// For every suffix `items[k..]`, the positions of its two least keys (items without a key
/// left out; ties keep the earlier position).
fn suffix_two_least<T, K: Ord>(
    items: &[T],
    key: impl Fn(&T) -> Option<K>,
) -> Vec<[Option<usize>; 2]> {
    let mut out = vec![[None, None]; items.len()];
    let mut best: [Option<usize>; 2] = [None, None];
    for k in (0..items.len()).rev() {
        if let Some(new) = key(&items[k]) {
            let beats = |slot: Option<usize>| {
                slot.is_none_or(|j| key(&items[j]).is_none_or(|old| old >= new))
            };
            if beats(best[0]) {
                best = [Some(k), best[0]];
            } else if beats(best[1]) {
                best[1] = Some(k);
            }
        }
        out[k] = best;
    }
    out
}

/// Whether a write could have been seen by another write: for every party, the two latest
/// places of it that any write (acknowledged or indefinite) could have known of at its
/// invocation, with whose they are.
struct SeenBy(Vec<[Option<(u64, usize)>; 2]>);

impl SeenBy {
    fn of(history: &History, nodes: usize, writes: &BTreeMap<i64, (usize, &Event)>) -> Self {
        let mut counted = vec![false; history.events.len()];
        for &(i, w) in writes.values() {
            counted[i] = !matches!(w.outcome, Outcome::Fail { .. });
        }
        let mut latest: Vec<[Option<(u64, usize)>; 2]> = Vec::new();
        history.reach_each(nodes, |i, known| {
            if !counted[i] {
                return;
            }
            if latest.len() < known.len() {
                latest.resize(known.len(), [None, None]);
            }
            for (slot, &t) in latest.iter_mut().zip(known) {
                let Some(t) = t else { continue };
                if slot[0].is_none_or(|(s, _)| t > s) {
                    *slot = [Some((t, i)), slot[0]];
                } else if slot[1].is_none_or(|(s, _)| t > s) {
                    slot[1] = Some((t, i));
                }
            }
        });
        SeenBy(latest)
    }

    /// Whether some write other than `history.events[write]` could have known of `node`'s
    /// operations up to `invoked`.
    fn by_another(&self, write: usize, node: usize, invoked: u64) -> bool {
        self.0
            .get(node)
            .and_then(|two| two.iter().flatten().find(|&&(_, i)| i != write))
            .is_some_and(|&(t, _)| t >= invoked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::history::Delivery;

    // The check as it was before it was made linear (commit d8d14cf), verbatim but for its
    // name: the reference the new one must agree with, message for message.
    fn reference(register: &Register, history: &History, nodes: usize) -> Vec<Check> {
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
                "read" => match register.values(reply) {
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
            let Some(values) = e.reply().and_then(|r| register.values(r).ok()) else {
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
        let name = match register.flavor {
            Flavor::Lww => "lww-winner",
            Flavor::Mv => "mv-siblings",
        };
        // A multi-value register keeps every write nothing could have superseded.
        if register.flavor == Flavor::Mv {
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

    /// A random register history on three nodes (and now and then an operation at a node the
    /// check is not told about): writes of fresh values (now and then a repeated or missing one),
    /// reads that show what their node holds or, in some histories, anything written so far or
    /// never written, every outcome, messages between nodes and a service, and final reads.
    /// Nodes keep a register each and learn of each other through the messages, so some
    /// histories pass and the others fail in every way the check can tell.
    fn history(dice: &mut Dice, mv: bool) -> History {
        let nodes = 3;
        let chaos = [0.0, 0.0, 0.05, 0.3][dice.below(4) as usize];
        let mut seq = 0u64;
        let mut tick = |dice: &mut Dice| {
            // Now and then two observations share a place, so that ties are compared too.
            seq += dice.below(3);
            seq
        };
        // What each node holds: its siblings.
        let mut holds: Vec<Vec<i64>> = vec![Vec::new(); nodes];
        let mut written: Vec<i64> = Vec::new();
        let mut next = 0i64;
        let mut events = Vec::new();
        let mut deliveries = Vec::new();
        let show = |set: &[i64]| -> Value {
            if mv {
                json!(set)
            } else {
                set.iter().max().map_or(Value::Null, |v| json!(v))
            }
        };
        let ops = 5 + dice.below(40);
        for k in 0..ops + 3 {
            let final_phase = k >= ops;
            let node = if final_phase {
                (k - ops) as usize
            } else if dice.chance(0.03) {
                nodes
            } else {
                dice.below(nodes as u64) as usize
            };
            let invoke = tick(dice);
            let write = !final_phase && dice.chance(0.6);
            let (request, reply) = if write {
                next += 1;
                let value = if dice.chance(chaos / 3.0) && !written.is_empty() {
                    written[dice.below(written.len() as u64) as usize]
                } else {
                    next
                };
                written.push(value);
                if node < nodes && !dice.chance(chaos) {
                    holds[node] = vec![value];
                }
                let request = if dice.chance(0.02) {
                    json!({"type": "write", "key": "r", "value": "x"})
                } else {
                    json!({"type": "write", "key": "r", "value": value})
                };
                (request, json!({"type": "write_ok"}))
            } else {
                let mut set = holds.get(node).cloned().unwrap_or_default();
                if dice.chance(chaos) && !written.is_empty() {
                    set = vec![written[dice.below(written.len() as u64) as usize]];
                }
                if dice.chance(chaos / 2.0) {
                    set.push(1000 + dice.below(3) as i64);
                }
                set.sort_unstable();
                let value = if dice.chance(0.02) {
                    json!("garbage")
                } else {
                    show(&set)
                };
                (
                    json!({"type": "read", "key": "r"}),
                    json!({"type": "read_ok", "value": value}),
                )
            };
            let complete = tick(dice);
            let outcome = match dice.below(10) {
                0 => Outcome::Fail { code: 20 },
                1 => Outcome::Info {
                    reason: "no reply".into(),
                },
                _ => Outcome::Ok {
                    reply: reply.as_object().cloned().unwrap_or_default().into(),
                },
            };
            let replied = !matches!(outcome, Outcome::Info { .. }) || dice.chance(0.2);
            events.push(Event {
                client: node,
                node,
                request: request.as_object().cloned().unwrap_or_default().into(),
                invoke_ms: invoke,
                complete_ms: replied.then_some(complete),
                invoke_seq: invoke,
                complete_seq: (replied && !dice.chance(0.05)).then_some(complete),
                outcome,
                phase: if final_phase {
                    Phase::Final
                } else {
                    Phase::Main
                },
                during_fault: false,
            });
            // Replication: now and then a node sends what it holds to another (or through a
            // service, party 3), which merges it in later.
            for _ in 0..dice.below(3) {
                let from = dice.below(nodes as u64 + 1) as usize;
                let to = dice.below(nodes as u64 + 1) as usize;
                if from == to {
                    continue;
                }
                let sent = tick(dice);
                let delivered = sent + dice.below(6);
                deliveries.push(Delivery {
                    from,
                    to,
                    sent_seq: sent,
                    delivered_seq: delivered,
                });
                if from < nodes && to < nodes && !dice.chance(chaos) {
                    let mut merged = holds[to].clone();
                    merged.extend(holds[from].iter().copied());
                    merged.sort_unstable();
                    merged.dedup();
                    if !mv {
                        merged = merged.last().copied().into_iter().collect();
                    }
                    holds[to] = merged;
                }
            }
            if final_phase {
                // Before the final reads, everything reaches everyone.
                let all: Vec<i64> = holds.iter().flatten().copied().collect();
                let mut all = all;
                all.sort_unstable();
                all.dedup();
                for h in &mut holds {
                    *h = if mv {
                        all.clone()
                    } else {
                        all.last().copied().into_iter().collect()
                    };
                }
            }
        }
        History {
            events,
            deliveries,
            ..History::default()
        }
    }

    #[test]
    fn the_linear_check_reports_what_the_quadratic_one_did() {
        let mut verdicts: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        for seed in 0..3000u64 {
            let mut dice = Dice::new(seed);
            let mv = seed % 2 == 1;
            let register = Register::new(if mv { Flavor::Mv } else { Flavor::Lww });
            let history = history(&mut dice, mv);
            let nodes = 3;
            let got = register.check(&history, nodes);
            let want = reference(&register, &history, nodes);
            assert_eq!(
                got, want,
                "seed {seed}; reproduce: cargo test -p converge-conformance the_linear_check_reports"
            );
            let outcome = match &want[0].verdict {
                crate::harness::check::Verdict::Pass => "pass",
                crate::harness::check::Verdict::Fail { detail }
                    if detail.contains("acknowledged write") && detail.contains("made when") =>
                {
                    "fail: read after"
                }
                crate::harness::check::Verdict::Fail { detail }
                    if detail.contains("supersedes") =>
                {
                    "fail: supersedes"
                }
                crate::harness::check::Verdict::Fail { detail }
                    if detail.contains("no other write") =>
                {
                    "fail: lacks"
                }
                crate::harness::check::Verdict::Fail { .. } => "fail: other",
                crate::harness::check::Verdict::Unknown { .. } => "unknown",
            };
            *verdicts
                .entry((if mv { "mv" } else { "lww" }, outcome))
                .or_default() += 1;
        }
        // Every kind of verdict was drawn for both flavors, so every path was compared.
        for flavor in ["lww", "mv"] {
            for outcome in [
                "pass",
                "fail: read after",
                "fail: supersedes",
                "fail: other",
            ] {
                assert!(
                    verdicts.get(&(flavor, outcome)).copied().unwrap_or(0) >= 10,
                    "{verdicts:?}"
                );
            }
        }
        assert!(
            verdicts.get(&("mv", "fail: lacks")).copied().unwrap_or(0) >= 10,
            "{verdicts:?}"
        );
    }

    #[test]
    fn suffix_two_least_finds_the_two_least_of_every_suffix() {
        for seed in 0..200u64 {
            let mut dice = Dice::new(seed);
            let items: Vec<Option<u64>> = (0..dice.below(30))
                .map(|_| (!dice.chance(0.2)).then(|| dice.below(10)))
                .collect();
            let two = suffix_two_least(&items, |x| *x);
            for (k, least) in two.iter().enumerate() {
                let mut keys: Vec<(u64, usize)> = (k..items.len())
                    .filter_map(|j| items[j].map(|x| (x, j)))
                    .collect();
                keys.sort_unstable();
                let want: Vec<u64> = keys.iter().take(2).map(|&(x, _)| x).collect();
                let got: Vec<u64> = least.iter().flatten().map(|&j| items[j].unwrap()).collect();
                assert_eq!(got, want, "seed {seed}, suffix {k}: {items:?}");
                let positions: Vec<usize> = least.iter().flatten().copied().collect();
                assert!(positions.windows(2).all(|w| w[0] != w[1]), "seed {seed}");
            }
        }
    }
}
