//! A register node for the `lww-register` (`--mode lww`) and `mv-register` (`--mode mv`)
//! workloads: a correct one, or one with a classic bug (`--bug NAME`).
//!
//! `--skew-ms N` (default 0) sets node `n_i`'s clock `i * N` milliseconds behind the machine's.
//! The nodes of a run share one machine, so their clocks agree far better than those of nodes in
//! different regions; the flag gives them the skew that real deployments have, which is what the
//! `wall-clock` bug needs to show. The correct modes accept it and are unaffected. The harness's
//! clock nemesis (`converge certify --nemesis clock`) moves the clocks from outside instead: the
//! node reads its clock with `SystemTime::now`, which libfaketime reaches.
//!
//! Correct `lww` design: the register holds one value with a stamp `(time, node id)`, time in
//! microseconds, and the join keeps the larger stamp (the value breaks a tie, which only two
//! incarnations of one node could produce). Times come from a hybrid logical clock: a write takes
//! `max(skewed wall clock, largest time seen + 1)`, and every stamp merged raises the largest time
//! seen. So a write is stamped above everything its node had, and a causally later write always
//! wins, however far the clocks are apart.
//!
//! Correct `mv` design: a multi-value register on the dot kernel of
//! [`converge_mutants::dots`]. A write deletes every sibling this node holds and adds its value
//! with a fresh dot of this incarnation; the join keeps every sibling the other side never saw.
//! So a write supersedes exactly what its node had, and writes concurrent with it stay siblings.
//!
//! Invariants of both:
//! - Each write's new state (the stamped value, or the dot and the deleted ones) is pushed to one
//!   peer before the reply (see [`Flow`]), so an acknowledged write survives this process being
//!   killed right after it; the joins are idempotent, commutative and associative, so lost,
//!   duplicated and reordered messages are harmless.
//! - Every `TICK` the whole state goes to every peer (less often to a silent one), so whatever a
//!   partition or loss dropped is repaired within one period after it heals.
//! - A node restarted after a kill answers no client request until it has merged a whole state
//!   from every peer (see [`CatchUp`], which also tells a restart from a first start): it has
//!   lost its state, but a write it acknowledges must still supersede whatever its previous
//!   incarnation had, and it must never read a value that such a write superseded.
//!
//! Bugs:
//! - `wall-clock` (`lww` only): writes are stamped with the node's own skewed wall clock and
//!   nothing else, and a write, like a merge, only takes effect if its stamp is the larger. A node
//!   whose clock runs behind reads a value written on a node whose clock runs ahead, writes, and
//!   its write loses to the value it had just read: the `lww-winner` check catches the node
//!   reading that value again after acknowledging the write, and the final reads showing a value
//!   an acknowledged write had seen. With `--skew-ms 500`, every write at `n1` and `n2` loses to
//!   whatever `n0` wrote in the half second before, so the loss needs no lucky timing; so does
//!   `--nemesis clock`, with no skew of the node's own. Without either, the nodes' clocks on one
//!   machine agree to the microsecond the stamps count in, and the bug does not show: it is the
//!   skew that finds it, not the timing of a run.
//! - `keep-one` (`mv` only): after every join, only the largest sibling is kept and the others
//!   are deleted, as if concurrent writes could be ordered by value. Two writes that no other
//!   write could have seen (the last ones on each side of a partition) must both stay siblings;
//!   `mv-siblings` catches the one that was dropped.

use converge_mutants::dots::Dots;
use converge_mutants::{
    CatchUp, ErrorCode, Fanout, Flow, Handler, Message, Node, args_from_env, incarnation, run,
    usage_error,
};
use serde_json::{Value, json};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often the whole state goes to every peer.
const TICK: Duration = Duration::from_millis(50);
/// Longest a request waits for this node to catch up from its peers after a restart.
const WAIT_MAX: Duration = Duration::from_millis(500);
/// Most requests waiting at once; more are refused at once.
const PARKED_MAX: usize = 1024;
/// Most pushes to one peer that it has not acknowledged yet.
const PUSH_WINDOW: u64 = 64;
/// Longest gap between whole states sent to a silent peer.
const HEARTBEAT: Duration = Duration::from_millis(200);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bug {
    WallClock,
    KeepOne,
}

