//! An `or-set` node: a correct add-wins observed-remove set, or one with a classic bug
//! (`--bug NAME`).
//!
//! Correct design: an optimized OR-set on the dot kernel of [`converge_mutants::dots`]. Every add
//! puts its element in with a fresh dot of this incarnation (and deletes the dots of that element
//! this node holds, which the new dot supersedes); a remove deletes exactly the dots of the
//! element this node holds, and the causal context remembers them as seen, so the join deletes
//! them everywhere but keeps every dot the remover never saw. So an add concurrent with a remove
//! survives it (add wins), and a remove deletes every add it observed. Invariants:
//! - Each add or remove produces a delta (the new dot and the deleted ones), pushed to one peer
//!   before the reply (see [`Flow`]), so an acknowledged operation survives this process being
//!   killed right after it; the join is idempotent, commutative and associative, so lost,
//!   duplicated and reordered deltas are harmless.
//! - Every `TICK` the whole state goes to every peer (less often to a silent one), so whatever a
//!   partition or loss dropped is repaired within one period after it heals.
//! - A node restarted after a kill answers no client request until it has merged a whole state
//!   from every peer (see [`CatchUp`], which also tells a restart from a first start): a remove
//!   there must still delete the adds its previous incarnation acknowledged, and it can only
//!   delete dots it holds.
//!
//! Bugs:
//! - `remove-wins`: each remove also leaves a tombstone (a dot of its own, kept forever), and
//!   each add records which tombstones its node had seen (the tombstones' causal context). An element shows only if
//!   some add of it has seen every tombstone of it, so a remove beats every add it was
//!   concurrent with, and an add that no remove could have seen still vanishes if a remove it
//!   did not see exists: the `add-wins` check catches the element missing from the final reads.
//! - `tagless`: elements carry no tags: a remove records the element's value in a grow-only set
//!   of removed values, and an element shows if it was ever added and never removed (a
//!   two-phase set). The remove deletes concurrent adds it never observed and every later add of
//!   the same value, so the contested elements, added again after a remove, stay missing:
//!   `add-wins` catches an add that no remove could have seen missing from the final reads.

use converge_mutants::dots::{Context, Dot, Dots};
use converge_mutants::{
    CatchUp, ErrorCode, Fanout, Flow, Handler, Message, Node, bug_from_args, incarnation, run,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::time::{Duration, Instant};

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
    RemoveWins,
    Tagless,
}

const BUGS: &[(&str, Bug)] = &[("remove-wins", Bug::RemoveWins), ("tagless", Bug::Tagless)];

/// A whole state, or a delta of one: each part is used by the design that needs it and stays
/// empty otherwise.
#[derive(Clone, Debug, Default)]
struct State {
    /// The adds alive, by dot (correct and `remove-wins`).
    adds: Dots,
    /// `remove-wins`: one dot per remove, with its element, never deleted.
    removes: Dots,
    /// `remove-wins`: per add dot alive, the context of removes its node had seen (compact,
    /// however many removes there were).
    covers: BTreeMap<Dot, Context>,
    /// `tagless`: every element ever added, and every element ever removed.
    added: BTreeSet<i64>,
    removed: BTreeSet<i64>,
}

impl State {
    fn join(&mut self, other: &State) {
        self.adds.join(&other.adds);
        self.removes.join(&other.removes);
        for (dot, cover) in &other.covers {
            if self.adds.is_alive(dot) {
                // A dot's cover is fixed when it is made, so any copy of it is the same.
                self.covers
                    .entry(dot.clone())
                    .or_insert_with(|| cover.clone());
            }
        }
        let adds = &self.adds;
        self.covers.retain(|dot, _| adds.is_alive(dot));
        self.added.extend(&other.added);
        self.removed.extend(&other.removed);
    }

    /// The elements this state shows, under `bug`.
    fn elements(&self, bug: Option<Bug>) -> BTreeSet<i64> {
        match bug {
            None => self.adds.values(),
            Some(Bug::Tagless) => self.added.difference(&self.removed).copied().collect(),
            Some(Bug::RemoveWins) => {
                let mut tombs: BTreeMap<i64, BTreeSet<Dot>> = BTreeMap::new();
                for (dot, element) in self.removes.entries() {
                    tombs.entry(element).or_default().insert(dot);
                }
                let empty = Context::default();
                self.adds
                    .entries()
                    .filter(|(dot, element)| {
                        let cover = self.covers.get(dot).unwrap_or(&empty);
                        let tombs = tombs.get(element).into_iter().flatten();
                        tombs.into_iter().all(|(r, c)| cover.contains(r, *c))
                    })
                    .map(|(_, element)| element)
                    .collect()
            }
        }
    }

    /// This state as the fields of a message of type `kind`.
    fn body(&self, kind: &str) -> Value {
        let covers: Vec<Value> = self
            .covers
            .iter()
            .map(|((r, c), cover)| json!([r, c, cover.to_json()]))
            .collect();
        json!({
            "type": kind,
            "adds": self.adds.to_json(),
            "removes": self.removes.to_json(),
            "covers": covers,
            "added": self.added,
            "removed": self.removed,
        })
    }

