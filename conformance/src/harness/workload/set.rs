//! Maelstrom's `g-set` workload, and the set analysis it shares with `broadcast`.
//!
//! `add {element}` → `add_ok`; `read` → `read_ok {value: [elements]}`. Broadcast is the same
//! workload under other names (`broadcast {message}`, `read_ok {messages}`), so both are a
//! [`SetWorkload`] with a different [`SetShape`], and the analysis below exists once.
//!
//! Invariants:
//! - Every element the workload adds is a distinct integer, counted up from 0 as Maelstrom does,
//!   so an element in a read names exactly one add request: every inference below is sound.
//! - A read is a set: order and repetition in the reply do not matter, and [`canonical`] turns
//!   it into one sorted list without repeats, so equal states give equal final values.
//! - Acknowledged adds must be visible; indefinite adds may or may not be; an element whose add
//!   failed definitely, or that was never added, must never be.

use super::Workload;
use crate::harness::check::{Check, Verdict};
use crate::harness::history::{Body, Event, History, Outcome, Phase};
use crate::harness::rng::Dice;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// At most this many elements are named in a failure's detail; the count is always given.
const SHOWN: usize = 5;

/// The names a set workload uses on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SetShape {
    /// The workload's name on the command line.
    pub(super) name: &'static str,
    /// The request type that adds one element: `add` or `broadcast`.
    pub(super) add: &'static str,
    /// The add request's field holding the element: `element` or `message`.
    pub(super) element: &'static str,
    /// The `read_ok` field holding the set: `value` or `messages`.
    pub(super) read_field: &'static str,
}

/// Maelstrom's `g-set`.
pub(super) const G_SET: SetShape = SetShape {
    name: "g-set",
    add: "add",
    element: "element",
    read_field: "value",
};

/// A workload of unique adds and reads of a grow-only set, checked with [`check_sets`].
pub(super) struct SetWorkload {
    shape: SetShape,
    next: i64,
}

impl SetWorkload {
    /// The workload with these wire names.
    pub(super) fn new(shape: SetShape) -> Self {
        SetWorkload { shape, next: 0 }
    }
}

impl Workload for SetWorkload {
    fn name(&self) -> &'static str {
        self.shape.name
    }

    fn next_op(&mut self, dice: &mut Dice) -> Value {
        // Mostly adds, some reads: reads during faults feed `monotonic-reads-per-node`, and
        // every add is a chance to lose an element.
        if dice.below(4) == 0 {
            return json!({"type": "read"});
        }
        let element = self.next;
        self.next += 1;
        let mut body = Map::new();
        body.insert("type".into(), json!(self.shape.add));
        body.insert(self.shape.element.into(), json!(element));
        Value::Object(body)
    }

    fn final_read(&self) -> Option<Value> {
        Some(json!({"type": "read"}))
    }

    fn final_value(&self, reply: &Body) -> Option<Value> {
        canonical(reply, self.shape.read_field)
    }

    fn order_independent(&self) -> bool {
        true
    }

    fn unexplained_change(&self, _: &History, from: &Value, to: &Value) -> Option<String> {
        lost_after_agreement(from, to)
    }

    fn check(&self, history: &History, nodes: usize) -> Vec<Check> {
        check_sets(&self.shape, history, nodes)
    }
}

/// The set a read reply holds, sorted and without repeats, or what is wrong with it.
pub(super) fn read_set(reply: &Body, field: &str) -> Result<Vec<i64>, String> {
    let Some(list) = reply.get(field) else {
        return Err(format!("read_ok without `{field}`"));
    };
    let Some(items) = list.as_array() else {
        return Err(format!("`{field}` is not a list: {}", cut(list)));
    };
    let mut set = Vec::with_capacity(items.len());
    for item in items {
        match item.as_i64() {
            Some(x) => set.push(x),
            None => {
                return Err(format!(
                    "`{field}` holds {}, which no add wrote (every element is an integer)",
                    cut(item)
                ));
            }
        }
    }
    set.sort_unstable();
    set.dedup();
    Ok(set)
}

/// For grow-only sets (g-set, broadcast, session): once every node agreed on `from`, a read
/// `to` that lacks some of its elements lost what the whole cluster had, and no add explains a
/// loss. A read that grew is explained by adds still arriving (what it may show is the other
/// checks' business).
pub(super) fn lost_after_agreement(from: &Value, to: &Value) -> Option<String> {
    let (Some(from), Some(to)) = (from.as_array(), to.as_array()) else {
        return None;
    };
    let to: std::collections::BTreeSet<i64> = to.iter().filter_map(Value::as_i64).collect();
    let lost: Vec<String> = from
        .iter()
        .filter(|x| x.as_i64().is_some_and(|x| !to.contains(&x)))
        .take(5)
        .map(Value::to_string)
        .collect();
    (!lost.is_empty()).then(|| {
        format!(
            "a grow-only set lost {} after the whole cluster had it",
            lost.join(", ")
        )
    })
}

