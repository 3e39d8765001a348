//! `cas-linearizable`: compare-and-set and linearizable reads of one consensus register through
//! the real `Replica` are linearizable, over a duplicating, reordering network and across a
//! restart (spec MODEL-10).
//!
//! # The system
//! Three regions of one real [`Replica`] each (`Config::grid(_, 3, 1)`, `track_durable` on),
//! each wrapped as a stateright [`Actor`] the way a node's shell wraps it: after every input the
//! actor takes [`Replica::take_durable`] and applies it to its own [`Durable`] (its disk)
//! *before* it sends what `poll_transmit` gives or releases what `poll_reply` gives (the ordering
//! rule). Two clients, each an actor talking to its own region, issue their operations on one
//! register one at a time through [`Replica::handle_request`] at `GlobalQuorum`: client A at
//! region 0 runs [`SCRIPT_A`] (a set-if-absent, then a read), client B at region 1 runs
//! [`SCRIPT_B`] (a compare-and-set from A's value, then a set-if-absent racing A's); values 1
//! and 2.
//!
//! Stateright owns the network: unordered and duplicating (a delivered message stays
//! deliverable, and may also never be delivered). Peer messages meet it as they are; a client's
//! requests reach its region at most once, because a client's connection (TCP) neither
//! duplicates nor replays a request, so the region's shell remembers which requests it took and
//! ignores a copy (replies may be duplicated: a client ignores a reply that is not for the
//! operation it waits on).
//!
//! **The restart.** Region 2 (the one no client talks to, so it acts as an acceptor and a
//! learner only) restarts once: a `Restart` message it sends itself at start, which the network
//! may deliver at any point, or never. Delivering it throws away the replica's whole state and
//! rebuilds it with [`Replica::recover`] from the disk, which holds only what `take_durable`
//! handed out; messages in flight survive (a quick restart). Region 2 is in both clients'
//! majorities in some run, so its votes, and whether it kept them, decide as often as the
//! others'.
//!
//! # The history and how outcomes are judged
//! The history is stateright's [`LinearizabilityTester`] over [`CasRegister`], a sequential
//! register with `set`, `cas(from, to)` (succeeds iff the value is `from`; otherwise fails,
//! reporting the current value) and `get`. An operation is invoked when the client sends it and
//! returns when the client takes its reply:
//! - `Ok` returns what the operation did (`SetOk`, `CasOk`, the value read).
//! - `PreconditionFailed { current }` is a *return* of the compare-and-set: it failed, and the
//!   register held `current`, which the tester checks too.
//! - `Unavailable` (and any other definite error) is returned as [`CasRet::NoEffect`], which
//!   the specification accepts in every state without changing it: the operation took effect
//!   nowhere. That is the stronger of the two sound choices (the other is to leave it without a
//!   return): a definite error that did take effect would show as a value no linearization
//!   explains.
//! - `Indefinite`, or no reply at all, is *not* a return: the operation stays in flight, which
//!   the tester allows to take effect at any point after its invocation, or never. A client
//!   whose operation ended indefinitely stops (the tester allows one operation in flight per
//!   client, and a real client would not know whether to go on).
//!
//! # Bounds, and what they leave out
//! - Timers: a replica's wake is armed only for a deadline already due, and batches leave
//!   without delay, so no phase timeout, backoff, retransmission or anti-entropy round ever
//!   fires (anti-entropy is off). An operation that meets contention (a higher ballot) backs off
//!   and waits, so it stays in flight. The model therefore never sees `Unavailable` or
//!   `Indefinite` replies (they need five attempts' worth of timeouts): the mapping above is
//!   there for them, and the seeded runs of `reference/core/tests/replica/strong.rs` reach them.
//! - Loss: since no timer fires, nothing is ever re-sent, so a lost message and one the
//!   duplicating network never delivers leave every actor and the history in the same states;
//!   stateright's lossy option would only add a `Drop` step per message in flight (it more
//!   than doubled the states per step when tried) and no behaviour, so it is off.
//! - `StrongSet` is not in the scripts: it runs through the same proposer as a compare-and-set
//!   (`Want::Set` instead of `Want::Cas`), and a third operation per client would not be reached
//!   within the depth bound.
//! - The search is bounded by depth ([`DEPTH`]): every `sometimes` example is within it, and so
//!   are B's compare-and-set after A's set-if-absent and both set-if-absents racing.
//!
//! # Properties
//! - `always` [`LINEARIZABLE`]: the history is linearizable.
//! - `always` [`RECOVERS`]: the restarted replica recovers from its disk.
//! - `sometimes` [`CAS_SUCCEEDS`], [`CAS_FAILS`] (a compare-and-set fails its precondition) and
//!   [`OK_AFTER_RESTART`] (region 2 restarted and an operation succeeded after it).
//!
//! The broken variant `cas-linearizable-decided-locally` runs every replica with
//! [`Bug::CasDecidedLocally`] (a compare-and-set judged against the local acceptor's last
//! decision and declared decided without a majority) and must break [`LINEARIZABLE`]. Its
//! counterexample (6 steps): A's set-if-absent succeeds at region 0 alone; B's compare-and-set
//! from 1 fails at region 1, which has not heard of it, reporting the register absent; B's
//! set-if-absent then succeeds there too, after A's returned — two set-if-absents succeeded.