    /// The inverse of [`State::body`]; `None` if `msg` does not hold a well-formed state.
    fn parse(msg: &Message) -> Option<State> {
        let integers = |field: &str| -> Option<BTreeSet<i64>> {
            msg.get(field)?
                .as_array()?
                .iter()
                .map(Value::as_i64)
                .collect()
        };
        let mut covers = BTreeMap::new();
        for entry in msg.get("covers")?.as_array()? {
            let [r, c, cover] = entry.as_array()?.as_slice() else {
                return None;
            };
            let cover = Context::from_json(cover)?;
            covers.insert((r.as_str()?.to_string(), c.as_u64()?), cover);
        }
        Some(State {
            adds: Dots::from_json(msg.get("adds")?)?,
            removes: Dots::from_json(msg.get("removes")?)?,
            covers,
            added: integers("added")?,
            removed: integers("removed")?,
        })
    }
}

struct OrSet {
    bug: Option<Bug>,
    /// This incarnation's replica name, for its dots.
    me: String,
    state: State,
    catch_up: CatchUp,
    flow: Flow,
}

impl OrSet {
    fn new(bug: Option<Bug>) -> Self {
        OrSet {
            bug,
            me: String::new(),
            state: State::default(),
            catch_up: CatchUp::new(PARKED_MAX, WAIT_MAX),
            flow: Flow::new(PUSH_WINDOW, HEARTBEAT),
        }
    }

    fn add(&mut self, element: i64) -> State {
        let mut delta = State::default();
        if self.bug == Some(Bug::Tagless) {
            self.state.added.insert(element);
            delta.added.insert(element);
            return delta;
        }
        let superseded = self.state.adds.dots_of(element);
        let (adds, dot) = self.state.adds.write(&self.me, element, &superseded);
        delta.adds = adds;
        self.state.covers.retain(|dot, _| !superseded.contains(dot));
        if self.bug == Some(Bug::RemoveWins) {
            let seen = self.state.removes.context().clone();
            self.state.covers.insert(dot.clone(), seen.clone());
            delta.covers.insert(dot, seen);
        }
        delta
    }

    fn remove(&mut self, element: i64) -> State {
        let mut delta = State::default();
        if self.bug == Some(Bug::Tagless) {
            self.state.removed.insert(element);
            delta.removed.insert(element);
            return delta;
        }
        let observed = self.state.adds.dots_of(element);
        delta.adds = self.state.adds.delete(&observed);
        self.state.covers.retain(|dot, _| !observed.contains(dot));
        if self.bug == Some(Bug::RemoveWins) {
            let (tomb, _) = self.state.removes.write(&self.me, element, &[]);
            delta.removes = tomb;
        }
        delta
    }

    /// Answers a client request; the node has caught up.
    fn request(&mut self, node: &Node, msg: &Message) {
        let element = msg.get("element").and_then(Value::as_i64);
        let (delta, reply) = match (msg.kind(), element) {
            ("read", _) => {
                let value = self.state.elements(self.bug);
                return node.reply(msg, json!({"type": "read_ok", "value": value}));
            }
            ("add", Some(element)) => (self.add(element), "add_ok"),
            ("remove", Some(element)) => (self.remove(element), "remove_ok"),
            (kind, None) => {
                let text = format!("{kind} without an integer element");
                return node.error(msg, ErrorCode::MalformedRequest, &text);
            }
            _ => return node.unknown(msg),
        };
        // The delta goes out before the reply, so the operation survives this node's kill.
        self.flow
            .push(node, node.peers(), Fanout::One, &delta.body("push"));
        node.reply(msg, json!({"type": reply}));
    }

    fn merge(&mut self, msg: &Message) -> bool {
        match State::parse(msg) {
            Some(state) => {
                self.state.join(&state);
                true
            }
            None => {
                eprintln!("skipping a malformed state: {:?}", msg.body);
                false
            }
        }
    }
}

impl Handler for OrSet {
    fn init(&mut self, node: &Node) {
        *self = OrSet::new(self.bug);
        self.me = incarnation(node.id());
        eprintln!("{} starts as replica {}", node.id(), self.me);
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
            "add" | "remove" | "read" => {
                if let Some(msg) = self.catch_up.admit(node, msg) {
                    self.request(node, &msg);
                }
            }
            // A delta of a peer's state.
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
            "sync" => node.send(&msg.src, self.state.body("gossip")),
            "push_ok" => {}
            _ => node.unknown(&msg),
        }
    }

    fn tick(&mut self, node: &Node, now: Instant) {
        self.flow.send_acks(node);
        let state = self.state.body("gossip");
        for peer in node.peers() {
            if self.flow.may_send_state(peer, now) {
                node.send(peer, state.clone());
            }
        }
        self.catch_up.expire(node, now);
    }
}

fn main() -> ExitCode {
    let bug = bug_from_args(BUGS);
    run(OrSet::new(bug), Some(TICK))
}
