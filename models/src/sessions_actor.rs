//! `sessions-actor`: the `sessions` claim (spec REPL-5, MODEL-3) again, with the real `Replica`
//! wrapped as a stateright [`Actor`] and the system run as an [`ActorModel`].
//!
//! Where [`sessions`](crate::sessions) drives two replicas by hand on one shared clock, this
//! model lets stateright own the network (unordered, neither losing nor duplicating) and the
//! timers. Each replica keeps its own virtual clock: a message is handled at the replica's
//! current time, and its single timer, armed whenever `poll_timeout` names a deadline, moves the
//! replica's clock to that deadline when it fires. The client actor adds to a set at region 0 and
//! then reads at region 1 with the reply's token (or, in [`Variant::DropToken`], without it).
//! Writing the shell as an actor is what a deployment on stateright's runtime would do, so the
//! two models together check that the property does not depend on how the replica is driven.

use crate::sessions::{READ_COMPLETES, READ_YOUR_WRITES, Variant};
use converge_core::ReplicaId;
use converge_core::replica::{
    Bug, Config, Consistency, Op, Output, Replica, Reply, Request, Scalar, SessionToken, Value,
};
use stateright::Expectation;
use stateright::actor::{Actor, ActorModel, ActorModelState, Id, Network, Out, model_timeout};
use std::borrow::Cow;

/// The default depth bound.
pub const DEPTH: usize = 8;

const KEY: &[u8] = b"s";
const ELEMENT: i64 = 1;
const WRITE_ID: u64 = 1;
const READ_ID: u64 = 2;
/// The client's actor id: after the two replicas, whose actor ids equal their replica ids.
const CLIENT: usize = 2;

/// An actor of the model.
#[derive(Clone, Debug)]
pub enum Node {
    /// A replica, with its configuration.
    Region(Box<Config>),
    /// The client.
    Client(Variant),
}

/// An actor's state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NodeState {
    /// A replica's whole state.
    Region(Box<Replica>),
    /// The client's progress.
    Client(Client),
}

/// The client's progress.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Client {
    /// The add is sent to region 0.
    Writing,
    /// The read is sent to region 1.
    Reading,
    /// The read answered with a set; whether it holds the client's element.
    Read {
        /// Whether the set read holds the element the client added.
        contains: bool,
    },
    /// A request failed (a session timeout, say): nothing to check.
    Failed,
}

/// A message between actors. Stateright's network orders its messages, so requests and replies
/// travel as the few facts the client needs, with tokens in their wire encoding, rather than as
/// the replica's request and reply types, which have no order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Msg {
    /// An encoded peer message between replicas.
    Peer(Vec<u8>),
    /// The client's add.
    Write,
    /// The client's read, with the encoded token if it passes one.
    Read(Option<Vec<u8>>),
    /// The add succeeded; the encoded token of its reply.
    Wrote(Vec<u8>),
    /// The read answered with a value; whether it holds the client's element.
    ReadDone(bool),
    /// A request failed.
    Failed,
}

/// The replica's one timer: "call `handle_timeout` at `poll_timeout`'s deadline".
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Wake;

/// The message that carries `reply` to the client.
fn reply_msg(reply: Reply) -> Msg {
    match (reply.id, reply.result) {
        (WRITE_ID, Ok(done)) => Msg::Wrote(done.token.encode()),
        (_, Ok(done)) => Msg::ReadDone(
            matches!(done.value, Value::Set(elements) if elements.contains(&Scalar::Int(ELEMENT))),
        ),
        (_, Err(_)) => Msg::Failed,
    }
}

