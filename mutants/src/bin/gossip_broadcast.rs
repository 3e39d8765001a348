//! A correct `broadcast` node that spreads messages only by periodic gossip over the topology's
//! neighbours, with nothing sent eagerly: the slow, simple design a harness must give time to.
//!
//! Design: a broadcast goes into the local set and is acknowledged at once. Every message a node
//! learns (from a client or a neighbour) becomes pending for each neighbour it did not come from.
//! Every `--gossip-ms` (default 1500) the node sends each neighbour, in one `gossip` message,
//! everything pending for it; the neighbour merges them and answers `gossip_ok` with the messages
//! it got, which stop being pending for it. Reads answer the local set. Invariants:
//! - A message stays pending for a neighbour until that neighbour acknowledges it, so whatever a
//!   partition or loss dropped crosses the link within one period after it heals; union is
//!   idempotent, commutative and associative, so duplicated and reordered gossip is harmless.
//! - A node that learns a message makes it pending for its other neighbours, and the grid is
//!   connected, so every message reaches every node within about one period per hop after the
//!   last partition heals. Once everything is acknowledged the node is silent.
//! - A node's set only grows, so its reads are monotonic.
//! - A broadcast is acknowledged before any neighbour has it, so a node killed before its next
//!   tick takes its recent messages with it, and a restarted node is never sent again what its
//!   previous incarnation acknowledged. This node is therefore certified under partitions, loss,
//!   duplication, reordering and pauses, not kills.

use converge_mutants::{ErrorCode, Handler, Message, Node, args_from_env, run};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::time::Instant;

/// Default period between gossip rounds, in milliseconds.
const GOSSIP_MS: u64 = 1500;
/// Most messages in one gossip, so a line stays far below the protocol's 1 MiB limit; the rest
/// go on later ticks.
const MESSAGES_PER_GOSSIP: usize = 8192;

/// This node has no bugs; `--bug` is refused with a message that says so.
#[derive(Clone, Copy, Debug)]
enum Bug {}

struct GossipBroadcast {
    messages: BTreeSet<i64>,
    /// Who this node gossips with: every peer until the topology says otherwise.
    neighbours: Vec<String>,
    /// Per neighbour, the messages it has not acknowledged.
    pending: BTreeMap<String, BTreeSet<i64>>,
}

impl GossipBroadcast {
    fn new() -> Self {
        GossipBroadcast {
            messages: BTreeSet::new(),
            neighbours: Vec::new(),
            pending: BTreeMap::new(),
        }
    }

    /// Adds the messages of `set` this node lacks, pending for every neighbour but `source`.
    fn learn(&mut self, set: impl IntoIterator<Item = i64>, source: Option<&str>) {
        let new: Vec<i64> = set
            .into_iter()
            .filter(|m| self.messages.insert(*m))
            .collect();
        if new.is_empty() {
            return;
        }
        for peer in &self.neighbours {
            if Some(peer.as_str()) != source {
                self.pending.entry(peer.clone()).or_default().extend(&new);
            }
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

impl Handler for GossipBroadcast {
    fn init(&mut self, node: &Node) {
        *self = GossipBroadcast::new();
        self.neighbours = node.peers().map(str::to_string).collect();
    }

    fn message(&mut self, node: &Node, msg: Message) {
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
                // Only known nodes: a neighbour that does not exist would never acknowledge.
                self.neighbours = mine
                    .iter()
                    .filter_map(Value::as_str)
                    .filter(|n| *n != node.id() && node.ids().iter().any(|id| id == n))
                    .map(str::to_string)
                    .collect();
                self.pending
                    .retain(|peer, _| self.neighbours.contains(peer));
                // What was learned before the topology came must still reach the neighbours.
                for peer in &self.neighbours {
                    let pending = self.pending.entry(peer.clone()).or_default();
                    pending.extend(&self.messages);
                }
                node.reply(&msg, json!({"type": "topology_ok"}));
            }
            "broadcast" => {
                let Some(message) = msg.get("message").and_then(Value::as_i64) else {
                    let text = "broadcast without an integer message";
                    return node.error(&msg, ErrorCode::MalformedRequest, text);
                };
                self.learn([message], None);
                node.reply(&msg, json!({"type": "broadcast_ok"}));
            }
            "read" => node.reply(&msg, json!({"type": "read_ok", "messages": self.messages})),
            "gossip" if node.peers().any(|p| p == msg.src) => {
                let received = integers(&msg);
                self.learn(received.iter().copied(), Some(&msg.src));
                node.send(&msg.src, json!({"type": "gossip_ok", "messages": received}));
            }
            "gossip_ok" => {
                if let Some(pending) = self.pending.get_mut(&msg.src) {
                    for m in integers(&msg) {
                        pending.remove(&m);
                    }
                }
            }
            _ => node.unknown(&msg),
        }
    }

    fn tick(&mut self, node: &Node, _now: Instant) {
        for (peer, pending) in &self.pending {
            if !pending.is_empty() {
                let batch: Vec<i64> = pending.iter().copied().take(MESSAGES_PER_GOSSIP).collect();
                node.send(peer, json!({"type": "gossip", "messages": batch}));
            }
        }
    }
}

fn main() -> ExitCode {
    let args = args_from_env::<Bug>(&[], &["gossip-ms"]);
    let period = args.millis("gossip-ms", GOSSIP_MS);
    run(GossipBroadcast::new(), Some(period))
}
