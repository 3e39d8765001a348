//! The `session` workload: clients that hop between nodes and carry session tokens, over a
//! grow-only set of unique elements.
//!
//! Every reply carries an opaque `token`; a client sends the last token it received with its next
//! request, to whichever node that goes to. A node must answer only once it covers the token (or
//! refuse with a definite error), which is what gives a session its guarantees even when it moves
//! between regions. Reads may name a consistency level.
//!
//! Because every element is added once, each guarantee becomes a sound set inclusion:
//! - read-your-writes: a read contains every element its client added before it;
//! - monotonic reads: a client's read contains everything its previous reads returned;
//! - monotonic writes: a read that contains a client's add contains that client's earlier adds;
//! - writes-follow-reads: a read that contains a client's add contains everything that client
//!   had read before making it.

use super::Workload;
use super::set::{SetShape, canonical, check_sets};
use crate::harness::check::{Check, Verdict};
use crate::harness::history::{Body, Event, History, Outcome};
use crate::harness::rng::Dice;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// The session workload's wire names, for the shared set checks.
const SESSION: SetShape = SetShape {
    name: "session",
    add: "add",
    element: "element",
    read_field: "value",
};

/// Consistency levels a request may name.
pub const LEVELS: [&str; 3] = ["LOCAL_ONE", "LOCAL_QUORUM", "GLOBAL_QUORUM"];

#[derive(Default)]
pub(super) struct Session {
    next_element: u64,
    tokens: BTreeMap<usize, Value>,
}

impl Workload for Session {
    fn name(&self) -> &'static str {
        "session"
    }

    fn next_op(&mut self, dice: &mut Dice) -> Value {
        self.next_op_for(0, dice)
    }

    fn next_op_for(&mut self, client: usize, dice: &mut Dice) -> Value {
        let mut body = if dice.below(2) == 0 {
            self.next_element += 1;
            json!({"type": "add", "element": self.next_element})
        } else {
            json!({"type": "read"})
        };
        // Most requests leave the level to the node's default; some name one.
        if dice.below(4) == 0 {
            body["consistency"] = json!(LEVELS[dice.below(3) as usize]);
        }
        if let Some(token) = self.tokens.get(&client) {
            body["token"] = token.clone();
        }
        body
    }

    fn min_nodes(&self) -> usize {
        // On one node every session guarantee holds trivially: there is nowhere to hop to.
        2
    }

    fn node_for(&mut self, _client: usize, nodes: usize, dice: &mut Dice) -> usize {
        // Sessions move: every request goes to a node drawn at random.
        dice.below(nodes as u64) as usize
    }

    fn observe(&mut self, client: usize, reply: &Body) {
        if let Some(token) = reply.get("token") {
            self.tokens.insert(client, token.clone());
        }
    }

    fn order_independent(&self) -> bool {
        true
    }

    fn final_read(&self) -> Option<Value> {
        Some(json!({"type": "read"}))
    }

    fn final_value(&self, reply: &Body) -> Option<Value> {
        canonical(reply, SESSION.read_field)
    }

    fn unexplained_change(&self, _: &History, from: &Value, to: &Value) -> Option<String> {
        super::set::lost_after_agreement(from, to)
    }

    fn check(&self, history: &History, nodes: usize) -> Vec<Check> {
        let mut checks = check_sets(&SESSION, history, nodes);
        checks.extend(session_checks(history));
        checks.push(super::levels::check(
            history,
            nodes,
            super::levels::Layout::Unknown,
        ));
        checks
    }
}

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
fn read_set(e: &Event) -> Option<Vec<i64>> {
    if e.kind() != "read" {
        return None;
    }
    // Malformed reads are reported by the shared `set-full` check; here they show nothing.
    e.reply()
        .and_then(|r| super::set::read_set(r, SESSION.read_field).ok())
}

fn element(e: &Event) -> Option<i64> {
    e.request.get(SESSION.element).and_then(Value::as_i64)
}

