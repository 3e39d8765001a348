//! The replica state machine: one replica of a multi-region active-active store, sans IO.
//!
//! [`Replica`] is the single implementation of the replication protocol. It does no I/O, reads
//! no clock and draws no OS randomness: time is the `now_ms` argument of every input, messages
//! come in and go out as bytes, and the only random choice (anti-entropy timer jitter) comes
//! from [`Config::seed`]. The same type is model-checked by stateright actors, run by the
//! deterministic simulator on virtual time, and wrapped by the tokio node with redb persistence.
//!
//! # Parts
//! `Replica` is a dispatcher over five parts, each owning its state and checking its own
//! invariants where that state lives (quinn-proto's `Connection` over its spaces and streams).
//! A part never calls back into the replica: a step returns what happened — an entry logged, the
//! frontier advanced, an ack taught a frontier, a claim made — and the dispatcher in this module
//! makes the next part's call. Parts depend only downward (requests → links → store;
//! anti-entropy → store), and every step gets a `shared::Ctx`: the cluster, the time, the
//! counters and the output queues.
//!
//! | part | owns | keeps |
//! |---|---|---|
//! | `store` | keyspace, oplog, `F`, `V`, `last_seq`, HLC, `deps_sent`, durable journal | `F ⊑ V`, `F[me] = V[me] = last_seq`; `F` causally closed; retained entries and their dependencies `≤ F`, gap-free per origin; `deps_sent ⊑ F`; Merkle tree current. The only writer of durable state. |
//! | `links` | per-neighbour cursors, acks, retransmission timers and backoff; parked entries; frontiers known of others; flush timer; batch scratch | parked runs gap-free from `F[origin] + 1`, head not ready, at most `parked_entries_max`; an owed ack always has a flush armed |
//! | `requests` | session waits, coverage waits, quorum queries, bounded-counter withdrawals waiting for rights (`requests::escrow`), their deadlines and re-sends | at most `pending_max` wait; each ends by its deadline; no bounded counter reads below zero |
//! | `anti_entropy` | the puller's rounds, the jitter RNG | a round ends (completed, abandoned or timed out) by `ae_timeout_ms`; a claim is made only by a completed round |
//! | `strong` | the consensus acceptor and proposer, the requests in consensus, their journal | records journaled before the messages of the same step are queued; one waiting request per proposer operation; at most `pending_max` in consensus |
//!
//! # Map
//! - [`api`](Request): requests, replies, values, errors — what the shells speak.
//! - `config`: the cluster, the topology (the one definition of who talks to whom) and every
//!   limit; the deliberately broken variants ([`Bug`]). `shared`: what every replica of one
//!   configuration derives from it once.
//! - `store`, `links`, `requests`, `anti_entropy`: the parts above. `links` documents
//!   batching, acks, go-back-N, causal delivery and truncation; `requests` the consistency
//!   levels and the ABD-style global-quorum protocol; `anti_entropy` the Merkle rounds and the
//!   frontier claim.
//! - `keyspace`: typed CRDT states by key and the Merkle tree over them; `state`: one key's
//!   state ([`KeyState`]) and its canonical encoding.
//! - `oplog`: entries `(origin, seq, stamp, deps, key, δ)` retained until every child
//!   acknowledged.
//! - `session`: session tokens and why answering only once a token is covered is sound; causal
//!   delivery and why no read shows a write before what it depends on.
//! - `msg`, `codec`: the validated binary encodings (`codec` is the bottom layer and imports
//!   nothing of the replica).
//! - `durable`: what a shell persists and in which order. `stats`: the counters.
//!
//! # Invariants (checked in debug builds after every input, each by the part that owns it)
//! - The store's: `F ⊑ V` (frontier below horizon) and `F[me] = V[me] = last_seq`; the state is
//!   above the delta of every entry `≤ F` and built from entries `≤ V` only; `F` is causally
//!   closed (every entry that reached the state through the oplog was applied only once `F`
//!   covered its dependencies); every retained oplog entry and its dependencies are `≤ F`, each
//!   origin's retained entries gap-free; `deps_sent ⊑ F`; every Merkle node is the sum of the
//!   hashes below it.
//! - The links': parked entries are the next ones of their origins (gap-free from
//!   `F[origin] + 1`), each run's first waits for a dependency not `≤ F`, and at most
//!   `parked_entries_max` are parked; an owed ack always has a flush armed.
//! - The requests': at most `pending_max` requests wait.