use converge_core::ReplicaId;
use converge_core::replica::{
    Bug, ClientError, Config, Consistency, Durable, Op, Output, PeerMsg, Replica, Reply, Request,
    Scalar, Value,
};
use stateright::Expectation;
use stateright::actor::{
    Actor, ActorModel, ActorModelState, Command, Envelope, Id, LossyNetwork, Network, Out,
    model_timeout,
};
use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

/// The default depth bound of the correct variant (stateright checks paths of up to
/// `DEPTH - 2` steps): every `sometimes` example is within it (the deepest, a failed
/// precondition, is found from depth 10 on).
pub const DEPTH: usize = 11;
/// The default depth bound of the broken variant: its 6-step counterexample is within
/// `DEPTH_DECIDED_LOCALLY - 2` steps.
pub const DEPTH_DECIDED_LOCALLY: usize = 8;

/// `always`: the clients' history is linearizable against [`CasRegister`].
pub const LINEARIZABLE: &str = "the compare-and-set history is linearizable";
/// `always`: the restarted replica recovers from its disk.
pub const RECOVERS: &str = "the restarted replica recovers from its disk";
/// `sometimes`: a compare-and-set succeeds.
pub const CAS_SUCCEEDS: &str = "a compare-and-set succeeds";
/// `sometimes`: a compare-and-set fails its precondition.
pub const CAS_FAILS: &str = "a compare-and-set fails its precondition";
/// `sometimes`: the restarting replica restarted and an operation succeeded after it.
pub const OK_AFTER_RESTART: &str = "a replica restarted and a later operation succeeded";

/// Regions, one replica each.
pub const REGIONS: usize = 3;
/// The region that restarts.
pub const RESTARTING: usize = 2;
/// The register every operation is on.
pub const KEY: &[u8] = b"x";
/// Client A's operations, at region 0: a set-if-absent, then a linearizable read.
pub const SCRIPT_A: &[CasOp] = &[CasOp::Cas { from: None, to: 1 }, CasOp::Get];
/// Client B's operations, at region 1: a compare-and-set from A's value (it fails on the absent
/// register and succeeds after A's), then a set-if-absent racing A's.
pub const SCRIPT_B: &[CasOp] = &[
    CasOp::Cas {
        from: Some(1),
        to: 2,
    },
    CasOp::Cas { from: None, to: 2 },
];
/// Request ids are `client * IDS_PER_CLIENT + seq`, so a reply finds its client and operation.
const IDS_PER_CLIENT: u64 = 16;

