//! A `g-set` node that replicates lazily, in batches on a slow timer: a correct one, or one with
//! a classic bug (`--bug NAME`).
//!
//! Design: an add goes into the local set and is acknowledged at once; nothing is pushed. Every
//! `--sync-ms` (default 2000) the node sends each peer, in one `sync` message, every element this
//! node added that the peer has not acknowledged yet; the peer merges them by union and answers
//! `sync_ok` with the elements it got, which stop being resent to it. Reads answer the local set.
//! Invariants:
//! - An element stays pending for a peer until that peer acknowledges it, so whatever a
//!   partition or loss dropped arrives within one period after the link heals; union is
//!   idempotent, commutative and associative, so duplicated and reordered syncs are harmless.
//! - Every node sends its own adds to every other node itself, so no relaying is needed, and a
//!   node's set only grows, so its reads are monotonic.
//! - An add is acknowledged before any peer has it, so a node killed before its next sync takes
//!   its recent adds with it, and a restarted node is never sent again what its previous
//!   incarnation acknowledged. This node is therefore certified under partitions, loss,
//!   duplication, reordering and pauses, not kills.
//!
//! Bug `drop-on-partition`: each tick sends every peer the elements added since the previous
//! tick, once, and forgets them; nothing is acknowledged. That is what "ship the batch every few
//! seconds" looks like when the network is assumed reliable: a batch that a partition (or loss)
//! eats is missing on that peer for good. The peer's final read then lacks acknowledged elements,
//! which `set-full` reports as lost, and the nodes' final sets differ, which `convergence`
//! reports. A fault window several seconds long, which spans at least one tick, is enough.

use converge_mutants::{ErrorCode, Handler, Message, Node, args_from_env, run};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::time::Instant;

/// Default period between syncs, in milliseconds.
const SYNC_MS: u64 = 2000;
/// Most elements in one sync, so a line stays far below the protocol's 1 MiB limit; the rest go
/// on later ticks.
const ELEMENTS_PER_SYNC: usize = 8192;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bug {
    DropOnPartition,
}

const BUGS: &[(&str, Bug)] = &[("drop-on-partition", Bug::DropOnPartition)];

struct LazySet {
    bug: Option<Bug>,
    elements: BTreeSet<i64>,
    /// Per peer, the elements this node added that the peer has not acknowledged.
    unacked: BTreeMap<String, BTreeSet<i64>>,
    /// `drop-on-partition`: the elements added since the last tick.
    fresh: Vec<i64>,
}

impl LazySet {
    fn new(bug: Option<Bug>) -> Self {
        LazySet {
            bug,
            elements: BTreeSet::new(),
            unacked: BTreeMap::new(),
            fresh: Vec::new(),
        }
    }

    fn add(&mut self, node: &Node, element: i64) {
        if !self.elements.insert(element) {
            return;
        }
        match self.bug {
            None => {
                for peer in node.peers() {
                    self.unacked
                        .entry(peer.to_string())
                        .or_default()
                        .insert(element);
                }
            }
            Some(Bug::DropOnPartition) => self.fresh.push(element),
        }
    }
}

/// The integers in `msg`'s `elements` list; anything else is skipped.
fn elements(msg: &Message) -> Vec<i64> {
    let list = msg.get("elements").and_then(Value::as_array);
    list.into_iter()
        .flatten()
        .filter_map(Value::as_i64)
        .collect()
}

impl Handler for LazySet {
    fn init(&mut self, _node: &Node) {
        *self = LazySet::new(self.bug);
    }

    fn message(&mut self, node: &Node, msg: Message) {
        match msg.kind() {
            "add" => {
                let Some(element) = msg.get("element").and_then(Value::as_i64) else {
                    return node.error(
                        &msg,
                        ErrorCode::MalformedRequest,
                        "add without an integer element",
                    );
                };
                self.add(node, element);
                node.reply(&msg, json!({"type": "add_ok"}));
            }
            "read" => node.reply(&msg, json!({"type": "read_ok", "value": self.elements})),
            "sync" if node.peers().any(|p| p == msg.src) => {
                let received = elements(&msg);
                self.elements.extend(&received);
                // Elements learned from a peer are that peer's to spread, not this node's.
                if self.bug.is_none() {
                    node.send(&msg.src, json!({"type": "sync_ok", "elements": received}));
                }
            }
            "sync_ok" => {
                if let Some(pending) = self.unacked.get_mut(&msg.src) {
                    for element in elements(&msg) {
                        pending.remove(&element);
                    }
                }
            }
            _ => node.unknown(&msg),
        }
    }

    fn tick(&mut self, node: &Node, _now: Instant) {
        match self.bug {
            None => {
                for (peer, pending) in &self.unacked {
                    if !pending.is_empty() {
                        let batch: Vec<i64> =
                            pending.iter().copied().take(ELEMENTS_PER_SYNC).collect();
                        node.send(peer, json!({"type": "sync", "elements": batch}));
                    }
                }
            }
            Some(Bug::DropOnPartition) => {
                if self.fresh.is_empty() {
                    return;
                }
                let batch = json!({"type": "sync", "elements": self.fresh});
                for peer in node.peers() {
                    node.send(peer, batch.clone());
                }
                self.fresh.clear();
            }
        }
    }
}

fn main() -> ExitCode {
    let args = args_from_env(BUGS, &["sync-ms"]);
    let period = args.millis("sync-ms", SYNC_MS);
    run(LazySet::new(args.bug), Some(period))
}