mod anti_entropy;
mod api;
mod codec;
mod config;
mod durable;
mod keyspace;
mod links;
mod msg;
mod oplog;
mod requests;
mod session;
mod shared;
mod state;
mod stats;
mod store;
mod strong;
mod strong_codec;

pub use api::{
    ClientError, Consistency, Done, Key, KeyKind, Op, Reply, Request, Scalar, Transmit,
    UnknownConsistency, Value,
};
pub use codec::{DecodeError, KEY_BYTES_MAX};
pub use config::{Bug, Config, ConfigError, Pin, RegionId, Topology, UnknownBug};
pub use durable::{Durable, DurableDelta, DurableMeta, RecoverError, decode_record, encode_record};
pub use msg::{
    Ack, AeClaim, AeDiff, AeKeys, AeProbe, DEFAULT_MESSAGE_BYTES_MAX, MSG_MAGIC, MSG_VERSION,
    PeerMsg, Routed, RoutedBody,
};
pub use oplog::Entry;
pub use session::SessionToken;
pub use state::KeyState;
pub use stats::{Counters, Stats};

use crate::{ReplicaId, VectorClock};
use anti_entropy::AntiEntropy;
use links::Links;
use requests::Requests;
use shared::{Ctx, Shared};
use stats::Metrics;
use std::collections::VecDeque;
use std::sync::Arc;
use store::Store;
use strong::Strong;

/// One replica of the store, as a deterministic state machine.
///
/// # Call protocol
/// Modelled on quinn-proto's `Connection`. The caller (a *shell*: the tokio node, the
/// simulator, a model-checker actor, a test pump) owns the clock, the network and the disk.
///
/// **Inputs** — each takes the current physical time in milliseconds:
/// - [`handle_request`](Self::handle_request): a client request.
/// - [`handle_message`](Self::handle_message): bytes from a neighbour (or
///   [`handle_peer_msg`](Self::handle_peer_msg) with an already decoded message).
/// - [`handle_timeout`](Self::handle_timeout): the time asked for by `poll_timeout` has come.
///
/// **Commands**: [`start_anti_entropy`](Self::start_anti_entropy) starts a round with a
/// neighbour now instead of at the next anti-entropy tick (an input like the others).
///
/// **Outputs** — after every input, in this order:
/// 1. [`take_durable`](Self::take_durable) (only with [`Config::track_durable`]): persist it
///    before anything else leaves; see `durable` for why.
/// 2. [`poll_transmit`](Self::poll_transmit) until `None`: send each payload to its neighbour.
/// 3. [`poll_reply`](Self::poll_reply) until `None`: answer the clients.
/// 4. [`poll_timeout`](Self::poll_timeout): call `handle_timeout` at that time (or on the next
///    input, whichever is first). It changes only through inputs.
///
/// Outputs queue up until polled; a shell that drains them after every input keeps every queue
/// bounded by the configured windows.
/// [`drain`](Self::drain) does 1–3 in one call, handing each output to a closure in that order.
///
/// **Time** only moves forward. A `now_ms` smaller than one seen before is treated as the last
/// seen time (and counted in `time_regressions`): a stepped-back OS clock delays timers, never
/// breaks an invariant.
///
/// **Determinism**: the same configuration and the same sequence of inputs give the same
/// outputs, byte for byte. Every map is ordered; nothing depends on hash-map iteration order,
/// addresses or the OS.
///
/// **Getters**: [`id`](Self::id), [`config`](Self::config), [`now_ms`](Self::now_ms),
/// [`frontier`](Self::frontier), [`horizon`](Self::horizon), [`get`](Self::get),
/// [`iter`](Self::iter), [`root_hash`](Self::root_hash), [`stats`](Self::stats),
/// [`durable`](Self::durable).
///
/// `Replica` is `Clone + Eq + Hash + Debug` so that model checkers can store and deduplicate it;
/// metrics and scratch buffers are excluded from equality (they observe, they are not state).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Replica {
    /// What every clone of this configuration derives once (members, regions, routes).
    shared: Arc<Shared>,
    /// The last time seen; inputs never move it back.
    now_ms: u64,
    /// The durable state, and the only writer of it.
    store: Store,
    /// The neighbours: cursors, acks, parked entries, batching and retransmission.
    links: Links,
    /// Anti-entropy: the rounds this replica pulls and their timer.
    ae: AntiEntropy,
    /// Client requests waiting for a token, a quorum of acks or a quorum of answers.
    requests: Requests,
    /// The consensus registers: this replica's acceptor and proposer, and the requests in
    /// consensus.
    strong: Strong,
    /// Outputs not yet polled; the parts push to them through `shared::Ctx`.
    transmits: VecDeque<Transmit>,
    replies: VecDeque<Reply>,
    /// Counters, excluded from equality (see `stats`).
    metrics: Metrics,
}

