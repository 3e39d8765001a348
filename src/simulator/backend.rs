//! The simulator proper: the conformance harness's in-process [`Backend`], which `converge sim`
//! runs on. Reference replicas (each behind the same Maelstrom [`Face`] the stdio node uses) run
//! in this process on virtual time, driven by the harness's own seeded network scheduler,
//! workloads and checkers — there is no second checker here, only a [`Backend`].
//!
//! # Virtual time
//! The harness asks [`Backend::wait`] for events up to a deadline; when nothing is queued,
//! virtual time jumps to the earliest of the deadline, a replica's timer and a queued reply's
//! release. Nothing sleeps, so a run is as fast as the code and the same seed gives the same run.
//!
//! # What the simulator adds to the network the harness already owns
//! - **Clock skew**: each replica's clock is offset by up to ±`skew_ms` (drawn per seed), so the
//!   hybrid logical clocks and last-writer-wins stamps see skewed physical time. The clock
//!   nemesis (`--nemesis clock`) moves a replica's clock further for a fault window
//!   ([`Backend::set_clock_offset`]), on top of its skew.
//! - **Client round trips**: a reply reaches its client `reply_ms` after the request (±50 %),
//!   so operations take virtual time and interleave with replication and faults.
//! - **Crash and restart from durable state**: a killed replica loses everything but its "disk",
//!   the [`Durable`] built from the deltas it handed out; by the replica's ordering rule those
//!   deltas are on disk before any reply they back is released, so the restarted replica has
//!   every write it acknowledged. The disk is written lazily, and that changes nothing a run
//!   can observe: the replica's journal accumulates every change between two
//!   `take_durable` calls, and a crash happens only in [`Backend::kill`], between two inputs,
//!   which first writes the journal. So at every crash the disk holds exactly what writing
//!   after each input would have left, at a fraction of the cost (a journal of many inputs
//!   holds each changed key once: a counter key that every operation changes is cloned once
//!   per journal write, not once per input). Between crashes the journal is written every
//!   `DURABLE_EVERY` inputs, which bounds its size.
//! - **Pause**: a paused replica neither reads its input nor fires timers; input waits for it.
//! - **Residency** (when the faces carry pins): traffic of its own on pinned keys, and a check
//!   of every transmit, every reply to it and every store (see [`super::residency`]).
//!
//! # No text on the way
//! The faces' messages never become JSON here. The harness's requests arrive as its typed
//! [`Body`] ([`Backend::send_message`]) and become the face's typed [`ClientRequest`]; the face's
//! [`ClientReply`] goes back to the harness as a typed body; messages between replicas stay
//! their bytes ([`NodeEvent::Peer`], which the harness routes without reading). The reference
//! and the harness know nothing of each other, so this file is where the two vocabularies meet
//! ([`to_request`], [`to_body`]), field for field. Only the stdio node prints and parses; what it
//! prints is [`Face::poll_line`] of the same outputs, so both shells run one protocol mapping.

use super::residency::{Residency, ResidencyReport};
use converge_conformance::harness::backend::{Backend, BackendError, NodeEvent};
use converge_conformance::harness::body::{Body, Kind, Level};
use converge_conformance::harness::message::Message;
use converge_conformance::harness::rng::SeededDice;
use converge_core::ReplicaId;
use converge_core::replica::Consistency;
use converge_core::replica::Durable;
use converge_node::maelstrom::{
    ClientOp, ClientReply, ClientRequest, Face, FaceConfig, Output, ReadField, ReplyKind,
};
use serde_json::Value;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

/// Inputs a replica handles between two writes of its journal to its disk, at most. Each write
/// clones the state of every key the inputs changed (once, however often it changed) and applies
/// the delta, whose cost is the delta's size ([`Durable::apply`]); writing rarely coalesces the
/// hot keys' changes, and this bound keeps the journal's memory small.
const DURABLE_EVERY: u32 = 1024;

