//! `replication`: regions write locally and replicate over a network that loses, duplicates and
//! reorders, and replicas crash and recover from what they persisted (spec MODEL-6).
//!
//! # The system
//! [`REGIONS`] regions of one real [`Replica`] each (`Config::grid(_, REGIONS, 1)`), each wrapped
//! as a stateright [`Actor`] the way a shell wraps it: after every input the actor first takes
//! [`Replica::take_durable`] and applies it to its disk ([`Durable::apply`]), *then* sends what
//! `poll_transmit` gives and releases what `poll_reply` gives (the ordering rule of `durable`).
//! Every region makes one write: an increment of the grow-only counter [`KEY`] at `LocalOne`,
//! when its `Write` timer fires (so writes interleave with replication in every order). The
//! write is *acknowledged* when the replica releases its successful reply.
//!
//! Stateright owns the network — unordered, duplicating (a delivered message stays deliverable)
//! and lossy (a message may be dropped, and then is never delivered) — and crashes: at most one
//! replica is down at a time, but a replica may crash and recover any number of times. A crash
//! loses everything but the disk, which is stateright's actor storage; recovery is
//! [`Replica::recover`] from it. Time is each replica's own: a message is handled at the
//! replica's current time, and its `Wake` timer, armed whenever `poll_timeout` names a deadline
//! that matters, moves the clock to that deadline when it fires.
//!
//! # Bounds
//! - Anti-entropy is off (its interval is [`AE_OFF_MS`], beyond any time the model reaches):
//!   this model checks that the oplog alone (batches, cumulative acks, go-back-N retransmission,
//!   resending after a restart) delivers every write; `anti-entropy` checks the repair.
//! - A `Wake` that moves a replica's clock forward costs one of its [`TIMEOUTS`] timeouts; one
//!   that is already due costs nothing. The count, and the replica's clock, are kept with its
//!   disk so that a crash cannot reset them (they are the model's bounds, not replica state).
//!   The bound is what makes the state space finite: every retransmission moves time.
//!
//! # Properties
//! - `always` [`NO_ACKED_WRITE_LOST`]: a region that acknowledged its write holds it on disk
//!   and, while up, in its state — through any crash and recovery.
//! - `always` [`NEVER_COUNTS_TWICE`]: no replica's counter exceeds the writes made; duplicated
//!   and re-sent batches are applied once ([`Variant::NoDedup`] breaks exactly this).
//! - `always` [`CONVERGED_WHEN_QUIESCENT`]: in a quiescent state every replica has the same
//!   keyspace (equal Merkle roots), holding exactly the writes made, acknowledged ones included.
//!   Claimed by the correct variant only, with the quiescence examples below: the broken one is
//!   never quiescent once it has sent anything (every redelivery counts again), so there the
//!   property would hold vacuously.
//! - `always` [`RECOVERY_SUCCEEDS`]: every disk image recovers.
//! - `sometimes` [`ALL_WRITES_EVERYWHERE`]: quiescent, with every region's write at every
//!   replica (so the quiescence property is not vacuous).
//! - `sometimes` [`RECOVERED_AFTER_ACK`]: a replica recovered after acknowledging its write
//!   (so the crash paths are explored), and [`RECOVERED_AND_CONVERGED`]: quiescent with every
//!   write everywhere after a recovery (so quiescence is reached after crashes too).
//!
//! # Quiescence under a duplicating network
//! A duplicating network never empties, so "no message in flight" would never hold. A state is
//! quiescent when nothing that can still happen would change anything: no replica is down, no
//! `Write` timer is pending, no replica has a deadline before [`AE_OFF_MS`] (no batch to flush,
//! nothing unacknowledged to retransmit), and every message in flight is *subsumed*: delivering
//! it to its receiver leaves the receiver's state unchanged, and every message that delivery
//! would send is itself already in flight. The in-flight set is then closed under delivery, so
//! no sequence of deliveries changes any state. A deadline still wanted counts as "something can
//! happen" even when the timeout budget is spent, so a bound never fakes quiescence.

use converge_core::ReplicaId;
use converge_core::replica::{
    Bug, Config, Consistency, Durable, KeyState, Op, Output, PeerMsg, Replica, Request,
};
use stateright::Expectation;
use stateright::actor::{
    Actor, ActorModel, ActorModelState, Command, Id, LossyNetwork, Network, Out, model_timeout,
};
use std::borrow::Cow;
use std::collections::BTreeSet;

