//! A `g-counter` node in the Gossip Glomers style: the count lives in one key of Maelstrom's
//! `seq-kv` service, and each node folds its adds into it with read + compare-and-set on a timer.
//! A correct one, or one with a classic bug (`--bug NAME`).
//!
//! Design: an add is acknowledged at once into a local backlog. Every `--drain-ms` (default 200)
//! a node with a backlog and no drain under way reads the key and, when the value comes back,
//! moves its whole backlog into one `cas` from that value to that value plus the backlog (creating
//! the key if it is missing). On `cas_ok` the batch is folded; on error 22 (another node's fold
//! came first, or the read was stale, which `seq-kv` allows) the batch goes back into the backlog
//! and is tried again at the next tick. A client read writes a key of this node's own (which
//! moves its view of the sequentially consistent store to the newest state), then reads the
//! count: a read shows every fold that completed before it, and the backlog not yet folded is
//! not shown. Invariants:
//! - One drain at a time per node, and its batch is either folded exactly once (`cas_ok`) or
//!   back in the backlog (error): no add is folded twice or dropped.
//! - A `cas` whose answer has not come is waited for, however long: its outcome is unknown, and
//!   retrying it could fold its batch twice. The service always answers (a partition cuts nodes
//!   from each other, not from services), so a drain only waits longer while its node is paused.
//! - With three nodes folding every 200 ms and stale reads, most attempts lose to a concurrent
//!   fold and retry at the next tick, so after a burst, or when a paused node resumes with its
//!   backlog, the count reaches its final value only after a few ticks: a harness must wait for
//!   the service traffic to stop before its final reads.
//! - The backlog is in memory, so a node killed before its next fold takes acknowledged adds
//!   with it. This node is therefore certified under partitions, loss, duplication, reordering
//!   and pauses (of which only pauses touch it), not kills.
//!
//! Bug `leaked-timeout`: the node also guards against a `cas` reply that never comes: every
//! `cas` is remembered with the time it was sent, and one unanswered after `--cas-timeout-ms`
//! (default 2000) is presumed lost, so its batch goes back into the backlog. The entry is removed
//! on `cas_ok`, but the error path, written before the guard, puts the batch back without
//! removing it. So every batch that lost a race is folded by its retry and then again when its
//! forgotten timeout fires, two seconds later: long after the fold that made the nodes agree,
//! and, once the workload has stopped, after a second of silence. The final reads then exceed
//! the sum of every add that may have happened, which `counter-bounds` catches; a harness that
//! stops at the first final reads that agree, before the stray timeouts fire, misses the last of
//! them.

use converge_mutants::{ErrorCode, Handler, Message, Node, args_from_env, run};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Default period between drain attempts, in milliseconds.
const DRAIN_MS: u64 = 200;
/// Default wait, in milliseconds, before `leaked-timeout` presumes a `cas` reply lost.
const CAS_TIMEOUT_MS: u64 = 2000;
/// The service that holds the count.
const SERVICE: &str = "seq-kv";
/// The key that holds the count.
const COUNTER_KEY: &str = "converge-mutants/slow-drain/count";
/// Followed by a node's id: the key that node writes before a client read.
const SYNC_KEY_PREFIX: &str = "converge-mutants/slow-drain/sync/";
/// `seq-kv`'s error code for a `cas` whose `from` is not the current value.
const PRECONDITION_FAILED: u64 = ErrorCode::PreconditionFailed.code();
/// `seq-kv`'s error code for a key that does not exist.
const KEY_DOES_NOT_EXIST: u64 = ErrorCode::KeyDoesNotExist.code();

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bug {
    LeakedTimeout,
}

const BUGS: &[(&str, Bug)] = &[("leaked-timeout", Bug::LeakedTimeout)];

/// The drain under way, by the `msg_id` of its request to the service.
#[derive(Clone, Copy, Debug)]
enum Drain {
    Reading(u64),
    /// A `cas` carrying `batch`, which is out of the backlog until the answer comes.
    Folding(u64, i64),
}

/// A client read in progress, by the `msg_id` of its request to the service.
enum ClientRead {
    /// The write that moves this node's view to the newest state.
    Syncing(Message),
    Reading(Message),
}

struct SlowDrain {
    bug: Option<Bug>,
    cas_timeout: Duration,
    backlog: i64,
    drain: Option<Drain>,
    reads: BTreeMap<u64, ClientRead>,
    /// `leaked-timeout`: every `cas` not answered with `cas_ok`, with its batch and send time.
    unanswered: BTreeMap<u64, (i64, Instant)>,
    next_id: u64,
}

/// What the service answered: `Ok(value)` for a reply with a `value` or none, or an error code.
fn outcome(msg: &Message) -> Result<Option<&Value>, u64> {
    match msg.kind() {
        "error" => Err(msg.get("code").and_then(Value::as_u64).unwrap_or(0)),
        _ => Ok(msg.get("value")),
    }
}

impl SlowDrain {
    fn new(bug: Option<Bug>, cas_timeout: Duration) -> Self {
        SlowDrain {
            bug,
            cas_timeout,
            backlog: 0,
            drain: None,
            reads: BTreeMap::new(),
            unanswered: BTreeMap::new(),
            next_id: 0,
        }
    }

    /// Sends `body` to the service with a fresh `msg_id`, and returns that id.
    fn call(&mut self, node: &Node, mut body: Value) -> u64 {
        self.next_id += 1;
        if let Some(fields) = body.as_object_mut() {
            fields.insert("msg_id".into(), json!(self.next_id));
        }
        node.send(SERVICE, body);
        self.next_id
    }

