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

    fn check(&self, history: &History, nodes: usize) -> Vec<Check> {
        let mut checks = check_sets(&SESSION, history, nodes);
        checks.extend(session_checks(history));
        checks
    }
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
        .and_then(|r| super::set::read_set(r, SESSION.read_field).ok())
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
    let mut before_add: BTreeMap<i64, (BTreeSet<i64>, BTreeSet<i64>)> = BTreeMap::new();
    for (client, log) in &clients {
        let mut my_adds: BTreeSet<i64> = BTreeSet::new();
        let mut last_read: Option<BTreeSet<i64>> = None;
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
    let mut mw = None;
    let mut wfr = None;
    for e in &history.events {
        let Some(seen) = read_set(e) else { continue };
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
