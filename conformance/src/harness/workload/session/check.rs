//! The session guarantees' checks ([`session_checks`]): read-your-writes, monotonic reads,
//! monotonic writes, writes-follow-reads, and a token on every reply; and the session workload's
//! wire names ([`SESSION`]), which the shared set checks read the history with too.
//!
//! Invariant: memory is a few words per operation and per added element, and the sets of a few
//! reads at a time (each parsed again from the history when needed), however long the run.

use crate::harness::body::Kind;
use crate::harness::check::{Check, Verdict};
use crate::harness::history::{Event, History, Outcome};
use crate::harness::workload::set::SetShape;
use std::collections::{BTreeMap, BTreeSet};

/// The session workload's wire names, for the shared set checks.
pub(super) const SESSION: SetShape = SetShape {
    name: "session",
    add: "add",
    adding: |element| Kind::AddElement { element },
    read_field: "value",
};

/// What an element's writer had shown before adding it, by reference into the history rather
/// than as copies: a copy of the writer's earlier adds and of its last read per element grew with
/// the square of the run.
struct BeforeAdd {
    /// How many of the writer's acknowledged adds came before it: its earlier adds (monotonic
    /// writes) are the first `adds` of [`ClientLog::acked`].
    adds: usize,
    /// The writer's last successful read before it (its index in the history), whose set is
    /// what the writer had read (writes follow reads); `None` for nothing.
    read: Option<usize>,
    /// The writer.
    client: usize,
    /// Which of the writer's adds this was (1, 2, ...): a later one's `adds` contain an
    /// earlier one's.
    nth: usize,
}

/// What one client did, in order: its operations (by index in the history) and the elements
/// of its acknowledged adds.
struct ClientLog {
    events: Vec<usize>,
    acked: Vec<i64>,
}

/// The set a successful read showed, sorted and without repeats.
pub(super) fn read_set(e: &Event) -> Option<Vec<i64>> {
    if e.kind() != "read" {
        return None;
    }
    // Malformed reads are reported by the shared `set-full` check; here they show nothing.
    e.reply()
        .and_then(|r| crate::harness::workload::set::read_set(r, SESSION.read_field).ok())
}

pub(super) fn element(e: &Event) -> Option<i64> {
    e.request.element()
}

pub(super) fn added(e: &Event) -> Option<i64> {
    (e.kind() == "add" && matches!(e.outcome, Outcome::Ok { .. }))
        .then(|| element(e))
        .flatten()
}

/// Whether the sorted `a` is a subset of the sorted `b`.
fn subset(a: &[i64], b: &[i64]) -> bool {
    a.len() <= b.len() && missing(a, b).next().is_none()
}

/// The elements of the sorted `a` that the sorted `b` lacks, in ascending order.
fn missing<'a>(a: &'a [i64], b: &'a [i64]) -> impl Iterator<Item = &'a i64> + 'a {
    let mut b = b.iter().peekable();
    a.iter().filter(move |x| {
        while b.next_if(|y| y < x).is_some() {}
        b.peek() != Some(x)
    })
}

/// The first `k` of a client's acknowledged adds that `seen` (sorted) lacks, ascending and
/// without repeats, at most `limit` of them.
fn adds_missing(acked: &[i64], k: usize, seen: &[i64], limit: usize) -> Vec<i64> {
    let mut lost: Vec<i64> = acked[..k]
        .iter()
        .copied()
        .filter(|x| seen.binary_search(x).is_err())
        .collect();
    lost.sort_unstable();
    lost.dedup();
    lost.truncate(limit);
    lost
}

/// Whether `seen` (sorted) holds the first `k` of a client's acknowledged adds.
fn has_adds(acked: &[i64], k: usize, seen: &[i64]) -> bool {
    acked[..k].iter().all(|x| seen.binary_search(x).is_ok())
}