/// The default depth bound. The state space is finite (see the bounds above) but grows about
/// fivefold every two steps; 12 steps reach every `sometimes` example, a crash after an
/// acknowledged write followed by recovery and convergence included, in seconds.
pub const DEPTH: usize = 12;
/// The default depth bound of the broken variant: its counterexample is six steps long, and
/// its `always` properties that still hold would otherwise make the checker explore as far as
/// the claim's (twice the states, since duplicates keep changing its state).
pub const DEPTH_NO_DEDUP: usize = 8;
/// Regions in the replication model, one replica each.
pub const REGIONS: usize = 2;
/// Clock-moving timeouts each replica may take (see the module documentation).
pub const TIMEOUTS: u8 = 1;
/// The anti-entropy interval that switches the periodic rounds off: far beyond any clock the
/// model reaches, yet small enough that `now + interval + jitter` cannot overflow.
pub const AE_OFF_MS: u64 = 1 << 60;
/// The counter every region increments.
pub const KEY: &[u8] = b"c";
/// Writes each region makes.
pub const WRITES: usize = 1;

/// `always`: an acknowledged write is on its region's disk and, while up, in its state.
pub const NO_ACKED_WRITE_LOST: &str = "no acknowledged write is lost";
/// `always`: no replica counts a write twice.
pub const NEVER_COUNTS_TWICE: &str = "no replica counts a write twice";
/// `always`: quiescent states are converged.
pub const CONVERGED_WHEN_QUIESCENT: &str = "quiescent => converged";
/// `always`: every disk image recovers.
pub const RECOVERY_SUCCEEDS: &str = "every recovery succeeds";
/// `sometimes`: quiescent with every write at every replica.
pub const ALL_WRITES_EVERYWHERE: &str = "quiescent with every write everywhere";
/// `sometimes`: quiescent with every write everywhere, after a replica recovered.
pub const RECOVERED_AND_CONVERGED: &str = "quiescent with every write everywhere after a recovery";
/// `sometimes`: a replica recovered after acknowledging its write.
pub const RECOVERED_AFTER_ACK: &str = "a replica recovered after acknowledging its write";

/// Which replication model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// The protocol as built.
    Correct,
    /// [`Bug::ApplyWithoutDedup`]: a duplicated batch is applied again.
    NoDedup,
}

/// The knobs that tell the replication model and the anti-entropy model apart.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Scenario {
    /// Regions, one replica each.
    pub regions: usize,
    /// Writes each region makes, one key each (`KEY` for the first, then `KEY` + index).
    pub writes: usize,
    /// Whether the writes happen in the initial state, during a partition that loses every
    /// message they produce (the anti-entropy model), rather than on a `Write` timer.
    pub writes_lost_in_partition: bool,
    /// Whether each replica pulls once from each neighbour (`start_anti_entropy`) on a `Pull`
    /// timer.
    pub pulls: bool,
    /// Clock-moving timeouts per replica.
    pub timeouts: u8,
    /// The replicas' configuration, `me` aside.
    pub config: Config,
}

/// The key of a region's `i`-th write.
pub fn key(i: usize) -> Vec<u8> {
    let mut k = KEY.to_vec();
    if i > 0 {
        k.push(b'0' + i as u8);
    }
    k
}

/// A region: the replica's configuration and the scenario it runs in.
#[derive(Clone, Debug)]
pub struct Region {
    scenario: Box<Scenario>,
    me: u64,
}

/// What survives a crash: the durable image, and the model's bookkeeping kept beside it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Disk {
    /// The replica's durable state, built only from `take_durable` deltas.
    pub durable: Durable,
    /// The replica's clock when it went down. Not durable state: the model keeps it so that a
    /// restarted replica's clock does not go back (a real node reads its OS clock).
    pub clock_ms: u64,
    /// Clock-moving timeouts taken (the model's bound, which a crash must not reset).
    pub timeouts: u8,
    /// Whether the region released a successful reply to its write (what the client saw).
    pub acked: bool,
}

/// A running region.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Up {
    /// The real replica.
    pub replica: Box<Replica>,
    /// A copy of what is on disk, to apply the next delta to.
    pub disk: Disk,
    /// Whether this replica was recovered from its disk.
    pub recovered: bool,
}

/// A region's state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NodeState {
    /// Running.
    Up(Up),
    /// `Replica::recover` refused the disk image (a bug the model reports).
    Unrecoverable(String),
}

/// A message: an encoded peer message.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Msg(pub Vec<u8>);

