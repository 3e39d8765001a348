//! A `g-set` node whose only replication is periodic anti-entropy: a correct one, or one with a
//! classic bug (`--bug NAME`).
//!
//! The `g-set` workload is the harness's many-keyed CRDT workload: the other CRDT workloads hold
//! one register or a handful of contested elements, and `lin-kv`'s keys are not a CRDT. So this
//! node treats a grow-only set as a map from keys (the elements) to "present", and spreads it the
//! way a key-value store's anti-entropy spreads keys: the keys are hashed into `BUCKETS` buckets,
//! peers compare one digest per bucket, and only the buckets that differ are exchanged.
//!
//! Correct design: an add only goes into the local set; nothing is pushed. Every `TICK` the node
//! sends each peer (less often a silent one, see [`Flow`]) its digests, one per bucket: the number
//! of elements and the wrapping sum of their hashes. A peer that gets digests answers with its
//! own elements of every bucket whose digest differs from its own, and asks for the sender's
//! elements of those buckets; the sender merges them and sends its own elements of the buckets
//! asked for. Union is idempotent, commutative and associative and every round starts over from
//! the digests, so lost, duplicated and reordered messages only delay a repair to a later round,
//! and within a few rounds after a partition heals every pair of nodes holds the same set.
//! Invariants:
//! - A digest differs whenever the sets of its bucket differ (up to 64-bit hash collisions), so
//!   two nodes whose digests all agree hold the same set.
//! - Digests are small and fixed in size, and bucket contents only go out in answer to a digest,
//!   so a paused peer, which sends no digests, is sent nothing large.
//! - An add is acknowledged before any peer has it, so a node killed before its next round takes
//!   its recent adds with it (the `ack-before-replicate` trade-off of the counter node). This node
//!   is therefore certified under partitions, loss, duplication, reordering and pauses, not kills.
//!
//! Bug `ae-skips-keys`: the comparison of digests stops one bucket short (an off-by-one over the
//! buckets), so the keys that hash into the last bucket are never repaired. Every element there
//! stays on the node that added it: `set-full` finds it lost from the other nodes' final reads,
//! and `convergence` finds the final reads differ. About one element in `BUCKETS` hashes there,
//! whatever the seed or the timing.

use converge_mutants::{ErrorCode, Flow, Handler, Message, Node, bug_from_args, run};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How often digests go to every peer.
const TICK: Duration = Duration::from_millis(50);
/// How many buckets the keys are hashed into.
const BUCKETS: usize = 16;
/// Longest gap between digests sent to a silent peer.
const HEARTBEAT: Duration = Duration::from_millis(200);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bug {
    AeSkipsKeys,
}

const BUGS: &[(&str, Bug)] = &[("ae-skips-keys", Bug::AeSkipsKeys)];

/// A fixed 64-bit mix (splitmix64's finalizer), so every process hashes a key the same way;
/// std's hasher is seeded per process.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The bucket `key` hashes into.
fn bucket(key: i64) -> usize {
    (mix(key as u64) % BUCKETS as u64) as usize
}

/// One bucket's digest: how many keys, and the wrapping sum of their hashes (a second hash, so
/// that it is independent of the choice of bucket).
type Digest = (u64, u64);

struct AntiEntropy {
    bug: Option<Bug>,
    elements: BTreeSet<i64>,
    digests: [Digest; BUCKETS],
    /// Only paces digests to silent peers; nothing is pushed.
    flow: Flow,
}

impl AntiEntropy {
    fn new(bug: Option<Bug>) -> Self {
        AntiEntropy {
            bug,
            elements: BTreeSet::new(),
            digests: [(0, 0); BUCKETS],
            flow: Flow::new(0, HEARTBEAT),
        }
    }

    fn insert(&mut self, key: i64) {
        if self.elements.insert(key) {
            let digest = &mut self.digests[bucket(key)];
            digest.0 += 1;
            digest.1 = digest.1.wrapping_add(mix(!(key as u64)));
        }
    }

    /// The buckets whose digest differs from `theirs`.
    fn differing(&self, theirs: &[Digest]) -> Vec<usize> {
        // The bug's loop stops one bucket short.
        let compared = match self.bug {
            None => BUCKETS,
            Some(Bug::AeSkipsKeys) => BUCKETS - 1,
        };
        (0..compared)
            .filter(|&b| theirs.get(b) != Some(&self.digests[b]))
            .collect()
    }

    /// This node's keys in `buckets`.
    fn keys_in(&self, buckets: &[usize]) -> Vec<i64> {
        self.elements
            .iter()
            .copied()
            .filter(|&k| buckets.contains(&bucket(k)))
            .collect()
    }
}

/// The items of `msg`'s list `field` that `parse` accepts; anything else is skipped.
fn list<T>(msg: &Message, field: &str, parse: fn(&Value) -> Option<T>) -> Vec<T> {
    let list = msg.get(field).and_then(Value::as_array);
    list.into_iter().flatten().filter_map(parse).collect()
}

impl Handler for AntiEntropy {
    fn init(&mut self, _node: &Node) {
        *self = AntiEntropy::new(self.bug);
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
                self.insert(element);
                node.reply(&msg, json!({"type": "add_ok"}));
            }
            "read" => node.reply(&msg, json!({"type": "read_ok", "value": self.elements})),
            "ae_digest" => {
                let theirs: Vec<Digest> = list(&msg, "digests", |v| {
                    Some((v.get(0)?.as_u64()?, v.get(1)?.as_u64()?))
                });
                let differing = self.differing(&theirs);
                if !differing.is_empty() {
                    let keys = self.keys_in(&differing);
                    let repair = json!({"type": "ae_repair", "keys": keys, "want": differing});
                    node.send(&msg.src, repair);
                }
            }
            "ae_repair" => {
                for key in list(&msg, "keys", Value::as_i64) {
                    self.insert(key);
                }
                let want: Vec<usize> = list(&msg, "want", |v| {
                    v.as_u64()
                        .and_then(|b| usize::try_from(b).ok())
                        .filter(|&b| b < BUCKETS)
                });
                if !want.is_empty() {
                    let keys = self.keys_in(&want);
                    let repair = json!({"type": "ae_repair", "keys": keys, "want": []});
                    node.send(&msg.src, repair);
                }
            }
            _ => node.unknown(&msg),
        }
    }

    fn tick(&mut self, node: &Node, now: Instant) {
        let digests: Vec<Value> = self.digests.iter().map(|(n, s)| json!([n, s])).collect();
        let body = json!({"type": "ae_digest", "digests": digests});
        for peer in node.peers() {
            if self.flow.may_send_state(peer, now) {
                node.send(peer, body.clone());
            }
        }
    }
}

fn main() -> ExitCode {
    let bug = bug_from_args(BUGS);
    run(AntiEntropy::new(bug), Some(TICK))
}