/// Inputs held for a paused replica at most; beyond this the oldest are dropped (a real paused
/// process's pipe would fill and its sender block, which the harness never does).
const PAUSED_INBOX_MAX: usize = 100_000;

/// How the simulated cluster is built.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Every replica's face. A replica restarts from what its face's `take_durable` handed
    /// out, so `face.track_durable` must be on when the harness may kill nodes; without it a
    /// restarted replica would start from an empty disk.
    pub face: FaceConfig,
    /// Replicas (the harness's nodes).
    pub nodes: usize,
    /// Largest clock offset of a replica, either way, in ms.
    pub skew_ms: u64,
    /// Mean client round trip, in ms.
    pub reply_ms: u64,
    /// Seed of the skews and round trips.
    pub seed: u64,
}

/// An input held for a paused replica, in the form it arrived.
enum Input {
    Line(String),
    Message(Box<Message>),
    Peer(usize, Vec<u8>),
}

struct Node {
    /// `nK`, the sender of everything this replica writes.
    name: String,
    face: Option<Face>,
    disk: Durable,
    /// Inputs since the journal was last written to `disk`.
    unwritten: u32,
    skew: i64,
    /// The clock nemesis's offset, on top of `skew`.
    offset: i64,
    paused: bool,
    inbox: VecDeque<Input>,
    incarnation: u64,
}

/// An event released at a virtual time. Ordered by (time, the order it was produced): `order`
/// is unique, so the event itself is never compared.
struct Queued {
    at: u64,
    order: u64,
    event: NodeEvent,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

/// The in-process backend.
pub struct SimBackend {
    config: SimConfig,
    now: u64,
    nodes: Vec<Node>,
    /// What replicas wrote, released at a virtual time.
    outbox: BinaryHeap<Reverse<Queued>>,
    ready: Vec<NodeEvent>,
    order: u64,
    dice: SeededDice,
    /// Virtual ms spent, for the report.
    pub steps: u64,
    /// The counts of replicas that were killed or shut down (see [`SimBackend::figures`]).
    gone: super::ReplicaFigures,
    /// The residency traffic and checks, when the faces carry pins.
    residency: Option<Residency>,
}

impl SimBackend {
    /// A cluster of `config.nodes` replicas, none started.
    pub fn new(config: SimConfig) -> Self {
        let mut dice = SeededDice::fork(config.seed, 0x5EED_0001);
        let span = config.skew_ms.saturating_mul(2).saturating_add(1);
        let nodes = (0..config.nodes)
            .map(|i| {
                // Offsets up to ±skew_ms; the tie to the seed makes skewed runs replayable.
                let skew = i64::try_from(dice.below(span)).unwrap_or(0)
                    - i64::try_from(config.skew_ms).unwrap_or(0);
                Node {
                    name: format!("n{i}"),
                    face: None,
                    disk: Durable::new(),
                    unwritten: 0,
                    skew,
                    offset: 0,
                    paused: false,
                    inbox: VecDeque::new(),
                    incarnation: 0,
                }
            })
            .collect();
        let residency = (!config.face.residency.is_empty()).then(|| Residency::new(config.seed));
        SimBackend {
            config,
            now: 0,
            nodes,
            outbox: BinaryHeap::new(),
            ready: Vec::new(),
            order: 0,
            dice,
            steps: 0,
            gone: super::ReplicaFigures::default(),
            residency,
        }
    }

    /// What the residency traffic did and found, if the run had pins.
    pub fn residency(&self) -> Option<&ResidencyReport> {
        self.residency.as_ref().map(|r| &r.report)
    }

    /// Sends a pinned write to `node` beside a client request, if the residency traffic
    /// draws one.
    fn pinned_write(&mut self, node: usize) {
        if self.nodes[node]
            .face
            .as_ref()
            .and_then(Face::replica)
            .is_none()
        {
            return;
        }
        let Some(request) = self.residency.as_mut().and_then(Residency::request) else {
            return;
        };
        let local = self.local(node);
        if let Some(face) = self.nodes[node].face.as_mut() {
            face.handle_direct(local, request);
        }
        self.collect(node);
    }