/// The four session guarantees, plus tokens on every reply.
///
/// Memory: a few words per operation and per added element, and the sets of a few reads at a
/// time (each parsed again from the history when needed), however long the run.
pub(super) fn session_checks(history: &History) -> Vec<Check> {
    let mut clients: BTreeMap<usize, ClientLog> = BTreeMap::new();
    for (i, e) in history.events.iter().enumerate() {
        clients
            .entry(e.client)
            .or_insert(ClientLog {
                events: Vec::new(),
                acked: Vec::new(),
            })
            .events
            .push(i);
    }
    let missing_token = history
        .events
        .iter()
        .find(|e| e.reply().is_some_and(|r| r.token.is_none()));
    let tokens = Check::from_bool("tokens", false, missing_token.is_none(), || {
        format!(
            "reply without a token: {:?}",
            missing_token.map(|e| &e.outcome)
        )
    });

    let mut ryw = None;
    let mut mr = None;
    // For each element: the client that added it and everything that client must have shown
    // before it (its earlier acknowledged adds, and what it had read).
    let mut before_add: BTreeMap<i64, BeforeAdd> = BTreeMap::new();
    // Per client: whether what it had read at each of its adds contains what it had read at its
    // previous add (true unless monotonic reads failed), so that the latest add covers them all.
    let mut reads_nested: BTreeMap<usize, bool> = BTreeMap::new();
    for (client, log) in &mut clients {
        let mut my_adds: BTreeSet<i64> = BTreeSet::new();
        // The client's last successful read: where, and what it showed.
        let mut last_read: Option<(usize, Vec<i64>)> = None;
        let mut adds = 0usize;
        let mut nested = true;
        // What the client had read at its previous add: which read, and its set (kept only
        // when it is no longer the last read).
        let mut read_at_last_add: Option<(Option<usize>, Option<Vec<i64>>)> = None;
        for &i in &log.events {
            let e = &history.events[i];
            if let Some(seen) = read_set(e) {
                if ryw.is_none() && !my_adds.iter().all(|x| seen.binary_search(x).is_ok()) {
                    let lost: Vec<&i64> = my_adds
                        .iter()
                        .filter(|x| seen.binary_search(x).is_err())
                        .take(5)
                        .collect();
                    ryw = Some(format!(
                        "client c{client} read at n{} without its own earlier adds {lost:?}",
                        e.node
                    ));
                }
                if let Some((_, prev)) = &last_read
                    && mr.is_none()
                    && !subset(prev, &seen)
                {
                    let gone: Vec<&i64> = missing(prev, &seen).take(5).collect();
                    mr = Some(format!(
                        "client c{client} read at n{} lost {gone:?} that its previous read returned",
                        e.node
                    ));
                }
                // The read at the previous add is about to stop being the last read: keep its
                // set for the nesting test at the next add.
                if let Some((Some(at), set @ None)) = &mut read_at_last_add
                    && let Some((j, prev)) = last_read.take()
                    && j == *at
                {
                    *set = Some(prev);
                }
                last_read = Some((i, seen));
            }
            if e.kind() == "add"
                && let Some(element) = element(e)
            {
                let read = last_read.as_ref().map(|(j, _)| *j);
                if let Some((prev_at, prev_set)) = &read_at_last_add
                    && *prev_at != read
                {
                    let empty = Vec::new();
                    let prev = prev_set.as_ref().unwrap_or(&empty);
                    let now = last_read.as_ref().map_or(&empty, |(_, s)| s);
                    nested &= subset(prev, now);
                }
                read_at_last_add = Some((read, None));
                adds += 1;
                before_add.insert(
                    element,
                    BeforeAdd {
                        adds: log.acked.len(),
                        read,
                        client: *client,
                        nth: adds,
                    },
                );
            }
            if let Some(element) = added(e) {
                my_adds.insert(element);
                log.acked.push(element);
            }
        }
        reads_nested.insert(*client, nested);
    }
    // The set of the read at `j`, parsed from the history; each client's last one is kept,
    // since consecutive reads mostly ask for the same.
    let mut parsed: BTreeMap<usize, (usize, Vec<i64>)> = BTreeMap::new();
    let mut set_of = |client: usize, j: usize| -> Vec<i64> {
        match parsed.get(&client) {
            Some((at, set)) if *at == j => set.clone(),
            _ => {
                let set = read_set(&history.events[j]).unwrap_or_default();
                parsed.insert(client, (j, set.clone()));
                set
            }
        }
    };
    let mut mw = None;
    let mut wfr = None;
    for e in &history.events {
        if mw.is_some() && wfr.is_some() {
            // Both found: nothing below could change them.
            break;
        }
        let Some(seen) = read_set(e) else { continue };
        // A fast pass that decides whether this read breaks either guarantee. A client's adds
        // only grow, so of the elements shown that one client added, the latest add's earlier
        // adds contain every other's: checking it checks them all. The same holds for what the
        // client had read when its reads are nested; otherwise every element is checked.
        let mut latest: BTreeMap<usize, &BeforeAdd> = BTreeMap::new();
        let mut every_read = false;
        for element in &seen {
            let Some(b) = before_add.get(element) else {
                continue;
            };
            let slot = latest.entry(b.client).or_insert(b);
            if b.nth > slot.nth {
                *slot = b;
            }
            every_read |= !reads_nested.get(&b.client).copied().unwrap_or(false);
        }
        let mw_ok = mw.is_some()
            || latest
                .values()
                .all(|b| has_adds(&clients[&b.client].acked, b.adds, &seen));
        let wfr_ok = wfr.is_some()
            || (!every_read
                && latest
                    .values()
                    .all(|b| b.read.is_none_or(|j| subset(&set_of(b.client, j), &seen))));
        if mw_ok && wfr_ok {
            continue;
        }
        // Something is wrong here (or the reads were not nested): the element-by-element pass
        // names the first element at fault, in ascending order, as it always has. Many elements
        // share a writer's earlier adds or read, so each answer is remembered for this read.
        let mut adds_ok: BTreeMap<(usize, usize), bool> = BTreeMap::new();
        let mut read_ok: BTreeMap<usize, bool> = BTreeMap::new();
        for element in &seen {
            let Some(b) = before_add.get(element) else {
                continue;
            };
            let acked = &clients[&b.client].acked;
            if mw.is_none()
                && !*adds_ok
                    .entry((b.client, b.adds))
                    .or_insert_with(|| has_adds(acked, b.adds, &seen))
            {
                let missing = adds_missing(acked, b.adds, &seen, 5);
                mw = Some(format!(
                    "read by c{} at n{} shows {element} but not {missing:?}, added before it by the same client",
                    e.client, e.node
                ));
            }
            if wfr.is_none()
                && let Some(j) = b.read
                && !*read_ok
                    .entry(j)
                    .or_insert_with(|| subset(&set_of(b.client, j), &seen))
            {
                let had_read = set_of(b.client, j);
                let missing: Vec<&i64> = missing(&had_read, &seen).take(5).collect();
                wfr = Some(format!(
                    "read by c{} at n{} shows {element} but not {missing:?}, which its writer had read before adding it",
                    e.client, e.node
                ));
            }
        }
    }
    let verdict = |found: Option<String>| match found {
        None => Verdict::Pass,
        Some(detail) => Verdict::Fail { detail },
    };
    vec![
        tokens,
        Check::new("read-your-writes", false, verdict(ryw)),
        Check::new("monotonic-reads", false, verdict(mr)),
        Check::new("monotonic-writes", false, verdict(mw)),
        Check::new("writes-follow-reads", false, verdict(wfr)),
    ]
}
