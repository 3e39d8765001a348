//! The replica state machine: one replica of a multi-region active-active store, sans IO.
//!
//! [`Replica`] is the single implementation of the replication protocol. It does no I/O, reads
//! no clock and draws no OS randomness: time is the `now_ms` argument of every input, messages
//! come in and go out as bytes, and the only random choice (anti-entropy timer jitter) comes
//! from [`Config::seed`]. The same type is model-checked by stateright actors, run by the
//! deterministic simulator on virtual time, and wrapped by the tokio node with redb persistence.
//!
//! # Map
//! - [`api`](Request): requests, replies, values, errors — what the shells speak.
//! - `config`: the cluster, the topology (the one definition of who talks to whom) and every
//!   limit; the deliberately broken variants ([`Bug`]).
//! - `keyspace`: typed CRDT states by key ([`KeyState`]) and the Merkle tree kept up to date on
//!   every change.
//! - `oplog`: entries `(origin, seq, stamp, deps, key, δ)` retained until every child
//!   acknowledged.
//! - `repl`: per-peer cursors, batching, compression, cumulative acks, go-back-N retransmit,
//!   causal delivery (entries parked until their dependencies are held), truncation, forwarding
//!   along the topology's spanning trees.
//! - `session`: session tokens and why answering only once a token is covered is sound; causal
//!   delivery and why no read shows a write before what it depends on.
//! - `quorum`: requests, consistency levels, the ABD-style global-quorum protocol.
//! - `merkle`: anti-entropy rounds and the frontier claim they end with.
//! - `msg`, `codec`: the validated binary encodings.
//! - `durable`: what a shell persists and in which order.
//!
//! # Invariants (checked in debug builds after every input)
//! - `F ⊑ V` (frontier below horizon) and `F[me] = V[me] = last_seq`.
//! - The state is above the delta of every entry `≤ F`, and is built from entries `≤ V` only.
//! - `F` is causally closed: the dependencies of every entry `≤ F` are `≤ F`. Every entry that
//!   reached the state through the oplog was applied only once `F` covered its dependencies.
//! - Every retained oplog entry is `≤ F`, and so are its dependencies; each origin's retained
//!   entries are gap-free.
//! - Parked entries are the next ones of their origins (gap-free from `F[origin] + 1`), each
//!   run's first waits for a dependency not `≤ F`, and at most `parked_entries_max` are parked.
//! - The dependencies already sent (`deps_sent`) are `≤ F`.
//! - Every Merkle node is the sum of the hashes below it.
//! - At most `pending_max` requests wait.

mod api;
mod codec;
mod config;
mod durable;
mod keyspace;
mod merkle;
mod msg;
mod oplog;
mod quorum;
mod repl;
mod session;

pub use api::{
    ClientError, Consistency, Done, Key, KeyKind, Op, Reply, Request, Scalar, Transmit,
    UnknownConsistency, Value,
};
pub use codec::{DecodeError, KEY_BYTES_MAX};
pub use config::{Bug, Config, ConfigError, RegionId, Topology};
pub use durable::{Durable, DurableDelta, DurableMeta};
pub use keyspace::KeyState;
pub use msg::{
    Ack, AeClaim, AeDiff, AeKeys, AeProbe, DEFAULT_MESSAGE_BYTES_MAX, MSG_MAGIC, MSG_VERSION,
    PeerMsg, Routed, RoutedBody,
};
pub use oplog::Entry;
pub use session::SessionToken;

use crate::{Hlc, ReplicaId, VectorClock};
use config::Routes;
use durable::Journal;
use keyspace::{Keyspace, Scratch};
use merkle::AntiEntropy;
use oplog::Oplog;
use quorum::Pending;
use repl::{Parked, Peer};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

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
    shared: Arc<Shared>,
    now_ms: u64,
    hlc: Hlc,
    /// Last sequence number issued as an origin.
    last_seq: u64,
    /// `F`: entries held, per origin, gap-free (see `session`).
    frontier: VectorClock,
    /// `V`: upper bound of the entries the state is built from.
    horizon: VectorClock,
    keys: Keyspace,
    oplog: Oplog,
    /// Received entries waiting for their dependencies (see `repl` § Causal delivery).
    parked: Parked,
    /// The join of the dependencies of every entry issued since the start (or the restart):
    /// what a receiver already holds when it applies our next entry, so that entry need not name
    /// it again (see `session` § Causal delivery). Soft state: forgetting it only makes the next
    /// entries name more.
    deps_sent: VectorClock,
    /// Replication state of each neighbour.
    peers: BTreeMap<ReplicaId, Peer>,
    /// The latest frontier heard of each other replica (first-hand from neighbours' acks,
    /// second-hand from their tables); soft state for quorum waits.
    known: BTreeMap<ReplicaId, VectorClock>,
    /// Bumped whenever `known` grows, so that gossip sends only news.
    known_version: u64,
    /// When the pending entries must be flushed.
    flush_at: Option<u64>,
    /// Entries logged since the last flush.
    unflushed: usize,
    ae: AntiEntropy,
    pending: Pending,
    transmits: VecDeque<Transmit>,
    replies: VecDeque<Reply>,
    journal: Option<Journal>,
    metrics: Metrics,
    /// Reusable encoding buffer for batches.
    scratch: Scratch,
}