/// Shown decoded, so that a counterexample path and the explorer read as protocol steps
/// (`Batch(...)`, `Ack(...)`) rather than bytes.
impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match PeerMsg::decode(&self.0) {
            Ok(msg) => write!(f, "{msg:?}"),
            Err(e) => write!(f, "undecodable ({e}): {:?}", self.0),
        }
    }
}

/// A region's timers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// "Call `handle_timeout` at `poll_timeout`'s deadline."
    Wake,
    /// The region's client writes.
    Write,
    /// Start an anti-entropy round with this neighbour.
    Pull(u64),
}

fn write_request(i: usize) -> Request {
    Request {
        id: i as u64 + 1,
        key: key(i).into(),
        op: Op::Incr(1),
        consistency: Consistency::LocalOne,
        token: None,
    }
}

impl Region {
    /// After an input: persist first, then send, then release replies, then re-arm the wake.
    /// `send` is false while the region is partitioned: what it sends is lost.
    fn flush(&self, up: &mut Up, send: bool, o: &mut Out<Self>) {
        let before = up.disk.clone();
        let disk = &mut up.disk;
        up.replica.drain(|out| match out {
            Output::Durable(delta) => disk.durable.apply(delta),
            Output::Transmit(t) => {
                if send {
                    o.send(Id::from(t.to.0 as usize), Msg(t.payload));
                }
            }
            Output::Reply(reply) => disk.acked |= reply.result.is_ok(),
        });
        up.disk.clock_ms = up.replica.now_ms();
        if up.disk != before {
            o.save(up.disk.clone());
        }
        match up.replica.poll_timeout() {
            Some(t)
                if t < AE_OFF_MS
                    && (t <= up.replica.now_ms() || up.disk.timeouts < self.scenario.timeouts) =>
            {
                o.set_timer(Timer::Wake, model_timeout());
            }
            _ => o.cancel_timer(Timer::Wake),
        }
    }

    /// The writes this region has made: its own sequence numbers (each write is one entry).
    fn writes_made(&self, up: &Up) -> usize {
        up.replica.frontier().get(ReplicaId(self.me)) as usize
    }

    fn config(&self) -> Config {
        let mut config = self.scenario.config.clone();
        config.me = ReplicaId(self.me);
        config
    }
}

impl Actor for Region {
    type Msg = Msg;
    type State = NodeState;
    type Timer = Timer;
    type Random = ();
    type Storage = Disk;

    fn on_start(&self, _id: Id, storage: &Option<Disk>, o: &mut Out<Self>) -> NodeState {
        let (replica, disk, recovered) = match storage {
            None => {
                let replica = match Replica::new(self.config(), 0) {
                    Ok(r) => r,
                    Err(e) => return NodeState::Unrecoverable(e.to_string()),
                };
                let disk = Disk {
                    durable: replica.durable(),
                    clock_ms: 0,
                    timeouts: 0,
                    acked: false,
                };
                o.save(disk.clone());
                (replica, disk, false)
            }
            Some(disk) => {
                match Replica::recover(self.config(), disk.durable.clone(), disk.clock_ms) {
                    Ok(r) => (r, disk.clone(), true),
                    Err(e) => return NodeState::Unrecoverable(e.to_string()),
                }
            }
        };
        let mut up = Up {
            replica: Box::new(replica),
            disk,
            recovered,
        };
        let s = &self.scenario;
        if s.writes_lost_in_partition {
            // The partition: the writes happen before the model's first state, and every
            // message they produce is lost.
            for i in 0..s.writes {
                let now = up.replica.now_ms();
                up.replica.handle_request(now, write_request(i));
                self.flush(&mut up, false, o);
            }
        } else if self.writes_made(&up) < s.writes {
            // Not all written yet (a crash may come before a write): the client still will.
            o.set_timer(Timer::Write, model_timeout());
        }
        if s.pulls && !recovered {
            for p in up.replica.config().neighbours(ReplicaId(self.me)) {
                o.set_timer(Timer::Pull(p.0), model_timeout());
            }
        }
        self.flush(&mut up, true, o);
        NodeState::Up(up)
    }