/// One output of a replica, as [`Replica::drain`] hands them out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// What changed in the durable state: persist it before acting on anything after it.
    Durable(DurableDelta),
    /// A message for a neighbour.
    Transmit(Transmit),
    /// A client reply.
    Reply(Reply),
}

impl Replica {
    /// A replica that has never run, at time `now_ms`.
    pub fn new(config: Config, now_ms: u64) -> Result<Replica, ConfigError> {
        let shared = Arc::new(Shared::new(config)?);
        let c = &shared.config;
        let strong = Strong::new(&shared, now_ms).map_err(|_| ConfigError::Limit("consensus"))?;
        let mut replica = Replica {
            now_ms,
            strong,
            store: Store::new(&shared),
            links: Links::new(&shared),
            ae: AntiEntropy::new(c.seed ^ c.me.0.rotate_left(32)),
            requests: Requests::default(),
            transmits: VecDeque::new(),
            replies: VecDeque::new(),
            metrics: Metrics::default(),
            shared,
        };
        replica.ae.schedule_first(now_ms, &replica.shared.config);
        Ok(replica)
    }

    /// Rebuilds a replica from its durable state after a crash, at time `now_ms`. Soft state
    /// starts empty (see `durable`). Every write acknowledged before the crash is in `durable`,
    /// by the ordering rule, so none is lost.
    pub fn recover(config: Config, durable: Durable, now_ms: u64) -> Result<Replica, RecoverError> {
        let mut r = Replica::new(config, now_ms)?;
        let rounds = crate::consensus::ProposerDurable {
            rounds_below: durable.meta.rounds_below,
        };
        r.strong = Strong::recover(&r.shared, durable.strong.clone(), rounds, now_ms)
            .map_err(|_| ConfigError::Limit("consensus"))?;
        r.store.recover(durable, &r.shared)?;
        let forbidden = r.forbidden_keys();
        if let Some(first) = forbidden.first() {
            return Err(RecoverError::Forbidden {
                count: forbidden.len(),
                first: String::from_utf8_lossy(first).into_owned(),
            });
        }
        // Entries not yet acknowledged by the children are sent again from the start of the
        // retained log; the first ack of each child moves its cursor on.
        let (_, links, _, _, mut cx) = r.split();
        links.schedule_flush(&mut cx);
        r.debug_check();
        Ok(r)
    }

    // ----- getters -----