    /// Checks replica `node`'s state and disk against its pins (`when`: for the report).
    fn check_store(&mut self, node: usize, when: &str) {
        let n = &self.nodes[node];
        if let (Some(res), Some(replica)) = (
            self.residency.as_mut(),
            n.face.as_ref().and_then(Face::replica),
        ) {
            res.check_store(replica, &n.disk, when);
        }
    }

    /// Each replica's clock offset in ms, for the run's printout.
    pub fn skews(&self) -> Vec<i64> {
        self.nodes.iter().map(|n| n.skew).collect()
    }

    /// What the replicas counted of consensus operations and escrow withdrawals, summed over
    /// every incarnation (a killed replica's counts are kept when it dies).
    pub fn figures(&self) -> super::ReplicaFigures {
        let mut f = self.gone;
        for face in self.nodes.iter().filter_map(|n| n.face.as_ref()) {
            absorb(&mut f, face);
        }
        f
    }

    /// The replica's reading of the clock: virtual time plus its skew and the clock nemesis's
    /// offset. Virtual time starts at a day, so negative offsets never go below zero.
    fn local(&self, node: usize) -> u64 {
        let n = &self.nodes[node];
        (86_400_000 + self.now).saturating_add_signed(n.skew.saturating_add(n.offset))
    }

    /// Collects what node `node` produced: durable state first (the ordering rule), then its
    /// messages, typed: replies to clients as the harness's parsed messages, messages to
    /// neighbours as their bytes.
    fn collect(&mut self, node: usize) {
        let now = self.now;
        {
            let n = &mut self.nodes[node];
            let Some(face) = n.face.as_mut() else {
                return;
            };
            n.unwritten += 1;
            if n.unwritten >= DURABLE_EVERY {
                n.unwritten = 0;
                if let Some(delta) = face.take_durable() {
                    n.disk.apply(delta);
                }
            }
        }
        loop {
            let n = &mut self.nodes[node];
            let Some(output) = n.face.as_mut().and_then(Face::poll_output) else {
                break;
            };
            // Replies to clients take a round trip; node-to-node messages go straight to the
            // harness, whose network adds their latency.
            let (event, to_client) = match output {
                Output::Client { dest, reply } => (
                    NodeEvent::Message {
                        node,
                        message: Message {
                            src: n.name.clone(),
                            dest,
                            body: to_body(reply),
                        },
                    },
                    true,
                ),
                Output::Peer { to, payload } => (
                    {
                        if let (Some(res), Some(replica)) = (
                            self.residency.as_mut(),
                            n.face.as_ref().and_then(Face::replica),
                        ) {
                            res.check_transmit(replica.config(), to, &payload);
                        }
                        NodeEvent::Peer {
                            node,
                            // An index that does not fit is out of range either way; the harness
                            // refuses it as a message to an unknown node.
                            to: usize::try_from(to.0).unwrap_or(usize::MAX),
                            payload,
                        }
                    },
                    false,
                ),
            };
            let at = if to_client && self.config.reply_ms > 0 {
                let mean = self.config.reply_ms;
                now + mean / 2 + self.dice.below(mean + 1)
            } else {
                now
            };
            self.order += 1;
            // Virtual time moves only in `wait_into`, after `release` has emptied the outbox of
            // everything due, so while nothing due waits there an event due now would be the
            // next one released anyway: it skips the heap. (Only a kill's `Exited` could then
            // come before it instead of after, and the harness ignores those of killed nodes.)
            if at <= now && self.outbox.peek().is_none_or(|Reverse(q)| q.at > now) {
                self.ready.push(event);
            } else {
                self.outbox.push(Reverse(Queued {
                    at,
                    order: self.order,
                    event,
                }));
            }
        }
        if let Some(face) = self.nodes[node].face.as_mut() {
            // Diagnostics are the replica's own business in the simulator; drop them.
            while face.poll_log().is_some() {}
            while let Some(reply) = face.poll_direct_reply() {
                if let (Some(res), Some(replica)) = (self.residency.as_mut(), face.replica()) {
                    res.check_reply(replica.config(), &reply);
                }
            }
        }
    }

