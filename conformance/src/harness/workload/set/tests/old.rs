//! The set checks as they were before they stopped keeping every read's set (commit
//! d8d14cf), verbatim: the reference for every verdict and message.

use super::super::check::{SHOWN, lacking, node_name, some};
use super::super::wire::{SetShape, read_set};
use crate::harness::check::{Check, Verdict};
use crate::harness::history::{Event, History, Outcome, Phase};
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
            let Some(x) = e.request.element() else {
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