/// What every replica of one configuration derives once and shares between clones.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Shared {
    config: Config,
    routes: Routes,
    members: BTreeSet<ReplicaId>,
    neighbours: Vec<ReplicaId>,
    /// Replicas of each region (sorted), and the index of ours.
    regions: Vec<Vec<ReplicaId>>,
    my_region: usize,
    /// For each origin, the neighbours that receive its entries through this replica.
    children: BTreeMap<ReplicaId, Vec<ReplicaId>>,
    /// Whether acks carry the table of known frontiers (every topology but the full mesh).
    gossip: bool,
}

impl Shared {
    fn new(config: Config) -> Result<Shared, ConfigError> {
        let routes = config.validate()?;
        let me = config.me;
        let members: BTreeSet<ReplicaId> = config.replicas.iter().map(|&(r, _)| r).collect();
        let neighbours = config.neighbours(me);
        let regions: Vec<Vec<ReplicaId>> = config.regions().into_iter().map(|(_, r)| r).collect();
        let my_region = regions
            .iter()
            .position(|rs| rs.contains(&me))
            .ok_or(ConfigError::NotAMember(me))?;
        let children = members
            .iter()
            .map(|&origin| {
                let kids = neighbours
                    .iter()
                    .copied()
                    .filter(|&n| n != origin && routes.next_hop(n, origin) == Some(me))
                    .collect();
                (origin, kids)
            })
            .collect();
        let gossip = config.topology != Topology::FullMesh && members.len() > 2;
        Ok(Shared {
            config,
            routes,
            members,
            neighbours,
            regions,
            my_region,
            children,
            gossip,
        })
    }

    fn children(&self, origin: ReplicaId) -> &[ReplicaId] {
        self.children.get(&origin).map_or(&[], |v| v.as_slice())
    }
}

/// Counters of what a replica did. Monotonic; see [`Stats`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Counters {
    /// Oplog entries put in batches (re-sends included).
    pub entries_sent: u64,
    /// Entries applied (first time, in order).
    pub entries_applied: u64,
    /// Entries received again and ignored.
    pub entries_duplicate: u64,
    /// Entries received ahead of a gap, or waiting for dependencies with no room to park, and
    /// dropped (the sender re-sends them).
    pub entries_out_of_order: u64,
    /// Entries held back because what they depend on had not arrived yet (each time one is
    /// parked; it is applied once its dependencies are, see `repl` § Causal delivery).
    pub entries_parked: u64,
    /// Batches sent.
    pub batches_sent: u64,
    /// Batches received.
    pub batches_received: u64,
    /// Bytes of batch bodies before compression.
    pub bytes_raw: u64,
    /// Bytes of batch messages as sent (compressed where it paid).
    pub bytes_sent: u64,
    /// Batches sent compressed.
    pub batches_compressed: u64,
    /// Go-back-N retransmissions (one per timeout per peer).
    pub retransmits: u64,
    /// Acks sent.
    pub acks_sent: u64,
    /// Acks received.
    pub acks_received: u64,
    /// Acks sent on a batch rather than alone (counted in `acks_sent` too).
    pub acks_piggybacked: u64,
    /// Anti-entropy rounds started (as puller).
    pub ae_rounds: u64,
    /// Rounds that completed.
    pub ae_rounds_completed: u64,
    /// Rounds abandoned (timeout, or a reply that did not fit).
    pub ae_rounds_abandoned: u64,
    /// Keys whose state anti-entropy changed.
    pub ae_keys_repaired: u64,
    /// Completed rounds that moved the frontier.
    pub ae_frontier_claims: u64,
    /// Requests that waited for their session token.
    pub session_waits: u64,
    /// Requests that gave up waiting for their token.
    pub session_timeouts: u64,
    /// Peer messages that failed to decode.
    pub decode_errors: u64,
    /// Decoded peer messages refused for breaking an invariant (unknown sender or origin, an
    /// ack claiming writes never issued, a probe of a node that does not exist, ...).
    pub invalid_messages: u64,
    /// Quorum operations that met their level.
    pub quorum_ok: u64,
    /// Quorum operations that missed their deadline.
    pub quorum_timeouts: u64,
    /// Requests refused because too many were pending.
    pub overloaded: u64,
    /// Keys changed by joining quorum replies.
    pub read_repairs: u64,
    /// Global-quorum reads that wrote back.
    pub write_backs: u64,
    /// Joins of two different key types (a type conflict resolved by kind order).
    pub type_conflicts: u64,
    /// Remote HLC stamps not absorbed (beyond the drift bound).
    pub clock_rejects: u64,
    /// Inputs whose `now_ms` was below the last seen time.
    pub time_regressions: u64,
    /// Oplog entries truncated after every child acknowledged them.
    pub truncated_acked: u64,
    /// Oplog entries truncated by the cap before every child had them.
    pub truncated_cap: u64,
    /// Times a peer's cursor was found behind the truncation point (anti-entropy repairs it).
    pub peer_behind_truncation: u64,
    /// Routed messages relayed for others.
    pub relayed: u64,
    /// Quorum replies for an operation that was no longer waiting.
    pub stale_replies: u64,
}