fn added(e: &Event) -> Option<i64> {
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
        .find(|e| e.reply().is_some_and(|r| !r.contains_key("token")));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::history::Phase;
    use serde_json::json;

    fn event(client: usize, node: usize, request: Value, at: u64, reply: Value) -> Event {
        let Value::Object(reply) = reply else {
            unreachable!("replies here are objects")
        };
        Event {
            client,
            node,
            request: request.as_object().cloned().unwrap_or_default().into(),
            invoke_ms: at,
            complete_ms: Some(at + 1),
            invoke_seq: 2 * at,
            complete_seq: Some(2 * at + 1),
            outcome: Outcome::Ok {
                reply: reply.into(),
            },
            phase: Phase::Main,
            during_fault: false,
        }
    }

    fn set_of(e: &Event) -> Option<BTreeSet<i64>> {
        read_set(e).map(|v| v.into_iter().collect())
    }

    /// The session checks as they were before they stopped copying sets per element (commit
    /// d8d14cf), verbatim: the reference for every check's verdict and message.
    mod old {
        use super::super::SESSION;
        use crate::harness::check::{Check, Verdict};
        use crate::harness::history::{Event, History, Outcome};
        use serde_json::Value;
        use std::collections::{BTreeMap, BTreeSet};

        /// What an element's writer had shown before adding it.
        struct BeforeAdd {
            /// The writer's earlier acknowledged adds (monotonic writes).
            adds: BTreeSet<i64>,
            /// What the writer had last read (writes follow reads).
            read: BTreeSet<i64>,
            /// The writer.
            client: usize,
            /// Which of the writer's adds this was (1, 2, ...): a later one's `adds` contain an
            /// earlier one's.
            nth: usize,
        }

        /// What one client did, in order: its acknowledged adds and successful reads.
        struct ClientLog<'a> {
            events: Vec<&'a Event>,
        }

        fn read_set(e: &Event) -> Option<BTreeSet<i64>> {
            if e.kind() != "read" {
                return None;
            }
            // Malformed reads are reported by the shared `set-full` check; here they show nothing.
            e.reply()
                .and_then(|r| crate::harness::workload::set::read_set(r, SESSION.read_field).ok())
                .map(|v| v.into_iter().collect())
        }

        fn element(e: &Event) -> Option<i64> {
            e.request.get(SESSION.element).and_then(Value::as_i64)
        }

        fn added(e: &Event) -> Option<i64> {
            (e.kind() == "add" && matches!(e.outcome, Outcome::Ok { .. }))
                .then(|| element(e))
                .flatten()
        }

        /// The four session guarantees, plus tokens on every reply.
        pub(super) fn session_checks(history: &History) -> Vec<Check> {
            let mut clients: BTreeMap<usize, ClientLog<'_>> = BTreeMap::new();
            for e in &history.events {
                clients
                    .entry(e.client)
                    .or_insert(ClientLog { events: Vec::new() })
                    .events
                    .push(e);
            }
            let missing_token = history
                .events
                .iter()
                .find(|e| e.reply().is_some_and(|r| !r.contains_key("token")));
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
            for (client, log) in &clients {
                let mut my_adds: BTreeSet<i64> = BTreeSet::new();
                let mut last_read: Option<BTreeSet<i64>> = None;
                let mut adds = 0usize;
                let mut nested = true;
                let mut read_at_last_add: Option<BTreeSet<i64>> = None;
                for e in &log.events {
                    if let Some(seen) = read_set(e) {
                        if ryw.is_none() && !my_adds.is_subset(&seen) {
                            let lost: Vec<&i64> = my_adds.difference(&seen).take(5).collect();
                            ryw = Some(format!(
                                "client c{client} read at n{} without its own earlier adds {lost:?}",
                                e.node
                            ));
                        }
                        if let Some(prev) = &last_read
                            && mr.is_none()
                            && !prev.is_subset(&seen)
                        {
                            let gone: Vec<&i64> = prev.difference(&seen).take(5).collect();
                            mr = Some(format!(
                                "client c{client} read at n{} lost {gone:?} that its previous read returned",
                                e.node
                            ));
                        }
                        last_read = Some(seen);
                    }
                    if e.kind() == "add"
                        && let Some(element) = element(e)
                    {
                        let read = last_read.clone().unwrap_or_default();
                        if let Some(prev) = &read_at_last_add {
                            nested &= prev.is_subset(&read);
                        }
                        read_at_last_add = Some(read.clone());
                        adds += 1;
                        before_add.insert(
                            element,
                            BeforeAdd {
                                adds: my_adds.clone(),
                                read,
                                client: *client,
                                nth: adds,
                            },
                        );
                    }
                    if let Some(element) = added(e) {
                        my_adds.insert(element);
                    }
                }
                reads_nested.insert(*client, nested);
            }
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
                let mw_ok = mw.is_some() || latest.values().all(|b| b.adds.is_subset(&seen));
                let wfr_ok = wfr.is_some()
                    || (!every_read && latest.values().all(|b| b.read.is_subset(&seen)));
                if mw_ok && wfr_ok {
                    continue;
                }
                // Something is wrong here (or the reads were not nested): the element-by-element pass
                // names the first element at fault, in ascending order, as it always has.
                for element in &seen {
                    let Some(b) = before_add.get(element) else {
                        continue;
                    };
                    if mw.is_none() && !b.adds.is_subset(&seen) {
                        let missing: Vec<&i64> = b.adds.difference(&seen).take(5).collect();
                        mw = Some(format!(
                            "read by c{} at n{} shows {element} but not {missing:?}, added before it by the same client",
                            e.client, e.node
                        ));
                    }
                    if wfr.is_none() && !b.read.is_subset(&seen) {
                        let missing: Vec<&i64> = b.read.difference(&seen).take(5).collect();
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
    }

    /// The element-by-element monotonic-writes and writes-follow-reads pass as it was before the
    /// fast pass: the reference the fast pass must agree with, message for message.
    fn reference(history: &History) -> (Option<String>, Option<String>) {
        let mut clients: BTreeMap<usize, Vec<&Event>> = BTreeMap::new();
        for e in &history.events {
            clients.entry(e.client).or_default().push(e);
        }
        let mut before_add: BTreeMap<i64, (BTreeSet<i64>, BTreeSet<i64>)> = BTreeMap::new();
        for events in clients.values() {
            let mut my_adds = BTreeSet::new();
            let mut last_read: Option<BTreeSet<i64>> = None;
            for e in events {
                if let Some(seen) = set_of(e) {
                    last_read = Some(seen);
                }
                if e.kind() == "add"
                    && let Some(element) = element(e)
                {
                    before_add.insert(
                        element,
                        (my_adds.clone(), last_read.clone().unwrap_or_default()),
                    );
                }
                if let Some(element) = added(e) {
                    my_adds.insert(element);
                }
            }
        }
        let (mut mw, mut wfr) = (None, None);
        for e in &history.events {
            let Some(seen) = set_of(e) else { continue };
            for element in &seen {
                let Some((earlier_adds, had_read)) = before_add.get(element) else {
                    continue;
                };
                if mw.is_none() && !earlier_adds.is_subset(&seen) {
                    let missing: Vec<&i64> = earlier_adds.difference(&seen).take(5).collect();
                    mw = Some(format!(
                        "read by c{} at n{} shows {element} but not {missing:?}, added before it by the same client",
                        e.client, e.node
                    ));
                }
                if wfr.is_none() && !had_read.is_subset(&seen) {
                    let missing: Vec<&i64> = had_read.difference(&seen).take(5).collect();
                    wfr = Some(format!(
                        "read by c{} at n{} shows {element} but not {missing:?}, which its writer had read before adding it",
                        e.client, e.node
                    ));
                }
            }
        }
        (mw, wfr)
    }

    fn detail(checks: &[Check], name: &str) -> Option<String> {
        match &checks.iter().find(|c| c.name == name)?.verdict {
            Verdict::Fail { detail } => Some(detail.clone()),
            _ => None,
        }
    }

    /// A random session history: three clients (or more) add fresh elements and read sets that
    /// are what was added so far, now and then missing a few (so that every guarantee sometimes
    /// fails, and reads are sometimes not nested), some of them malformed or without a token.
    fn random_history(dice: &mut Dice, ops: u64) -> History {
        let mut events = Vec::new();
        let mut added: Vec<i64> = Vec::new();
        // Per history, how often a read misses an element: never, rarely or often.
        let loss = [0.0, 0.0, 0.02, 0.1, 0.3][dice.below(5) as usize];
        let clients = 3 + dice.below(3);
        for at in 0..ops {
            let client = dice.below(clients) as usize;
            let node = dice.below(3) as usize;
            let mut e = if dice.chance(0.4) {
                // Now and then an element is added again, which the workload never does.
                let x = if dice.chance(0.03) && !added.is_empty() {
                    added[dice.below(added.len() as u64) as usize]
                } else {
                    added.len() as i64
                };
                added.push(x);
                let req = json!({"type": "add", "element": x});
                event(client, node, req, at, json!({"type": "add_ok", "token": 1}))
            } else {
                let set: Vec<i64> = added
                    .iter()
                    .copied()
                    .filter(|_| !dice.chance(loss))
                    .collect();
                let reply = if dice.chance(0.01) {
                    json!({"type": "read_ok", "value": "x", "token": 1})
                } else {
                    json!({"type": "read_ok", "value": set, "token": 1})
                };
                event(client, node, json!({"type": "read"}), at, reply)
            };
            match dice.below(40) {
                0 => e.outcome = Outcome::Fail { code: 11 },
                1 => {
                    e.outcome = Outcome::Info {
                        reason: "no reply".into(),
                    }
                }
                2 => {
                    e.outcome = Outcome::Ok {
                        reply: json!({"type": "add_ok"})
                            .as_object()
                            .cloned()
                            .unwrap_or_default()
                            .into(),
                    }
                }
                _ => {}
            }
            events.push(e);
        }
        History {
            events,
            ..History::default()
        }
    }

    #[test]
    fn the_fast_pass_reports_what_the_element_by_element_pass_did() {
        let (mut failing, mut passing) = (0, 0);
        for seed in 0..1000u64 {
            let mut dice = Dice::new(seed);
            let history = random_history(&mut dice, 60);
            let checks = session_checks(&history);
            let got = (
                detail(&checks, "monotonic-writes"),
                detail(&checks, "writes-follow-reads"),
            );
            let want = reference(&history);
            assert_eq!(
                got, want,
                "seed {seed}; reproduce: cargo test -p converge-conformance the_fast_pass"
            );
            if want == (None, None) {
                passing += 1;
            } else {
                failing += 1;
            }
        }
        // Both kinds of history were drawn, so both paths were compared.
        assert!(
            failing > 20 && passing > 20,
            "{failing} failing, {passing} passing"
        );
    }

    #[test]
    fn the_checks_without_copies_report_what_the_checks_with_copies_did() {
        let mut failed: BTreeMap<String, usize> = BTreeMap::new();
        for seed in 0..2000u64 {
            let mut dice = Dice::new(seed);
            let ops = 1 + dice.below(80);
            let history = random_history(&mut dice, ops);
            let got = session_checks(&history);
            let want = old::session_checks(&history);
            assert_eq!(
                got, want,
                "seed {seed}; reproduce: cargo test -p converge-conformance the_checks_without_copies"
            );
            let session = Session::default();
            assert_eq!(
                session.check(&history, 3)[..3],
                crate::harness::workload::set::tests::old::check_sets(&SESSION, &history, 3)[..],
                "seed {seed}; reproduce: cargo test -p converge-conformance the_checks_without_copies"
            );
            for c in &want {
                if matches!(c.verdict, Verdict::Fail { .. }) {
                    *failed.entry(c.name.clone()).or_default() += 1;
                }
            }
        }
        // Every check failed in some histories and passed in others.
        for name in [
            "tokens",
            "read-your-writes",
            "monotonic-reads",
            "monotonic-writes",
            "writes-follow-reads",
        ] {
            let n = failed.get(name).copied().unwrap_or(0);
            assert!((20..1980).contains(&n), "{failed:?}");
        }
    }
}
