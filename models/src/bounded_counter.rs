//! `bounded-counter`: three replicas of the real escrow counter, [`BoundedCounter`], never read
//! below zero, although each decrements without asking anyone, over a network that loses,
//! duplicates and reorders its δ and state messages (spec MODEL-11).
//!
//! # Why the CRDT, not `Replica`
//! The escrow counter is not yet a key type of `Replica` (no `KeyKind` for it, no transfer
//! request): it is being added elsewhere. So this model wraps the CRDT itself, as a replica's
//! keyspace would hold it: each replica is a stateright [`Actor`] holding one
//! [`BoundedCounter`], and what it sends is exactly what the CRDT hands out: the δ an
//! operation returns (a spend's δ with its backing), and, from replica [`GOSSIPS`], once, at
//! any point, its whole state.
//! When the key type lands, a model over `Replica` should replace this one's shell.
//!
//! # The system
//! Three replicas, each with a script of operations, each operation a timer that may fire at
//! any point; an operation the replica's state refuses (not enough rights) changes nothing and
//! stays armed, so it is tried again whenever its timer fires:
//! - replica 0: `increment(1)` (it creates the only unit and its right), `transfer(1 right to
//!   replica 1)` and `decrement(1)`;
//! - replicas 1 and 2: `decrement(1)` each.
//!
//! So of the three decrements at most one can succeed: replica 0's if it spends its right
//! before giving it away, or replica 1's once the transfer's δ (or a state carrying it) has
//! reached it; replica 2 never holds a right. Replica 1 also sends its whole state to the others
//! once (a `Gossip` timer), so a state message, which may carry what a lost δ carried, meets the
//! δs in every order (one gossiping replica, not three: three made the space 150 times larger
//! without a new way to spend). Stateright's network is unordered, duplicating and lossy. The
//! state space is finite and explored whole.
//!
//! # Properties
//! - `always` [`NEVER_BELOW_ZERO`]: no replica reads its counter below zero.
//! - `always` [`RIGHTS_NEVER_BELOW_ZERO`]: no replica's state shows any replica holding fewer
//!   than zero rights (the invariant the bound rests on, which must hold even in states that
//!   lack some δ: no causal delivery is assumed).
//! - `sometimes` [`DECREMENT_AFTER_TRANSFER`]: a replica decremented with rights it was given
//!   by a transfer.
//! - `sometimes` [`DECREMENTED`]: some decrement succeeded.
//!
//! # The broken variant
//! `bounded-counter-value-check` grants a decrement when the replica's local *value* covers it,
//! instead of its rights. The real `BoundedCounter` cannot express that guard (its `decrement`
//! checks the rights itself, and its decoder refuses a state with a replica below zero rights),
//! so the broken variant is the design the escrow counter replaces: the real [`PnCounter`],
//! whose decrement the shell grants when `value() ≥ 1`. It has no rights, so a transfer is
//! refused there. Its messages are whole states, so that the join is lawful in every delivery
//! order and the guard is the only thing wrong. It claims [`NEVER_BELOW_ZERO`] only, which must
//! have a counterexample (5 steps): replica 0 increments, replica 1 receives the unit, both
//! spend it, and replica 0's state reaches replica 1, which reads −1.

use converge_core::{BoundedCounter, Lattice, PnCounter, ReplicaId};
use stateright::Expectation;
use stateright::actor::{Actor, ActorModel, ActorModelState, Id, LossyNetwork, Network, Out};
use std::borrow::Cow;

/// `always`: no replica reads below zero.
pub const NEVER_BELOW_ZERO: &str = "no replica reads the counter below zero";
/// `always`: no replica's state shows negative rights.
pub const RIGHTS_NEVER_BELOW_ZERO: &str = "no replica's state shows rights below zero";
/// `sometimes`: a decrement spent rights that came from a transfer.
pub const DECREMENT_AFTER_TRANSFER: &str = "a decrement succeeded after a transfer";
/// `sometimes`: a decrement succeeded.
pub const DECREMENTED: &str = "a decrement succeeded";

/// Replicas.
pub const REPLICAS: usize = 3;
/// The replica that sends its whole state once.
pub const GOSSIPS: usize = 1;

/// Which guard a decrement has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// The escrow counter: a decrement within the replica's rights.
    Rights,
    /// A PN-counter whose decrement is granted when the local value covers it.
    ValueCheck,
}

/// A replica's counter: the real escrow counter, or, in the broken variant, the real
/// PN-counter.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Counter {
    /// The escrow counter.
    Escrow(BoundedCounter),
    /// The PN-counter of the broken variant.
    Naive(PnCounter),
}