/// An operation of the sequential register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CasOp {
    /// Set the value whatever it is (`Op::StrongSet`).
    Set(i64),
    /// Set `to` if the value is `from` (`None`: absent) (`Op::Cas`).
    Cas {
        /// The value the register must hold.
        from: Option<i64>,
        /// The new value.
        to: i64,
    },
    /// Read the value (`Op::StrongGet` at `GlobalQuorum`).
    Get,
}

/// What an operation of the sequential register returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CasRet {
    /// The set happened.
    SetOk,
    /// The compare-and-set found `from` and set `to`.
    CasOk,
    /// The compare-and-set found `current` instead of `from` and set nothing.
    CasFailed {
        /// The value found.
        current: Option<i64>,
    },
    /// The value read.
    GetOk(Option<i64>),
    /// A definite error: the operation took effect nowhere. Valid in every state.
    NoEffect,
}

/// The sequential specification: a register (`None`: absent) with set, compare-and-set and get.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct CasRegister(pub Option<i64>);

impl SequentialSpec for CasRegister {
    type Op = CasOp;
    type Ret = CasRet;

    fn invoke(&mut self, op: &CasOp) -> CasRet {
        match *op {
            CasOp::Set(v) => {
                self.0 = Some(v);
                CasRet::SetOk
            }
            CasOp::Cas { from, to } if self.0 == from => {
                self.0 = Some(to);
                CasRet::CasOk
            }
            CasOp::Cas { .. } => CasRet::CasFailed { current: self.0 },
            CasOp::Get => CasRet::GetOk(self.0),
        }
    }

    fn is_valid_step(&mut self, op: &CasOp, ret: &CasRet) -> bool {
        // A definite error is the operation not happening: valid wherever it is placed, and it
        // leaves the register as it was.
        *ret == CasRet::NoEffect || self.invoke(op) == *ret
    }
}

/// The checked history: per client actor, its register operations.
pub type History = LinearizabilityTester<Id, CasRegister>;

/// What the model remembers besides the actors: the history, and the restart as the network
/// saw it (so that "an operation succeeded after the restart" is a fact about the run).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ghost {
    /// The clients' operations.
    pub history: History,
    /// Whether the restarting region has restarted.
    pub restarted: bool,
    /// Whether a client took a successful reply after the restart.
    pub ok_after_restart: bool,
    /// The clients a region told they hold the seat: a successful reply to a compare-and-set
    /// or to a write-local write was released to them (what the region promised, whether or
    /// not the network has delivered it yet).
    pub told_holds: BTreeSet<Id>,
}

/// What a client asks its region.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClientOp {
    /// An operation on the consensus register at `GlobalQuorum`.
    Strong(CasOp),
    /// A read of the last-writer-wins register at `LocalOne` (the write-local seat).
    LocalGet,
    /// A write of the last-writer-wins register at `LocalOne` (the write-local seat).
    LocalPut(i64),
}

impl ClientOp {
    fn request(self, id: u64) -> Request {
        let (op, consistency) = match self {
            ClientOp::Strong(CasOp::Set(v)) => (Op::StrongSet(Scalar::Int(v)), GQ),
            ClientOp::Strong(CasOp::Cas { from, to }) => (
                Op::Cas {
                    from: from.map(Scalar::Int),
                    to: Scalar::Int(to),
                },
                GQ,
            ),
            ClientOp::Strong(CasOp::Get) => (Op::StrongGet, GQ),
            ClientOp::LocalGet => (Op::Get, Consistency::LocalOne),
            ClientOp::LocalPut(v) => (Op::Put(Scalar::Int(v)), Consistency::LocalOne),
        };
        Request {
            id,
            key: KEY.into(),
            op,
            consistency,
            token: None,
        }
    }
}

const GQ: Consistency = Consistency::GlobalQuorum;

/// How a request ended, as its client sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// A return of a consensus register operation.
    Ret(CasRet),
    /// `ClientError::Indefinite`: not a return (see the module documentation).
    Indefinite,
    /// A write-local read, with the value read.
    Read(Option<i64>),
    /// A write-local write succeeded.
    Written,
}