/// A snapshot of a replica's metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Stats {
    /// The counters.
    pub counters: Counters,
    /// Entries retained in the oplog.
    pub oplog_len: usize,
    /// Keys in the keyspace.
    pub keys: usize,
    /// Requests waiting (quorum or session).
    pub pending: usize,
    /// Received entries parked until their dependencies arrive.
    pub parked: usize,
    /// Per neighbour, the entries it still lacks that this replica would send it.
    pub peer_lag: Vec<(ReplicaId, u64)>,
}

/// The counters, excluded from equality and hashing: two replicas in the same state are equal
/// whatever they counted on the way, so model checkers do not split states by metrics.
#[derive(Clone, Debug, Default)]
struct Metrics(Counters);

impl PartialEq for Metrics {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Metrics {}
impl std::hash::Hash for Metrics {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
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

/// A durable state that cannot be recovered from.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecoverError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The durable state is inconsistent.
    #[error("inconsistent durable state: {0}")]
    Inconsistent(&'static str),
}

impl Replica {
    /// A replica that has never run, at time `now_ms`.
    pub fn new(config: Config, now_ms: u64) -> Result<Replica, ConfigError> {
        let shared = Arc::new(Shared::new(config)?);
        let c = &shared.config;
        let peers = shared
            .neighbours
            .iter()
            .map(|&n| (n, Peer::new()))
            .collect();
        let journal = c.track_durable.then(Journal::default);
        let mut replica = Replica {
            now_ms,
            hlc: Hlc::new(c.max_drift_ms),
            last_seq: 0,
            frontier: VectorClock::new(),
            horizon: VectorClock::new(),
            keys: Keyspace::new(c.merkle_fanout_bits, c.merkle_depth),
            oplog: Oplog::default(),
            parked: Parked::default(),
            deps_sent: VectorClock::new(),
            peers,
            known: BTreeMap::new(),
            known_version: 0,
            flush_at: None,
            unflushed: 0,
            ae: AntiEntropy::new(c.seed ^ c.me.0.rotate_left(32)),
            pending: Pending::default(),
            transmits: VecDeque::new(),
            replies: VecDeque::new(),
            journal,
            metrics: Metrics::default(),
            scratch: Scratch::default(),
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
        let Durable { meta, keys, oplog } = durable;
        let me = r.id();
        if !meta
            .frontier
            .iter()
            .all(|(o, _)| r.shared.members.contains(&o))
            || !meta
                .horizon
                .iter()
                .all(|(o, _)| r.shared.members.contains(&o))
        {
            return Err(RecoverError::Inconsistent(
                "frontier names a replica outside the cluster",
            ));
        }
        if !meta.horizon.dominates(&meta.frontier) {
            return Err(RecoverError::Inconsistent("frontier above horizon"));
        }
        if meta.frontier.get(me) != meta.last_seq || meta.horizon.get(me) != meta.last_seq {
            return Err(RecoverError::Inconsistent(
                "own frontier differs from the last sequence number",
            ));
        }
        let mut hlc_last = meta.hlc;
        for e in &oplog {
            if e.seq > meta.frontier.get(e.origin) {
                return Err(RecoverError::Inconsistent("oplog entry above the frontier"));
            }
            if r.oplog.end(e.origin).is_some_and(|end| end != e.seq) {
                return Err(RecoverError::Inconsistent("oplog not gap-free"));
            }
            // Children will apply the entry only once they hold its dependencies, which must be
            // members, and held here since it was applied here.
            if e.deps.get(e.origin) != 0
                || !e.deps.iter().all(|(o, _)| r.shared.members.contains(&o))
                || !meta.frontier.dominates(&e.deps)
            {
                return Err(RecoverError::Inconsistent(
                    "oplog entry depends on entries not held",
                ));
            }
            if e.origin == me {
                hlc_last = hlc_last.max(e.stamp);
            }
            r.oplog.append(e.clone());
        }
        for (k, s) in keys {
            if k.len() > KEY_BYTES_MAX {
                return Err(RecoverError::Inconsistent("key too long"));
            }
            r.keys.join(&k, s);
        }
        r.hlc = Hlc::resume(hlc_last, r.shared.config.max_drift_ms);
        r.last_seq = meta.last_seq;
        r.frontier = meta.frontier;
        r.horizon = meta.horizon;
        if let Some(j) = &mut r.journal {
            *j = Journal::default();
        }
        // Entries not yet acknowledged by the children are sent again from the start of the
        // retained log; the first ack of each child moves its cursor on.
        r.schedule_flush();
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
        &self.frontier
    }

    /// The horizon `V`: the state is built from entries at or below it.
    pub fn horizon(&self) -> &VectorClock {
        &self.horizon
    }

    /// The local state of `key`, without any protocol (for tests and inspection).
    pub fn get(&self, key: &[u8]) -> Option<&KeyState> {
        self.keys.get(key)
    }

    /// Every key and its local state, in the keyspace's (key-hash) order.
    pub fn iter(&self) -> impl Iterator<Item = (&Key, &KeyState)> {
        self.keys.iter()
    }

    /// The Merkle root: equal roots mean equal keyspaces (up to a 64-bit hash collision).
    /// Rehashes the keys written since anti-entropy last read the tree, without storing the
    /// result.
    pub fn root_hash(&self) -> u64 {
        self.keys.root()
    }

    /// The last time seen.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// A snapshot of the metrics.
    pub fn stats(&self) -> Stats {
        Stats {
            counters: self.metrics.0.clone(),
            oplog_len: self.oplog.len(),
            keys: self.keys.len(),
            pending: self.pending.len(),
            parked: self.parked.len(),
            peer_lag: self.peer_lag(),
        }
    }

    /// The whole durable state, as [`recover`](Self::recover) takes it.
    pub fn durable(&self) -> Durable {
        Durable {
            meta: self.durable_meta(),
            keys: self
                .keys
                .iter()
                .map(|(k, s)| (k.clone(), s.clone()))
                .collect(),
            oplog: self.oplog.iter().cloned().collect(),
        }
    }

    fn durable_meta(&self) -> DurableMeta {
        DurableMeta {
            hlc: self.hlc.last(),
            last_seq: self.last_seq,
            frontier: self.frontier.clone(),
            horizon: self.horizon.clone(),
        }
    }

    // ----- inputs -----

    /// Input: a client request. Its reply comes out of [`poll_reply`](Self::poll_reply), now
    /// or after a wait (quorum, session token), always by its deadline.
    pub fn handle_request(&mut self, now_ms: u64, request: Request) {
        self.advance(now_ms);
        self.on_request(request);
        self.after_input();
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
        if !self.peers.contains_key(&from) {
            self.metrics.0.invalid_messages += 1;
            return;
        }
        match msg {
            PeerMsg::Batch(entries) => self.on_batch(from, entries),
            PeerMsg::Ack(ack) => self.on_ack(from, ack),
            PeerMsg::AckedBatch { ack, entries } => self.on_acked_batch(from, ack, entries),
            PeerMsg::Routed(m) => self.on_routed(from, m),
            PeerMsg::AeProbe(p) => self.on_ae_probe(from, p),
            PeerMsg::AeDiff(d) => self.on_ae_diff(from, d),
            PeerMsg::AeKeys(k) => self.on_ae_keys(from, k),
        }
        self.after_input();
    }

    /// Input: time has reached (at least) what [`poll_timeout`](Self::poll_timeout) asked for.
    /// Processes everything due: batch flush, retransmissions, anti-entropy, deadlines.
    /// Calling it early is harmless.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        self.advance(now_ms);
        let now = self.now_ms;
        if self.flush_at.is_some_and(|t| t <= now) {
            self.flush();
        }
        self.retransmit_due();
        self.resend_queries();
        self.ae_timers();
        self.expire_pending();
        self.after_input();
    }