    /// The service's answer to this node's drain.
    fn drained(&mut self, node: &Node, msg: &Message, drain: Drain) {
        self.drain = None;
        match (drain, outcome(msg)) {
            (Drain::Reading(_), Ok(value)) => {
                let Some(current) = value.map_or(Some(0), Value::as_i64) else {
                    return eprintln!("{}: the count is not an integer: {value:?}", node.id());
                };
                self.fold(node, current);
            }
            (Drain::Reading(_), Err(KEY_DOES_NOT_EXIST)) => self.fold(node, 0),
            (Drain::Folding(id, _), Ok(_)) => {
                self.unanswered.remove(&id);
            }
            (Drain::Folding(id, batch), Err(code)) => {
                if code != PRECONDITION_FAILED {
                    eprintln!("{}: cas failed with error {code}", node.id());
                }
                self.backlog = self.backlog.saturating_add(batch);
                if self.bug.is_none() {
                    self.unanswered.remove(&id);
                }
            }
            // Anything else retries at the next tick.
            (Drain::Reading(_), Err(code)) => eprintln!("{}: read failed: {code}", node.id()),
        }
    }

    /// Moves the backlog into one `cas` from `current`.
    fn fold(&mut self, node: &Node, current: i64) {
        let batch = std::mem::take(&mut self.backlog);
        if batch == 0 {
            return;
        }
        let cas = json!({"type": "cas", "key": COUNTER_KEY, "from": current,
                         "to": current.saturating_add(batch), "create_if_not_exists": true});
        let id = self.call(node, cas);
        self.drain = Some(Drain::Folding(id, batch));
        if self.bug == Some(Bug::LeakedTimeout) {
            self.unanswered.insert(id, (batch, Instant::now()));
        }
    }

    /// The service's answer to a step of a client read.
    fn read_step(&mut self, node: &Node, msg: &Message, read: ClientRead) {
        match (read, outcome(msg)) {
            (ClientRead::Syncing(request), Ok(_)) => {
                let id = self.call(node, json!({"type": "read", "key": COUNTER_KEY}));
                self.reads.insert(id, ClientRead::Reading(request));
            }
            (ClientRead::Reading(request), Ok(value)) => match value.map_or(Some(0), Value::as_i64)
            {
                Some(count) => node.reply(&request, json!({"type": "read_ok", "value": count})),
                None => node.error(
                    &request,
                    ErrorCode::TemporarilyUnavailable,
                    "the count is malformed",
                ),
            },
            (ClientRead::Reading(request), Err(KEY_DOES_NOT_EXIST)) => {
                node.reply(&request, json!({"type": "read_ok", "value": 0}));
            }
            (ClientRead::Syncing(request) | ClientRead::Reading(request), Err(code)) => {
                let text = format!("{SERVICE} answered error {code}");
                node.error(&request, ErrorCode::TemporarilyUnavailable, &text);
            }
        }
    }
}

impl Handler for SlowDrain {
    fn init(&mut self, _node: &Node) {
        *self = SlowDrain::new(self.bug, self.cas_timeout);
    }

    fn message(&mut self, node: &Node, msg: Message) {
        if msg.src == SERVICE {
            let Some(id) = msg.get("in_reply_to").and_then(Value::as_u64) else {
                return eprintln!("{}: a service message without in_reply_to", node.id());
            };
            match self.drain {
                Some(drain @ (Drain::Reading(d) | Drain::Folding(d, _))) if d == id => {
                    self.drained(node, &msg, drain);
                }
                _ => match self.reads.remove(&id) {
                    Some(read) => self.read_step(node, &msg, read),
                    // Nothing waits for it: under `leaked-timeout`, the answer to a `cas` whose
                    // timeout already fired.
                    None => eprintln!("{}: ignoring an answer to {id}", node.id()),
                },
            }
            return;
        }
        match msg.kind() {
            "add" => match msg.get("delta").and_then(Value::as_i64) {
                Some(delta) => {
                    self.backlog = self.backlog.saturating_add(delta);
                    node.reply(&msg, json!({"type": "add_ok"}));
                }
                None => node.error(
                    &msg,
                    ErrorCode::MalformedRequest,
                    "add without an integer delta",
                ),
            },
            "read" => {
                let key = format!("{SYNC_KEY_PREFIX}{}", node.id());
                let sync = json!({"type": "write", "key": key, "value": self.next_id + 1});
                let id = self.call(node, sync);
                self.reads.insert(id, ClientRead::Syncing(msg));
            }
            _ => node.unknown(&msg),
        }
    }

    fn tick(&mut self, node: &Node, now: Instant) {
        if self.bug == Some(Bug::LeakedTimeout) {
            let timeout = self.cas_timeout;
            let expired: Vec<u64> = self
                .unanswered
                .iter()
                .filter(|(_, (_, sent))| now.saturating_duration_since(*sent) >= timeout)
                .map(|(&id, _)| id)
                .collect();
            for id in expired {
                if let Some((batch, _)) = self.unanswered.remove(&id) {
                    eprintln!(
                        "{}: no answer to cas {id}: folding its batch again",
                        node.id()
                    );
                    self.backlog = self.backlog.saturating_add(batch);
                    if matches!(self.drain, Some(Drain::Folding(d, _)) if d == id) {
                        self.drain = None;
                    }
                }
            }
        }
        if self.drain.is_none() && self.backlog != 0 {
            let id = self.call(node, json!({"type": "read", "key": COUNTER_KEY}));
            self.drain = Some(Drain::Reading(id));
        }
    }
}

fn main() -> ExitCode {
    let args = args_from_env(BUGS, &["drain-ms", "cas-timeout-ms"]);
    let period = args.millis("drain-ms", DRAIN_MS);
    let cas_timeout = args.millis("cas-timeout-ms", CAS_TIMEOUT_MS);
    run(SlowDrain::new(args.bug, cas_timeout), Some(period))
}