    fn deliver(&mut self, node: usize, input: Input) {
        let local = self.local(node);
        let Some(face) = self.nodes[node].face.as_mut() else {
            return;
        };
        match input {
            Input::Line(line) => face.handle_line(local, &line),
            Input::Message(message) => hand_over(face, local, &message),
            Input::Peer(from, payload) => {
                face.handle_peer(local, ReplicaId(from as u64), &payload);
            }
        }
        self.collect(node);
    }

    /// Delivers `input` to `node` now, holds it while the node is paused, or loses it when the
    /// node is down (a dead process's stdin).
    fn offer(&mut self, node: usize, input: Input) {
        let n = &mut self.nodes[node];
        if n.face.is_none() {
            return;
        }
        if n.paused {
            if n.inbox.len() >= PAUSED_INBOX_MAX {
                n.inbox.pop_front();
            }
            n.inbox.push_back(input);
            return;
        }
        self.deliver(node, input);
    }

    /// Fires every timer due at the current virtual time; true if one fired.
    fn fire_timers(&mut self) -> bool {
        let mut fired = false;
        for node in 0..self.nodes.len() {
            let local = self.local(node);
            let n = &mut self.nodes[node];
            if n.paused {
                continue;
            }
            let Some(face) = n.face.as_mut() else {
                continue;
            };
            if face.poll_timeout().is_some_and(|at| at <= local) {
                face.handle_timeout(local);
                fired = true;
                self.collect(node);
            }
        }
        fired
    }

    /// The virtual time of the earliest timer of a running replica.
    fn next_timer(&self) -> Option<u64> {
        self.nodes
            .iter()
            .filter(|n| !n.paused)
            .filter_map(|n| {
                let at = n.face.as_ref()?.poll_timeout()?;
                // Back from the replica's clock to virtual time.
                Some(
                    at.saturating_add_signed(-n.skew.saturating_add(n.offset))
                        .saturating_sub(86_400_000)
                        .max(self.now),
                )
            })
            .min()
    }

    fn release(&mut self) {
        while self
            .outbox
            .peek()
            .is_some_and(|Reverse(q)| q.at <= self.now)
        {
            let Some(Reverse(q)) = self.outbox.pop() else {
                break;
            };
            self.ready.push(q.event);
        }
    }
}

impl Backend for SimBackend {
    fn now_ms(&self) -> u64 {
        self.now
    }

    fn start(&mut self, node: usize) -> Result<(), BackendError> {
        let n = &mut self.nodes[node];
        let recovered = (n.incarnation > 0).then(|| n.disk.clone());
        n.face = Some(Face::new(self.config.face.clone(), recovered));
        n.paused = false;
        n.inbox.clear();
        n.incarnation += 1;
        Ok(())
    }

    fn send(&mut self, node: usize, line: &str) -> Result<(), BackendError> {
        // The harness writes lines only for nodes that write lines; kept for completeness.
        self.offer(node, Input::Line(line.to_string()));
        Ok(())
    }

    fn send_message(&mut self, node: usize, message: &Message) -> Result<(), BackendError> {
        let n = &self.nodes[node];
        if n.face.is_some() && !n.paused {
            // The common case, without a copy: the face reads the message where it lies.
            let local = self.local(node);
            if let Some(face) = self.nodes[node].face.as_mut() {
                hand_over(face, local, message);
            }
            self.collect(node);
            self.pinned_write(node);
            return Ok(());
        }
        self.offer(node, Input::Message(Box::new(message.clone())));
        Ok(())
    }