    /// This replica's id.
    pub fn id(&self) -> ReplicaId {
        self.shared.config.me
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The frontier `F`: per origin, the entries this replica holds, gap-free.
    pub fn frontier(&self) -> &VectorClock {
        self.store.frontier()
    }

    /// The horizon `V`: the state is built from entries at or below it.
    pub fn horizon(&self) -> &VectorClock {
        self.store.horizon()
    }

    /// The local state of `key`, without any protocol (for tests and inspection).
    pub fn get(&self, key: &[u8]) -> Option<&KeyState> {
        self.store.keys().get(key)
    }

    /// Every key and its local state, in the keyspace's (key-hash) order.
    pub fn iter(&self) -> impl Iterator<Item = (&Key, &KeyState)> {
        self.store.keys().iter()
    }

    /// The keys this replica holds that a residency pin forbids it (see [`Pin`]): in its
    /// keyspace (hence its Merkle leaves, which are built from it) or in a complete oplog
    /// entry. Always empty for a correct replica; tests and the simulator assert so.
    pub fn forbidden_keys(&self) -> Vec<Key> {
        let me = self.id();
        let keys = self.store.keys().iter().map(|(k, _)| k);
        let logged = self
            .store
            .oplog()
            .iter()
            .filter(|e| !e.redacted)
            .map(|e| &e.key);
        keys.chain(logged)
            .filter(|k| !self.shared.may_hold(me, k))
            .cloned()
            .collect()
    }

    /// The Merkle root: equal roots mean equal keyspaces (up to a 64-bit hash collision).
    /// Rehashes the keys written since anti-entropy last read the tree, without storing the
    /// result.
    pub fn root_hash(&self) -> u64 {
        self.store.keys().root()
    }

    /// The last time seen.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// A snapshot of the metrics.
    pub fn stats(&self) -> Stats {
        Stats {
            counters: self.metrics.0.clone(),
            oplog_len: self.store.oplog().len(),
            keys: self.store.keys().len(),
            pending: self.requests.len() + self.strong.len(),
            parked: self.links.parked(),
            peer_lag: self.links.peer_lag(&self.store, &self.shared),
        }
    }

    /// The whole durable state, as [`recover`](Self::recover) takes it.
    pub fn durable(&self) -> Durable {
        let mut d = self.store.durable();
        d.meta.rounds_below = self.strong.rounds_below();
        d.strong = self.strong.records().clone();
        d
    }

    /// This replica's acceptor record of consensus register `key`: the last decision it has
    /// learned, its promise and what it accepted (defaults if it has none). For tests and
    /// inspection; clients read registers with [`Op::StrongGet`].
    pub fn consensus_record(&self, key: &[u8]) -> crate::consensus::KeyRecord {
        self.strong.record(key)
    }

    // ----- inputs -----

    /// Input: a client request. Its reply comes out of [`poll_reply`](Self::poll_reply), now
    /// or after a wait (quorum, session token), always by its deadline.
    pub fn handle_request(&mut self, now_ms: u64, request: Request) {
        self.advance(now_ms);
        if let Some(err) = self.residency_refusal(&request) {
            self.replies.push_back(Reply {
                id: request.id,
                result: Err(err),
            });
        } else if request.op.is_strong() {
            let (store, mut cx, strong) = self.split_strong();
            strong.on_request(store, &mut cx, request);
        } else if request.op.is_write() && self.strong.knows(&request.key) {
            // A CRDT write under a consensus register's name: refused here, where the replica
            // can tell (see `strong` § What a consensus register means).
            self.replies.push_back(Reply {
                id: request.id,
                result: Err(ClientError::ConsensusKey),
            });
        } else {
            let (store, links, requests, _, mut cx) = self.split();
            requests.on_request(store, links, &mut cx, request);
        }
        self.after_input();
    }

    /// Why a request on a residency-pinned key is refused here, if it is (see
    /// [`Pin`]): the key may not live in this region, or the operation would carry it to
    /// replicas that may not hold it. Consensus registers and bounded counters involve every
    /// replica (a majority of all of them; rights asked of every peer), and so does a
    /// `GlobalQuorum` level; refusing them keeps every message naming a pinned key among the
    /// pin's replicas, which routes between them never leave.
    fn residency_refusal(&self, request: &Request) -> Option<ClientError> {
        let config = &self.shared.config;
        config.pin_of(&request.key)?;
        if !self.shared.may_hold(config.me, &request.key) {
            return Some(ClientError::NotResident);
        }
        let wide = request.op.is_strong()
            || request.op.kind() == Some(KeyKind::Bounded)
            || request.consistency == Consistency::GlobalQuorum;
        wide.then_some(ClientError::ResidencyScope)
    }

    /// Input: an encoded message from neighbour `from`. A message that fails to decode is
    /// counted (`decode_errors`) and dropped; it never changes state.
    pub fn handle_message(&mut self, now_ms: u64, from: ReplicaId, bytes: &[u8]) {
        match PeerMsg::decode_with_limit(bytes, self.shared.config.message_bytes_max) {
            Ok(msg) => self.handle_peer_msg(now_ms, from, msg),
            Err(_) => {
                self.advance(now_ms);
                self.metrics.0.decode_errors += 1;
            }
        }
    }

    /// Input: a decoded message from neighbour `from`. A message that breaks an invariant is
    /// counted (`invalid_messages`) and dropped whole before it changes anything.
    pub fn handle_peer_msg(&mut self, now_ms: u64, from: ReplicaId, msg: PeerMsg) {
        self.advance(now_ms);
        if !self.links.is_neighbour(from) {
            self.metrics.0.invalid_messages += 1;
            return;
        }
        match msg {
            PeerMsg::Batch(entries) => self.on_batch(from, entries),
            PeerMsg::Ack(ack) => self.on_ack(from, ack),
            PeerMsg::AckedBatch { ack, entries } => self.on_acked_batch(from, ack, entries),
            PeerMsg::Routed(Routed {
                src,
                dst,
                body: RoutedBody::Consensus(m),
                ..
            }) if dst == self.id() => {
                if src == dst || !self.shared.members.contains(&src) {
                    self.metrics.0.invalid_messages += 1;
                } else {
                    let (store, mut cx, strong) = self.split_strong();
                    strong.on_message(store, &mut cx, src, m);
                }
            }
            PeerMsg::Routed(m) => {
                let (store, links, requests, _, mut cx) = self.split();
                requests.on_routed(store, links, &mut cx, from, m);
            }
            PeerMsg::AeProbe(p) => {
                let (store, _, _, ae, mut cx) = self.split();
                ae.on_probe(store, &mut cx, from, p);
            }
            PeerMsg::AeDiff(d) => {
                let (store, _, _, ae, mut cx) = self.split();
                if ae.on_diff(store, &mut cx, from, d) {
                    self.after_claim();
                }
            }
            PeerMsg::AeKeys(k) => {
                let (store, _, _, ae, mut cx) = self.split();
                if ae.on_keys(store, &mut cx, from, k) {
                    self.after_claim();
                }
            }
        }
        self.after_input();
    }

    /// Input: time has reached (at least) what [`poll_timeout`](Self::poll_timeout) asked for.
    /// Processes everything due: batch flush, retransmissions, anti-entropy, deadlines.
    /// Calling it early is harmless.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        self.advance(now_ms);
        let (store, links, requests, ae, mut cx) = self.split();
        if links.flush_due(cx.now_ms) {
            links.flush(store, &mut cx);
        }
        links.retransmit_due(store, &mut cx);
        requests.resend_queries(&mut cx);
        ae.timers(store, &mut cx);
        requests.escrow_timers(store, &mut cx);
        requests.expire_pending(&mut cx);
        let (store, mut cx, strong) = self.split_strong();
        strong.on_timeout(store, &mut cx);
        self.after_input();
    }