impl Outcome {
    /// Whether the operation succeeded.
    pub fn ok(self) -> bool {
        matches!(
            self,
            Outcome::Ret(CasRet::SetOk | CasRet::CasOk | CasRet::GetOk(_))
                | Outcome::Read(_)
                | Outcome::Written
        )
    }
}

/// A message between actors.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Msg {
    /// An encoded peer message between replicas.
    Peer(Vec<u8>),
    /// A client's `seq`-th request.
    Request {
        /// Its place in the client's script.
        seq: u8,
        /// What it asks.
        op: ClientOp,
    },
    /// The reply to a client's `seq`-th request.
    Reply {
        /// Its place in the client's script.
        seq: u8,
        /// How it ended.
        outcome: Outcome,
    },
    /// The restarting region's own signal to restart.
    Restart,
}

/// Peer messages are shown decoded, so that a path reads as protocol steps.
impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Peer(bytes) => match PeerMsg::decode(bytes) {
                Ok(msg) => write!(f, "{msg:?}"),
                Err(e) => write!(f, "undecodable ({e}): {bytes:?}"),
            },
            Msg::Request { seq, op } => write!(f, "Request({seq}, {op:?})"),
            Msg::Reply { seq, outcome } => write!(f, "Reply({seq}, {outcome:?})"),
            Msg::Restart => f.write_str("Restart"),
        }
    }
}

/// A replica's one timer: "call `handle_timeout`, a deadline is due".
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Wake;

/// What a client does.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Script {
    /// These consensus register operations, in order.
    Ops(&'static [CasOp]),
    /// Reserve the seat write-local: read it at `LocalOne` and, if it is absent, write this
    /// value at `LocalOne`; told it holds the seat when the write succeeds.
    LocalSeat(i64),
}

/// An actor of the model.
#[derive(Clone, Debug)]
pub enum Node {
    /// A region: its replica's configuration, and whether it restarts once.
    Region {
        /// The replica's configuration.
        config: Box<Config>,
        /// Whether it restarts once.
        restarts: bool,
    },
    /// A client at `region` running `script`.
    Client {
        /// The region it talks to.
        region: usize,
        /// What it does.
        script: Script,
    },
}

/// A running region.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Up {
    /// The real replica.
    pub replica: Box<Replica>,
    /// Its disk: built only from `take_durable` deltas.
    pub disk: Durable,
    /// The client requests taken, by request id, with what they asked (so a reply can say
    /// what it answers, and a copy of a request is ignored). Kept across the restart: the
    /// connection's "at most once" is the client's, not the replica's.
    pub taken: BTreeMap<u64, ClientOp>,
    /// Whether it has restarted.
    pub restarted: bool,
}

/// A client's progress.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientState {
    /// The requests sent.
    pub sent: u8,
    /// The outcomes taken, in order.
    pub outcomes: Vec<Outcome>,
}

/// An actor's state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NodeState {
    /// A running region.
    Region(Up),
    /// `Replica::recover` refused the disk (a bug the model reports).
    Unrecoverable(String),
    /// A client.
    Client(ClientState),
}

fn int(s: Option<Scalar>) -> Option<i64> {
    match s {
        Some(Scalar::Int(v)) => Some(v),
        // The model writes integers only.
        Some(Scalar::Bytes(_)) | None => None,
    }
}

fn value_int(v: Value) -> Option<i64> {
    match v {
        Value::Register(s) => int(Some(s)),
        _ => None,
    }
}