/// The canonical value of a read: its set as a sorted JSON list, or `None` if malformed.
pub(super) fn canonical(reply: &Body, field: &str) -> Option<Value> {
    read_set(reply, field).ok().map(|set| json!(set))
}

fn cut(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 80 {
        format!("{}…", text.chars().take(80).collect::<String>())
    } else {
        text
    }
}

/// `n3`, for details.
fn node_name(node: usize) -> String {
    format!("n{node}")
}

/// A few elements: `4, 17, 22` or `1, 2, 3, 4, 5, …`.
fn some(elements: &[i64]) -> String {
    let shown: Vec<String> = elements.iter().take(SHOWN).map(i64::to_string).collect();
    let more = if elements.len() > SHOWN { ", …" } else { "" };
    format!("{}{more}", shown.join(", "))
}

/// Elements of `want` (sorted) that `have` (sorted) lacks, in one pass over both.
fn lacking<'a>(have: &[i64], want: impl Iterator<Item = &'a i64>) -> Vec<i64> {
    let mut have = have.iter().peekable();
    let mut missing = Vec::new();
    for x in want {
        while have.next_if(|h| *h < x).is_some() {}
        if have.peek() != Some(&x) {
            missing.push(*x);
        }
    }
    missing
}

/// One successful read. Its set is parsed again from the reply whenever a check needs it:
/// keeping every read's set would hold a second copy of the history.
#[derive(Clone, Copy)]
struct Read<'a> {
    event: &'a Event,
    field: &'a str,
}

impl Read<'_> {
    /// The set the read showed, sorted and without repeats (it parsed when the read was taken).
    fn set(&self) -> Vec<i64> {
        self.event
            .reply()
            .and_then(|r| read_set(r, self.field).ok())
            .unwrap_or_default()
    }
}

/// What the adds of a history promise about every read.
struct Adds {
    /// Acknowledged: must be in every final read.
    acked: BTreeSet<i64>,
    /// Indefinite: may be anywhere.
    maybe: BTreeSet<i64>,
    /// Definitely failed: must be nowhere. The error code, for the detail.
    failed: BTreeMap<i64, u64>,
}

impl Adds {
    fn of(shape: &SetShape, history: &History) -> Self {
        let mut adds = Adds {
            acked: BTreeSet::new(),
            maybe: BTreeSet::new(),
            failed: BTreeMap::new(),
        };
        for e in history.phase(Phase::Main).filter(|e| e.kind() == shape.add) {
            // The workload wrote every element as an integer; a request without one is not ours.
            let Some(x) = e.request.get(shape.element).and_then(Value::as_i64) else {
                continue;
            };
            match e.outcome {
                Outcome::Ok { .. } => {
                    adds.acked.insert(x);
                }
                Outcome::Info { .. } => {
                    adds.maybe.insert(x);
                }
                Outcome::Fail { code } => {
                    adds.failed.insert(x, code);
                }
            }
        }
        adds
    }

    /// Why `x`, which is neither acknowledged nor indefinite, may not appear in any read.
    fn forbidden(&self, x: i64) -> String {
        match self.failed.get(&x) {
            Some(code) => format!("{x} (its add failed definitely, error {code})"),
            None => format!("{x} (never added)"),
        }
    }
}

/// The set checks, shared by `g-set` and `broadcast`: `set-full`, `convergence` and
/// `monotonic-reads-per-node`.
///
/// Memory: a few words per read and per element; the sets themselves are parsed from the
/// history a few at a time, so the checks never hold a second copy of every read.
pub(super) fn check_sets(shape: &SetShape, history: &History, nodes: usize) -> Vec<Check> {
    let adds = Adds::of(shape, history);
    // Elements no add could have written, with how many reads showed each: one merge pass per
    // read against the sorted allowed elements, while the reads are parsed the first time.
    let allowed: Vec<i64> = adds.acked.union(&adds.maybe).copied().collect();
    let mut unexpected: BTreeMap<i64, (String, usize)> = BTreeMap::new();
    let mut malformed: Vec<String> = Vec::new();
    let mut reads: Vec<Read> = Vec::new();
    for e in history.events.iter().filter(|e| e.kind() == "read") {
        let Some(reply) = e.reply() else { continue };
        match read_set(reply, shape.read_field) {
            Ok(set) => {
                for x in lacking(&allowed, set.iter()) {
                    unexpected
                        .entry(x)
                        .or_insert_with(|| (adds.forbidden(x), 0))
                        .1 += 1;
                }
                reads.push(Read {
                    event: e,
                    field: shape.read_field,
                });
            }
            Err(why) => malformed.push(format!(
                "{}'s read by c{} at {} ms: {why}",
                node_name(e.node),
                e.client,
                e.invoke_ms
            )),
        }
    }
    // Each node is judged by its last successful final read: final reads repeat until the nodes
    // agree, and a later round supersedes an earlier one.
    let mut last_final: BTreeMap<usize, Read> = BTreeMap::new();
    for r in reads.iter().filter(|r| r.event.phase == Phase::Final) {
        last_final.insert(r.event.node, *r);
    }
    let finals: BTreeMap<usize, Vec<i64>> = last_final
        .into_iter()
        .map(|(node, r)| (node, r.set()))
        .collect();
    vec![
        Check::new(
            "set-full",
            true,
            set_full(&adds, &unexpected, &finals, &malformed),
        ),
        Check::new("convergence", false, convergence(&finals, nodes)),
        Check::new("monotonic-reads-per-node", false, monotonic(&reads, nodes)),
    ]
}