    /// Command: starts pulling from neighbour `p` now instead of at the next anti-entropy tick
    /// (tests and shells may force a round). Does nothing if a round with `p` is in progress.
    pub fn start_anti_entropy(&mut self, now_ms: u64, p: ReplicaId) {
        self.advance(now_ms);
        if self.links.is_neighbour(p) && !self.ae.is_pulling(p) {
            let (store, _, _, ae, mut cx) = self.split();
            ae.start_round(store, &mut cx, p);
        }
        self.after_input();
    }

    // ----- outputs -----

    /// Output: what changed in the durable state since the last call (`None` if nothing did, or
    /// if [`Config::track_durable`] is off). Persist it before sending or releasing anything
    /// the same input produced.
    pub fn take_durable(&mut self) -> Option<DurableDelta> {
        if !self.shared.config.track_durable {
            return None;
        }
        let store = self.store.take_durable();
        let strong = self.strong.take_durable();
        if store.is_none() && strong.is_none() {
            return None;
        }
        let mut delta = store.unwrap_or_else(|| DurableDelta {
            meta: self.store.durable_meta(),
            ..DurableDelta::default()
        });
        delta.meta.rounds_below = self.strong.rounds_below();
        if let Some(records) = strong {
            delta.strong = records;
        }
        Some(delta)
    }

