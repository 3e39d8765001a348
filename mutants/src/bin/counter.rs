//! A `g-counter` / `pn-counter` node: a correct one, or one with a classic bug (`--bug NAME`).
//!
//! Correct design: a PN-counter CRDT. Every incarnation of a node owns one slot, keyed by
//! [`incarnation`], holding the totals of its increments and of its decrements; the value is the
//! sum of increments minus the sum of decrements, and merging takes each slot's maximum. Merging
//! is idempotent, commutative and associative, so lost, duplicated and reordered messages are
//! harmless. Invariants:
//! - Only the owner of a slot raises it, and a slot only grows, so the maximum is always the
//!   newest value.
//! - Every `GOSSIP_EVERY` the whole state goes to every peer, so whatever a partition or loss
//!   dropped is repaired within one period after it heals.
//! - Before an add is acknowledged, the new value of this node's slot is pushed to one peer
//!   (see [`Flow`]: a peer that stopped reading is not flooded). The
//!   harness has read those lines before the `add_ok`, so an acknowledged add survives this
//!   process being killed right after it, unless the network drops them too.
//! - A restarted node gets a new slot, so its fresh totals, starting from zero, never hide under
//!   the maximum of what its previous incarnation wrote; its peers hand that back by gossip.
//!
//! Bugs:
//! - `sum-merge`: merging adds a peer's slot to ours instead of taking the maximum. Merging is not
//!   idempotent: every gossip round counts the same increments again.
//! - `no-retransmit`: each add is sent to the peers once, as an operation, and nothing is ever
//!   gossiped: a message lost to a partition or to loss is never repaired.
//! - `net-merge`: each slot keeps one net value (increments minus decrements) merged by maximum.
//!   Fine for a g-counter, but in a pn-counter a slot that went down loses to its older, higher
//!   value on every peer: decrements vanish.
//! - `ack-before-replicate`: an add is acknowledged before any peer has it, and only the next
//!   gossip round spreads it: killed in between, the node takes acknowledged adds with it.

use converge_mutants::{
    ErrorCode, Fanout, Flow, Handler, Message, Node, bug_from_args, incarnation, run,
};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How often the whole state goes to every peer.
const GOSSIP_EVERY: Duration = Duration::from_millis(20);
/// Most pushes to one peer that it has not acknowledged yet.
const PUSH_WINDOW: u64 = 64;
/// Longest gap between whole states sent to a silent peer.
const HEARTBEAT: Duration = Duration::from_millis(100);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bug {
    SumMerge,
    NoRetransmit,
    NetMerge,
    AckBeforeReplicate,
}

const BUGS: &[(&str, Bug)] = &[
    ("sum-merge", Bug::SumMerge),
    ("no-retransmit", Bug::NoRetransmit),
    ("net-merge", Bug::NetMerge),
    ("ack-before-replicate", Bug::AckBeforeReplicate),
];

/// What a node keeps, by design.
enum State {
    /// The PN-counter: per slot, the total of increments and of decrements.
    Pn {
        incs: BTreeMap<String, u64>,
        decs: BTreeMap<String, u64>,
    },
    /// `net-merge`: per slot, one net value.
    Net(BTreeMap<String, i64>),
    /// `no-retransmit`: one running total of every add seen.
    Total(i64),
}

struct Counter {
    bug: Option<Bug>,
    /// This incarnation's slot.
    slot: String,
    state: State,
    flow: Flow,
}

impl Counter {
    fn new(bug: Option<Bug>) -> Self {
        Counter {
            bug,
            slot: String::new(),
            state: State::Total(0),
            flow: Flow::new(PUSH_WINDOW, HEARTBEAT),
        }
    }

    fn value(&self) -> i64 {
        match &self.state {
            State::Pn { incs, decs } => {
                let sum = |m: &BTreeMap<String, u64>| -> i128 {
                    m.values().map(|&v| i128::from(v)).sum()
                };
                let net = sum(incs) - sum(decs);
                // Only a broken merge (sum-merge) gets anywhere near the limits; clamp rather
                // than wrap, so its over-count stays visible.
                net.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
            }
            State::Net(net) => net.values().fold(0i64, |a, &v| a.saturating_add(v)),
            State::Total(total) => *total,
        }
    }

    fn add(&mut self, node: &Node, delta: i64) {
        match &mut self.state {
            State::Pn { incs, decs } => {
                let (target, magnitude) = if delta >= 0 {
                    (incs, delta.unsigned_abs())
                } else {
                    (decs, delta.unsigned_abs())
                };
                let slot = target.entry(self.slot.clone()).or_insert(0);
                *slot = slot.saturating_add(magnitude);
                self.push_slot(node);
            }
            State::Net(net) => {
                let slot = net.entry(self.slot.clone()).or_insert(0);
                *slot = slot.saturating_add(delta);
                self.push_slot(node);
            }
            State::Total(total) => {
                *total = total.saturating_add(delta);
                for peer in node.peers() {
                    node.send(peer, json!({"type": "delta", "delta": delta}));
                }
            }
        }
    }