/// Maelstrom's `set-full`, judged on final reads: every acknowledged element is in every node's
/// final read, and no read at all shows an element that was never (successfully or possibly)
/// added (`unexpected`, gathered over every read).
fn set_full(
    adds: &Adds,
    unexpected: &BTreeMap<i64, (String, usize)>,
    finals: &BTreeMap<usize, Vec<i64>>,
    malformed: &[String],
) -> Verdict {
    let mut problems: Vec<String> = Vec::new();
    for (&node, set) in finals {
        let lost = lacking(set, adds.acked.iter());
        if !lost.is_empty() {
            problems.push(format!(
                "lost: {}'s final read lacks {} acknowledged elements: {}",
                node_name(node),
                lost.len(),
                some(&lost)
            ));
        }
    }
    // An element never added is wrong in any read, whenever it was made: the check needs no
    // timing, so it covers main-phase reads too.
    if !unexpected.is_empty() {
        let shown: Vec<String> = unexpected
            .values()
            .take(SHOWN)
            .map(|(why, n)| format!("{why} in {n} reads"))
            .collect();
        problems.push(format!(
            "unexpected: {} elements no add could have written: {}",
            unexpected.len(),
            shown.join(", ")
        ));
    }
    if let Some(first) = malformed.first() {
        problems.push(format!(
            "{} malformed reads, first: {first}",
            malformed.len()
        ));
    }
    if !problems.is_empty() {
        return Verdict::Fail {
            detail: format!(
                "{} ({} acknowledged, {} indefinite adds)",
                problems.join("; "),
                adds.acked.len(),
                adds.maybe.len()
            ),
        };
    }
    if finals.is_empty() {
        return Verdict::Unknown {
            reason: "no node answered a final read".into(),
        };
    }
    Verdict::Pass
}

/// Every node answered a final read after heal and quiescence, and all hold the same set.
fn convergence(finals: &BTreeMap<usize, Vec<i64>>, nodes: usize) -> Verdict {
    let missing: Vec<String> = (0..nodes)
        .filter(|n| !finals.contains_key(n))
        .map(node_name)
        .collect();
    if !missing.is_empty() {
        return Verdict::Fail {
            detail: format!(
                "no well-formed final read from {} after heal and quiescence",
                missing.join(", ")
            ),
        };
    }
    let mut union: Vec<i64> = finals.values().flatten().copied().collect();
    union.sort_unstable();
    union.dedup();
    if finals.values().all(|set| set.len() == union.len()) {
        // Each final set is a subset of the union; of the same size, it is the union.
        return Verdict::Pass;
    }
    let each: Vec<String> = finals
        .iter()
        .map(|(&node, set)| {
            let lacks = lacking(set, union.iter());
            if lacks.is_empty() {
                format!("{} has all", node_name(node))
            } else {
                format!(
                    "{} lacks {}: {}",
                    node_name(node),
                    lacks.len(),
                    some(&lacks)
                )
            }
        })
        .collect();
    Verdict::Fail {
        detail: format!(
            "final reads differ after heal and quiescence ({} elements seen anywhere): {}",
            union.len(),
            each.join("; ")
        ),
    }
}

/// A node's set only grows: a read that began after another read of the same node completed
/// shows everything that one showed. Reads of one client are in order whatever their times;
/// reads of different clients only when one completed in an earlier millisecond than the other
/// began, since within one millisecond the harness cannot tell which the node saw first. Final
/// reads come after every main-phase read, so they are included.
fn monotonic(reads: &[Read], nodes: usize) -> Verdict {
    let mut first: Option<(u64, String)> = None;
    for node in 0..nodes {
        let mine: Vec<Read> = reads
            .iter()
            .filter(|r| r.event.node == node)
            .copied()
            .collect();
        if let Some(v) = node_monotonic(node, &mine)
            && first.as_ref().is_none_or(|(at, _)| v.0 < *at)
        {
            first = Some(v);
        }
    }
    match first {
        None => Verdict::Pass,
        Some((_, detail)) => Verdict::Fail { detail },
    }
}