/// Shown as its totals per replica (`P` increments, `N` decrements, `T` rights given, giver
/// then receiver), so that a path reads in one line per message. Every component of the
/// model's three replicas is shown, so unequal counters never look alike (the message order
/// relies on it).
impl std::fmt::Debug for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let all = || (0..REPLICAS as u64).map(ReplicaId);
        match self {
            Counter::Escrow(c) => {
                let p: Vec<u64> = all().map(|r| c.increments_of(r)).collect();
                let n: Vec<u64> = all().map(|r| c.decrements_of(r)).collect();
                let t: Vec<u64> = all()
                    .flat_map(|g| all().map(move |r| (g, r)))
                    .map(|(g, r)| c.transferred(g, r))
                    .collect();
                write!(f, "escrow P{p:?} N{n:?} T{t:?}")
            }
            Counter::Naive(c) => {
                let p: Vec<u64> = all().map(|r| c.increments().count_of(r)).collect();
                let n: Vec<u64> = all().map(|r| c.decrements().count_of(r)).collect();
                write!(f, "pn P{p:?} N{n:?}")
            }
        }
    }
}

impl Counter {
    fn new(variant: Variant) -> Counter {
        match variant {
            Variant::Rights => Counter::Escrow(BoundedCounter::new()),
            Variant::ValueCheck => Counter::Naive(PnCounter::new()),
        }
    }

    /// The value this replica reads.
    pub fn value(&self) -> i128 {
        match self {
            Counter::Escrow(c) => c.value(),
            Counter::Naive(c) => c.value(),
        }
    }

    /// Whether every replica holds at least zero rights in this state (trivially so in the
    /// PN-counter, which has none).
    pub fn rights_non_negative(&self) -> bool {
        match self {
            Counter::Escrow(c) => (0..REPLICAS as u64).all(|r| c.rights(ReplicaId(r)) >= 0),
            Counter::Naive(_) => true,
        }
    }

    /// Rights `me` was given by transfers, in this state.
    fn received(&self, me: ReplicaId) -> u64 {
        match self {
            Counter::Escrow(c) => (0..REPLICAS as u64)
                .map(|g| c.transferred(ReplicaId(g), me))
                .sum(),
            Counter::Naive(_) => 0,
        }
    }

    /// Runs `step` at replica `me`; the δ to send, or `None` if the guard refused it (and
    /// nothing changed).
    fn apply(&mut self, me: ReplicaId, step: Step) -> Option<Counter> {
        match (self, step) {
            (Counter::Escrow(c), Step::Increment) => c.increment(me, 1).ok().map(Counter::Escrow),
            (Counter::Escrow(c), Step::Decrement) => c.decrement(me, 1).ok().map(Counter::Escrow),
            (Counter::Escrow(c), Step::Transfer(to)) => {
                c.transfer(me, ReplicaId(to), 1).ok().map(Counter::Escrow)
            }
            // The PN-counter's messages are whole states, so that its join and deltas are lawful
            // whatever the delivery order and the guard is the only thing wrong with it.
            (Counter::Naive(c), Step::Increment) => {
                c.increment(me, 1).ok()?;
                Some(Counter::Naive(c.clone()))
            }
            // The broken guard: the value this replica sees, not rights it holds.
            (Counter::Naive(c), Step::Decrement) if c.value() >= 1 => {
                c.decrement(me, 1).ok()?;
                Some(Counter::Naive(c.clone()))
            }
            (Counter::Naive(_), Step::Decrement | Step::Transfer(_)) => None,
        }
    }

    /// Joins `other` in; whether anything changed.
    fn join(&mut self, other: &Counter) -> bool {
        match (self, other) {
            (Counter::Escrow(a), Counter::Escrow(b)) => {
                let before = a.clone();
                a.join(b.clone());
                *a != before
            }
            (Counter::Naive(a), Counter::Naive(b)) => {
                let before = a.clone();
                a.join(b.clone());
                *a != before
            }
            // One model never mixes the two.
            _ => false,
        }
    }
}

/// One scripted operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// Add 1 (creating a right here).
    Increment,
    /// Subtract 1, if the guard grants it.
    Decrement,
    /// Give one right to this replica.
    Transfer(u64),
}

/// A replica's timers: its scripted operations, and its one state gossip.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// Try this operation.
    Op(Step),
    /// Send the whole state to the others.
    Gossip,
}

/// A message: a δ or a whole state, joined the same way.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Msg {
    /// What an operation returned.
    Delta(Counter),
    /// A replica's whole state.
    State(Counter),
}