    fn deliver_peer(
        &mut self,
        node: usize,
        from: usize,
        payload: Vec<u8>,
    ) -> Result<(), BackendError> {
        self.offer(node, Input::Peer(from, payload));
        Ok(())
    }

    fn wait(&mut self, deadline_ms: u64, max_wait: Duration) -> Vec<NodeEvent> {
        let mut out = Vec::new();
        self.wait_into(deadline_ms, max_wait, &mut out);
        out
    }

    fn wait_into(&mut self, deadline_ms: u64, _max_wait: Duration, out: &mut Vec<NodeEvent>) {
        self.release();
        if self.ready.is_empty() {
            self.fire_timers();
            self.release();
        }
        if self.ready.is_empty() {
            // Jump to whatever happens next, but never past the deadline.
            let next_out = self.outbox.peek().map(|Reverse(q)| q.at);
            let target = [Some(deadline_ms), self.next_timer(), next_out]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(deadline_ms);
            // Always move forward, so a timer that stays due cannot stall virtual time.
            let target = target.max(self.now + 1).min(deadline_ms.max(self.now));
            self.steps += target - self.now;
            self.now = target;
            self.fire_timers();
            self.release();
        }
        // `append` leaves `ready` its capacity for the next turn.
        out.append(&mut self.ready);
    }

    fn kill(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        // The journal reaches the disk before the crash: see "Crash and restart" above.
        if let Some(delta) = n.face.as_mut().and_then(Face::take_durable) {
            n.disk.apply(delta);
        }
        n.unwritten = 0;
        self.check_store(node, "when killed");
        let n = &mut self.nodes[node];
        if let Some(face) = n.face.take() {
            absorb(&mut self.gone, &face);
            let incarnation = n.incarnation - 1;
            n.inbox.clear();
            // Lines already written by the dead replica stay in flight, as a process's would.
            self.ready.push(NodeEvent::Exited {
                node,
                incarnation,
                status: "killed".into(),
            });
        }
    }

    fn pause(&mut self, node: usize) {
        self.nodes[node].paused = true;
    }

    fn resume(&mut self, node: usize) {
        self.nodes[node].paused = false;
        let inputs: Vec<Input> = self.nodes[node].inbox.drain(..).collect();
        for input in inputs {
            self.deliver(node, input);
        }
    }

    fn supports_clock_offset(&self) -> bool {
        true
    }

    fn set_clock_offset(&mut self, node: usize, offset_ms: i64) -> Result<(), BackendError> {
        // A replica whose clock goes back keeps its time where it was until the clock catches
        // up (the replica clamps time that goes backwards); its timers then wait for that too.
        self.nodes[node].offset = offset_ms;
        Ok(())
    }