/// How the reply to `op` ended, as its client sees it.
fn outcome(op: ClientOp, reply: Reply) -> Outcome {
    match (op, reply.result) {
        (ClientOp::Strong(CasOp::Set(_)), Ok(_)) => Outcome::Ret(CasRet::SetOk),
        (ClientOp::Strong(CasOp::Cas { .. }), Ok(_)) => Outcome::Ret(CasRet::CasOk),
        (ClientOp::Strong(CasOp::Get), Ok(done)) => {
            Outcome::Ret(CasRet::GetOk(value_int(done.value)))
        }
        (ClientOp::LocalGet, Ok(done)) => Outcome::Read(value_int(done.value)),
        (ClientOp::LocalPut(_), Ok(_)) => Outcome::Written,
        (_, Err(ClientError::PreconditionFailed { current })) => Outcome::Ret(CasRet::CasFailed {
            current: int(current),
        }),
        (_, Err(ClientError::Indefinite)) => Outcome::Indefinite,
        // Every other error is definite: the operation had no effect.
        (_, Err(_)) => Outcome::Ret(CasRet::NoEffect),
    }
}

/// After an input: persist first, then send, then release replies, then re-arm the wake.
fn flush(up: &mut Up, o: &mut Out<Node>) {
    let disk = &mut up.disk;
    let taken = &up.taken;
    up.replica.drain(|out| match out {
        Output::Durable(delta) => disk.apply(delta),
        Output::Transmit(t) => o.send(Id::from(t.to.0 as usize), Msg::Peer(t.payload)),
        Output::Reply(reply) => {
            let client = Id::from((reply.id / IDS_PER_CLIENT) as usize);
            let seq = (reply.id % IDS_PER_CLIENT) as u8;
            // Every reply answers a request this shell took.
            if let Some(&op) = taken.get(&reply.id) {
                o.send(
                    client,
                    Msg::Reply {
                        seq,
                        outcome: outcome(op, reply),
                    },
                );
            }
        }
    });
    // Only a deadline already due arms the timer (see the module documentation).
    if up
        .replica
        .poll_timeout()
        .is_some_and(|t| t <= up.replica.now_ms())
    {
        o.set_timer(Wake, model_timeout());
    } else {
        o.cancel_timer(Wake);
    }
}

impl Node {
    /// The client's `seq`-th request, given the outcomes so far, or `None` when it is done.
    fn next_op(script: &Script, state: &ClientState) -> Option<ClientOp> {
        match script {
            Script::Ops(ops) => ops
                .get(usize::from(state.sent))
                .map(|&op| ClientOp::Strong(op)),
            Script::LocalSeat(v) => match state.outcomes.last() {
                None => Some(ClientOp::LocalGet),
                Some(Outcome::Read(None)) => Some(ClientOp::LocalPut(*v)),
                _ => None,
            },
        }
    }

    fn send_next(&self, script: &Script, state: &mut ClientState, o: &mut Out<Self>) {
        let Node::Client { region, .. } = self else {
            return;
        };
        if let Some(op) = Node::next_op(script, state) {
            o.send(
                Id::from(*region),
                Msg::Request {
                    seq: state.sent,
                    op,
                },
            );
            state.sent += 1;
        }
    }
}

impl Actor for Node {
    type Msg = Msg;
    type State = NodeState;
    type Timer = Wake;
    type Random = ();
    type Storage = ();

    fn on_start(&self, id: Id, _storage: &Option<()>, o: &mut Out<Self>) -> NodeState {
        match self {
            Node::Region { config, restarts } => {
                let replica = match Replica::new((**config).clone(), 0) {
                    Ok(r) => r,
                    Err(e) => return NodeState::Unrecoverable(e.to_string()),
                };
                let mut up = Up {
                    disk: replica.durable(),
                    replica: Box::new(replica),
                    taken: BTreeMap::new(),
                    restarted: false,
                };
                if *restarts {
                    o.send(id, Msg::Restart);
                }
                flush(&mut up, o);
                NodeState::Region(up)
            }
            Node::Client { script, .. } => {
                let mut state = ClientState {
                    sent: 0,
                    outcomes: Vec::new(),
                };
                self.send_next(script, &mut state, o);
                NodeState::Client(state)
            }
        }
    }

