//! A `broadcast` node: a correct one, or one with a classic bug (`--bug NAME`).
//!
//! Correct design: relay over the topology's neighbours, retried until acknowledged.
//! Invariants:
//! - A message new to this node stays pending for every neighbour but the one it came from,
//!   until that neighbour acknowledges it, and is relayed at once to those of them that keep up
//!   (see [`Flow`]); every `TICK` all pending messages are relayed again, in one message per
//!   neighbour (less often to a silent one). A node acknowledges every relay it gets, even of
//!   messages it already had, so lost, duplicated and reordered relays or acknowledgements only
//!   cost a retry, and after a partition heals every message reaches every node.
//! - A broadcast is acknowledged only after it is relayed to at least one neighbour, so a
//!   message this node acknowledged survives it being killed right after. A relayed message
//!   needs no such copy: its sender holds it, and gives it back when the restarted node syncs.
//! - A node answers no read until every neighbour has sent it its whole set (`sync`, asked at
//!   `init` and again every tick until answered): a node restarted after a kill has lost its set,
//!   and everything it showed before came from its clients (relayed before the
//!   acknowledgement) or from a neighbour. Each of those reads waits (bounded, at most
//!   `WAIT_MAX`) and is refused with error 11 if a neighbour stays silent. Syncing also gives the
//!   restarted node what it had acknowledged but not yet relayed on, and relays it.
//!
//! Bug `no-retry`: each new message is relayed to the neighbours once and never again (and
//! nothing is acknowledged or synced): a relay lost to a partition or to loss is never repaired,
//! and every node behind that link misses the message for good.