/// The first (by invocation) read of one node that lost an element an earlier read showed:
/// `(invoke_ms, detail)`.
fn node_monotonic(node: usize, reads: &[Read]) -> Option<(u64, String)> {
    // `reads` are in invocation order (history order). Sweep them, folding into `seen` every
    // read that completed strictly before the current one began; `seen` maps each element to
    // the read that first showed it, as evidence.
    let mut by_completion: Vec<usize> = (0..reads.len()).collect();
    by_completion.sort_by_key(|&j| reads[j].event.complete_ms.unwrap_or(u64::MAX));
    let mut folded = 0;
    let mut seen: Vec<(i64, usize)> = Vec::new();
    // Each client's last read here, with its set.
    let mut last_of_client: BTreeMap<usize, (usize, Vec<i64>)> = BTreeMap::new();
    for (i, r) in reads.iter().enumerate() {
        while let Some(&done) = by_completion.get(folded)
            && reads[done]
                .event
                .complete_ms
                .is_some_and(|c| c < r.event.invoke_ms)
        {
            seen = fold(&seen, &reads[done].set(), done);
            folded += 1;
        }
        let set = r.set();
        let lost_seen = lacking(&set, seen.iter().map(|(x, _)| x));
        let earlier = last_of_client.insert(r.event.client, (i, set));
        let from_client = earlier
            .map(|(j, earlier_set)| {
                let now = &last_of_client[&r.event.client].1;
                (reads[j], lacking(now, earlier_set.iter()))
            })
            .filter(|(_, lost)| !lost.is_empty());
        let (witness, lost) = if let Some((w, lost)) = from_client {
            (w, lost)
        } else if let Some(&x) = lost_seen.first() {
            // `seen` holds `x`, so the search finds it.
            let at = seen.partition_point(|(y, _)| *y < x);
            (reads[seen[at].1], lost_seen)
        } else {
            continue;
        };
        let (w, at) = (witness.event, r.event.invoke_ms);
        let shown_by = format!(
            "its earlier read by c{} at {}–{} ms",
            w.client,
            w.invoke_ms,
            w.complete_ms.unwrap_or(w.invoke_ms)
        );
        return Some((
            at,
            format!(
                "{}'s read by c{} at {at} ms lacks {} elements that {shown_by} showed: {}",
                node_name(node),
                r.event.client,
                lost.len(),
                some(&lost),
            ),
        ));
    }
    None
}

