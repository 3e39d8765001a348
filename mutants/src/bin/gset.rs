//! A `g-set` node: a correct one, or one with a classic bug (`--bug NAME`).
//!
//! Correct design: a grow-only set merged by union, with full-state gossip. Invariants:
//! - Every `TICK` the whole set goes to every peer (less often to a silent one, see [`Flow`]), so
//!   whatever a partition or loss dropped is repaired within one period after it heals; union is
//!   idempotent, commutative and associative, so duplicated and reordered gossip is harmless.
//! - Before an add is acknowledged, the element is pushed to one peer (a one-element set is a
//!   state too), so an acknowledged add survives this process being killed right after it.
//! - A node answers no read until it has merged a full state from every peer since its `init`:
//!   a node restarted after a kill has lost its set, and answering from it would show an older
//!   state than the one its previous incarnation showed. Each of those reads waits (bounded, at
//!   most `WAIT_MAX`) and is refused with error 11 if the peers stay silent. To catch up fast, a
//!   node asks every peer for its state (`sync`) as soon as it starts.
//!
//! Bugs:
//! - `no-retransmit`: each element is sent to the peers once, when added, and nothing is ever
//!   gossiped: an element lost to a partition or to loss is missing on that peer for good.
//! - `read-local-only`: gossip is sent and received but never merged, so every node only ever
//!   shows the elements its own clients added.

use converge_mutants::{
    ErrorCode, Fanout, Flow, Handler, Message, Node, Parked, bug_from_args, run,
};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How often the whole set goes to every peer. The set grows with the run, so this is slower
/// than the counter's gossip: a paused peer's input pipe has to hold every gossip sent to it
/// during its pause.
const TICK: Duration = Duration::from_millis(50);
/// Longest a read waits for this node to catch up from its peers.
const WAIT_MAX: Duration = Duration::from_millis(500);
/// Most reads waiting at once; more are refused at once.
const PARKED_MAX: usize = 1024;
/// Most pushes to one peer that it has not acknowledged yet.
const PUSH_WINDOW: u64 = 64;
/// Longest gap between whole states sent to a silent peer.
const HEARTBEAT: Duration = Duration::from_millis(200);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bug {
    NoRetransmit,
    ReadLocalOnly,
}

const BUGS: &[(&str, Bug)] = &[
    ("no-retransmit", Bug::NoRetransmit),
    ("read-local-only", Bug::ReadLocalOnly),
];

struct GSet {
    bug: Option<Bug>,
    elements: BTreeSet<i64>,
    /// Peers whose full state this incarnation has merged.
    heard: BTreeSet<String>,
    /// Reads waiting for `heard` to cover every peer.
    parked: Parked,
    flow: Flow,
}

impl GSet {
    fn new(bug: Option<Bug>) -> Self {
        GSet {
            bug,
            elements: BTreeSet::new(),
            heard: BTreeSet::new(),
            parked: Parked::new(PARKED_MAX),
            flow: Flow::new(PUSH_WINDOW, HEARTBEAT),
        }
    }

    /// Whether reads may be answered: this node holds at least what every peer held when it last
    /// spoke. `no-retransmit` never gossips, so it never waits.
    fn caught_up(&self, node: &Node) -> bool {
        self.bug == Some(Bug::NoRetransmit) || node.peers().all(|p| self.heard.contains(p))
    }

    fn read(&self, node: &Node, msg: &Message) {
        node.reply(msg, json!({"type": "read_ok", "value": self.elements}));
    }

    fn state(&self) -> Value {
        json!({"type": "gossip", "elements": self.elements})
    }

    /// Merges the elements a peer sent, unless this node is the one that never merges.
    fn merge(&mut self, msg: &Message) {
        if self.bug == Some(Bug::ReadLocalOnly) {
            return;
        }
        let elements = msg.get("elements").and_then(Value::as_array);
        self.elements
            .extend(elements.into_iter().flatten().filter_map(Value::as_i64));
    }

    fn answer_parked(&mut self, node: &Node) {
        if self.caught_up(node) {
            for msg in self.parked.take(|_| true) {
                self.read(node, &msg);
            }
        }
    }
}

impl Handler for GSet {
    fn init(&mut self, node: &Node) {
        *self = GSet::new(self.bug);
        // Peers gossip every tick anyway; asking makes a restarted node catch up sooner.
        for peer in node.peers() {
            node.send(peer, json!({"type": "sync"}));
        }
    }

    fn message(&mut self, node: &Node, msg: Message) {
        self.flow.receive(node, &msg, Instant::now());
        match msg.kind() {
            "add" => {
                let Some(element) = msg.get("element").and_then(Value::as_i64) else {
                    return node.error(
                        &msg,
                        ErrorCode::MalformedRequest,
                        "add without an integer element",
                    );
                };
                self.elements.insert(element);
                let push = json!({"type": "push", "elements": [element]});
                if self.bug == Some(Bug::NoRetransmit) {
                    // The bug sends each element to every peer once, whoever listens.
                    for peer in node.peers() {
                        node.send(peer, push.clone());
                    }
                } else {
                    self.flow.push(node, node.peers(), Fanout::One, &push);
                }
                node.reply(&msg, json!({"type": "add_ok"}));
            }
            "read" if self.caught_up(node) => self.read(node, &msg),
            "read" => {
                if let Err(msg) = self.parked.park(msg, Instant::now() + WAIT_MAX) {
                    node.error(
                        &msg,
                        ErrorCode::TemporarilyUnavailable,
                        "too many reads waiting",
                    );
                }
            }
            // A part of a peer's state.
            "push" => self.merge(&msg),
            // A peer's whole state.
            "gossip" => {
                self.merge(&msg);
                self.heard.insert(msg.src.clone());
                self.answer_parked(node);
            }
            "sync" => node.send(&msg.src, self.state()),
            "push_ok" => {}
            _ => node.unknown(&msg),
        }
    }

    fn tick(&mut self, node: &Node, now: Instant) {
        self.flow.send_acks(node);
        let state = self.state();
        for peer in node.peers() {
            if self.flow.may_send_state(peer, now) {
                node.send(peer, state.clone());
            }
        }
        for msg in self.parked.expired(now) {
            let text = "not caught up with the peers yet";
            node.error(&msg, ErrorCode::TemporarilyUnavailable, text);
        }
    }
}

fn main() -> ExitCode {
    let bug = bug_from_args(BUGS);
    // `no-retransmit` never gossips, so it needs no timer.
    let tick = (bug != Some(Bug::NoRetransmit)).then_some(TICK);
    run(GSet::new(bug), tick)
}