    fn on_msg(&self, _id: Id, state: &mut Cow<NodeState>, src: Id, msg: Msg, o: &mut Out<Self>) {
        let NodeState::Up(up) = &**state else {
            return;
        };
        // Deliver to a copy first: a duplicate that changes nothing and sends nothing must be a
        // no-op for stateright (a borrowed state and no commands), or every duplicate in the
        // never-emptying network would count as a step.
        let mut next = up.clone();
        let now = next.replica.now_ms();
        next.replica
            .handle_message(now, ReplicaId(usize::from(src) as u64), &msg.0);
        let mut out = Out::new();
        self.flush(&mut next, true, &mut out);
        let sends = out.iter().any(|c| matches!(c, Command::Send(..)));
        if next == *up && !sends {
            return;
        }
        *state.to_mut() = NodeState::Up(next);
        o.append(&mut out);
    }

    fn on_timeout(&self, _id: Id, state: &mut Cow<NodeState>, timer: &Timer, o: &mut Out<Self>) {
        let NodeState::Up(up) = state.to_mut() else {
            return;
        };
        let now = up.replica.now_ms();
        match timer {
            Timer::Wake => {
                let deadline = up.replica.poll_timeout().unwrap_or(now).max(now);
                if deadline > now {
                    up.disk.timeouts = up.disk.timeouts.saturating_add(1);
                }
                up.replica.handle_timeout(deadline);
            }
            Timer::Write => {
                let i = self.writes_made(up);
                up.replica.handle_request(now, write_request(i));
                if i + 1 < self.scenario.writes {
                    o.set_timer(Timer::Write, model_timeout());
                }
            }
            Timer::Pull(p) => up.replica.start_anti_entropy(now, ReplicaId(*p)),
        }
        self.flush(up, true, o);
    }
}

/// The model's state.
pub type State = ActorModelState<Region>;

/// The running region `i`, if it is up.
pub fn up(state: &State, i: usize) -> Option<&Up> {
    if state.crashed.get(i).copied().unwrap_or(true) {
        return None;
    }
    match state.actor_states.get(i).map(|s| &**s) {
        Some(NodeState::Up(up)) => Some(up),
        _ => None,
    }
}

/// Region `i`'s disk.
pub fn disk(state: &State, i: usize) -> Option<&Disk> {
    state.actor_storages.get(i).and_then(Option::as_ref)
}

/// The count of `origin` in the counter `key` of a keyspace entry.
fn count_of(s: Option<&KeyState>, origin: usize) -> u64 {
    match s {
        Some(KeyState::Counter(c)) => c.count_of(ReplicaId(origin as u64)),
        _ => 0,
    }
}

/// The writes a region has made: the sequence numbers it issued, on its disk.
pub fn writes_made(state: &State, regions: usize) -> u64 {
    (0..regions)
        .filter_map(|i| disk(state, i))
        .map(|d| d.durable.meta.last_seq)
        .sum()
}

/// The sum of every counter at a replica.
pub fn total(replica: &Replica, writes: usize) -> u128 {
    (0..writes)
        .filter_map(|i| match replica.get(&key(i)) {
            Some(KeyState::Counter(c)) => Some(c.value()),
            _ => None,
        })
        .sum()
}

/// Whether nothing that can still happen would change anything (see the module documentation).
pub fn quiescent(model: &ActorModel<Region>, state: &State) -> bool {
    let n = model.actors.len();
    if (0..n).any(|i| up(state, i).is_none()) {
        return false;
    }
    if state
        .timers_set
        .iter()
        .any(|ts| ts.iter().any(|t| *t != Timer::Wake))
    {
        return false;
    }
    if (0..n).any(|i| {
        up(state, i)
            .and_then(|u| u.replica.poll_timeout())
            .is_some_and(|t| t < AE_OFF_MS)
    }) {
        return false;
    }
    let in_flight: BTreeSet<(Id, Id, &Msg)> = state
        .network
        .iter_all()
        .map(|e| (e.src, e.dst, e.msg))
        .collect();
    state.network.iter_deliverable().all(|env| {
        let dst = usize::from(env.dst);
        let (Some(actor), Some(actor_state)) = (model.actors.get(dst), state.actor_states.get(dst))
        else {
            return true;
        };
        let mut s = Cow::Borrowed(&**actor_state);
        let mut out = Out::new();
        actor.on_msg(env.dst, &mut s, env.src, env.msg.clone(), &mut out);
        matches!(s, Cow::Borrowed(_))
            && out.iter().all(|c| match c {
                Command::Send(to, m) => in_flight.contains(&(env.dst, *to, m)),
                _ => true,
            })
    })
}

/// Whether every replica is up with the same keyspace.
pub fn converged(model: &ActorModel<Region>, state: &State) -> bool {
    let n = model.actors.len();
    let roots: BTreeSet<Option<u64>> = (0..n)
        .map(|i| up(state, i).map(|u| u.replica.root_hash()))
        .collect();
    roots.len() == 1 && !roots.contains(&None)
}