    /// Output: the next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Output: the next client reply.
    pub fn poll_reply(&mut self) -> Option<Reply> {
        self.replies.pop_front()
    }

    /// Outputs, all at once: hands `sink` everything queued, in the order the call protocol
    /// requires — the durable delta (if any), then every transmit, then every reply. Shells call
    /// it after every input instead of writing the three loops; the order is then kept by
    /// construction. It allocates nothing beyond what the outputs already hold.
    pub fn drain(&mut self, mut sink: impl FnMut(Output)) {
        if let Some(delta) = self.take_durable() {
            sink(Output::Durable(delta));
        }
        while let Some(t) = self.poll_transmit() {
            sink(Output::Transmit(t));
        }
        while let Some(r) = self.poll_reply() {
            sink(Output::Reply(r));
        }
    }

    /// Output: when to call [`handle_timeout`](Self::handle_timeout): the earliest of the batch
    /// flush, retransmission, anti-entropy and request deadlines. `None` only if nothing is ever
    /// due (there is always an anti-entropy timer when the replica has neighbours).
    pub fn poll_timeout(&self) -> Option<u64> {
        [
            self.links.next_deadline(),
            self.ae.next_deadline(),
            self.requests.next_deadline(),
            self.strong.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ----- internals shared by the submodules -----

    fn advance(&mut self, now_ms: u64) {
        if now_ms < self.now_ms {
            self.metrics.0.time_regressions += 1;
        }
        self.now_ms = self.now_ms.max(now_ms);
    }

    fn after_input(&mut self) {
        if self.requests.waits_for_rights() {
            // Rights may have arrived by any path (a batch, anti-entropy, a quorum read, a local
            // deposit): the withdrawals they now cover run (see `requests::escrow`).
            let (store, links, requests, _, mut cx) = self.split();
            requests.on_rights_changed(store, links, &mut cx);
        }
        if self.links.batch_ready(&self.shared) {
            self.flush();
        }
        self.debug_check();
    }

    /// Lends the store, the links and a context over the other fields, for one call into a
    /// part.
    fn split(
        &mut self,
    ) -> (
        &mut Store,
        &mut Links,
        &mut Requests,
        &mut AntiEntropy,
        Ctx<'_>,
    ) {
        let cx = Ctx {
            shared: &self.shared,
            now_ms: self.now_ms,
            m: &mut self.metrics.0,
            out: &mut self.transmits,
            replies: &mut self.replies,
        };
        (
            &mut self.store,
            &mut self.links,
            &mut self.requests,
            &mut self.ae,
            cx,
        )
    }

    /// Lends the store, a context and the consensus part, for one call into `strong`.
    fn split_strong(&mut self) -> (&Store, Ctx<'_>, &mut Strong) {
        let cx = Ctx {
            shared: &self.shared,
            now_ms: self.now_ms,
            m: &mut self.metrics.0,
            out: &mut self.transmits,
            replies: &mut self.replies,
        };
        (&self.store, cx, &mut self.strong)
    }

    /// An anti-entropy claim moved the frontier (see `anti_entropy` § The frontier claim).
    fn after_claim(&mut self) {
        let (store, links, requests, _, mut cx) = self.split();
        // The claim may cover what parked entries wait for, or the entries themselves.
        links.unpark(store, &mut cx);
        // Answers the session waits the frontier now covers (see `requests`).
        requests.on_frontier_advanced(store, links, &mut cx);
        // Senders stuck behind a truncation point learn that we moved on.
        links.ack_all(store, &mut cx);
    }

    /// Sends everything pending to every neighbour (see `links`).
    fn flush(&mut self) {
        let (store, links, _, _, mut cx) = self.split();
        links.flush(store, &mut cx);
    }

    /// A batch from neighbour `from`: applied and acknowledged, or refused whole before
    /// anything is applied if one entry is impossible.
    fn on_batch(&mut self, from: ReplicaId, entries: Vec<Entry>) {
        self.metrics.0.batches_received += 1;
        if !links::batch_is_sane(&entries, &self.store, &self.shared) {
            self.metrics.0.invalid_messages += 1;
            return;
        }
        self.apply_batch(from, entries);
    }

    /// A batch that carries an ack: refused whole if either half is invalid, so nothing of an
    /// invalid message is applied; otherwise the entries first, which leave an ack owed to
    /// `from` that the batches the ack may release then carry.
    fn on_acked_batch(&mut self, from: ReplicaId, ack: Ack, entries: Vec<Entry>) {
        self.metrics.0.batches_received += 1;
        self.metrics.0.acks_received += 1;
        if !links::batch_is_sane(&entries, &self.store, &self.shared)
            || !links::ack_is_sane(&ack, &self.store, &self.shared)
        {
            self.metrics.0.invalid_messages += 1;
            return;
        }
        self.apply_batch(from, entries);
        self.apply_ack(from, ack);
    }

    /// A neighbour's cumulative acknowledgement, refused if it claims the impossible.
    fn on_ack(&mut self, from: ReplicaId, ack: Ack) {
        self.metrics.0.acks_received += 1;
        if !links::ack_is_sane(&ack, &self.store, &self.shared) {
            self.metrics.0.invalid_messages += 1;
            return;
        }
        self.apply_ack(from, ack);
    }

    /// Applies the entries; answers the session waits the frontier now covers (see `requests`).
    fn apply_batch(&mut self, from: ReplicaId, entries: Vec<Entry>) {
        let (store, links, requests, _, mut cx) = self.split();
        if links.apply_batch(store, &mut cx, from, entries) {
            requests.on_frontier_advanced(store, links, &mut cx);
        }
    }

    /// Takes the ack; replies to every write whose level the known frontiers now meet (see
    /// `requests`).
    fn apply_ack(&mut self, from: ReplicaId, ack: Ack) {
        let (store, links, requests, _, mut cx) = self.split();
        if links.apply_ack(store, &mut cx, from, ack) {
            requests.check_coverage(store, links, &mut cx);
        }
    }

    /// Checks every part's invariants (each part's check compiles to nothing in release builds).
    fn debug_check(&self) {
        self.store.debug_check(self.id());
        // Residency (see `config::Pin`): nothing this replica holds is a key its pins forbid.
        // Linear in the state, so only on small states, like the store's own checks.
        #[cfg(debug_assertions)]
        if !self.shared.config.residency.is_empty()
            && self.store.keys().len() + self.store.oplog().len() <= 256
        {
            debug_assert!(
                self.forbidden_keys().is_empty(),
                "a replica holds keys its residency pins forbid"
            );
        }
        self.links.debug_check(&self.store, &self.shared);
        self.requests.debug_check(&self.shared);
        self.strong.debug_check(&self.shared);
        Requests::debug_check_escrow(&self.store, &self.shared);
        let neighbours = !self.shared.neighbours.is_empty();
        self.ae
            .debug_check(self.now_ms, &self.shared.config, neighbours);
    }
}
