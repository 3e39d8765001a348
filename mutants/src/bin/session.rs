//! A `session` node: a correct one, or one with a classic bug (`--bug NAME`). The design is the
//! one of `tests/nodes/session.py`.
//!
//! Correct design: a grow-only set kept as one append-only log per origin (an incarnation of a
//! node, see [`incarnation`]); a session token is a version vector, `{origin: log length}`.
//! Invariants:
//! - The state is causally closed: whenever it holds an element, it holds everything the
//!   element's origin held when it was added. Whole-state gossip (every `TICK`, less often to a
//!   silent peer, see [`Flow`]) keeps it so, since the union of closed states is closed. An
//!   element is also pushed on its own (`append`) to the peers before its `add_ok`, so that it
//!   survives this process being killed; a peer applies it only once it covers the version
//!   vector the origin had when adding it, and holds it (boundedly) until then.
//! - A request carrying a token waits until this node covers the token, then is answered; one
//!   still not covered after `WAIT_MAX` is refused with error 11 (temporarily-unavailable,
//!   definite). Adds wait too, so an add is only ever stored together with everything its
//!   session had seen. So a read never shows an older state than the session has seen
//!   (read-your-writes, monotonic reads) and an element never shows without what its session
//!   had written and read before adding it (monotonic writes, writes-follow-reads).
//! - Every reply's token covers the request's.
//! - A node answers no read until it has merged a whole state from every peer since its `init`
//!   (asked for with `sync`), so a restarted node never shows an older state than the one it
//!   showed before its kill.
//! - A request's `consistency` is not looked at: every level gets the same guarantee, the
//!   session's, as in `session.py`.
//!
//! Bugs:
//! - `ignore-token`: requests are answered at once whatever their token says, so a session that
//!   moves to a node that has not heard of its writes yet reads without them.
//! - `token-without-wait-on-add`: reads wait for their token, adds do not: an add stored on a
//!   node that lacks what its session wrote or read before can be seen without those.

use converge_mutants::{
    Fanout, Flow, Handler, MALFORMED_REQUEST, Message, Node, Parked, TEMPORARILY_UNAVAILABLE,
    bug_from_args, incarnation, run,
};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How often the whole state goes to every peer, and parked requests are expired.
const TICK: Duration = Duration::from_millis(50);
/// Longest a request waits for this node to cover its token (or to catch up).
const WAIT_MAX: Duration = Duration::from_millis(500);
/// Most requests waiting at once; more are refused at once.
const PARKED_MAX: usize = 1024;
/// Most early appends held until their dependencies arrive; later ones are dropped, and gossip
/// brings their elements instead.
const HELD_MAX: usize = 4096;
/// Most pushes to one peer that it has not acknowledged yet.
const PUSH_WINDOW: u64 = 64;
/// Longest gap between whole states sent to a silent peer.
const HEARTBEAT: Duration = Duration::from_millis(200);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bug {
    IgnoreToken,
    TokenWithoutWaitOnAdd,
}

const BUGS: &[(&str, Bug)] = &[
    ("ignore-token", Bug::IgnoreToken),
    ("token-without-wait-on-add", Bug::TokenWithoutWaitOnAdd),
];

/// A version vector: per origin, how many of its elements are covered.
type Vv = BTreeMap<String, u64>;

/// An element pushed on its own, with what its origin held when adding it.
struct Append {
    origin: String,
    index: u64,
    element: i64,
    deps: Vv,
}

struct Session {
    bug: Option<Bug>,
    /// This incarnation's origin name.
    me: String,
    /// Per origin, its elements in the order it added them.
    logs: BTreeMap<String, Vec<i64>>,
    /// Every element of every log, for reads.
    elements: BTreeSet<i64>,
    /// Appends that arrived before their dependencies.
    held: Vec<Append>,
    /// Peers whose whole state this incarnation has merged.
    heard: BTreeSet<String>,
    /// Requests waiting for their token (or for this node to catch up).
    parked: Parked,
    flow: Flow,
}

/// A request's token as a version vector (empty if it has none), or why it is malformed.
fn token(msg: &Message) -> Result<Vv, String> {
    match msg.get("token") {
        None | Some(Value::Null) => Ok(Vv::new()),
        Some(Value::Object(map)) => vv(map).ok_or_else(|| format!("malformed token {map:?}")),
        Some(other) => Err(format!("malformed token {other}")),
    }
}

fn vv(map: &Map<String, Value>) -> Option<Vv> {
    map.iter()
        .map(|(k, v)| v.as_u64().map(|n| (k.clone(), n)))
        .collect()
}

impl Session {
    fn new(bug: Option<Bug>) -> Self {
        Session {
            bug,
            me: String::new(),
            logs: BTreeMap::new(),
            elements: BTreeSet::new(),
            held: Vec::new(),
            heard: BTreeSet::new(),
            parked: Parked::new(PARKED_MAX),
            flow: Flow::new(PUSH_WINDOW, HEARTBEAT),
        }
    }

    fn len(&self, origin: &str) -> u64 {
        self.logs.get(origin).map_or(0, |l| l.len() as u64)
    }

    fn covers(&self, vv: &Vv) -> bool {
        vv.iter().all(|(origin, &n)| self.len(origin) >= n)
    }

    fn version(&self) -> Vv {
        self.logs
            .iter()
            .map(|(origin, log)| (origin.clone(), log.len() as u64))
            .collect()
    }

