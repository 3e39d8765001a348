//! The set checks that `g-set`, `broadcast` and the session workload share: `set-full`,
//! `convergence` and `monotonic-reads-per-node` ([`check_sets`]), and what may explain a final
//! value that moved after agreement ([`lost_after_agreement`]).
//!
//! Invariants: acknowledged adds must be visible, indefinite ones may or may not be, and an
//! element whose add failed definitely, or that was never added, must never be; reads are parsed
//! from the history a few at a time, so the checks never hold a second copy of every read; a
//! failure's detail names at most [`SHOWN`] elements and always gives the count.

use super::wire::{SetShape, read_set};
use crate::harness::check::{Check, Verdict};
use crate::harness::history::{Event, History, Outcome, Phase};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// At most this many elements are named in a failure's detail; the count is always given.
pub(super) const SHOWN: usize = 5;

/// `n3`, for details.
pub(super) fn node_name(node: usize) -> String {
    format!("n{node}")
}

/// A few elements: `4, 17, 22` or `1, 2, 3, 4, 5, …`.
pub(super) fn some(elements: &[i64]) -> String {
    let shown: Vec<String> = elements.iter().take(SHOWN).map(i64::to_string).collect();
    let more = if elements.len() > SHOWN { ", …" } else { "" };
    format!("{}{more}", shown.join(", "))
}

/// Elements of `want` (sorted) that `have` (sorted) lacks, in one pass over both.
pub(super) fn lacking<'a>(have: &[i64], want: impl Iterator<Item = &'a i64>) -> Vec<i64> {
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
///
/// Memory: a few words per read and per element; the sets themselves are parsed from the
/// history a few at a time, so the checks never hold a second copy of every read.
pub(in crate::harness::workload) fn check_sets(
    shape: &SetShape,
    history: &History,
    nodes: usize,
) -> Vec<Check> {
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

/// For grow-only sets (g-set, broadcast, session): once every node agreed on `from`, a read
/// `to` that lacks some of its elements lost what the whole cluster had, and no add explains a
/// loss. A read that grew is explained by adds still arriving (what it may show is the other
/// checks' business).
pub(in crate::harness::workload) fn lost_after_agreement(
    from: &Value,
    to: &Value,
) -> Option<String> {
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
