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
//! - Consistency levels, as `docs/protocol.md` defines them for a harness that knows no regions
//!   (every node its own region): `LOCAL_ONE` and `LOCAL_QUORUM` are met by this node alone. A
//!   `GLOBAL_QUORUM` add is acknowledged once a majority of the nodes, this one included, hold
//!   the element: a peer says so with `holds` in answer to the append (re-sent every `TICK` to
//!   the peers that have not), or with a whole state that has it. A `GLOBAL_QUORUM` read asks
//!   every peer for its whole state (`sync` with a `round`, re-asked every `TICK`), and answers
//!   once a majority has answered that round, from the merged state. Neither waits more than
//!   `WAIT_MAX`: then the add is refused with error 0 (indefinite: it is stored here and will
//!   spread), the read with error 11.
//!
//! Bugs:
//! - `ignore-token`: requests are answered at once whatever their token says, so a session that
//!   moves to a node that has not heard of its writes yet reads without them.
//! - `token-without-wait-on-add`: reads wait for their token, adds do not: an add stored on a
//!   node that lacks what its session wrote or read before can be seen without those.
//! - `fake-quorum`: `GLOBAL_QUORUM` requests are answered like `LOCAL_ONE` ones, at once after
//!   the local apply, without waiting for any peer (as a node that will add quorums later
//!   does): every session guarantee still holds, only the level is a lie.

use converge_mutants::{
    ErrorCode, Fanout, Flow, Handler, Message, Node, Parked, bug_from_args, incarnation, run,
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
    FakeQuorum,
}