    fn on_msg(&self, _id: Id, state: &mut Cow<NodeState>, src: Id, msg: Msg, o: &mut Out<Self>) {
        match (self, &**state) {
            (Node::Region { config, .. }, NodeState::Region(up)) => {
                // Deliver to a copy first: a duplicate that changes nothing and sends nothing
                // must leave the state borrowed, or every copy in the never-emptying network
                // would count as a step.
                let mut next = up.clone();
                let now = next.replica.now_ms();
                match msg {
                    Msg::Peer(bytes) => {
                        next.replica.handle_message(
                            now,
                            ReplicaId(usize::from(src) as u64),
                            &bytes,
                        );
                    }
                    Msg::Request { seq, op } => {
                        let rid = usize::from(src) as u64 * IDS_PER_CLIENT + u64::from(seq);
                        if next.taken.insert(rid, op).is_some() {
                            return;
                        }
                        next.replica.handle_request(now, op.request(rid));
                    }
                    Msg::Restart => {
                        if next.restarted {
                            return;
                        }
                        // Everything but the disk is lost; the replica is rebuilt from it at
                        // its own clock (a real node reads its OS clock, which does not go
                        // back).
                        match Replica::recover((**config).clone(), next.disk.clone(), now) {
                            Ok(r) => next.replica = Box::new(r),
                            Err(e) => {
                                *state.to_mut() = NodeState::Unrecoverable(e.to_string());
                                return;
                            }
                        }
                        next.restarted = true;
                    }
                    Msg::Reply { .. } => return,
                }
                let mut out = Out::new();
                flush(&mut next, &mut out);
                let sends = out.iter().any(|c| matches!(c, Command::Send(..)));
                if next == *up && !sends {
                    return;
                }
                *state.to_mut() = NodeState::Region(next);
                o.append(&mut out);
            }
            (Node::Client { script, .. }, NodeState::Client(client)) => {
                let Msg::Reply { seq, outcome } = msg else {
                    return;
                };
                // A copy of a reply, or one for an operation no longer awaited, is ignored.
                if usize::from(seq) + 1 != usize::from(client.sent)
                    || client.outcomes.len() == usize::from(client.sent)
                {
                    return;
                }
                let mut next = client.clone();
                next.outcomes.push(outcome);
                // An indefinite outcome stops the client: see the module documentation.
                if outcome != Outcome::Indefinite {
                    self.send_next(script, &mut next, o);
                }
                *state.to_mut() = NodeState::Client(next);
            }
            _ => {}
        }
    }

    fn on_timeout(&self, _id: Id, state: &mut Cow<NodeState>, _timer: &Wake, o: &mut Out<Self>) {
        if let NodeState::Region(up) = state.to_mut() {
            let now = up.replica.now_ms();
            up.replica.handle_timeout(now);
            flush(up, o);
        }
    }
}

fn record_out(_: &(), ghost: &Ghost, env: Envelope<&Msg>) -> Option<Ghost> {
    match env.msg {
        Msg::Request {
            op: ClientOp::Strong(op),
            ..
        } => {
            let mut ghost = ghost.clone();
            let _ = ghost.history.on_invoke(env.src, *op);
            Some(ghost)
        }
        Msg::Reply {
            outcome: Outcome::Ret(CasRet::CasOk) | Outcome::Written,
            ..
        } => {
            let mut ghost = ghost.clone();
            ghost.told_holds.insert(env.dst);
            Some(ghost)
        }
        _ => None,
    }
}

fn record_in(_: &(), ghost: &Ghost, env: Envelope<&Msg>) -> Option<Ghost> {
    match env.msg {
        Msg::Restart => {
            let mut ghost = ghost.clone();
            ghost.restarted = true;
            Some(ghost)
        }
        Msg::Reply {
            outcome: Outcome::Ret(ret),
            ..
        } => {
            let mut ghost = ghost.clone();
            let _ = ghost.history.on_return(env.dst, *ret);
            if Outcome::Ret(*ret).ok() && ghost.restarted {
                ghost.ok_after_restart = true;
            }
            Some(ghost)
        }
        _ => None,
    }
}

