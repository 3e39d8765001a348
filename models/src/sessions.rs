//! `sessions`: read-your-writes across regions with session tokens, on the real `Replica` (spec
//! REPL-5 and CERT-4, checked here as MODEL-3).
//!
//! Two regions of one replica each (`Config::grid(_, 2, 1)`, full mesh) run the real sans-IO
//! [`converge_core::replica::Replica`]. A client adds 1 to a set at region 0 with no token, then
//! reads the set at region 1 carrying the token of the add's reply. The claim is that a read
//! answered with a value contains the client's own write, however messages and timers
//! interleave: the replica holds the read until its frontier covers the token. Dropping the token
//! ([`Variant::DropToken`]) or running the replicas with [`Bug::ReadIgnoresToken`] must give a
//! counterexample, which shows the property is not vacuous; so does the `sometimes` property that
//! the read completes with a value.
//!
//! The model drives the replicas itself instead of going through stateright's `ActorModel` (which
//! [`sessions_actor`](crate::sessions_actor) does, for the same claim): that
//! keeps one virtual clock explicit in the state, which `Replica` needs as its `now_ms` input,
//! and lets a timer fire exactly at the deadline `poll_timeout` asked for. Every input is followed
//! by draining the replica's outputs, as a shell does (durable tracking is off: nothing crashes
//! here). The network is lossless and may reorder; the depth bound [`DEPTH`] keeps the
//! anti-entropy and retransmission timers, which would otherwise fire forever, from making the
//! state space infinite.

use converge_core::ReplicaId;
use converge_core::replica::{
    Bug, ClientError, Config, Consistency, Op, Output, Replica, Request, Scalar, SessionToken,
    Value,
};
use stateright::{Model, Property};

/// The default depth bound: enough for the write, the flush, the delivery, the read and a few
/// timers in every order.
pub const DEPTH: usize = 8;

/// `always`: a read answered with a value contains the client's write.
pub const READ_YOUR_WRITES: &str = "read-your-writes";
/// `sometimes`: the read completes with a value.
pub const READ_COMPLETES: &str = "the read completes";
/// `sometimes` (correct variant only): a read that had to wait for its token completes, so the
/// waiting path of the replica, the one read-your-writes rests on, is exercised.
pub const WAITED_READ_COMPLETES: &str = "a read that waited for its token completes";

const KEY: &[u8] = b"s";
const ELEMENT: i64 = 1;
const WRITE_ID: u64 = 1;
const READ_ID: u64 = 2;

/// Which system is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// Correct replicas, a client that passes its token.
    Correct,
    /// Correct replicas, a client that drops the token of its write.
    DropToken,
    /// Replicas with [`Bug::ReadIgnoresToken`], a client that passes its token.
    ReadIgnoresToken,
}

/// The model.
#[derive(Clone, Debug)]
pub struct Sessions {
    variant: Variant,
}

impl Sessions {
    /// The model of `variant`.
    pub fn new(variant: Variant) -> Self {
        Sessions { variant }
    }
}

/// The client's progress.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Client {
    /// Nothing sent yet.
    Start,
    /// The add is sent to region 0.
    Writing,
    /// The add was acknowledged with this token.
    Wrote(SessionToken),
    /// The read is sent to region 1.
    Reading,
    /// The read's outcome.
    Read(Result<Value, ClientError>),
}

/// A message in flight.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Msg {
    /// The sender.
    pub from: u64,
    /// The receiver.
    pub to: u64,
    /// The encoded peer message.
    pub payload: Vec<u8>,
}

/// The whole system.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// Virtual time, in ms, shared by both replicas (their clocks are not skewed here).
    pub now_ms: u64,
    /// The replica of region 0 and the replica of region 1.
    pub replicas: [Replica; 2],
    /// Messages sent and not yet delivered, sorted: the network may reorder but neither loses nor
    /// duplicates.
    pub network: Vec<Msg>,
    /// The client.
    pub client: Client,
    /// Whether the read was not answered at once: region 1 held it until its token was covered.
    pub read_waited: bool,
}

/// A step.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// The client sends its add to region 0.
    Write,
    /// The client sends its read to region 1.
    Read,
    /// The message at this index of the network is delivered.
    Deliver(usize),
    /// Time advances to this replica's next deadline and its timer fires.
    Timeout(usize),
}