    /// Pushes this node's own slot to the peers: a part of a state is a state too.
    fn push_slot(&mut self, node: &Node) {
        if self.bug == Some(Bug::AckBeforeReplicate) {
            return;
        }
        let slot = self.slot.as_str();
        let body = match &self.state {
            State::Pn { incs, decs } => {
                let inc = incs.get(slot).copied().unwrap_or(0);
                let dec = decs.get(slot).copied().unwrap_or(0);
                json!({"type": "push", "incs": {slot: inc}, "decs": {slot: dec}})
            }
            State::Net(net) => {
                let value = net.get(slot).copied().unwrap_or(0);
                json!({"type": "push", "net": {slot: value}})
            }
            State::Total(_) => return,
        };
        self.flow.push(node, node.peers(), Fanout::One, &body);
    }

    fn gossip_body(&self) -> Option<Value> {
        match &self.state {
            State::Pn { incs, decs } => Some(json!({"type": "gossip", "incs": incs, "decs": decs})),
            State::Net(net) => Some(json!({"type": "gossip", "net": net})),
            State::Total(_) => None,
        }
    }

    fn merge(&mut self, msg: &Message) {
        let bug = self.bug;
        let slot = self.slot.as_str();
        match &mut self.state {
            State::Pn { incs, decs } => {
                for (mine, field) in [(incs, "incs"), (decs, "decs")] {
                    for (k, v) in entries(msg, field, Value::as_u64) {
                        let entry = mine.entry(k.clone()).or_insert(0);
                        *entry = if bug == Some(Bug::SumMerge) && k != slot {
                            entry.saturating_add(v)
                        } else {
                            (*entry).max(v)
                        };
                    }
                }
            }
            State::Net(net) => {
                for (k, v) in entries(msg, "net", Value::as_i64) {
                    let entry = net.entry(k.clone()).or_insert(v);
                    *entry = (*entry).max(v);
                }
            }
            State::Total(_) => {}
        }
    }
}

/// The well-formed `slot: value` pairs of a gossiped map; anything malformed is skipped.
fn entries<'a, T>(
    msg: &'a Message,
    field: &str,
    number: fn(&Value) -> Option<T>,
) -> impl Iterator<Item = (&'a String, T)> {
    msg.get(field)
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(Map::iter)
        .filter_map(move |(k, v)| number(v).map(|v| (k, v)))
}

impl Handler for Counter {
    fn init(&mut self, node: &Node) {
        self.slot = incarnation(node.id());
        self.flow = Flow::new(PUSH_WINDOW, HEARTBEAT);
        self.state = match self.bug {
            None | Some(Bug::SumMerge | Bug::AckBeforeReplicate) => State::Pn {
                incs: BTreeMap::new(),
                decs: BTreeMap::new(),
            },
            Some(Bug::NetMerge) => State::Net(BTreeMap::new()),
            Some(Bug::NoRetransmit) => State::Total(0),
        };
        eprintln!("{} starts as slot {}", node.id(), self.slot);
    }

    fn message(&mut self, node: &Node, msg: Message) {
        self.flow.receive(node, &msg, Instant::now());
        match msg.kind() {
            "add" => match msg.get("delta").and_then(Value::as_i64) {
                Some(delta) => {
                    self.add(node, delta);
                    node.reply(&msg, json!({"type": "add_ok"}));
                }
                None => node.error(
                    &msg,
                    ErrorCode::MalformedRequest,
                    "add without an integer delta",
                ),
            },
            "read" => node.reply(&msg, json!({"type": "read_ok", "value": self.value()})),
            "gossip" | "push" => self.merge(&msg),
            "push_ok" => {}
            "delta" => {
                if let (State::Total(total), Some(delta)) =
                    (&mut self.state, msg.get("delta").and_then(Value::as_i64))
                {
                    *total = total.saturating_add(delta);
                }
            }
            _ => node.unknown(&msg),
        }
    }

    fn tick(&mut self, node: &Node, now: Instant) {
        self.flow.send_acks(node);
        if let Some(body) = self.gossip_body() {
            for peer in node.peers() {
                if self.flow.may_send_state(peer, now) {
                    node.send(peer, body.clone());
                }
            }
        }
    }
}

fn main() -> ExitCode {
    let bug = bug_from_args(BUGS);
    // `no-retransmit` never gossips, so it needs no timer.
    let tick = (bug != Some(Bug::NoRetransmit)).then_some(GOSSIP_EVERY);
    run(Counter::new(bug), tick)
}