const BUGS: &[(&str, Bug)] = &[
    ("ignore-token", Bug::IgnoreToken),
    ("token-without-wait-on-add", Bug::TokenWithoutWaitOnAdd),
    ("fake-quorum", Bug::FakeQuorum),
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

/// A `GLOBAL_QUORUM` request answered here, waiting for a majority of the nodes.
struct QuorumWait {
    msg: Message,
    deadline: Instant,
    /// The peers that took part so far.
    acks: BTreeSet<String>,
    awaiting: Awaiting,
}

enum Awaiting {
    /// This incarnation's element number `index` to be held; `append` is re-sent to the peers
    /// that have not said so.
    Add { index: u64, append: Value },
    /// Whole states answering `sync` round `round` (or a later one).
    Read { round: u64 },
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
    /// `GLOBAL_QUORUM` requests waiting for their majority.
    quorum: Vec<QuorumWait>,
    /// The last `sync` round this incarnation started.
    round: u64,
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
            quorum: Vec::new(),
            round: 0,
        }
    }

    /// Whether `msg` must wait for a majority of the nodes before its answer.
    fn global_quorum(&self, msg: &Message) -> bool {
        self.bug != Some(Bug::FakeQuorum)
            && msg.get("consistency").and_then(Value::as_str) == Some("GLOBAL_QUORUM")
    }

    /// `reply` with a token that covers this node's state and the request's token.
    fn with_token(&self, mut reply: Value, request_token: Vv) -> Value {
        let mut reply_token = self.version();
        for (origin, n) in request_token {
            let entry = reply_token.entry(origin).or_insert(0);
            *entry = (*entry).max(n);
        }
        reply["token"] = json!(reply_token);
        reply
    }

    /// Notes what a peer's message says of the quorum waits: a `holds` or a whole state that
    /// covers an add, a whole state that answers a read's round.
    fn note_quorum(&mut self, msg: &Message) {
        let len = |logs: Option<&Value>| {
            logs.and_then(|l| l.get(&self.me))
                .and_then(Value::as_array)
                .map_or(0, |l| l.len() as u64)
        };
        let held = match msg.kind() {
            "holds" if msg.get("origin").and_then(Value::as_str) == Some(self.me.as_str()) => {
                msg.get("len").and_then(Value::as_u64).unwrap_or(0)
            }
            "gossip" => len(msg.get("logs")),
            _ => 0,
        };
        let round = (msg.kind() == "gossip")
            .then(|| msg.get("round").and_then(Value::as_u64))
            .flatten();
        for wait in &mut self.quorum {
            let took_part = match wait.awaiting {
                Awaiting::Add { index, .. } => held > index,
                Awaiting::Read { round: r } => round.is_some_and(|answered| answered >= r),
            };
            if took_part {
                wait.acks.insert(msg.src.clone());
            }
        }
    }

    /// Answers every quorum wait a majority has answered.
    fn finish_quorum(&mut self, node: &Node) {
        let needed = node.ids().len() / 2;
        let waits = std::mem::take(&mut self.quorum);
        for wait in waits {
            if wait.acks.len() < needed {
                self.quorum.push(wait);
                continue;
            }
            let request_token = token(&wait.msg).unwrap_or_default();
            let reply = match wait.awaiting {
                Awaiting::Add { .. } => json!({"type": "add_ok"}),
                Awaiting::Read { .. } => json!({"type": "read_ok", "value": self.elements}),
            };
            node.reply(&wait.msg, self.with_token(reply, request_token));
        }
    }

    /// Re-sends what the quorum waits still lack, and refuses the ones past their deadline.
    fn tick_quorum(&mut self, node: &Node, now: Instant) {
        let waits = std::mem::take(&mut self.quorum);
        for wait in waits {
            if now >= wait.deadline {
                match wait.awaiting {
                    Awaiting::Add { .. } => {
                        let text = "no majority holds it yet; it is stored here and will spread";
                        // Timeout is indefinite: the add is stored here and may take effect.
                        node.error(&wait.msg, ErrorCode::Timeout, text);
                    }
                    Awaiting::Read { .. } => {
                        let text = "no majority answered in time";
                        node.error(&wait.msg, ErrorCode::TemporarilyUnavailable, text);
                    }
                }
                continue;
            }
            for peer in node.peers().filter(|p| !wait.acks.contains(*p)) {
                match &wait.awaiting {
                    Awaiting::Add { append, .. } => node.send(peer, append.clone()),
                    Awaiting::Read { round } => {
                        node.send(peer, json!({"type": "sync", "round": round}));
                    }
                }
            }
            self.quorum.push(wait);
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
            None | Some(Bug::FakeQuorum) => true,
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
            Err(e) => return node.error(msg, ErrorCode::MalformedRequest, &e),
        };
        let quorum = self.global_quorum(msg) && node.ids().len() > 1;
        if quorum && msg.kind() == "read" {
            // Ask every peer for its whole state; the answer waits for a majority of them.
            self.round += 1;
            for peer in node.peers() {
                node.send(peer, json!({"type": "sync", "round": self.round}));
            }
            self.quorum.push(QuorumWait {
                msg: msg.clone(),
                deadline: Instant::now() + WAIT_MAX,
                acks: BTreeSet::new(),
                awaiting: Awaiting::Read { round: self.round },
            });
            return;
        }
        let reply = if msg.kind() == "add" {
            let Some(element) = msg.get("element").and_then(Value::as_i64) else {
                return node.error(
                    msg,
                    ErrorCode::MalformedRequest,
                    "add without an integer element",
                );
            };
            let deps = self.version();
            let index = self.len(&self.me);
            self.logs.entry(self.me.clone()).or_default().push(element);
            self.elements.insert(element);
            let mut append = json!({
                "type": "append",
                "origin": self.me,
                "index": index,
                "element": element,
                "deps": deps,
            });
            if quorum {
                // Peers answer `holds` once they have it.
                append["ack"] = json!(true);
            }
            self.flow.push(node, node.peers(), Fanout::All, &append);
            if quorum {
                self.quorum.push(QuorumWait {
                    msg: msg.clone(),
                    deadline: Instant::now() + WAIT_MAX,
                    acks: BTreeSet::new(),
                    awaiting: Awaiting::Add { index, append },
                });
                return;
            }
            json!({"type": "add_ok"})
        } else {
            json!({"type": "read_ok", "value": self.elements})
        };
        // The reply's token covers the request's even where a bug skipped the wait.
        node.reply(msg, self.with_token(reply, request_token));
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
                    node.error(
                        &msg,
                        ErrorCode::TemporarilyUnavailable,
                        "too many requests waiting",
                    );
                }
            }
            "append" => {
                self.hold(&msg);
                self.apply_held();
                self.answer_parked(node);
                let origin = msg.get("origin").and_then(Value::as_str).unwrap_or("");
                if msg.get("ack") == Some(&json!(true)) && !origin.is_empty() {
                    let len = self.len(origin);
                    if msg
                        .get("index")
                        .and_then(Value::as_u64)
                        .is_some_and(|i| i < len)
                    {
                        node.send(
                            &msg.src,
                            json!({"type": "holds", "origin": origin, "len": len}),
                        );
                    }
                }
            }
            "gossip" => {
                if let Some(logs) = msg.get("logs").and_then(Value::as_object) {
                    self.merge(logs);
                    self.heard.insert(msg.src.clone());
                    self.apply_held();
                    self.answer_parked(node);
                    self.note_quorum(&msg);
                    self.finish_quorum(node);
                }
            }
            "holds" => {
                self.note_quorum(&msg);
                self.finish_quorum(node);
            }
            "sync" => {
                let mut state = self.state();
                if let Some(round) = msg.get("round") {
                    state["round"] = round.clone();
                }
                node.send(&msg.src, state);
            }
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
            node.error(&msg, ErrorCode::TemporarilyUnavailable, text);
        }
        self.tick_quorum(node, now);
    }
}

fn main() -> ExitCode {
    let bug = bug_from_args(BUGS);
    run(Session::new(bug), Some(TICK))
}