const BUGS: &[(&str, Bug)] = &[("wall-clock", Bug::WallClock), ("keep-one", Bug::KeepOne)];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Lww,
    Mv,
}

/// A value with its stamp; the order of the tuple is the order of stamps.
type Stamped = (i64, String, i64);

/// The register's state: a whole one, or what one write changed.
#[derive(Clone, Debug, PartialEq)]
enum State {
    Lww(Option<Stamped>),
    Mv(Dots),
}

impl State {
    fn to_json(&self, kind: &str) -> Value {
        match self {
            State::Lww(stamped) => json!({"type": kind, "lww": stamped}),
            State::Mv(dots) => json!({"type": kind, "mv": dots.to_json()}),
        }
    }

    /// The state `msg` carries, in `mode`; `None` if it carries none.
    fn parse(msg: &Message, mode: Mode) -> Option<State> {
        match mode {
            Mode::Lww => match msg.get("lww")? {
                Value::Null => Some(State::Lww(None)),
                value => {
                    let [t, node, v] = value.as_array()?.as_slice() else {
                        return None;
                    };
                    let stamped = (t.as_i64()?, node.as_str()?.to_string(), v.as_i64()?);
                    Some(State::Lww(Some(stamped)))
                }
            },
            Mode::Mv => Dots::from_json(msg.get("mv")?).map(State::Mv),
        }
    }
}

struct Register {
    mode: Mode,
    bug: Option<Bug>,
    skew_ms: i64,
    /// This node's clock offset in µs: minus its index times the skew.
    offset_us: i64,
    /// This incarnation's replica name, for its dots.
    me: String,
    state: State,
    /// The hybrid logical clock: the largest time this node stamped or saw.
    clock: i64,
    catch_up: CatchUp,
    flow: Flow,
}

impl Register {
    fn new(mode: Mode, bug: Option<Bug>, skew_ms: i64) -> Self {
        Register {
            mode,
            bug,
            skew_ms,
            offset_us: 0,
            me: String::new(),
            state: match mode {
                Mode::Lww => State::Lww(None),
                Mode::Mv => State::Mv(Dots::default()),
            },
            clock: i64::MIN,
            catch_up: CatchUp::new(PARKED_MAX, WAIT_MAX),
            flow: Flow::new(PUSH_WINDOW, HEARTBEAT),
        }
    }

    /// This node's wall clock, in microseconds, skewed by its offset.
    fn wall_us(&self) -> i64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        now.saturating_add(self.offset_us)
    }

    /// Joins `other` into the state.
    fn join(&mut self, other: &State) {
        match (&mut self.state, other) {
            (State::Lww(mine), State::Lww(Some(theirs))) => {
                self.clock = self.clock.max(theirs.0);
                if mine.as_ref().is_none_or(|m| theirs > m) {
                    *mine = Some(theirs.clone());
                }
            }
            (State::Mv(mine), State::Mv(theirs)) => {
                mine.join(theirs);
                if self.bug == Some(Bug::KeepOne) {
                    let kept = mine.values().last().copied();
                    let others: Vec<_> = mine
                        .entries()
                        .filter(|(_, v)| Some(*v) != kept)
                        .map(|(d, _)| d)
                        .collect();
                    mine.delete(&others);
                }
            }
            _ => {}
        }
    }

    /// Writes `value`; returns what changed, to push.
    fn write(&mut self, node: &Node, value: i64) -> State {
        if let State::Mv(dots) = &mut self.state {
            let siblings: Vec<_> = dots.entries().map(|(d, _)| d).collect();
            let (delta, _) = dots.write(&self.me, value, &siblings);
            return State::Mv(delta);
        }
        let time = if self.bug == Some(Bug::WallClock) {
            self.wall_us()
        } else {
            let time = self.wall_us().max(self.clock.saturating_add(1));
            self.clock = time;
            time
        };
        let write = State::Lww(Some((time, node.id().to_string(), value)));
        // A write is a merge of the new stamped value: with a clock that never runs behind what
        // this node has, it always wins; with the bug's, it may not.
        self.join(&write);
        write
    }

    fn read(&self) -> Value {
        match &self.state {
            State::Lww(stamped) => json!(stamped.as_ref().map(|s| s.2)),
            State::Mv(dots) => json!(dots.values()),
        }
    }

    /// Answers a client request; the node has caught up.
    fn request(&mut self, node: &Node, msg: &Message) {
        match msg.kind() {
            "read" => node.reply(msg, json!({"type": "read_ok", "value": self.read()})),
            "write" => {
                let Some(value) = msg.get("value").and_then(Value::as_i64) else {
                    return node.error(
                        msg,
                        ErrorCode::MalformedRequest,
                        "write without an integer value",
                    );
                };
                let change = self.write(node, value);
                // The change goes out before the reply, so the write survives this node's kill.
                self.flow
                    .push(node, node.peers(), Fanout::One, &change.to_json("push"));
                node.reply(msg, json!({"type": "write_ok"}));
            }
            _ => node.unknown(msg),
        }
    }

    fn merge(&mut self, msg: &Message) -> bool {
        match State::parse(msg, self.mode) {
            Some(state) => {
                self.join(&state);
                true
            }
            None => {
                eprintln!("skipping a malformed state: {:?}", msg.body);
                false
            }
        }
    }
}

