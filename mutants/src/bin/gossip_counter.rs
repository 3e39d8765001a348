//! A `g-counter` / `pn-counter` node that replicates on a timer, the way counters are often first
//! written: as a log of deltas per origin, resent until acknowledged. A correct one, or one with a
//! classic bug (`--bug NAME`).
//!
//! Design: an add goes into this incarnation's own log as the next numbered delta (its `seq`,
//! counted from 1) and is acknowledged at once; nothing is pushed. Every `--gossip-ms` (default
//! 500) the node sends each peer, in one `deltas` message, every delta of its own log from the
//! first that peer has not acknowledged. A receiver applies each delta it has not applied before,
//! keyed by (origin, seq), and answers `deltas_ok` with the longest prefix of the origin's log it
//! has applied; the sender resends from there on the next tick. Invariants:
//! - A delta is applied at most once per node, whatever is lost, duplicated or reordered: the
//!   (origin, seq) set only grows, and an origin numbers each delta once.
//! - A delta is resent to a peer on every tick until that peer acknowledges it, so whatever a
//!   partition or loss dropped arrives within one period after the link heals.
//! - The origin is the incarnation ([`incarnation`]), not the node id, so a restarted node's
//!   fresh log, numbered from 1 again, is never mistaken for its previous one's.
//! - An add is acknowledged before any peer has it, so a node killed before its next tick takes
//!   its recent adds with it, and a restarted node is never sent again what its previous
//!   incarnation acknowledged. This node is therefore certified under partitions, loss,
//!   duplication, reordering and pauses, not kills.
//!
//! Bug `re-add`: the receiver applies every delta it receives, without looking at (origin, seq),
//! and still acknowledges. Nothing goes wrong while every acknowledgement arrives before the next
//! tick, which is the common case on a 500 ms timer; but a lost acknowledgement, a duplicated
//! `deltas` message, or a partition that cuts a link between a delivery and its acknowledgement
//! makes the sender resend deltas the receiver already counted, and it counts them again. The
//! final reads then exceed the sum of every add that may have happened, which `counter-bounds`
//! catches (and, as the extra counts land on different nodes, `convergence` usually too). It
//! needs loss or duplication, and a run long enough for the timer to resend.

use converge_mutants::{ErrorCode, Handler, Message, Node, args_from_env, incarnation, run};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::time::Instant;

/// Default period between gossip rounds, in milliseconds.
const GOSSIP_MS: u64 = 500;
/// Most deltas in one message, so a line stays far below the protocol's 1 MiB limit; the rest
/// go on later ticks.
const DELTAS_PER_MESSAGE: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bug {
    ReAdd,
}

const BUGS: &[(&str, Bug)] = &[("re-add", Bug::ReAdd)];

/// The seqs of one origin that this node has applied: every seq up to `prefix`, and `above`.
#[derive(Debug, Default)]
struct Seen {
    prefix: u64,
    above: BTreeSet<u64>,
}

impl Seen {
    /// Records `seq`; says whether it is new.
    fn insert(&mut self, seq: u64) -> bool {
        if seq <= self.prefix || !self.above.insert(seq) {
            return false;
        }
        while self.above.remove(&(self.prefix + 1)) {
            self.prefix += 1;
        }
        true
    }
}

struct GossipCounter {
    bug: Option<Bug>,
    /// This incarnation's name, the origin of its own deltas.
    origin: String,
    /// This incarnation's deltas: seq `n` is `own[n - 1]`.
    own: Vec<i64>,
    /// Per peer, the prefix of `own` it acknowledged.
    acked: BTreeMap<String, u64>,
    /// Per origin, the deltas applied here.
    seen: BTreeMap<String, Seen>,
    value: i64,
}

impl GossipCounter {
    fn new(bug: Option<Bug>) -> Self {
        GossipCounter {
            bug,
            origin: String::new(),
            own: Vec::new(),
            acked: BTreeMap::new(),
            seen: BTreeMap::new(),
            value: 0,
        }
    }

    /// Applies a peer's `deltas` message and acknowledges what this node now holds of its origin.
    fn receive_deltas(&mut self, node: &Node, msg: &Message) {
        let origin = msg.get("origin").and_then(Value::as_str);
        let first = msg.get("first").and_then(Value::as_u64).filter(|&f| f >= 1);
        let deltas: Option<Vec<i64>> = msg
            .get("deltas")
            .and_then(Value::as_array)
            .and_then(|list| list.iter().map(Value::as_i64).collect());
        let (Some(origin), Some(first), Some(deltas)) = (origin, first, deltas) else {
            return eprintln!("{}: skipping malformed deltas: {:?}", node.id(), msg.body);
        };
        // Numbered past `u64::MAX`: no origin makes that many deltas.
        if first.checked_add(deltas.len() as u64).is_none() {
            return eprintln!("{}: skipping deltas numbered past the end", node.id());
        }
        let seen = self.seen.entry(origin.to_string()).or_default();
        for (seq, delta) in (first..).zip(deltas) {
            let new = seen.insert(seq);
            // The bug trusts the sender to send each delta once.
            if new || self.bug == Some(Bug::ReAdd) {
                self.value = self.value.saturating_add(delta);
            }
        }
        let ack = json!({"type": "deltas_ok", "origin": origin, "upto": seen.prefix});
        node.send(&msg.src, ack);
    }
}

impl Handler for GossipCounter {
    fn init(&mut self, node: &Node) {
        *self = GossipCounter::new(self.bug);
        self.origin = incarnation(node.id());
        eprintln!("{} starts as origin {}", node.id(), self.origin);
    }

    fn message(&mut self, node: &Node, msg: Message) {
        match msg.kind() {
            "add" => match msg.get("delta").and_then(Value::as_i64) {
                Some(delta) => {
                    self.own.push(delta);
                    self.value = self.value.saturating_add(delta);
                    node.reply(&msg, json!({"type": "add_ok"}));
                }
                None => node.error(
                    &msg,
                    ErrorCode::MalformedRequest,
                    "add without an integer delta",
                ),
            },
            "read" => node.reply(&msg, json!({"type": "read_ok", "value": self.value})),
            "deltas" if node.peers().any(|p| p == msg.src) => self.receive_deltas(node, &msg),
            "deltas_ok" => {
                let mine = msg.get("origin").and_then(Value::as_str) == Some(&self.origin);
                let upto = msg.get("upto").and_then(Value::as_u64);
                if let (true, Some(upto)) = (mine, upto) {
                    // Never beyond the log: an acknowledgement cannot cover deltas not yet made.
                    let upto = upto.min(self.own.len() as u64);
                    let acked = self.acked.entry(msg.src.clone()).or_insert(0);
                    *acked = (*acked).max(upto);
                }
            }
            _ => node.unknown(&msg),
        }
    }

    fn tick(&mut self, node: &Node, _now: Instant) {
        for peer in node.peers() {
            let acked = self.acked.get(peer).copied().unwrap_or(0);
            let from = usize::try_from(acked)
                .unwrap_or(usize::MAX)
                .min(self.own.len());
            let unacked = &self.own[from..];
            if unacked.is_empty() {
                continue;
            }
            let batch = &unacked[..unacked.len().min(DELTAS_PER_MESSAGE)];
            let body = json!({"type": "deltas", "origin": self.origin, "first": acked + 1,
                              "deltas": batch});
            node.send(peer, body);
        }
    }
}

fn main() -> ExitCode {
    let args = args_from_env(BUGS, &["gossip-ms"]);
    let period = args.millis("gossip-ms", GOSSIP_MS);
    run(GossipCounter::new(args.bug), Some(period))
}