    fn shutdown(&mut self) {
        for node in 0..self.nodes.len() {
            let n = &mut self.nodes[node];
            if let Some(delta) = n.face.as_mut().and_then(Face::take_durable) {
                n.disk.apply(delta);
            }
            self.check_store(node, "at the end of the run");
        }
        for n in &mut self.nodes {
            if let Some(face) = n.face.take() {
                absorb(&mut self.gone, &face);
            }
        }
    }
}

/// Adds what `face`'s replica counted to `f`.
fn absorb(f: &mut super::ReplicaFigures, face: &Face) {
    let Some(k) = face.replica().map(|r| r.stats().counters) else {
        return;
    };
    f.consensus_ok += k.consensus_ok;
    f.consensus_precondition_failed += k.consensus_precondition_failed;
    f.consensus_unavailable += k.consensus_unavailable;
    f.consensus_indefinite += k.consensus_indefinite;
    f.withdrawals_applied += k.withdrawals_applied;
    f.withdrawals_covered_by_transfer += k.withdrawals_covered_by_transfer;
    f.withdrawals_refused += k.withdrawals_refused;
    f.rights_granted += k.rights_granted;
}

/// Gives `face` the harness's message: a request the face understands as its typed request,
/// anything else (which the harness's workloads never send) as the object it prints to.
fn hand_over(face: &mut Face, now_ms: u64, message: &Message) {
    match to_request(&message.body) {
        Some(request) => face.handle_request(now_ms, &message.src, request),
        None => face.handle_message(now_ms, &message.src, &message.body.to_map()),
    }
}

/// The harness's request as the face's, field for field; `None` for a body whose fields the
/// face's types cannot hold exactly (a field outside its slots, a key that is not an integer
/// where one matters), which then goes the JSON way and gets the answer a process would.
fn to_request(body: &Body) -> Option<ClientRequest> {
    if body.rest.is_some() {
        return None;
    }
    // The face reads integer keys only; the registers' one key is a name it ignores.
    let key = |key: &Option<Value>| match key {
        None => Some(None),
        Some(Value::Number(n)) => n.as_i64().map(Some),
        Some(Value::String(_)) => Some(None),
        Some(_) => None,
    };
    let op = match &body.kind {
        Kind::Init { node_id, node_ids } => ClientOp::Init {
            node_id: node_id.clone(),
            node_ids: node_ids.clone(),
        },
        Kind::Echo { echo } => ClientOp::Echo { echo: echo.clone() },
        Kind::Topology { .. } => ClientOp::Topology,
        &Kind::Add { delta } => ClientOp::Add { delta },
        &Kind::AddElement { element } => ClientOp::AddElement { element },
        &Kind::Remove { element } => ClientOp::Remove { element },
        &Kind::Broadcast { message } => ClientOp::Broadcast { message },
        Kind::Read { key: k } => ClientOp::Read { key: key(k)? },
        Kind::Write { key: k, value } => ClientOp::Write {
            key: key(k)?,
            value: value.as_i64()?,
        },
        Kind::Cas(cas) => ClientOp::Cas {
            key: key(&Some(cas.key.clone()))?,
            from: cas.from.as_i64()?,
            to: cas.to.as_i64()?,
        },
        _ => return None,
    };
    let token = match body.token.as_deref() {
        None => None,
        Some(Value::String(token)) => Some(token.clone()),
        Some(_) => return None,
    };
    Some(ClientRequest {
        msg_id: body.msg_id,
        op,
        consistency: body.consistency.map(consistency),
        token,
    })
}

/// The harness's name for a level as the replica's.
fn consistency(level: Level) -> Consistency {
    match level {
        Level::LocalOne => Consistency::LocalOne,
        Level::LocalQuorum => Consistency::LocalQuorum,
        Level::GlobalQuorum => Consistency::GlobalQuorum,
    }
}

/// The face's reply as the harness's body.
fn to_body(reply: ClientReply) -> Body {
    let kind = match reply.kind {
        ReplyKind::InitOk => Kind::InitOk,
        ReplyKind::EchoOk { echo } => Kind::EchoOk { echo },
        ReplyKind::TopologyOk => Kind::TopologyOk,
        ReplyKind::AddOk => Kind::AddOk,
        ReplyKind::RemoveOk => Kind::RemoveOk,
        ReplyKind::BroadcastOk => Kind::BroadcastOk,
        ReplyKind::WriteOk => Kind::WriteOk,
        ReplyKind::CasOk => Kind::CasOk,
        ReplyKind::ReadOk {
            field: ReadField::Value,
            value,
        } => Kind::ReadOk { value: Some(value) },
        ReplyKind::ReadOk {
            field: ReadField::Messages,
            value,
        } => Kind::ReadMessages { messages: value },
        ReplyKind::Error { code, text } => Kind::Error {
            code: code.into(),
            text: Some(text),
        },
    };
    Body {
        kind,
        in_reply_to: reply.in_reply_to,
        token: reply.token.map(|t| Box::new(Value::String(t))),
        ..Body::default()
    }
}