/// `seen` with the elements of `set` (read number `index`) added, each remembering the first
/// read that showed it. Both inputs are sorted; so is the result.
fn fold(seen: &[(i64, usize)], set: &[i64], index: usize) -> Vec<(i64, usize)> {
    let mut out = Vec::with_capacity(seen.len().max(set.len()));
    let (mut a, mut b) = (seen.iter().peekable(), set.iter().peekable());
    loop {
        match (a.peek(), b.peek()) {
            (Some(&&(x, from)), Some(&&y)) if x <= y => {
                out.push((x, from));
                a.next();
                if x == y {
                    b.next();
                }
            }
            (_, Some(&&y)) => {
                out.push((y, index));
                b.next();
            }
            (Some(&&entry), None) => {
                out.push(entry);
                a.next();
            }
            (None, None) => return out,
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The set checks as they were before they stopped keeping every read's set (commit
    /// d8d14cf), verbatim: the reference for every verdict and message.
    pub(in crate::harness::workload) mod old {
        use super::super::{SHOWN, SetShape, lacking, node_name, read_set, some};
        use crate::harness::check::{Check, Verdict};
        use crate::harness::history::{Event, History, Outcome, Phase};
        use serde_json::Value;
        use std::collections::{BTreeMap, BTreeSet};

        /// One successful read: who asked whom, when, and what it showed.
        struct Read<'a> {
            event: &'a Event,
            set: Vec<i64>,
        }

        /// What the adds of a history promise about every read.
        struct Adds {
            /// Acknowledged: must be in every final read.
            acked: BTreeSet<i64>,
            /// Indefinite: may be anywhere.
            maybe: BTreeSet<i64>,
            /// Definitely failed: must be nowhere. The error code, for the detail.
            failed: BTreeMap<i64, u64>,
        }

        impl Adds {
            fn of(shape: &SetShape, history: &History) -> Self {
                let mut adds = Adds {
                    acked: BTreeSet::new(),
                    maybe: BTreeSet::new(),
                    failed: BTreeMap::new(),
                };
                for e in history.phase(Phase::Main).filter(|e| e.kind() == shape.add) {
                    // The workload wrote every element as an integer; a request without one is not ours.
                    let Some(x) = e.request.get(shape.element).and_then(Value::as_i64) else {
                        continue;
                    };
                    match e.outcome {
                        Outcome::Ok { .. } => {
                            adds.acked.insert(x);
                        }
                        Outcome::Info { .. } => {
                            adds.maybe.insert(x);
                        }
                        Outcome::Fail { code } => {
                            adds.failed.insert(x, code);
                        }
                    }
                }
                adds
            }

            /// Why `x`, which is neither acknowledged nor indefinite, may not appear in any read.
            fn forbidden(&self, x: i64) -> String {
                match self.failed.get(&x) {
                    Some(code) => format!("{x} (its add failed definitely, error {code})"),
                    None => format!("{x} (never added)"),
                }
            }
        }

        /// The set checks, shared by `g-set` and `broadcast`: `set-full`, `convergence` and
        /// `monotonic-reads-per-node`.
        pub(in crate::harness::workload) fn check_sets(
            shape: &SetShape,
            history: &History,
            nodes: usize,
        ) -> Vec<Check> {
            let adds = Adds::of(shape, history);
            let mut malformed: Vec<String> = Vec::new();
            let mut reads: Vec<Read> = Vec::new();
            for e in history.events.iter().filter(|e| e.kind() == "read") {
                let Some(reply) = e.reply() else { continue };
                match read_set(reply, shape.read_field) {
                    Ok(set) => reads.push(Read { event: e, set }),
                    Err(why) => malformed.push(format!(
                        "{}'s read by c{} at {} ms: {why}",
                        node_name(e.node),
                        e.client,
                        e.invoke_ms
                    )),
                }
            }
            // Each node is judged by its last successful final read: final reads repeat until the nodes
            // agree, and a later round supersedes an earlier one.
            let mut finals: BTreeMap<usize, &Read> = BTreeMap::new();
            for r in reads.iter().filter(|r| r.event.phase == Phase::Final) {
                finals.insert(r.event.node, r);
            }
            vec![
                Check::new(
                    "set-full",
                    true,
                    set_full(&adds, &reads, &finals, &malformed),
                ),
                Check::new("convergence", false, convergence(&finals, nodes)),
                Check::new("monotonic-reads-per-node", false, monotonic(&reads, nodes)),
            ]
        }

        /// Maelstrom's `set-full`, judged on final reads: every acknowledged element is in every node's
        /// final read, and no read at all shows an element that was never (successfully or possibly)
        /// added.
        fn set_full(
            adds: &Adds,
            reads: &[Read],
            finals: &BTreeMap<usize, &Read>,
            malformed: &[String],
        ) -> Verdict {
            let mut problems: Vec<String> = Vec::new();
            for (&node, r) in finals {
                let lost = lacking(&r.set, adds.acked.iter());
                if !lost.is_empty() {
                    problems.push(format!(
                        "lost: {}'s final read lacks {} acknowledged elements: {}",
                        node_name(node),
                        lost.len(),
                        some(&lost)
                    ));
                }
            }
            // An element never added is wrong in any read, whenever it was made: the check needs no
            // timing, so it covers main-phase reads too.
            // One merge pass per read against the sorted allowed elements keeps this linear in the size
            // of the history.
            let allowed: Vec<i64> = adds.acked.union(&adds.maybe).copied().collect();
            let mut unexpected: BTreeMap<i64, (String, usize)> = BTreeMap::new();
            for r in reads {
                for x in lacking(&allowed, r.set.iter()) {
                    unexpected
                        .entry(x)
                        .or_insert_with(|| (adds.forbidden(x), 0))
                        .1 += 1;
                }
            }
            if !unexpected.is_empty() {
                let shown: Vec<String> = unexpected
                    .values()
                    .take(SHOWN)
                    .map(|(why, n)| format!("{why} in {n} reads"))
                    .collect();
                problems.push(format!(
                    "unexpected: {} elements no add could have written: {}",
                    unexpected.len(),
                    shown.join(", ")
                ));
            }
            if let Some(first) = malformed.first() {
                problems.push(format!(
                    "{} malformed reads, first: {first}",
                    malformed.len()
                ));
            }
            if !problems.is_empty() {
                return Verdict::Fail {
                    detail: format!(
                        "{} ({} acknowledged, {} indefinite adds)",
                        problems.join("; "),
                        adds.acked.len(),
                        adds.maybe.len()
                    ),
                };
            }
            if finals.is_empty() {
                return Verdict::Unknown {
                    reason: "no node answered a final read".into(),
                };
            }
            Verdict::Pass
        }

        /// Every node answered a final read after heal and quiescence, and all hold the same set.
        fn convergence(finals: &BTreeMap<usize, &Read>, nodes: usize) -> Verdict {
            let missing: Vec<String> = (0..nodes)
                .filter(|n| !finals.contains_key(n))
                .map(node_name)
                .collect();
            if !missing.is_empty() {
                return Verdict::Fail {
                    detail: format!(
                        "no well-formed final read from {} after heal and quiescence",
                        missing.join(", ")
                    ),
                };
            }
            let mut union: Vec<i64> = finals
                .values()
                .flat_map(|r| r.set.iter().copied())
                .collect();
            union.sort_unstable();
            union.dedup();
            if finals.values().all(|r| r.set.len() == union.len()) {
                // Each final set is a subset of the union; of the same size, it is the union.
                return Verdict::Pass;
            }
            let each: Vec<String> = finals
                .iter()
                .map(|(&node, r)| {
                    let lacks = lacking(&r.set, union.iter());
                    if lacks.is_empty() {
                        format!("{} has all", node_name(node))
                    } else {
                        format!(
                            "{} lacks {}: {}",
                            node_name(node),
                            lacks.len(),
                            some(&lacks)
                        )
                    }
                })
                .collect();
            Verdict::Fail {
                detail: format!(
                    "final reads differ after heal and quiescence ({} elements seen anywhere): {}",
                    union.len(),
                    each.join("; ")
                ),
            }
        }

        /// A node's set only grows: a read that began after another read of the same node completed
        /// shows everything that one showed. Reads of one client are in order whatever their times;
        /// reads of different clients only when one completed in an earlier millisecond than the other
        /// began, since within one millisecond the harness cannot tell which the node saw first. Final
        /// reads come after every main-phase read, so they are included.
        fn monotonic(reads: &[Read], nodes: usize) -> Verdict {
            let mut first: Option<(u64, String)> = None;
            for node in 0..nodes {
                let mine: Vec<&Read> = reads.iter().filter(|r| r.event.node == node).collect();
                if let Some(v) = node_monotonic(node, &mine)
                    && first.as_ref().is_none_or(|(at, _)| v.0 < *at)
                {
                    first = Some(v);
                }
            }
            match first {
                None => Verdict::Pass,
                Some((_, detail)) => Verdict::Fail { detail },
            }
        }

        /// The first (by invocation) read of one node that lost an element an earlier read showed:
        /// `(invoke_ms, detail)`.
        fn node_monotonic(node: usize, reads: &[&Read]) -> Option<(u64, String)> {
            // `reads` are in invocation order (history order). Sweep them, folding into `seen` every
            // read that completed strictly before the current one began; `seen` maps each element to
            // the read that first showed it, as evidence.
            let mut by_completion: Vec<usize> = (0..reads.len()).collect();
            by_completion.sort_by_key(|&j| reads[j].event.complete_ms.unwrap_or(u64::MAX));
            let mut folded = 0;
            let mut seen: Vec<(i64, usize)> = Vec::new();
            let mut last_of_client: BTreeMap<usize, usize> = BTreeMap::new();
            for (i, r) in reads.iter().enumerate() {
                while let Some(&done) = by_completion.get(folded)
                    && reads[done]
                        .event
                        .complete_ms
                        .is_some_and(|c| c < r.event.invoke_ms)
                {
                    seen = fold(&seen, &reads[done].set, done);
                    folded += 1;
                }
                let earlier = last_of_client.insert(r.event.client, i);
                let from_client = earlier
                    .map(|j| (reads[j], lacking(&r.set, reads[j].set.iter())))
                    .filter(|(_, lost)| !lost.is_empty());
                let lost_seen = lacking(&r.set, seen.iter().map(|(x, _)| x));
                let (witness, lost) = if let Some((w, lost)) = from_client {
                    (w, lost)
                } else if let Some(&x) = lost_seen.first() {
                    // `seen` holds `x`, so the search finds it.
                    let at = seen.partition_point(|(y, _)| *y < x);
                    (reads[seen[at].1], lost_seen)
                } else {
                    continue;
                };
                let (w, at) = (witness.event, r.event.invoke_ms);
                let shown_by = format!(
                    "its earlier read by c{} at {}–{} ms",
                    w.client,
                    w.invoke_ms,
                    w.complete_ms.unwrap_or(w.invoke_ms)
                );
                return Some((
                    at,
                    format!(
                        "{}'s read by c{} at {at} ms lacks {} elements that {shown_by} showed: {}",
                        node_name(node),
                        r.event.client,
                        lost.len(),
                        some(&lost),
                    ),
                ));
            }
            None
        }

        /// `seen` with the elements of `set` (read number `index`) added, each remembering the first
        /// read that showed it. Both inputs are sorted; so is the result.
        fn fold(seen: &[(i64, usize)], set: &[i64], index: usize) -> Vec<(i64, usize)> {
            let mut out = Vec::with_capacity(seen.len().max(set.len()));
            let (mut a, mut b) = (seen.iter().peekable(), set.iter().peekable());
            loop {
                match (a.peek(), b.peek()) {
                    (Some(&&(x, from)), Some(&&y)) if x <= y => {
                        out.push((x, from));
                        a.next();
                        if x == y {
                            b.next();
                        }
                    }
                    (_, Some(&&y)) => {
                        out.push((y, index));
                        b.next();
                    }
                    (Some(&&entry), None) => {
                        out.push(entry);
                        a.next();
                    }
                    (None, None) => return out,
                }
            }
        }
    }

    /// One operation; `outcome` is `Ok` with `reply` when `complete` is given.
    fn op(
        client: usize,
        node: usize,
        request: Value,
        span: (u64, Option<u64>),
        reply: Value,
    ) -> Event {
        let (invoke_ms, complete_ms) = (span.0, span.1);
        let outcome = match (complete_ms, reply) {
            (Some(_), Value::Object(reply)) => Outcome::Ok {
                reply: reply.into(),
            },
            (Some(_), Value::Number(code)) => Outcome::Fail {
                code: code.as_u64().unwrap(),
            },
            _ => Outcome::Info {
                reason: "no reply".into(),
            },
        };
        Event {
            client,
            node,
            request: request.as_object().unwrap().clone().into(),
            invoke_ms,
            complete_ms,
            // The harness's observation order is finer than milliseconds; these tests keep
            // one event per millisecond, so the two agree.
            invoke_seq: invoke_ms,
            complete_seq: complete_ms,
            outcome,
            phase: Phase::Main,
            during_fault: false,
        }
    }

    fn add(client: usize, x: i64, at: u64) -> Event {
        op(
            client,
            client % 2,
            json!({"type": "add", "element": x}),
            (at, Some(at + 1)),
            json!({"type": "add_ok"}),
        )
    }

    fn read(client: usize, node: usize, span: (u64, u64), set: &[i64]) -> Event {
        op(
            client,
            node,
            json!({"type": "read"}),
            (span.0, Some(span.1)),
            json!({"type": "read_ok", "value": set}),
        )
    }

    fn final_read(node: usize, at: u64, value: Value) -> Event {
        let mut e = op(
            10 + node,
            node,
            json!({"type": "read"}),
            (at, Some(at + 1)),
            json!({"type": "read_ok", "value": value}),
        );
        e.phase = Phase::Final;
        e
    }

    /// Verdicts of `set-full`, `convergence` and `monotonic-reads-per-node`, in that order.
    fn verdicts(events: Vec<Event>) -> Vec<Verdict> {
        let checks = check_sets(
            &G_SET,
            &History {
                events,
                ..History::default()
            },
            2,
        );
        let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["set-full", "convergence", "monotonic-reads-per-node"]
        );
        checks.into_iter().map(|c| c.verdict).collect()
    }

    fn detail(v: &Verdict) -> &str {
        match v {
            Verdict::Fail { detail } => detail,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn a_converged_history_passes_and_indefinite_adds_may_go_either_way() {
        let mut maybe = add(1, 2, 3);
        maybe.outcome = Outcome::Info {
            reason: "no reply".into(),
        };
        maybe.complete_ms = None;
        let v = verdicts(vec![
            add(0, 0, 0),
            add(1, 1, 1),
            maybe,
            read(0, 0, (5, 6), &[0, 1]),
            final_read(0, 100, json!([1, 0, 2])),
            final_read(1, 100, json!([0, 2, 1, 1])),
        ]);
        assert_eq!(v, [Verdict::Pass, Verdict::Pass, Verdict::Pass]);
    }

    #[test]
    fn an_acknowledged_element_missing_from_a_final_read_is_lost() {
        let v = verdicts(vec![
            add(0, 0, 0),
            add(1, 1, 1),
            final_read(0, 100, json!([0, 1])),
            final_read(1, 100, json!([0])),
        ]);
        assert!(
            detail(&v[0]).contains("lost: n1's final read lacks 1 acknowledged elements: 1"),
            "{v:?}"
        );
        assert!(detail(&v[1]).contains("n1 lacks 1: 1"), "{v:?}");
    }

    #[test]
    fn each_node_is_judged_by_its_last_final_read() {
        let v = verdicts(vec![
            add(0, 0, 0),
            final_read(0, 100, json!([])),
            final_read(1, 100, json!([])),
            final_read(0, 200, json!([0])),
            final_read(1, 200, json!([0])),
        ]);
        assert_eq!(v[..2], [Verdict::Pass, Verdict::Pass]);
    }

    #[test]
    fn elements_never_added_or_definitely_failed_are_unexpected_in_any_read() {
        let mut failed = add(1, 1, 1);
        failed.outcome = Outcome::Fail { code: 11 };
        let v = verdicts(vec![
            add(0, 0, 0),
            failed,
            read(0, 0, (5, 6), &[0, 1, 77]),
            final_read(0, 100, json!([0])),
            final_read(1, 100, json!([0])),
        ]);
        let d = detail(&v[0]);
        assert!(d.contains("unexpected: 2 elements"), "{d}");
        assert!(d.contains("1 (its add failed definitely, error 11)"), "{d}");
        assert!(d.contains("77 (never added)"), "{d}");
    }

    #[test]
    fn malformed_or_missing_final_reads_fail_and_none_at_all_is_unknown() {
        let v = verdicts(vec![
            add(0, 0, 0),
            final_read(0, 100, json!([0])),
            final_read(1, 100, json!(["0"])),
        ]);
        assert!(detail(&v[0]).contains("malformed"), "{v:?}");
        assert!(
            detail(&v[1]).contains("no well-formed final read from n1"),
            "{v:?}"
        );
        let v = verdicts(vec![add(0, 0, 0)]);
        assert!(matches!(v[0], Verdict::Unknown { .. }), "{v:?}");
    }

    #[test]
    fn a_read_that_loses_what_an_earlier_read_of_its_node_showed_breaks_monotonic_reads() {
        // c0 and c2 both talk to n0; c2's read begins after c0's completed.
        let v = verdicts(vec![
            add(0, 0, 0),
            read(0, 0, (5, 6), &[0]),
            read(2, 0, (8, 9), &[]),
        ]);
        let d = detail(&v[2]);
        assert!(
            d.contains("n0's read by c2 at 8 ms lacks 1 elements"),
            "{d}"
        );
        assert!(
            d.contains("its earlier read by c0 at 5–6 ms showed: 0"),
            "{d}"
        );
        // Overlapping reads are not ordered: either may have been served first.
        let v = verdicts(vec![
            add(0, 0, 0),
            read(0, 0, (5, 9), &[0]),
            read(2, 0, (6, 8), &[]),
        ]);
        assert_eq!(v[2], Verdict::Pass);
        // Another node's reads are another story.
        let v = verdicts(vec![
            add(0, 0, 0),
            read(0, 0, (5, 6), &[0]),
            read(1, 1, (8, 9), &[]),
        ]);
        assert_eq!(v[2], Verdict::Pass);
        // One client's reads are in order even within one millisecond.
        let v = verdicts(vec![
            add(0, 0, 0),
            read(0, 0, (5, 6), &[0]),
            read(0, 0, (6, 6), &[]),
        ]);
        assert!(detail(&v[2]).contains("by c0 at 6 ms"), "{v:?}");
        // A final read that drops an element shown during the main phase counts too.
        let v = verdicts(vec![
            add(0, 0, 0),
            read(0, 0, (5, 6), &[0]),
            final_read(0, 100, json!([])),
        ]);
        assert!(
            detail(&v[2]).contains("n0's read by c10 at 100 ms"),
            "{v:?}"
        );
    }

    #[test]
    fn the_final_value_is_the_set_in_canonical_form() {
        let a = json!({"type": "read_ok", "value": [3, 1, 2, 1]});
        let b = json!({"type": "read_ok", "value": [1, 2, 3]});
        let w = SetWorkload::new(G_SET);
        let value = |v: &Value| w.final_value(&v.as_object().unwrap().clone().into());
        assert_eq!(value(&a), Some(json!([1, 2, 3])));
        assert_eq!(value(&a), value(&b));
        assert_eq!(value(&json!({"value": 3})), None);
    }

    #[test]
    fn adds_carry_unique_elements_counted_from_zero() {
        let mut w = SetWorkload::new(G_SET);
        let mut dice = Dice::new(1);
        let elements: Vec<i64> = (0..100)
            .map(|_| w.next_op(&mut dice))
            .filter(|op| op["type"] == "add")
            .map(|op| op["element"].as_i64().unwrap())
            .collect();
        assert!(elements.len() > 50);
        assert_eq!(elements, (0..elements.len() as i64).collect::<Vec<_>>());
    }

    /// A random g-set history: adds of fresh elements (some failing or indefinite), reads at two
    /// nodes by three clients that show what was added so far, now and then missing some,
    /// showing one never added, overlapping in time or malformed, and final reads.
    fn random_history(dice: &mut Dice) -> History {
        let loss = [0.0, 0.0, 0.05, 0.3][dice.below(4) as usize];
        let mut events = Vec::new();
        let mut added: Vec<i64> = Vec::new();
        let mut at = 0;
        let ops = dice.below(60);
        for k in 0..ops + 2 {
            let final_phase = k >= ops;
            at += dice.below(3);
            let span = (at, at + dice.below(4));
            let client = if final_phase {
                10 + (k - ops) as usize
            } else {
                dice.below(3) as usize
            };
            let node = if final_phase {
                (k - ops) as usize
            } else {
                dice.below(2) as usize
            };
            let mut e = if !final_phase && dice.chance(0.5) {
                let x = added.len() as i64;
                added.push(x);
                let mut e = add(client, x, at);
                match dice.below(8) {
                    0 => e.outcome = Outcome::Fail { code: 11 },
                    1 => {
                        e.outcome = Outcome::Info {
                            reason: "no reply".into(),
                        }
                    }
                    _ => {}
                }
                e
            } else {
                let mut set: Vec<i64> = added
                    .iter()
                    .copied()
                    .filter(|_| !dice.chance(loss))
                    .collect();
                if dice.chance(0.05) {
                    set.push(500);
                }
                if dice.chance(0.3) {
                    set.reverse();
                }
                if dice.chance(0.03) {
                    op(
                        client,
                        node,
                        json!({"type": "read"}),
                        (span.0, Some(span.1)),
                        json!({"type": "read_ok", "value": ["x"]}),
                    )
                } else {
                    read(client, node, span, &set)
                }
            };
            if final_phase {
                e.phase = Phase::Final;
            }
            events.push(e);
        }
        History {
            events,
            ..History::default()
        }
    }

    #[test]
    fn the_checks_without_kept_sets_report_what_the_checks_with_them_did() {
        let mut failed: BTreeMap<String, usize> = BTreeMap::new();
        for seed in 0..3000u64 {
            let mut dice = Dice::new(seed);
            let history = random_history(&mut dice);
            let got = check_sets(&G_SET, &history, 2);
            let want = old::check_sets(&G_SET, &history, 2);
            assert_eq!(
                got, want,
                "seed {seed}; reproduce: cargo test -p converge-conformance the_checks_without_kept_sets"
            );
            for c in &want {
                if matches!(c.verdict, Verdict::Fail { .. }) {
                    *failed.entry(c.name.clone()).or_default() += 1;
                }
            }
        }
        for name in ["set-full", "convergence", "monotonic-reads-per-node"] {
            let n = failed.get(name).copied().unwrap_or(0);
            assert!((20..2980).contains(&n), "{failed:?}");
        }
    }
}
