//! `global-quorum`: last-writer-wins registers written and read only at `GlobalQuorum` on the real
//! `Replica` are linearizable (checked here as MODEL-5).
//!
//! The claim of `replica::quorum` (ABD over lattice states): a write first queries a global quorum
//! and stamps its value above the winner it found, then waits for a global quorum to hold it; a
//! read queries a global quorum and writes the result back before it replies. Any two global
//! quorums share a region, so a register used only at this level is linearizable.
//!
//! Three regions of one real `Replica` each (`Config::grid(_, 3, 1)`), each wrapped as a
//! stateright [`Actor`] as in [`sessions_actor`](crate::sessions_actor): stateright owns the
//! network (unordered, neither losing nor duplicating) and each replica's one timer (see below
//! for when it is armed). Two clients each write their own value at their own region and then read at
//! the next region. The history of invocations and returns is checked by stateright's
//! [`LinearizabilityTester`] against a sequential register; a request that fails (its quorum
//! deadline passed) stays in flight, which the tester allows to have taken effect or not.
//! `always` "linearizable", with `sometimes` "a read returns a written value". The search is
//! bounded by depth ([`DEPTH`]).
//!
//! Only a deadline already due arms a replica's timer, and entries are sent without batching
//! delay: the run is taken to be faster than every retransmission, anti-entropy and quorum
//! deadline, which on this lossless network would only multiply interleavings (a quorum deadline
//! could only fail a request). The broken variant `global-quorum-local-one` sends the same
//! requests at `LocalOne` and must break linearizability, which shows the tester is not vacuous.

use converge_core::ReplicaId;
use converge_core::replica::{
    Config, Consistency, Op, Output, Replica, Reply, Request, Scalar, Value,
};
use stateright::Expectation;
use stateright::actor::{
    Actor, ActorModel, ActorModelState, Envelope, Id, Network, Out, model_timeout,
};
use stateright::semantics::register::{Register, RegisterOp, RegisterRet};
use stateright::semantics::{ConsistencyTester, LinearizabilityTester};
use std::borrow::Cow;

/// The default depth bound.
pub const DEPTH: usize = 12;

/// `always`: the history of the clients' writes and reads is linearizable.
pub const LINEARIZABLE: &str = "linearizable";
/// `sometimes`: a read returns a value a client wrote.
pub const READ_RETURNS_WRITTEN: &str = "a read returns a written value";

const REGIONS: usize = 3;
const KEY: &[u8] = b"r";
/// A request's id is `client * 2 + WRITE` or `client * 2 + READ`, so that a reply finds its
/// client (the actor id) and its kind.
const WRITE: u64 = 0;
const READ: u64 = 1;

/// The checked history: per client actor, its register operations.
pub type History = LinearizabilityTester<Id, Register<i64>>;

/// An actor of the model.
#[derive(Clone, Debug)]
pub enum Node {
    /// A replica, with its configuration and the level its clients' requests use.
    Region {
        /// The replica's configuration.
        config: Box<Config>,
        /// The consistency level of every request.
        consistency: Consistency,
    },
    /// A client: the value it writes, the region it writes at and the region it reads at.
    Client {
        /// The value written (0 stands for an absent register).
        value: i64,
        /// Where it writes.
        write_at: usize,
        /// Where it reads.
        read_at: usize,
    },
}

/// An actor's state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NodeState {
    /// A replica's whole state.
    Region(Box<Replica>),
    /// A client's progress.
    Client(Client),
}

/// A client's progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Client {
    /// The write is sent.
    Writing,
    /// The read is sent.
    Reading,
    /// The read answered with this value.
    Read(i64),
    /// A request failed: the client stops.
    Failed,
}

/// A message between actors.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Msg {
    /// An encoded peer message between replicas.
    Peer(Vec<u8>),
    /// A client's write of this value.
    Write(i64),
    /// A client's read.
    Read,
    /// The write succeeded.
    Wrote,
    /// The read answered with this value (0: absent).
    ReadDone(i64),
    /// A request failed.
    Failed,
}

/// The replica's one timer.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Wake;

fn reply_msg(reply: Reply) -> Msg {
    match (reply.id % 2, reply.result) {
        (WRITE, Ok(_)) => Msg::Wrote,
        (_, Ok(done)) => Msg::ReadDone(match done.value {
            Value::Register(Scalar::Int(v)) => v,
            _ => 0,
        }),
        (_, Err(_)) => Msg::Failed,
    }
}

/// Hands a replica's outputs to the network, each reply to the client its request id names, and
/// re-arms the replica's timer.
fn flush(replica: &mut Replica, o: &mut Out<Node>) {
    replica.drain(|out| match out {
        Output::Transmit(t) => o.send(Id::from(t.to.0 as usize), Msg::Peer(t.payload)),
        Output::Reply(reply) => o.send(Id::from((reply.id / 2) as usize), reply_msg(reply)),
        // The replicas of this model do not track durable state.
        Output::Durable(_) => {}
    });
    // Only a deadline already due arms the timer: the run is taken to be faster than every
    // retransmission, anti-entropy and quorum deadline, which on this lossless network only
    // multiply interleavings (and a quorum deadline would only fail a request).
    if replica
        .poll_timeout()
        .is_some_and(|t| t <= replica.now_ms())
    {
        o.set_timer(Wake, model_timeout());
    } else {
        o.cancel_timer(Wake);
    }
}