/// Hands a replica's outputs to the network and the client, as a shell does after every input.
fn drain(state: &mut State, index: usize) {
    let from = index as u64;
    let (network, client) = (&mut state.network, &mut state.client);
    state.replicas[index].drain(|out| match out {
        Output::Transmit(t) => network.push(Msg {
            from,
            to: t.to.0,
            payload: t.payload,
        }),
        Output::Reply(reply) => {
            *client = match (reply.id, reply.result) {
                (WRITE_ID, Ok(done)) => Client::Wrote(done.token),
                // A failed add ends the session with nothing to check; the read never happens.
                (WRITE_ID, Err(e)) => Client::Read(Err(e)),
                (_, result) => Client::Read(result.map(|done| done.value)),
            };
        }
        // The replicas of this model do not track durable state.
        Output::Durable(_) => {}
    });
    state.network.sort();
}

impl Model for Sessions {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let replica = |me| {
            let mut config = Config::grid(me, 2, 1);
            if self.variant == Variant::ReadIgnoresToken {
                config.bug = Some(Bug::ReadIgnoresToken);
            }
            Replica::new(config, 0).expect("the grid configuration is valid")
        };
        vec![State {
            now_ms: 0,
            replicas: [replica(0), replica(1)],
            network: Vec::new(),
            client: Client::Start,
            read_waited: false,
        }]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        match state.client {
            Client::Start => actions.push(Action::Write),
            Client::Wrote(_) => actions.push(Action::Read),
            _ => {}
        }
        actions.extend((0..state.network.len()).map(Action::Deliver));
        for (i, replica) in state.replicas.iter().enumerate() {
            if replica.poll_timeout().is_some() {
                actions.push(Action::Timeout(i));
            }
        }
    }

    fn next_state(&self, state: &State, action: Action) -> Option<State> {
        let mut next = state.clone();
        let now = state.now_ms;
        match action {
            Action::Write => {
                next.replicas[0].handle_request(
                    now,
                    Request {
                        id: WRITE_ID,
                        key: KEY.into(),
                        op: Op::SetAdd(Scalar::Int(ELEMENT)),
                        consistency: Consistency::LocalOne,
                        token: None,
                    },
                );
                next.client = Client::Writing;
                drain(&mut next, 0);
            }
            Action::Read => {
                let Client::Wrote(token) = &state.client else {
                    return None;
                };
                let token = (self.variant != Variant::DropToken).then(|| token.clone());
                next.client = Client::Reading;
                next.replicas[1].handle_request(
                    now,
                    Request {
                        id: READ_ID,
                        key: KEY.into(),
                        op: Op::Get,
                        consistency: Consistency::LocalOne,
                        token,
                    },
                );
                drain(&mut next, 1);
                next.read_waited = next.client == Client::Reading;
            }
            Action::Deliver(index) => {
                let msg = next.network.remove(index);
                let to = usize::try_from(msg.to).ok()?;
                next.replicas
                    .get_mut(to)?
                    .handle_message(now, ReplicaId(msg.from), &msg.payload);
                drain(&mut next, to);
            }
            Action::Timeout(index) => {
                let deadline = state.replicas[index].poll_timeout()?;
                next.now_ms = now.max(deadline);
                next.replicas[index].handle_timeout(next.now_ms);
                drain(&mut next, index);
            }
        }
        Some(next)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let mut properties = vec![
            Property::always(READ_YOUR_WRITES, |_, state: &State| match &state.client {
                Client::Read(Ok(value)) => {
                    matches!(value, Value::Set(elements) if elements.contains(&Scalar::Int(ELEMENT)))
                }
                _ => true,
            }),
            Property::sometimes(READ_COMPLETES, |_, state: &State| {
                matches!(state.client, Client::Read(Ok(_)))
            }),
        ];
        // The broken variants answer at once, so only the correct one can be asked to wait.
        if self.variant == Variant::Correct {
            properties.push(Property::sometimes(
                WAITED_READ_COMPLETES,
                |_, state: &State| state.read_waited && matches!(state.client, Client::Read(Ok(_))),
            ));
        }
        properties
    }
}