/// Stateright orders messages (its network is a sorted map), and the CRDTs are not `Ord`:
/// messages are ordered by their debug rendering, which is deterministic (every map in them
/// is ordered) and tells unequal counters apart (it prints every component).
impl Ord for Msg {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        format!("{self:?}").cmp(&format!("{other:?}"))
    }
}

impl PartialOrd for Msg {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A replica: which variant, and its script.
#[derive(Clone, Debug)]
pub struct Node {
    variant: Variant,
    script: &'static [Step],
    gossips: bool,
}

/// A replica's state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeState {
    /// Its counter.
    pub counter: Counter,
    /// Whether one of its decrements succeeded.
    pub decremented: bool,
    /// Whether one of its decrements succeeded while its state showed rights given to it.
    pub decremented_after_transfer: bool,
}

fn others(me: Id) -> impl Iterator<Item = Id> {
    (0..REPLICAS).map(Id::from).filter(move |&i| i != me)
}

impl Actor for Node {
    type Msg = Msg;
    type State = NodeState;
    type Timer = Timer;
    type Random = ();
    type Storage = ();

    fn on_start(&self, _id: Id, _storage: &Option<()>, o: &mut Out<Self>) -> NodeState {
        for &step in self.script {
            o.set_timer(Timer::Op(step), stateright::actor::model_timeout());
        }
        if self.gossips {
            o.set_timer(Timer::Gossip, stateright::actor::model_timeout());
        }
        NodeState {
            counter: Counter::new(self.variant),
            decremented: false,
            decremented_after_transfer: false,
        }
    }

    fn on_msg(&self, _id: Id, state: &mut Cow<NodeState>, _src: Id, msg: Msg, _o: &mut Out<Self>) {
        let (Msg::Delta(c) | Msg::State(c)) = &msg;
        let mut next = state.counter.clone();
        // A message that adds nothing leaves the state borrowed: not a step.
        if next.join(c) {
            state.to_mut().counter = next;
        }
    }

    fn on_timeout(&self, id: Id, state: &mut Cow<NodeState>, timer: &Timer, o: &mut Out<Self>) {
        let me = ReplicaId(usize::from(id) as u64);
        match *timer {
            Timer::Gossip => {
                for to in others(id) {
                    o.send(to, Msg::State(state.counter.clone()));
                }
            }
            Timer::Op(step) => {
                let mut next = state.counter.clone();
                let Some(delta) = next.apply(me, step) else {
                    // Refused: nothing changes, and the operation is tried again later.
                    o.set_timer(Timer::Op(step), stateright::actor::model_timeout());
                    return;
                };
                let given = state.counter.received(me) > 0;
                let s = state.to_mut();
                s.counter = next;
                if step == Step::Decrement {
                    s.decremented = true;
                    s.decremented_after_transfer |= given;
                }
                for to in others(id) {
                    o.send(to, Msg::Delta(delta.clone()));
                }
            }
        }
    }
}

/// The model's state.
pub type State = ActorModelState<Node>;

fn replicas(state: &State) -> impl Iterator<Item = &NodeState> {
    state.actor_states.iter().map(|s| &**s)
}

/// Each replica's script: replica 0 makes the unit, gives its right to replica 1 and tries to
/// spend it; replicas 1 and 2 try to spend one.
static SCRIPTS: [&[Step]; REPLICAS] = [
    &[Step::Increment, Step::Transfer(1), Step::Decrement],
    &[Step::Decrement],
    &[Step::Decrement],
];

/// The model of `variant`.
pub fn model(variant: Variant) -> ActorModel<Node> {
    let actors = SCRIPTS.iter().enumerate().map(|(i, &script)| Node {
        variant,
        script,
        gossips: i == GOSSIPS,
    });
    let m = ActorModel::new((), ())
        .actors(actors)
        .init_network(Network::new_unordered_duplicating([]))
        .lossy_network(LossyNetwork::Yes)
        .property(Expectation::Always, NEVER_BELOW_ZERO, |_, state| {
            replicas(state).all(|r| r.counter.value() >= 0)
        })
        .property(Expectation::Sometimes, DECREMENTED, |_, state| {
            replicas(state).any(|r| r.decremented)
        });
    // The broken variant claims only what it is built to break.
    if variant != Variant::Rights {
        return m;
    }
    m.property(Expectation::Always, RIGHTS_NEVER_BELOW_ZERO, |_, state| {
        replicas(state).all(|r| r.counter.rights_non_negative())
    })
    .property(
        Expectation::Sometimes,
        DECREMENT_AFTER_TRANSFER,
        |_, state| replicas(state).any(|r| r.decremented_after_transfer),
    )
}