fn request(id: u64, op: Op, consistency: Consistency) -> Request {
    Request {
        id,
        key: KEY.into(),
        op,
        consistency,
        token: None,
    }
}

impl Actor for Node {
    type Msg = Msg;
    type State = NodeState;
    type Timer = Wake;
    type Random = ();
    type Storage = ();

    fn on_start(&self, _id: Id, _storage: &Option<()>, o: &mut Out<Self>) -> NodeState {
        match self {
            Node::Region { config, .. } => {
                let mut replica =
                    Replica::new((**config).clone(), 0).expect("the grid configuration is valid");
                flush(&mut replica, o);
                NodeState::Region(Box::new(replica))
            }
            Node::Client {
                value, write_at, ..
            } => {
                o.send(Id::from(*write_at), Msg::Write(*value));
                NodeState::Client(Client::Writing)
            }
        }
    }

    fn on_msg(&self, _id: Id, state: &mut Cow<NodeState>, src: Id, msg: Msg, o: &mut Out<Self>) {
        match (self, state.to_mut(), msg) {
            (Node::Region { .. }, NodeState::Region(replica), Msg::Peer(bytes)) => {
                let now = replica.now_ms();
                replica.handle_message(now, ReplicaId(usize::from(src) as u64), &bytes);
                flush(replica, o);
            }
            (Node::Region { consistency, .. }, NodeState::Region(replica), Msg::Write(v)) => {
                let now = replica.now_ms();
                let id = usize::from(src) as u64 * 2 + WRITE;
                replica.handle_request(now, request(id, Op::Put(Scalar::Int(v)), *consistency));
                flush(replica, o);
            }
            (Node::Region { consistency, .. }, NodeState::Region(replica), Msg::Read) => {
                let now = replica.now_ms();
                replica.handle_request(
                    now,
                    request(usize::from(src) as u64 * 2 + READ, Op::Get, *consistency),
                );
                flush(replica, o);
            }
            (Node::Client { read_at, .. }, NodeState::Client(client), Msg::Wrote) => {
                o.send(Id::from(*read_at), Msg::Read);
                *client = Client::Reading;
            }
            (Node::Client { .. }, NodeState::Client(client), Msg::ReadDone(v)) => {
                *client = Client::Read(v);
            }
            (Node::Client { .. }, NodeState::Client(client), Msg::Failed) => {
                *client = Client::Failed;
            }
            _ => {}
        }
    }

    fn on_timeout(&self, _id: Id, state: &mut Cow<NodeState>, _timer: &Wake, o: &mut Out<Self>) {
        if let NodeState::Region(replica) = state.to_mut() {
            let now = replica
                .poll_timeout()
                .map_or(replica.now_ms(), |deadline| deadline.max(replica.now_ms()));
            replica.handle_timeout(now);
            flush(replica, o);
        }
    }
}

fn record_out(_: &(), history: &History, env: Envelope<&Msg>) -> Option<History> {
    let op = match env.msg {
        Msg::Write(v) => RegisterOp::Write(*v),
        Msg::Read => RegisterOp::Read,
        _ => return None,
    };
    let mut history = history.clone();
    let _ = history.on_invoke(env.src, op);
    Some(history)
}

fn record_in(_: &(), history: &History, env: Envelope<&Msg>) -> Option<History> {
    let ret = match env.msg {
        Msg::Wrote => RegisterRet::WriteOk,
        Msg::ReadDone(v) => RegisterRet::ReadOk(*v),
        _ => return None,
    };
    let mut history = history.clone();
    let _ = history.on_return(env.dst, ret);
    Some(history)
}

fn reads(state: &ActorModelState<Node, History>) -> impl Iterator<Item = i64> + '_ {
    state.actor_states.iter().filter_map(|s| match &**s {
        NodeState::Client(Client::Read(v)) => Some(*v),
        _ => None,
    })
}

/// The actor model: three replicas (`Config::grid(_, 3, 1)`) and two clients, every request at
/// `consistency` (`GlobalQuorum` for the claim, `LocalOne` for the broken variant).
pub fn model(consistency: Consistency) -> ActorModel<Node, (), History> {
    let region = |me: u64| {
        let mut config = Config::grid(me, REGIONS as u32, 1);
        config.batch_delay_ms = 0;
        Node::Region {
            config: Box::new(config),
            consistency,
        }
    };
    ActorModel::new((), LinearizabilityTester::new(Register(0)))
        .actors([
            region(0),
            region(1),
            region(2),
            Node::Client {
                value: 1,
                write_at: 0,
                read_at: 1,
            },
            Node::Client {
                value: 2,
                write_at: 1,
                read_at: 2,
            },
        ])
        .init_network(Network::new_unordered_nonduplicating([]))
        .property(Expectation::Always, LINEARIZABLE, |_, state| {
            state.history.serialized_history().is_some()
        })
        .property(Expectation::Sometimes, READ_RETURNS_WRITTEN, |_, state| {
            reads(state).any(|v| v != 0)
        })
        .record_msg_out(record_out)
        .record_msg_in(record_in)
}