/// Whether every region's writes are at every replica, all up.
fn all_writes_everywhere(model: &ActorModel<Region>, state: &State) -> bool {
    let n = model.actors.len();
    (0..n).all(|i| up(state, i).is_some_and(|u| total(&u.replica, WRITES) == (n * WRITES) as u128))
}

/// The actor model of `scenario`, without properties.
pub fn actor_model(scenario: &Scenario) -> ActorModel<Region> {
    let actors: Vec<Region> = (0..scenario.regions as u64)
        .map(|me| Region {
            scenario: Box::new(scenario.clone()),
            me,
        })
        .collect();
    ActorModel::new((), ()).actors(actors)
}

/// The replication scenario: [`REGIONS`] regions, one write each on a timer.
pub fn scenario(variant: Variant) -> Scenario {
    let mut config = Config::grid(0, REGIONS as u32, 1);
    config.batch_delay_ms = 0;
    config.ae_interval_ms = AE_OFF_MS;
    // Anti-entropy is off, so the Merkle tree only has to exist: the smallest one (one level of
    // two leaves) instead of the default 4,369 nodes, which every stored state would carry.
    config.merkle_fanout_bits = 1;
    config.merkle_depth = 1;
    config.track_durable = true;
    if variant == Variant::NoDedup {
        config.bug = Some(Bug::ApplyWithoutDedup);
    }
    Scenario {
        regions: REGIONS,
        writes: WRITES,
        writes_lost_in_partition: false,
        pulls: false,
        timeouts: TIMEOUTS,
        config,
    }
}

/// The replication model of `variant`.
pub fn model(variant: Variant) -> ActorModel<Region> {
    let m = actor_model(&scenario(variant))
        .init_network(Network::new_unordered_duplicating([]))
        .lossy_network(LossyNetwork::Yes)
        .max_crashes(1)
        .property(Expectation::Always, NO_ACKED_WRITE_LOST, |model, state| {
            let n = model.actors.len();
            (0..n).all(|i| {
                let Some(d) = disk(state, i) else {
                    return true;
                };
                !d.acked
                    || (count_of(d.durable.keys.get(KEY), i) >= 1
                        && up(state, i).is_none_or(|u| count_of(u.replica.get(KEY), i) >= 1))
            })
        })
        .property(Expectation::Always, NEVER_COUNTS_TWICE, |model, state| {
            let n = model.actors.len();
            let made = u128::from(writes_made(state, n));
            (0..n).all(|i| up(state, i).is_none_or(|u| total(&u.replica, WRITES) <= made))
        })
        .property(Expectation::Always, RECOVERY_SUCCEEDS, |_, state| {
            state
                .actor_states
                .iter()
                .all(|s| !matches!(**s, NodeState::Unrecoverable(_)))
        })
        .property(
            Expectation::Sometimes,
            RECOVERED_AFTER_ACK,
            |model, state| {
                let n = model.actors.len();
                (0..n).any(|i| up(state, i).is_some_and(|u| u.recovered && u.disk.acked))
            },
        );
    // The broken variant is never quiescent once it has sent anything: the network may deliver
    // any message again, and each delivery counts again. "Quiescent => converged" would hold
    // there only because no state is quiescent, so the variant does not claim it, and the
    // quiescence examples that keep the property from being vacuous belong with it.
    if variant != Variant::Correct {
        return m;
    }
    m.property(
        Expectation::Always,
        CONVERGED_WHEN_QUIESCENT,
        |model, state| {
            let n = model.actors.len();
            let made = u128::from(writes_made(state, n));
            // The cheap side first: `quiescent` delivers every message in flight to a copy
            // of its receiver, which dominates the check's time in a debug build.
            (converged(model, state)
                && (0..n).all(|i| up(state, i).is_some_and(|u| total(&u.replica, WRITES) == made)))
                || !quiescent(model, state)
        },
    )
    .property(
        Expectation::Sometimes,
        RECOVERED_AND_CONVERGED,
        |model, state| {
            let n = model.actors.len();
            (0..n).any(|i| up(state, i).is_some_and(|u| u.recovered))
                && all_writes_everywhere(model, state)
                && quiescent(model, state)
        },
    )
    .property(
        Expectation::Sometimes,
        ALL_WRITES_EVERYWHERE,
        |model, state| all_writes_everywhere(model, state) && quiescent(model, state),
    )
}
