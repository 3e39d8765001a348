//! What the node's tasks share: the [`Node`] (configuration, the driver's inbox, the waiters, the
//! HLC, the log cursors), one [`Link`] per peer, and the [`Counters`] that `/metrics` reads.
//!
//! # Invariants
//! - The [`Replica`] is not here: the driver owns it, and the other tasks reach it only through
//!   [`Node::inbox`] (inputs) and [`Node::waiters`] (replies). What they read of its state is the
//!   [`Stats`] snapshot the driver publishes in [`Counters::stats`] and the [`LogCursors`].
//! - Everything here is a piece of [`crate::shared`], an atomic or a lock of [`crate::sync`];
//!   no lock is held across an `.await`, so no task can stall another through this state.
//! - The set of links is fixed at start-up (one per configured peer, keyed by replica id); what
//!   changes is each link's atomics, so a task may hold an `Arc<Link>` for as long as it likes.
//! - Counters only grow (gauges aside) and are read with `Relaxed` ordering: `/metrics` shows
//!   each figure as some task last stored it, with no promise of a consistent cut across them.
//!
//! [`Replica`]: converge_core::replica::Replica

use crate::config::{Limits, NodeConfig, PeerSpec};
use crate::shared::{HlcClock, LogCursors, Outbox, Waiters};
use crate::store::Store;
use crate::sync::{Arc, AtomicBool, AtomicU64, AtomicUsize, Mutex, Ordering, lock};
use converge_core::ReplicaId;
use converge_core::replica::{Reply, Request, Stats};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// A socket write (a client's replies, a peer link's batch) that makes no progress this long
/// closes the connection: a reader that stopped reading must not hold the task forever.
pub(super) const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// The wall clock in milliseconds since the Unix epoch, the replica's and the HLC's time base.
pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// An input for the driver.
pub(super) enum Input {
    /// A client request; its `id` is the id of the [`crate::shared::Waiter`] awaiting the reply.
    Request(Request),
    /// A replica payload read from a peer link.
    Peer {
        /// The replica that sent it (the link's `Hello` named it).
        from: ReplicaId,
        /// The payload, for the replica to decode and validate.
        payload: Vec<u8>,
    },
}

/// One peer link's state, shared by the driver (outbox), the writer, the readers and metrics.
pub(super) struct Link {
    /// The peer.
    pub(super) spec: PeerSpec,
    /// What the driver queued for the peer's writer.
    pub(super) outbox: Arc<Outbox>,
    /// `CLUSTER.LINKS CUT` set it: the writer stops dialing and the readers close.
    pub(super) cut: AtomicBool,
    /// Whether the writer's outgoing connection is up.
    pub(super) out_up: AtomicBool,
    /// Incoming connections from the peer that passed `Hello` and are being read.
    pub(super) in_up: AtomicUsize,
    /// Local time minus the HLC stamp of the last frame read from the peer.
    pub(super) lag_ms: AtomicU64,
    /// Frames read from the peer.
    pub(super) frames_in: AtomicU64,
    /// Frames written to the peer.
    pub(super) frames_out: AtomicU64,
    /// Connection attempts to the peer.
    pub(super) dials: AtomicU64,
    /// The peer has answered this node's `Hello` with a `Welcome` at least once: it accepted
    /// this incarnation.
    pub(super) welcomed: AtomicBool,
}

impl Link {
    /// A link to `spec`, down and not cut, with an empty outbox bounded by `limits`.
    pub(super) fn new(spec: PeerSpec, limits: &Limits) -> Link {
        Link {
            spec,
            outbox: Outbox::new(limits.outbox_frames_max, limits.outbox_bytes_max),
            cut: AtomicBool::new(false),
            out_up: AtomicBool::new(false),
            in_up: AtomicUsize::new(0),
            lag_ms: AtomicU64::new(0),
            frames_in: AtomicU64::new(0),
            frames_out: AtomicU64::new(0),
            dials: AtomicU64::new(0),
            welcomed: AtomicBool::new(false),
        }
    }
}