    // ----- outputs -----

    /// Output: what changed in the durable state since the last call (`None` if nothing did, or
    /// if [`Config::track_durable`] is off). Persist it before sending or releasing anything
    /// the same input produced.
    pub fn take_durable(&mut self) -> Option<DurableDelta> {
        let meta = self.durable_meta();
        let journal = self.journal.as_mut()?;
        if !journal.dirty {
            return None;
        }
        let j = std::mem::take(journal);
        let keys = j
            .keys
            .into_iter()
            .filter_map(|k| {
                let s = self.keys.get(&k)?.clone();
                Some((k, s))
            })
            .collect();
        Some(DurableDelta {
            meta,
            keys,
            appended: j.appended,
            truncated: j.truncated.into_iter().collect(),
        })
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
            self.flush_at,
            self.peers.values().filter_map(|p| p.rto_at).min(),
            self.ae.next_deadline(),
            self.pending.next_deadline(),
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
        let c = &self.shared.config;
        if self.unflushed > 0 && (self.unflushed >= c.batch_entries_max || c.batch_delay_ms == 0) {
            self.flush();
        }
        self.debug_check();
    }

    /// Records that `key` changed (for the durable journal).
    fn journal_key(&mut self, key: &[u8]) {
        if let Some(j) = &mut self.journal {
            j.dirty = true;
            if !j.keys.contains(key) {
                j.keys.insert(key.into());
            }
        }
    }