/// The model's state.
pub type State = ActorModelState<Node, Ghost>;

/// The clients' states.
pub fn clients(state: &State) -> impl Iterator<Item = &ClientState> {
    state.actor_states.iter().filter_map(|s| match &**s {
        NodeState::Client(c) => Some(c),
        _ => None,
    })
}

fn outcomes(state: &State) -> impl Iterator<Item = Outcome> + '_ {
    clients(state).flat_map(|c| c.outcomes.iter().copied())
}

/// The regions' actors: three real replicas (`Config::grid(_, 3, 1)`), durable state tracked,
/// no batching delay, anti-entropy off, the smallest Merkle tree, and `bug` if any; region
/// [`RESTARTING`] restarts once if `restart`.
pub fn regions(bug: Option<Bug>, restart: bool) -> Vec<Node> {
    (0..REGIONS as u64)
        .map(|me| {
            let mut config = Config::grid(me, REGIONS as u32, 1);
            config.track_durable = true;
            config.batch_delay_ms = 0;
            // Anti-entropy is off and the Merkle tree only has to exist (see `replication`).
            config.ae_interval_ms = crate::replication::AE_OFF_MS;
            config.merkle_fanout_bits = 1;
            config.merkle_depth = 1;
            config.bug = bug;
            Node::Region {
                config: Box::new(config),
                restarts: restart && me as usize == RESTARTING,
            }
        })
        .collect()
}

/// The actor model of `actors` over the unordered, duplicating, lossless network (see the
/// module documentation for why lossless), with the history recorded and no properties.
pub fn actor_model(actors: Vec<Node>) -> ActorModel<Node, (), Ghost> {
    ActorModel::new(
        (),
        Ghost {
            history: LinearizabilityTester::new(CasRegister(None)),
            restarted: false,
            ok_after_restart: false,
            told_holds: BTreeSet::new(),
        },
    )
    .actors(actors)
    .init_network(Network::new_unordered_duplicating([]))
    .lossy_network(LossyNetwork::No)
    .record_msg_out(record_out)
    .record_msg_in(record_in)
}

/// Which replicas.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// The replica as built.
    Correct,
    /// [`Bug::CasDecidedLocally`] in every replica.
    DecidedLocally,
}

/// The `cas-linearizable` model of `variant`.
pub fn model(variant: Variant) -> ActorModel<Node, (), Ghost> {
    let bug = (variant == Variant::DecidedLocally).then_some(Bug::CasDecidedLocally);
    let mut actors = regions(bug, variant == Variant::Correct);
    actors.push(Node::Client {
        region: 0,
        script: Script::Ops(SCRIPT_A),
    });
    actors.push(Node::Client {
        region: 1,
        script: Script::Ops(SCRIPT_B),
    });
    let m = actor_model(actors)
        .property(Expectation::Always, LINEARIZABLE, |_, state| {
            state.history.history.serialized_history().is_some()
        })
        .property(Expectation::Sometimes, CAS_SUCCEEDS, |_, state| {
            outcomes(state).any(|o| o == Outcome::Ret(CasRet::CasOk))
        });
    // The broken variant claims only what it is built to break (and does not restart): a
    // property expected to hold would keep the search going to the depth bound after the
    // counterexample is found.
    if variant != Variant::Correct {
        return m;
    }
    m.property(Expectation::Always, RECOVERS, |_, state| {
        state
            .actor_states
            .iter()
            .all(|s| !matches!(**s, NodeState::Unrecoverable(_)))
    })
    .property(Expectation::Sometimes, CAS_FAILS, |_, state| {
        outcomes(state).any(|o| matches!(o, Outcome::Ret(CasRet::CasFailed { .. })))
    })
    .property(Expectation::Sometimes, OK_AFTER_RESTART, |_, state| {
        state.history.ok_after_restart
    })
}