/// Counters the tasks update and `/metrics` reads.
#[derive(Default)]
pub(super) struct Counters {
    pub(super) connections_open: AtomicUsize,
    pub(super) connections_total: AtomicU64,
    pub(super) connections_refused: AtomicU64,
    pub(super) requests: AtomicU64,
    pub(super) request_timeouts: AtomicU64,
    pub(super) busy: AtomicU64,
    pub(super) group_commits: AtomicU64,
    pub(super) group_commit_inputs: AtomicU64,
    pub(super) commit_micros: AtomicU64,
    pub(super) transmits_dropped: AtomicU64,
    pub(super) clock_drift: AtomicU64,
    /// `AUTH`s that succeeded and failed, and commands refused for want of authentication or
    /// of the admin role (`-NOAUTH`, `-NOPERM`, a disabled `CLUSTER.LINKS`).
    pub(super) auth_ok: AtomicU64,
    pub(super) auth_failed: AtomicU64,
    pub(super) auth_refused: AtomicU64,
    /// Client connections the node closed: idle, past the first-command deadline, after too
    /// many failed `AUTH`s, and over the partial-command budget.
    pub(super) closed_idle: AtomicU64,
    pub(super) closed_first_command: AtomicU64,
    pub(super) closed_auth: AtomicU64,
    pub(super) closed_budget: AtomicU64,
    /// Unparsed client input held now over all connections (`limits.partial_commands_bytes_max`).
    pub(super) partial_bytes: AtomicUsize,
    /// Malformed inputs by kind: the kinds are a small fixed set of static labels.
    pub(super) bad_inputs: Mutex<BTreeMap<&'static str, u64>>,
    /// The replica's last published stats; `None` until the driver first publishes them.
    pub(super) stats: Mutex<Option<Stats>>,
}

impl Counters {
    /// Counts one malformed input of `kind` (a label of `bad_inputs_total`).
    pub(super) fn bad_input(&self, kind: &'static str) {
        *lock(&self.bad_inputs).entry(kind).or_insert(0) += 1;
    }
}

/// This node's identity and what it knows of its peers' (see docs/protocol.md § identity).
///
/// A node whose store is new (`fresh`: created by this start, or by an earlier one that was never
/// accepted by every peer) may be a region that lost its disk: it handles no client request and no peer payload until every peer has welcomed its
/// incarnation, since a peer that knew an earlier life holds sequence numbers and promises this
/// life forgot. `serving` latches once that is so (at once for a node that is not fresh).
pub(super) struct Identity {
    /// The incarnation sent in every `Hello`: the store's nonce, 0 without a store.
    pub(super) incarnation: u64,
    /// The store is new: not yet accepted by every peer ([`Store::accepted`]).
    pub(super) fresh: bool,
    /// Clients and peer payloads are served (latched; see above).
    pub(super) serving: AtomicBool,
    /// The incarnation first accepted from each member, as recorded in the store.
    pub(super) known: Mutex<BTreeMap<u64, u64>>,
    /// Where `known` is recorded; `None` in memory.
    pub(super) store: Option<Arc<Store>>,
    /// Why a peer refused this incarnation; set once, then `refused_signal` stops the node.
    pub(super) refused: Mutex<Option<String>>,
    pub(super) refused_signal: tokio::sync::Notify,
}

impl Identity {
    /// The identity of a node with no store: incarnation 0, which peers neither check nor
    /// record, serving at once.
    pub(super) fn in_memory() -> Identity {
        Identity::new(0, false, BTreeMap::new(), None)
    }

    /// An identity of `incarnation`, `fresh` or not, knowing `known` of the peers.
    pub(super) fn new(
        incarnation: u64,
        fresh: bool,
        known: BTreeMap<u64, u64>,
        store: Option<Arc<Store>>,
    ) -> Identity {
        Identity {
            incarnation,
            fresh,
            serving: AtomicBool::new(!fresh),
            known: Mutex::new(known),
            store,
            refused: Mutex::new(None),
            refused_signal: tokio::sync::Notify::new(),
        }
    }
}