    fn journal_meta(&mut self) {
        if let Some(j) = &mut self.journal {
            j.dirty = true;
        }
    }

    /// Raises the horizon to cover `v` (state arrived that was built from entries `≤ v`).
    fn raise_horizon(&mut self, v: &VectorClock) {
        if !self.horizon.dominates(v) {
            self.horizon.merge(v);
            self.journal_meta();
        }
    }

    fn debug_check(&self) {
        #[cfg(debug_assertions)]
        {
            let me = self.id();
            debug_assert!(
                self.horizon.dominates(&self.frontier),
                "frontier above horizon"
            );
            debug_assert_eq!(self.frontier.get(me), self.last_seq);
            debug_assert_eq!(self.horizon.get(me), self.last_seq);
            debug_assert!(self.pending.len() <= self.shared.config.pending_max);
            // An owed ack is always on its way: the flush that pays it is armed.
            debug_assert!(
                self.flush_at.is_some() || self.peers.values().all(|p| !p.ack_due),
                "an ack is owed with no flush armed"
            );
            if self.oplog.len() <= 256 {
                for e in self.oplog.iter() {
                    debug_assert!(e.seq <= self.frontier.get(e.origin), "oplog above frontier");
                    debug_assert!(
                        self.frontier.dominates(&e.deps),
                        "oplog entry above the frontier's causal closure"
                    );
                }
            }
            debug_assert!(
                self.frontier.dominates(&self.deps_sent),
                "dependencies sent that are not held"
            );
            debug_assert!(self.parked.len() <= self.shared.config.parked_entries_max);
            let mut parked = 0;
            for (origin, run) in self.parked.runs() {
                parked += run.len();
                for (expect, e) in (self.frontier.get(origin) + 1..).zip(run) {
                    debug_assert_eq!(e.seq, expect, "parked run not next and gap-free");
                }
                debug_assert!(
                    run.front()
                        .is_some_and(|e| !self.frontier.dominates(&e.deps)),
                    "a parked entry is ready but was not applied"
                );
            }
            debug_assert_eq!(parked, self.parked.len());
            if self.keys.len() <= 64 {
                debug_assert!(self.keys.check(), "Merkle tree out of date");
            }
        }
    }
}