    /// Whether `msg` (a well-formed add or read) may be answered now.
    fn ready(&self, node: &Node, msg: &Message) -> bool {
        let waits_for_token = match self.bug {
            None => true,
            Some(Bug::IgnoreToken) => false,
            Some(Bug::TokenWithoutWaitOnAdd) => msg.kind() == "read",
        };
        // A malformed token is refused when answering, so it never waits.
        let covered = !waits_for_token || token(msg).is_ok_and(|t| self.covers(&t));
        let caught_up = msg.kind() != "read" || node.peers().all(|p| self.heard.contains(p));
        covered && caught_up
    }

    /// Answers an add or a read, now that it is ready.
    fn answer(&mut self, node: &Node, msg: &Message) {
        let request_token = match token(msg) {
            Ok(t) => t,
            Err(e) => return node.error(msg, MALFORMED_REQUEST, &e),
        };
        let mut reply = if msg.kind() == "add" {
            let Some(element) = msg.get("element").and_then(Value::as_i64) else {
                return node.error(msg, MALFORMED_REQUEST, "add without an integer element");
            };
            let deps = self.version();
            let index = self.len(&self.me);
            self.logs.entry(self.me.clone()).or_default().push(element);
            self.elements.insert(element);
            let append = json!({
                "type": "append",
                "origin": self.me,
                "index": index,
                "element": element,
                "deps": deps,
            });
            self.flow.push(node, node.peers(), Fanout::All, &append);
            json!({"type": "add_ok"})
        } else {
            json!({"type": "read_ok", "value": self.elements})
        };
        // The reply's token covers the request's even where a bug skipped the wait.
        let mut reply_token = self.version();
        for (origin, n) in request_token {
            let entry = reply_token.entry(origin).or_insert(0);
            *entry = (*entry).max(n);
        }
        reply["token"] = json!(reply_token);
        node.reply(msg, reply);
    }

    /// Answers every parked request that became ready.
    fn answer_parked(&mut self, node: &Node) {
        if self.parked.is_empty() {
            return;
        }
        // `ready` reads the state while the queue is being changed, so take the queue out.
        let mut parked = std::mem::replace(&mut self.parked, Parked::new(0));
        let ready = parked.take(|m| self.ready(node, m));
        self.parked = parked;
        for msg in ready {
            self.answer(node, &msg);
        }
    }

    /// Merges a peer's whole state: each origin's log only ever grows, so the longer one wins.
    fn merge(&mut self, logs: &Map<String, Value>) {
        for (origin, log) in logs {
            let Some(log) = log.as_array() else { continue };
            if log.len() as u64 <= self.len(origin) {
                continue;
            }
            let Some(log) = log.iter().map(Value::as_i64).collect::<Option<Vec<i64>>>() else {
                continue;
            };
            self.elements.extend(&log);
            self.logs.insert(origin.clone(), log);
        }
    }

    /// Applies every held append that is now next in its origin's log and whose dependencies
    /// are covered; drops the ones already applied.
    fn apply_held(&mut self) {
        loop {
            let mut applied = false;
            let held = std::mem::take(&mut self.held);
            for append in held {
                let len = self.len(&append.origin);
                if append.index < len {
                    continue;
                }
                if append.index == len && self.covers(&append.deps) {
                    self.logs
                        .entry(append.origin.clone())
                        .or_default()
                        .push(append.element);
                    self.elements.insert(append.element);
                    applied = true;
                } else {
                    self.held.push(append);
                }
            }
            if !applied {
                return;
            }
        }
    }

    fn hold(&mut self, msg: &Message) {
        let origin = msg.get("origin").and_then(Value::as_str);
        let index = msg.get("index").and_then(Value::as_u64);
        let element = msg.get("element").and_then(Value::as_i64);
        let deps = msg.get("deps").and_then(Value::as_object).and_then(vv);
        let (Some(origin), Some(index), Some(element), Some(deps)) = (origin, index, element, deps)
        else {
            return eprintln!("skipping a malformed append: {:?}", msg.body);
        };
        if self.held.len() >= HELD_MAX {
            return eprintln!("dropping an early append: {HELD_MAX} already held");
        }
        self.held.push(Append {
            origin: origin.to_string(),
            index,
            element,
            deps,
        });
    }

    fn state(&self) -> Value {
        json!({"type": "gossip", "logs": self.logs})
    }
}

impl Handler for Session {
    fn init(&mut self, node: &Node) {
        *self = Session::new(self.bug);
        self.me = incarnation(node.id());
        eprintln!("{} starts as origin {}", node.id(), self.me);
        for peer in node.peers() {
            node.send(peer, json!({"type": "sync"}));
        }
    }

    fn message(&mut self, node: &Node, msg: Message) {
        self.flow.receive(node, &msg, Instant::now());
        match msg.kind() {
            "add" | "read" if self.ready(node, &msg) => self.answer(node, &msg),
            "add" | "read" => {
                if let Err(msg) = self.parked.park(msg, Instant::now() + WAIT_MAX) {
                    node.error(&msg, TEMPORARILY_UNAVAILABLE, "too many requests waiting");
                }
            }
            "append" => {
                self.hold(&msg);
                self.apply_held();
                self.answer_parked(node);
            }
            "gossip" => {
                if let Some(logs) = msg.get("logs").and_then(Value::as_object) {
                    self.merge(logs);
                    self.heard.insert(msg.src.clone());
                    self.apply_held();
                    self.answer_parked(node);
                }
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
            let text = "this node does not cover the session's token yet";
            node.error(&msg, TEMPORARILY_UNAVAILABLE, text);
        }
    }
}

fn main() -> ExitCode {
    let bug = bug_from_args(BUGS);
    run(Session::new(bug), Some(TICK))
}