/// Hands a replica's outputs to the network and re-arms its timer, as a shell does after every
/// input.
fn flush(replica: &mut Replica, client: Id, o: &mut Out<Node>) {
    replica.drain(|out| match out {
        Output::Transmit(t) => o.send(Id::from(t.to.0 as usize), Msg::Peer(t.payload)),
        Output::Reply(reply) => o.send(client, reply_msg(reply)),
        // The replicas of this model do not track durable state.
        Output::Durable(_) => {}
    });
    if replica.poll_timeout().is_some() {
        o.set_timer(Wake, model_timeout());
    } else {
        o.cancel_timer(Wake);
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
            Node::Region(config) => {
                let mut replica =
                    Replica::new((**config).clone(), 0).expect("the grid configuration is valid");
                flush(&mut replica, Id::from(CLIENT), o);
                NodeState::Region(Box::new(replica))
            }
            Node::Client(_) => {
                o.send(Id::from(0), Msg::Write);
                NodeState::Client(Client::Writing)
            }
        }
    }

    fn on_msg(&self, _id: Id, state: &mut Cow<NodeState>, src: Id, msg: Msg, o: &mut Out<Self>) {
        match (self, state.to_mut(), msg) {
            (Node::Region(_), NodeState::Region(replica), Msg::Peer(bytes)) => {
                let now = replica.now_ms();
                replica.handle_message(now, ReplicaId(usize::from(src) as u64), &bytes);
                flush(replica, Id::from(CLIENT), o);
            }
            (Node::Region(_), NodeState::Region(replica), Msg::Write) => {
                let now = replica.now_ms();
                replica.handle_request(
                    now,
                    Request {
                        id: WRITE_ID,
                        key: KEY.into(),
                        op: Op::SetAdd(Scalar::Int(ELEMENT)),
                        consistency: Consistency::LocalOne,
                        token: None,
                    },
                );
                flush(replica, src, o);
            }
            (Node::Region(_), NodeState::Region(replica), Msg::Read(token)) => {
                let now = replica.now_ms();
                // The client encoded a valid token, so decoding cannot fail.
                let token = token.and_then(|bytes| SessionToken::decode(&bytes).ok());
                replica.handle_request(
                    now,
                    Request {
                        id: READ_ID,
                        key: KEY.into(),
                        op: Op::Get,
                        consistency: Consistency::LocalOne,
                        token,
                    },
                );
                flush(replica, src, o);
            }
            (Node::Client(variant), NodeState::Client(client), Msg::Wrote(token)) => {
                let token = (*variant != Variant::DropToken).then_some(token);
                o.send(Id::from(1), Msg::Read(token));
                *client = Client::Reading;
            }
            (Node::Client(_), NodeState::Client(client), Msg::ReadDone(contains)) => {
                *client = Client::Read { contains };
            }
            (Node::Client(_), NodeState::Client(client), Msg::Failed) => {
                *client = Client::Failed;
            }
            // Nothing else is ever sent to these actors.
            _ => {}
        }
    }

    fn on_timeout(&self, _id: Id, state: &mut Cow<NodeState>, _timer: &Wake, o: &mut Out<Self>) {
        if let NodeState::Region(replica) = state.to_mut() {
            let now = replica
                .poll_timeout()
                .map_or(replica.now_ms(), |deadline| deadline.max(replica.now_ms()));
            replica.handle_timeout(now);
            flush(replica, Id::from(CLIENT), o);
        }
    }
}

fn client(state: &ActorModelState<Node>) -> Option<&Client> {
    match state.actor_states.get(CLIENT).map(|s| &**s) {
        Some(NodeState::Client(client)) => Some(client),
        _ => None,
    }
}

/// The actor model of `variant`: two replicas (`Config::grid(_, 2, 1)`) and the client.
pub fn model(variant: Variant) -> ActorModel<Node> {
    let region = |me| {
        let mut config = Config::grid(me, 2, 1);
        if variant == Variant::ReadIgnoresToken {
            config.bug = Some(Bug::ReadIgnoresToken);
        }
        Node::Region(Box::new(config))
    };
    ActorModel::new((), ())
        .actors([region(0), region(1), Node::Client(variant)])
        .init_network(Network::new_unordered_nonduplicating([]))
        .property(Expectation::Always, READ_YOUR_WRITES, |_, state| {
            !matches!(client(state), Some(Client::Read { contains: false }))
        })
        .property(Expectation::Sometimes, READ_COMPLETES, |_, state| {
            matches!(client(state), Some(Client::Read { .. }))
        })
}