impl Handler for Register {
    fn init(&mut self, node: &Node) {
        *self = Register::new(self.mode, self.bug, self.skew_ms);
        let index = node.ids().iter().position(|i| i == node.id()).unwrap_or(0);
        self.offset_us = (index as i64)
            .saturating_mul(self.skew_ms)
            .saturating_mul(1000)
            .saturating_neg();
        self.me = incarnation(node.id());
        eprintln!(
            "{} starts as replica {}, clock offset {} ms",
            node.id(),
            self.me,
            self.offset_us / 1000
        );
        self.catch_up.start(node);
    }

    fn message(&mut self, node: &Node, msg: Message) {
        if let Some(ready) = self.catch_up.boot_answer(node, &msg) {
            for held in ready {
                self.request(node, &held);
            }
            return;
        }
        self.flow.receive(node, &msg, Instant::now());
        match msg.kind() {
            "read" | "write" => {
                if let Some(msg) = self.catch_up.admit(node, msg) {
                    self.request(node, &msg);
                }
            }
            // What one write at a peer changed.
            "push" => {
                self.merge(&msg);
            }
            // A peer's whole state.
            "gossip" => {
                if self.merge(&msg) {
                    for held in self.catch_up.heard(node, &msg.src) {
                        self.request(node, &held);
                    }
                }
            }
            "sync" => node.send(&msg.src, self.state.to_json("gossip")),
            "push_ok" => {}
            _ => node.unknown(&msg),
        }
    }

    fn tick(&mut self, node: &Node, now: Instant) {
        self.flow.send_acks(node);
        let state = self.state.to_json("gossip");
        for peer in node.peers() {
            if self.flow.may_send_state(peer, now) {
                node.send(peer, state.clone());
            }
        }
        self.catch_up.expire(node, now);
    }
}

fn main() -> ExitCode {
    let args = args_from_env(BUGS, &["mode", "skew-ms"]);
    let mode = match args.option("mode") {
        Some("lww") => Mode::Lww,
        Some("mv") => Mode::Mv,
        Some(other) => usage_error(&format!("unknown --mode {other:?}; modes: lww, mv")),
        None => usage_error("--mode lww or --mode mv is required"),
    };
    let skew_ms = match args.option("skew-ms").map(str::parse::<i64>) {
        None => 0,
        Some(Ok(skew)) => skew,
        Some(Err(e)) => usage_error(&format!("--skew-ms needs an integer: {e}")),
    };
    match (mode, args.bug) {
        (Mode::Mv, Some(Bug::WallClock)) => usage_error("--bug wall-clock needs --mode lww"),
        (Mode::Lww, Some(Bug::KeepOne)) => usage_error("--bug keep-one needs --mode mv"),
        _ => {}
    }
    run(Register::new(mode, args.bug, skew_ms), Some(TICK))
}