use converge_mutants::{
    ErrorCode, Fanout, Flow, Handler, Message, Node, Parked, bug_from_args, run,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How often pending relays are retried, and silent neighbours asked to sync.
const TICK: Duration = Duration::from_millis(50);
/// Longest a read waits for this node to catch up from its neighbours.
const WAIT_MAX: Duration = Duration::from_millis(500);
/// Most reads waiting at once; more are refused at once.
const PARKED_MAX: usize = 1024;
/// Most eager relays to one neighbour that it has not acknowledged yet.
const PUSH_WINDOW: u64 = 64;
/// Longest gap between retries to a silent neighbour.
const HEARTBEAT: Duration = Duration::from_millis(200);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bug {
    NoRetry,
}

const BUGS: &[(&str, Bug)] = &[("no-retry", Bug::NoRetry)];

struct Broadcast {
    bug: Option<Bug>,
    messages: BTreeSet<i64>,
    /// Who this node relays to: every peer until the topology says otherwise.
    neighbours: Vec<String>,
    /// Per neighbour: messages relayed to it and not acknowledged yet.
    pending: BTreeMap<String, BTreeSet<i64>>,
    /// Neighbours whose whole set this incarnation has merged.
    synced: BTreeSet<String>,
    /// Reads waiting for `synced` to cover every neighbour.
    parked: Parked,
    flow: Flow,
}

impl Broadcast {
    fn new(bug: Option<Bug>) -> Self {
        Broadcast {
            bug,
            messages: BTreeSet::new(),
            neighbours: Vec::new(),
            pending: BTreeMap::new(),
            synced: BTreeSet::new(),
            parked: Parked::new(PARKED_MAX),
            flow: Flow::new(PUSH_WINDOW, HEARTBEAT),
        }
    }

    fn retries(&self) -> bool {
        self.bug != Some(Bug::NoRetry)
    }

    fn caught_up(&self) -> bool {
        !self.retries() || self.neighbours.iter().all(|n| self.synced.contains(n))
    }

    /// Adds the messages of `set` this node lacks and relays them to every neighbour but
    /// `source`.
    fn learn(&mut self, node: &Node, set: impl IntoIterator<Item = i64>, source: Option<&str>) {
        let new: BTreeSet<i64> = set
            .into_iter()
            .filter(|m| self.messages.insert(*m))
            .collect();
        if new.is_empty() {
            return;
        }
        let targets: Vec<&str> = self
            .neighbours
            .iter()
            .map(String::as_str)
            .filter(|p| Some(*p) != source)
            .collect();
        let relay = json!({"type": "relay", "messages": new});
        if self.retries() {
            for peer in &targets {
                self.pending
                    .entry(peer.to_string())
                    .or_default()
                    .extend(&new);
            }
            // A message from a client lives only here until relayed, so one copy must go out;
            // one relayed to us is still held, and retried, by its sender.
            let fanout = if source.is_none() {
                Fanout::All
            } else {
                Fanout::AllWithRoom
            };
            self.flow.push(node, targets, fanout, &relay);
        } else {
            // The bug relays to every neighbour once, whoever listens.
            for peer in targets {
                node.send(peer, relay.clone());
            }
        }
    }

    fn read(&self, node: &Node, msg: &Message) {
        node.reply(msg, json!({"type": "read_ok", "messages": self.messages}));
    }

    fn answer_parked(&mut self, node: &Node) {
        if self.caught_up() {
            for msg in self.parked.take(|_| true) {
                self.read(node, &msg);
            }
        }
    }

    fn ask_to_sync(&self, node: &Node) {
        for peer in self.neighbours.iter().filter(|n| !self.synced.contains(*n)) {
            node.send(peer, json!({"type": "sync"}));
        }
    }
}

/// The integers in `msg`'s `messages` list; anything else is skipped.
fn integers(msg: &Message) -> Vec<i64> {
    let list = msg.get("messages").and_then(Value::as_array);
    list.into_iter()
        .flatten()
        .filter_map(Value::as_i64)
        .collect()
}

impl Handler for Broadcast {
    fn init(&mut self, node: &Node) {
        *self = Broadcast::new(self.bug);
        self.neighbours = node.peers().map(str::to_string).collect();
        if self.retries() {
            self.ask_to_sync(node);
        }
    }

    fn message(&mut self, node: &Node, msg: Message) {
        self.flow.receive(node, &msg, Instant::now());
        match msg.kind() {
            "topology" => {
                let mine = msg
                    .get("topology")
                    .and_then(|t| t.get(node.id()))
                    .and_then(Value::as_array);
                let Some(mine) = mine else {
                    let text = "topology without a list for this node";
                    return node.error(&msg, ErrorCode::MalformedRequest, text);
                };
                // Only known nodes: a neighbour that does not exist would never sync.
                self.neighbours = mine
                    .iter()
                    .filter_map(Value::as_str)
                    .filter(|n| *n != node.id() && node.ids().iter().any(|id| id == n))
                    .map(str::to_string)
                    .collect();
                self.pending
                    .retain(|peer, _| self.neighbours.contains(peer));
                node.reply(&msg, json!({"type": "topology_ok"}));
                self.answer_parked(node);
            }
            "broadcast" => {
                let Some(message) = msg.get("message").and_then(Value::as_i64) else {
                    let text = "broadcast without an integer message";
                    return node.error(&msg, ErrorCode::MalformedRequest, text);
                };
                self.learn(node, [message], None);
                node.reply(&msg, json!({"type": "broadcast_ok"}));
            }
            "read" if self.caught_up() => self.read(node, &msg),
            "read" => {
                if let Err(msg) = self.parked.park(msg, Instant::now() + WAIT_MAX) {
                    node.error(
                        &msg,
                        ErrorCode::TemporarilyUnavailable,
                        "too many reads waiting",
                    );
                }
            }
            "relay" => {
                let received = integers(&msg);
                self.learn(node, received.iter().copied(), Some(&msg.src));
                if self.retries() {
                    node.send(&msg.src, json!({"type": "relay_ok", "messages": received}));
                }
            }
            "relay_ok" => {
                if let Some(unacked) = self.pending.get_mut(&msg.src) {
                    for m in integers(&msg) {
                        unacked.remove(&m);
                    }
                }
            }
            "sync" => node.send(
                &msg.src,
                json!({"type": "sync_ok", "messages": self.messages}),
            ),
            "push_ok" => {}
            "sync_ok" => {
                self.learn(node, integers(&msg), Some(&msg.src));
                self.synced.insert(msg.src.clone());
                self.answer_parked(node);
            }
            _ => node.unknown(&msg),
        }
    }

    fn tick(&mut self, node: &Node, now: Instant) {
        self.flow.send_acks(node);
        for (peer, unacked) in &self.pending {
            if !unacked.is_empty() && self.flow.may_send_state(peer, now) {
                node.send(peer, json!({"type": "relay", "messages": unacked}));
            }
        }
        self.ask_to_sync(node);
        for msg in self.parked.expired(now) {
            let text = "not caught up with the neighbours yet";
            node.error(&msg, ErrorCode::TemporarilyUnavailable, text);
        }
    }
}

fn main() -> ExitCode {
    let bug = bug_from_args(BUGS);
    // `no-retry` has nothing to do on a timer.
    let tick = (bug != Some(Bug::NoRetry)).then_some(TICK);
    run(Broadcast::new(bug), tick)
}