/// What every task of the node shares.
pub(super) struct Node {
    pub(super) config: NodeConfig,
    /// [`NodeConfig::fingerprint`], sent in and checked against every `Hello`.
    pub(super) fingerprint: u64,
    /// The replica's clock drift bound, which the HLC applies to peer stamps too.
    pub(super) max_drift_ms: u64,
    /// The driver's input queue, bounded by `limits.inbox_max`.
    pub(super) inbox: mpsc::Sender<Input>,
    pub(super) waiters: Arc<Waiters<Reply>>,
    pub(super) clock: HlcClock,
    pub(super) cursors: LogCursors,
    /// One link per configured peer, by replica id.
    pub(super) links: BTreeMap<u64, Arc<Link>>,
    pub(super) counters: Counters,
    pub(super) identity: Identity,
    /// Accepted peer connections whose `Hello` is not verified yet, oldest first: an id and the
    /// signal that closes it (at most `peer::PRE_HELLO_MAX`; see `peer`).
    pub(super) pre_hello: Mutex<VecDeque<(u64, Arc<tokio::sync::Notify>)>>,
    /// The next id in `pre_hello`.
    pub(super) pre_hello_next: AtomicU64,
}

impl Node {
    /// The shared state of a node configured by `config` whose driver reads `inbox`'s receiver.
    pub(super) fn new(config: NodeConfig, inbox: mpsc::Sender<Input>) -> Node {
        let l = &config.limits;
        let links = config
            .peers
            .iter()
            .map(|p| (p.id, Arc::new(Link::new(p.clone(), l))))
            .collect();
        let peer_ids: Vec<u64> = config.peers.iter().map(|p| p.id).collect();
        Node {
            fingerprint: config.fingerprint(),
            max_drift_ms: config.replica_config().max_drift_ms,
            inbox,
            waiters: Waiters::new(l.waiters_max),
            clock: HlcClock::new(),
            cursors: LogCursors::new(&peer_ids),
            links,
            counters: Counters::default(),
            identity: Identity::in_memory(),
            pre_hello: Mutex::new(VecDeque::new()),
            pre_hello_next: AtomicU64::new(0),
            config,
        }
    }

    /// The same node with `identity` (set before the node is shared).
    pub(super) fn with_identity(mut self, identity: Identity) -> Node {
        self.identity = identity;
        self
    }

    /// Whether clients and peer payloads are served: see [`Identity`]. Latches to `true` once
    /// every peer has welcomed this incarnation.
    pub(super) fn serving(&self) -> bool {
        let id = &self.identity;
        if id.serving.load(Ordering::Relaxed) {
            return true;
        }
        if self
            .links
            .values()
            .all(|l| l.welcomed.load(Ordering::Relaxed))
        {
            id.serving.store(true, Ordering::Relaxed);
            tracing::info!(
                incarnation = id.incarnation,
                "every peer accepted this new incarnation: serving"
            );
            return true;
        }
        false
    }
}

#[cfg(test)]
pub(super) mod testing {
    //! A node's shared state without sockets or a runtime, for the unit tests of the tasks.

    use super::{Input, Node};
    use crate::config::{Flags, NodeConfig};
    use tokio::sync::mpsc;

    /// Replica 0 in `us-east` with peers 1 (`eu-west`) and 2 (`apac`), nothing bound: the
    /// listen addresses are only ever read by `run`, which the tests do not call.
    pub(in crate::server) fn config() -> NodeConfig {
        NodeConfig::resolve(Flags {
            id: Some(0),
            region: Some("us-east".into()),
            peers: vec![
                "1=eu-west@127.0.0.1:7381".parse().unwrap(),
                "2=apac@127.0.0.1:7382".parse().unwrap(),
            ],
            client_listen: Some("127.0.0.1:6380".parse().unwrap()),
            peer_listen: Some("127.0.0.1:7380".parse().unwrap()),
            // The tasks' unit tests run no TLS; `tests/tls.rs` does.
            insecure_peers: true,
            ..Flags::default()
        })
        .unwrap()
    }

    /// A node built from `config`, and the receiving end of its driver's inbox.
    pub(in crate::server) fn node(config: NodeConfig) -> (Node, mpsc::Receiver<Input>) {
        let (tx, rx) = mpsc::channel(config.limits.inbox_max);
        (Node::new(config, tx), rx)
    }
}
