//! `converge node` over TCP: the tokio shell around one [`Replica`].
//!
//! # Tasks
//! - **The driver** owns the [`Replica`] (no lock on it). It takes inputs from one bounded
//!   channel (client requests, each with the id of its [`Waiter`]; peer payloads), handles a
//!   batch of them (everything already queued, up to `limits.batch_inputs_max`) and the timer
//!   from `poll_timeout`, then makes **one** redb commit of the batch's `take_durable` delta
//!   on a blocking thread (the group commit), and only then pushes the transmits into the
//!   peers' outboxes and completes the waiters with the replies. That is the ordering rule of
//!   `converge_core::replica::durable`: nothing a batch produced leaves the node before the
//!   batch's changes are on disk, so an acknowledged write survives `kill -9`. While a commit
//!   runs the driver goes on handling the next batch in memory (commits are pipelined one deep,
//!   see [`drive`]) and new inputs queue in the channel, so the commit rate adapts to the load.
//! - **A client task per RESP connection** decodes commands ([`crate::resp`]), submits the
//!   requests of a pipeline without waiting, then awaits the replies in order (each under
//!   `limits.request_timeout_ms`) and writes them with one syscall.
//! - **Per peer, a dialer/writer** (connects with bounded exponential backoff, sends `Hello`,
//!   then writes what the peer's [`Outbox`] batches) and, for each accepted link, **a reader**
//!   (checks `Hello`, observes each frame's HLC stamp, records the lag, feeds the driver). Links
//!   are one-way: a node sends on the link it dialed and receives on the links it accepted, so
//!   two nodes never race to pick one of two crossing connections.
//! - **`/metrics`**: a minimal HTTP/1.1 responder (`GET /metrics`, Prometheus text format).
//!
//! # Shared state
//! Only the pieces of [`crate::shared`] (waiters, outboxes, the HLC, the log cursors) and the
//! node's own atomic counters (through [`crate::sync`]) are shared between tasks; the replica is
//! the driver's alone and publishes a [`Stats`] snapshot for `/metrics` at most every
//! [`STATS_EVERY`].
//!
//! # Fault injection
//! `CLUSTER.LINKS CUT <id>...` on the client port cuts this node's links to those replicas (both
//! directions: the writer stops dialing and discards its outbox, the reader closes and refuses
//! them) until `CLUSTER.LINKS HEAL`. It is a switch for demos and tests (`converge cluster
//! partition`), not a security boundary: anyone who can reach the client port can use it.
//! Replication resumes after a heal by go-back-N retransmission and anti-entropy.

use crate::config::{NodeConfig, PeerSpec};
use crate::frame::{self, Frame};
use crate::resp::{self, Pending, Resp, Session, Step};
use crate::shared::{HlcClock, LogCursors, Outbox, Stamp, Waiter, Waiters};
use crate::store::{Store, StoreError};
use crate::sync::{Arc, AtomicBool, AtomicU64, AtomicUsize, Mutex, MutexGuard, Ordering};
use converge_core::ReplicaId;
use converge_core::replica::{Replica, Reply, Request, Stats};
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

/// How often the driver publishes the replica's stats for `/metrics`.
pub const STATS_EVERY: Duration = Duration::from_millis(200);
/// The longest the driver sleeps without checking its timer (a cap, not a poll: inputs wake it).
const TICK_MAX: Duration = Duration::from_millis(50);
/// Dial backoff: first retry, cap.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// A link that stayed up this long counts as healthy: its failure resets the dial backoff.
const LINK_STABLE: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A peer write that makes no progress this long closes the link (the dialer reconnects).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// A link whose peer sends no `Hello` this long after connecting is closed.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// An inbound link silent this long is closed (anti-entropy keeps healthy links busy every
/// second; the dialer on the other side reconnects).
const PEER_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often an idle writer re-checks its link's cut switch.
const CUT_CHECK: Duration = Duration::from_millis(100);
/// Most bytes a peer writer sends in one syscall.
const WRITE_BATCH_BYTES: usize = 256 * 1024;
/// Longest a submitter waits for room in the driver's queue before answering `-BUSY`.
const SUBMIT_WAIT: Duration = Duration::from_secs(1);
/// `/metrics` requests: the most bytes read, the longest wait.
const HTTP_REQUEST_MAX: usize = 8 * 1024;
const HTTP_TIMEOUT: Duration = Duration::from_secs(2);
/// Bytes read from a client socket at once (redis-server's figure). A connection holds at most
/// this plus `limits.resp_command_bytes_max` of unparsed input, and `limits.pipeline_max`
/// requests in flight plus about this many bytes of replies (more only for a single large reply).
const READ_CHUNK: usize = 16 * 1024;

/// Why the node stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The store failed: the node stops rather than acknowledge what it could not persist.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored state was refused by the replica.
    #[error("the replica refused the stored state: {0}")]
    Recover(String),
    /// The configuration was refused by the replica.
    #[error("bad cluster configuration: {0}")]
    Config(String),
    /// The runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    /// A blocking commit task died.
    #[error("the commit thread failed: {0}")]
    Commit(String),
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data behind these locks (counters, a snapshot) is valid at every unlock.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An input for the driver.
enum Input {
    Request(Request),
    Peer { from: ReplicaId, payload: Vec<u8> },
}

/// One peer link's state, shared by the driver (outbox), the writer, the readers and metrics.
struct Link {
    spec: PeerSpec,
    outbox: Arc<Outbox>,
    cut: AtomicBool,
    out_up: AtomicBool,
    in_up: AtomicUsize,
    lag_ms: AtomicU64,
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    dials: AtomicU64,
}

/// Counters the tasks update and `/metrics` reads.
#[derive(Default)]
struct Counters {
    connections_open: AtomicUsize,
    connections_total: AtomicU64,
    connections_refused: AtomicU64,
    requests: AtomicU64,
    request_timeouts: AtomicU64,
    busy: AtomicU64,
    group_commits: AtomicU64,
    group_commit_inputs: AtomicU64,
    commit_micros: AtomicU64,
    transmits_dropped: AtomicU64,
    clock_drift: AtomicU64,
    bad_inputs: Mutex<BTreeMap<&'static str, u64>>,
    stats: Mutex<Option<Stats>>,
}

impl Counters {
    fn bad_input(&self, kind: &'static str) {
        *lock(&self.bad_inputs).entry(kind).or_insert(0) += 1;
    }
}

/// What every task of the node shares.
struct Node {
    config: NodeConfig,
    fingerprint: u64,
    max_drift_ms: u64,
    inbox: mpsc::Sender<Input>,
    waiters: Arc<Waiters<Reply>>,
    clock: HlcClock,
    cursors: LogCursors,
    links: BTreeMap<u64, Arc<Link>>,
    counters: Counters,
}

/// Builds a runtime and runs the node until SIGTERM or Ctrl-C.
pub fn run_blocking(config: NodeConfig) -> Result<(), ServerError> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Ignored if a subscriber is already installed (tests running several nodes in-process).
    // Colours only on a terminal: `converge cluster` sends the logs to files.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(ServerError::Runtime)?;
    rt.block_on(run(config))
}

/// Runs the node until SIGTERM or Ctrl-C (or a store failure).
pub async fn run(config: NodeConfig) -> Result<(), ServerError> {
    let rc = config.replica_config();
    let max_drift_ms = rc.max_drift_ms;
    let store = match &config.data_dir {
        Some(dir) => Some(Arc::new(Store::open(dir)?)),
        None => None,
    };
    let now = now_ms();
    let replica = match store.as_ref().map(|s| s.load()).transpose()?.flatten() {
        Some(durable) => {
            info!(
                keys = durable.keys.len(),
                oplog = durable.oplog.len(),
                "recovering from the store"
            );
            Replica::recover(rc, durable, now).map_err(|e| ServerError::Recover(e.to_string()))?
        }
        None => Replica::new(rc, now).map_err(|e| ServerError::Config(e.to_string()))?,
    };
    let bind = |addr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })
    };
    let clients = bind(config.client_listen).await?;
    let peers_l = bind(config.peer_listen).await?;
    let metrics_l = match config.metrics_listen {
        Some(a) => Some(bind(a).await?),
        None => None,
    };
    let (tx, rx) = mpsc::channel(config.limits.inbox_max);
    let l = &config.limits;
    let links = config
        .peers
        .iter()
        .map(|p| {
            let link = Link {
                spec: p.clone(),
                outbox: Outbox::new(l.outbox_frames_max, l.outbox_bytes_max),
                cut: AtomicBool::new(false),
                out_up: AtomicBool::new(false),
                in_up: AtomicUsize::new(0),
                lag_ms: AtomicU64::new(0),
                frames_in: AtomicU64::new(0),
                frames_out: AtomicU64::new(0),
                dials: AtomicU64::new(0),
            };
            (p.id, Arc::new(link))
        })
        .collect();
    let peer_ids: Vec<u64> = config.peers.iter().map(|p| p.id).collect();
    let node = Arc::new(Node {
        fingerprint: config.fingerprint(),
        max_drift_ms,
        inbox: tx,
        waiters: Waiters::new(l.waiters_max),
        clock: HlcClock::new(),
        cursors: LogCursors::new(&peer_ids),
        links,
        counters: Counters::default(),
        config,
    });
    info!(
        id = node.config.id,
        region = %node.config.region,
        client = %node.config.client_listen,
        peer = %node.config.peer_listen,
        metrics = ?node.config.metrics_listen,
        durable = node.config.data_dir.is_some(),
        "node listening"
    );
    let driver = tokio::spawn(drive(replica, store, rx, node.clone()));
    tokio::spawn(accept_clients(clients, node.clone()));
    tokio::spawn(accept_peers(peers_l, node.clone()));
    if let Some(m) = metrics_l {
        tokio::spawn(serve_metrics(m, node.clone()));
    }
    for link in node.links.values() {
        tokio::spawn(dial(link.clone(), node.clone()));
    }
    tokio::select! {
        r = driver => match r {
            Ok(r) => r,
            Err(e) => Err(ServerError::Commit(e.to_string())),
        },
        () = shutdown_signal() => {
            info!("shutting down (every acknowledged write is already on disk)");
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

// ------------------------------------------------------------------------------------------
// The driver
// ------------------------------------------------------------------------------------------

fn handle(replica: &mut Replica, input: Input) {
    match input {
        Input::Request(r) => replica.handle_request(now_ms(), r),
        Input::Peer { from, payload } => replica.handle_message(now_ms(), from, &payload),
    }
}

/// A group commit running on a blocking thread, and what its group produced: released only once
/// it (and every commit before it) is on disk.
struct InFlight {
    handle: tokio::task::JoinHandle<Result<(), StoreError>>,
    outputs: Outputs,
    inputs: u64,
    last_seq: u64,
    started: Instant,
}

/// What a group of inputs produced, held back until its commit.
#[derive(Default)]
struct Outputs {
    transmits: Vec<converge_core::replica::Transmit>,
    replies: Vec<Reply>,
}

impl Outputs {
    fn take(replica: &mut Replica) -> Outputs {
        let mut o = Outputs::default();
        while let Some(t) = replica.poll_transmit() {
            o.transmits.push(t);
        }
        while let Some(r) = replica.poll_reply() {
            o.replies.push(r);
        }
        o
    }

    /// Sends the messages, then answers the clients.
    fn release(self, node: &Node) {
        for t in self.transmits {
            let Some(link) = node.links.get(&t.to.0) else {
                continue;
            };
            let stamp = node.clock.stamp(now_ms());
            let pushed = frame::encode_data(stamp.0, &t.payload).map(|f| link.outbox.push(f));
            if !matches!(pushed, Some(Ok(()))) {
                // Go-back-N re-sends what a full outbox or a cut link dropped.
                node.counters
                    .transmits_dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        for reply in self.replies {
            // A waiter that timed out is gone; its reply is dropped.
            node.waiters.complete(reply.id, reply);
        }
    }
}

/// The driver loop: see the module documentation.
///
/// Commits are pipelined one deep: while group `k` is being committed, the driver goes on
/// handling inputs (group `k+1`, up to `batch_inputs_max`) in memory; when commit `k` ends it
/// releases group `k`'s outputs, then takes the durable delta and the outputs of everything
/// handled since and starts commit `k+1`. Outputs are polled from the replica only when a commit
/// starts (or when there is nothing to persist and no commit running), so every output is
/// released after the commit of the delta that covers the inputs before it — the ordering rule —
/// and commits reach the store in order.
async fn drive(
    mut replica: Replica,
    store: Option<Arc<Store>>,
    mut rx: mpsc::Receiver<Input>,
    node: Arc<Node>,
) -> Result<(), ServerError> {
    let me = replica.id();
    let batch_max = node.config.limits.batch_inputs_max as u64;
    let mut last_stats = Instant::now() - STATS_EVERY;
    let mut inflight: Option<InFlight> = None;
    // Inputs handled since the last commit started (their outputs wait in the replica).
    let mut group = 0u64;
    loop {
        let now = now_ms();
        let wait = replica
            .poll_timeout()
            .map_or(TICK_MAX, |at| Duration::from_millis(at.saturating_sub(now)))
            .min(TICK_MAX);
        let commit_done = async {
            match inflight.as_mut() {
                Some(f) => (&mut f.handle).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            done = commit_done => {
                if let Some(f) = inflight.take() {
                    done.map_err(|e| ServerError::Commit(e.to_string()))?
                        .inspect_err(|e| error!(error = %e, "commit failed; stopping"))?;
                    let c = &node.counters;
                    c.group_commits.fetch_add(1, Ordering::Relaxed);
                    c.group_commit_inputs.fetch_add(f.inputs, Ordering::Relaxed);
                    c.commit_micros.fetch_add(
                        u64::try_from(f.started.elapsed().as_micros()).unwrap_or(u64::MAX),
                        Ordering::Relaxed,
                    );
                    node.cursors.durable(f.last_seq);
                    f.outputs.release(&node);
                }
            }
            // A full group waits for the running commit instead of growing the held outputs.
            input = rx.recv(), if group < batch_max => match input {
                Some(input) => {
                    handle(&mut replica, input);
                    group += 1;
                }
                // Every sender is gone: the node is shutting down.
                None => return Ok(()),
            },
            () = tokio::time::sleep(wait) => {}
        }
        // The group: whatever else is already queued, bounded.
        while group < batch_max {
            match rx.try_recv() {
                Ok(input) => {
                    handle(&mut replica, input);
                    group += 1;
                }
                Err(_) => break,
            }
        }
        let now = now_ms();
        if replica.poll_timeout().is_some_and(|at| at <= now) {
            replica.handle_timeout(now);
        }
        if inflight.is_none() {
            // Persist the group (one commit, off the async workers), or release its outputs
            // now if it changed nothing durable: every earlier commit has ended.
            let last_seq = replica.frontier().get(me);
            node.cursors.append(last_seq);
            let delta = replica.take_durable();
            let outputs = Outputs::take(&mut replica);
            match (delta, &store) {
                (Some(delta), Some(store)) => {
                    let store = store.clone();
                    inflight = Some(InFlight {
                        handle: tokio::task::spawn_blocking(move || store.apply(&delta)),
                        outputs,
                        inputs: group,
                        last_seq,
                        started: Instant::now(),
                    });
                }
                // Without a data directory the node is in memory only, by choice.
                _ => {
                    node.cursors.durable(last_seq);
                    outputs.release(&node);
                }
            }
            group = 0;
        }
        if last_stats.elapsed() >= STATS_EVERY {
            last_stats = Instant::now();
            let stats = replica.stats();
            // The replica counts what each peer still lacks from its current last sequence
            // number; the cursor clamps the ack to what was handed to the store.
            let last_seq = replica.frontier().get(me);
            for &(peer, lag) in &stats.peer_lag {
                node.cursors.ack(peer.0, last_seq.saturating_sub(lag));
            }
            *lock(&node.counters.stats) = Some(stats);
        }
    }
}

// ------------------------------------------------------------------------------------------
// Clients
// ------------------------------------------------------------------------------------------

async fn accept_clients(listener: TcpListener, node: Arc<Node>) {
    loop {
        let (mut stream, addr) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Typically EMFILE: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let c = &node.counters;
        if c.connections_open.load(Ordering::Relaxed) >= node.config.limits.connections_max {
            c.connections_refused.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    stream.write_all(b"-ERR max number of clients reached\r\n"),
                )
                .await;
            });
            continue;
        }
        c.connections_open.fetch_add(1, Ordering::Relaxed);
        c.connections_total.fetch_add(1, Ordering::Relaxed);
        let node = node.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            debug!(%addr, "client connected");
            client(stream, &node).await;
            node.counters
                .connections_open
                .fetch_sub(1, Ordering::Relaxed);
            debug!(%addr, "client gone");
        });
    }
}

/// A reply in the connection's queue: ready, or waiting for the replica.
enum Slot {
    Ready(Resp),
    Wait(Waiter<Reply>, Pending),
}

async fn submit(node: &Node, mut req: Request) -> Result<Waiter<Reply>, Resp> {
    let c = &node.counters;
    c.requests.fetch_add(1, Ordering::Relaxed);
    let Ok(waiter) = node.waiters.register() else {
        c.busy.fetch_add(1, Ordering::Relaxed);
        return Err(Resp::Error("BUSY too many requests waiting".into()));
    };
    req.id = waiter.id();
    match node
        .inbox
        .send_timeout(Input::Request(req), SUBMIT_WAIT)
        .await
    {
        Ok(()) => Ok(waiter),
        Err(_) => {
            c.busy.fetch_add(1, Ordering::Relaxed);
            Err(Resp::Error("BUSY the replica's queue is full".into()))
        }
    }
}

/// Awaits every queued slot in order, encoding the replies into `out`; multi-step commands run
/// to completion here. Returns false if the connection must close.
async fn flush(node: &Node, session: &mut Session, slots: &mut VecDeque<Slot>, out: &mut Vec<u8>) {
    let timeout = Duration::from_millis(node.config.limits.request_timeout_ms);
    while let Some(slot) = slots.pop_front() {
        let (mut waiter, mut pending) = match slot {
            Slot::Ready(r) => {
                r.encode(out);
                continue;
            }
            Slot::Wait(w, p) => (w, p),
        };
        loop {
            let Ok(reply) = tokio::time::timeout(timeout, &mut waiter).await else {
                node.counters
                    .request_timeouts
                    .fetch_add(1, Ordering::Relaxed);
                Resp::Error(format!(
                    "TIMEOUT no reply from the replica within {} ms",
                    timeout.as_millis()
                ))
                .encode(out);
                break;
            };
            match session.reply(pending, reply) {
                Step::Submit(req, p) => match submit(node, req).await {
                    Ok(w) => {
                        waiter = w;
                        pending = p;
                    }
                    Err(r) => {
                        r.encode(out);
                        break;
                    }
                },
                Step::Reply(r) | Step::Close(r) => {
                    r.encode(out);
                    break;
                }
                Step::Nothing => break,
            }
        }
    }
}

/// `CLUSTER.LINKS [CUT <id>... | HEAL]`: see the module documentation.
fn admin_links(node: &Node, args: &[Vec<u8>]) -> Resp {
    let sub = args.first().map(|a| a.to_ascii_uppercase());
    match sub.as_deref() {
        None => Resp::Array(
            node.links
                .values()
                .map(|l| {
                    Resp::Bulk(
                        format!(
                            "{} {} {} out={} in={}",
                            l.spec.id,
                            l.spec.region,
                            if l.cut.load(Ordering::Relaxed) {
                                "cut"
                            } else {
                                "open"
                            },
                            if l.out_up.load(Ordering::Relaxed) {
                                "up"
                            } else {
                                "down"
                            },
                            l.in_up.load(Ordering::Relaxed),
                        )
                        .into_bytes(),
                    )
                })
                .collect(),
        ),
        Some(b"HEAL") => {
            for l in node.links.values() {
                l.cut.store(false, Ordering::Relaxed);
            }
            info!("links healed");
            Resp::Simple("OK")
        }
        Some(b"CUT") => {
            let mut ids = Vec::new();
            for a in &args[1..] {
                let id = std::str::from_utf8(a)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok());
                match id.and_then(|id| node.links.get(&id)) {
                    Some(l) => ids.push(l.clone()),
                    None => {
                        return Resp::err(format!(
                            "unknown peer id {:?}",
                            String::from_utf8_lossy(a)
                        ));
                    }
                }
            }
            for l in &ids {
                l.cut.store(true, Ordering::Relaxed);
            }
            info!(peers = ?ids.iter().map(|l| l.spec.id).collect::<Vec<_>>(), "links cut");
            Resp::Simple("OK")
        }
        _ => Resp::err("CLUSTER.LINKS takes no argument, CUT <id>... or HEAL"),
    }
}

async fn client(stream: TcpStream, node: &Node) {
    let (mut rd, mut wr) = stream.into_split();
    let limits = node.config.limits.resp();
    let pipeline_max = node.config.limits.pipeline_max;
    let mut session = Session::new(node.config.consistency);
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut out: Vec<u8> = Vec::new();
    let mut slots: VecDeque<Slot> = VecDeque::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        let n = match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut pos = 0;
        let mut close = false;
        loop {
            match resp::decode(&buf[pos..], &limits) {
                Ok(Some((cmd, used))) => {
                    pos += used;
                    let barrier = resp::is_barrier(&cmd);
                    if barrier {
                        flush(node, &mut session, &mut slots, &mut out).await;
                    }
                    let is_admin = cmd
                        .first()
                        .is_some_and(|n| n.eq_ignore_ascii_case(b"CLUSTER.LINKS"));
                    let step = if is_admin {
                        Step::Reply(admin_links(node, &cmd[1..]))
                    } else {
                        session.command(&cmd)
                    };
                    match step {
                        Step::Reply(r) => slots.push_back(Slot::Ready(r)),
                        Step::Submit(req, p) => match submit(node, req).await {
                            Ok(w) => slots.push_back(Slot::Wait(w, p)),
                            Err(r) => slots.push_back(Slot::Ready(r)),
                        },
                        Step::Close(r) => {
                            slots.push_back(Slot::Ready(r));
                            close = true;
                            break;
                        }
                        Step::Nothing => {}
                    }
                    if barrier || slots.len() >= pipeline_max {
                        flush(node, &mut session, &mut slots, &mut out).await;
                    }
                    // A deep pipeline is answered in parts, so the replies held stay bounded.
                    if slots.is_empty() && out.len() >= READ_CHUNK {
                        let w = tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(&out)).await;
                        if !matches!(w, Ok(Ok(()))) {
                            return;
                        }
                        out.clear();
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    node.counters.bad_input(e.kind());
                    warn!(error = %e, "malformed RESP; closing the connection");
                    slots.push_back(Slot::Ready(Resp::err(format!("Protocol error: {e}"))));
                    close = true;
                    break;
                }
            }
        }
        buf.drain(..pos);
        flush(node, &mut session, &mut slots, &mut out).await;
        if !out.is_empty() {
            let w = tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(&out)).await;
            if !matches!(w, Ok(Ok(()))) {
                return;
            }
            out.clear();
        }
        if close {
            let _ = wr.shutdown().await;
            return;
        }
    }
}

// ------------------------------------------------------------------------------------------
// Peers
// ------------------------------------------------------------------------------------------

/// The dialer and writer of one peer link: connect (with backoff), send `Hello`, then write
/// the outbox's batches until the link fails or is cut.
async fn dial(link: Arc<Link>, node: Arc<Node>) {
    let mut backoff = BACKOFF_MIN;
    let mut batch: Vec<Vec<u8>> = Vec::new();
    loop {
        if link.cut.load(Ordering::Relaxed) {
            // Discard what queued while cut: the replica re-sends it after the heal.
            batch.clear();
            while link.outbox.take_batch(WRITE_BATCH_BYTES, &mut batch) > 0 {
                batch.clear();
            }
            tokio::time::sleep(CUT_CHECK).await;
            continue;
        }
        link.dials.fetch_add(1, Ordering::Relaxed);
        let stream =
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(link.spec.addr)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    debug!(peer = link.spec.id, error = %e, "dial failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
                Err(_) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
        let _ = stream.set_nodelay(true);
        let connected = Instant::now();
        debug!(peer = link.spec.id, region = %link.spec.region, "peer link up (out)");
        link.out_up.store(true, Ordering::Relaxed);
        let why = write_link(stream, &link, &node, &mut batch).await;
        link.out_up.store(false, Ordering::Relaxed);
        if connected.elapsed() >= LINK_STABLE {
            info!(peer = link.spec.id, reason = why, "peer link down (out)");
            backoff = BACKOFF_MIN;
        } else {
            // A link that fails right after connecting (the peer refuses us: another cluster,
            // or its side of the link is cut) is retried with backoff, not in a tight loop.
            debug!(
                peer = link.spec.id,
                reason = why,
                "peer link failed early (out)"
            );
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }
}

async fn write_link(
    mut stream: TcpStream,
    link: &Link,
    node: &Node,
    batch: &mut Vec<Vec<u8>>,
) -> &'static str {
    let hello = frame::encode_hello(node.config.id, node.fingerprint);
    if !matches!(
        tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&hello)).await,
        Ok(Ok(()))
    ) {
        return "hello write failed";
    }
    let mut buf = Vec::new();
    loop {
        if link.cut.load(Ordering::Relaxed) {
            return "cut";
        }
        batch.clear();
        if link.outbox.take_batch(WRITE_BATCH_BYTES, batch) == 0 {
            // Wait for a frame, re-checking the cut switch now and then.
            let _ = tokio::time::timeout(CUT_CHECK, link.outbox.ready()).await;
            continue;
        }
        buf.clear();
        for f in batch.iter() {
            buf.extend_from_slice(f);
        }
        link.frames_out
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        match tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&buf)).await {
            Ok(Ok(())) => {}
            // The frames of a failed write are lost; go-back-N re-sends their entries.
            Ok(Err(_)) => return "write failed",
            Err(_) => return "write timed out",
        }
    }
}

async fn accept_peers(listener: TcpListener, node: Arc<Node>) {
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "peer accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let node = node.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            if let Err(why) = read_link(stream, &node).await {
                warn!(%addr, reason = %why, "peer link closed");
            }
        });
    }
}

/// Reads one frame, with a timeout.
async fn read_frame(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    max: usize,
    timeout: Duration,
) -> Result<Frame, String> {
    loop {
        match frame::decode(buf, max) {
            Ok(Some((f, used))) => {
                buf.drain(..used);
                return Ok(f);
            }
            Ok(None) => {}
            Err(e) => return Err(format!("bad frame ({}): {e}", e.kind())),
        }
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout(timeout, stream.read(&mut chunk)).await {
            Ok(Ok(0)) => return Err("closed by peer".into()),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("timed out".into()),
        }
    }
}

async fn read_link(mut stream: TcpStream, node: &Node) -> Result<(), String> {
    let max = node.config.limits.frame_bytes_max;
    let mut buf = Vec::new();
    let hello = read_frame(&mut stream, &mut buf, max, HELLO_TIMEOUT).await;
    let (sender, fingerprint) = match hello {
        Ok(Frame::Hello {
            sender,
            fingerprint,
        }) => (sender, fingerprint),
        Ok(Frame::Data { .. }) => {
            node.counters.bad_input("peer_no_hello");
            return Err("data before hello".into());
        }
        Err(e) => {
            node.counters.bad_input("peer_bad_hello");
            return Err(e);
        }
    };
    if fingerprint != node.fingerprint {
        node.counters.bad_input("peer_fingerprint");
        return Err(format!(
            "replica {sender} runs another cluster configuration (fingerprint {fingerprint:#x}, ours {:#x})",
            node.fingerprint
        ));
    }
    let Some(link) = node.links.get(&sender) else {
        node.counters.bad_input("peer_unknown");
        return Err(format!("replica {sender} is not a peer"));
    };
    if link.cut.load(Ordering::Relaxed) {
        return Err(format!("link to {sender} is cut"));
    }
    info!(peer = sender, "peer link up (in)");
    link.in_up.fetch_add(1, Ordering::Relaxed);
    let result = read_data(&mut stream, &mut buf, link, node).await;
    link.in_up.fetch_sub(1, Ordering::Relaxed);
    result
}

async fn read_data(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    link: &Link,
    node: &Node,
) -> Result<(), String> {
    let max = node.config.limits.frame_bytes_max;
    loop {
        let f = read_frame(stream, buf, max, PEER_IDLE_TIMEOUT)
            .await
            .inspect_err(|e| {
                if e.starts_with("bad frame") {
                    node.counters.bad_input("peer_bad_frame");
                }
            })?;
        if link.cut.load(Ordering::Relaxed) {
            return Err("cut".into());
        }
        let Frame::Data { stamp, payload } = f else {
            node.counters.bad_input("peer_second_hello");
            return Err("second hello".into());
        };
        let now = now_ms();
        let stamp = Stamp(stamp);
        link.lag_ms
            .store(now.saturating_sub(stamp.physical_ms()), Ordering::Relaxed);
        link.frames_in.fetch_add(1, Ordering::Relaxed);
        if node.clock.observe(stamp, now, node.max_drift_ms).is_err() {
            // The replica applies its own drift rule to the payload; here it only means the
            // lag figure of this frame is meaningless.
            node.counters.clock_drift.fetch_add(1, Ordering::Relaxed);
        }
        let input = Input::Peer {
            from: ReplicaId(link.spec.id),
            payload,
        };
        // Backpressure: a slow driver slows the peer's link down rather than growing a queue.
        if node.inbox.send(input).await.is_err() {
            return Err("node shutting down".into());
        }
    }
}

// ------------------------------------------------------------------------------------------
// Metrics
// ------------------------------------------------------------------------------------------

async fn serve_metrics(listener: TcpListener, node: Arc<Node>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let node = node.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(HTTP_TIMEOUT, async {
                let mut req = Vec::new();
                let mut chunk = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < HTTP_REQUEST_MAX {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&chunk[..n]),
                    }
                }
                let response = if req.starts_with(b"GET /metrics ") || req.starts_with(b"GET / ") {
                    let body = render_metrics(&node);
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    node.counters.bad_input("http_bad_request");
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_string()
                };
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            })
            .await;
        });
    }
}

fn render_metrics(node: &Node) -> String {
    let mut s = String::new();
    let mut m = |name: &str, help: &str, kind: &str, rows: Vec<(String, u64)>| {
        let _ = writeln!(
            s,
            "# HELP converge_{name} {help}\n# TYPE converge_{name} {kind}"
        );
        for (labels, v) in rows {
            let _ = writeln!(s, "converge_{name}{labels} {v}");
        }
    };
    let one = |v: u64| vec![(String::new(), v)];
    let c = &node.counters;
    let ld = |v: &AtomicU64| v.load(Ordering::Relaxed);
    let peer = |l: &Link| format!("{{peer=\"{}\",region=\"{}\"}}", l.spec.id, l.spec.region);
    let links: Vec<&Arc<Link>> = node.links.values().collect();
    m(
        "replication_lag_ms",
        "Milliseconds between a peer stamping its last frame and this node reading it.",
        "gauge",
        links.iter().map(|l| (peer(l), ld(&l.lag_ms))).collect(),
    );
    m(
        "replication_lag_entries",
        "Local oplog entries the peer has not acknowledged.",
        "gauge",
        links
            .iter()
            .map(|l| (peer(l), node.cursors.lag_entries(l.spec.id).unwrap_or(0)))
            .collect(),
    );
    m(
        "peer_link_up",
        "Whether the outgoing link to the peer is connected.",
        "gauge",
        links
            .iter()
            .map(|l| (peer(l), u64::from(l.out_up.load(Ordering::Relaxed))))
            .collect(),
    );
    m(
        "peer_link_cut",
        "Whether the link to the peer is cut by CLUSTER.LINKS CUT.",
        "gauge",
        links
            .iter()
            .map(|l| (peer(l), u64::from(l.cut.load(Ordering::Relaxed))))
            .collect(),
    );
    m(
        "peer_frames_total",
        "Peer frames sent and received.",
        "counter",
        links
            .iter()
            .flat_map(|l| {
                let p = format!("peer=\"{}\"", l.spec.id);
                [
                    (format!("{{{p},direction=\"out\"}}"), ld(&l.frames_out)),
                    (format!("{{{p},direction=\"in\"}}"), ld(&l.frames_in)),
                ]
            })
            .collect(),
    );
    m(
        "outbox_frames",
        "Frames queued for the peer.",
        "gauge",
        links
            .iter()
            .map(|l| (peer(l), l.outbox.stats().queued_frames as u64))
            .collect(),
    );
    m(
        "outbox_rejected_total",
        "Frames refused by a full outbox (re-sent by go-back-N).",
        "counter",
        links
            .iter()
            .map(|l| (peer(l), l.outbox.stats().rejected_full))
            .collect(),
    );
    let cur = node.cursors.snapshot();
    m(
        "oplog_appended_seq",
        "Last local oplog sequence number handed to the store.",
        "gauge",
        one(cur.appended),
    );
    m(
        "oplog_durable_seq",
        "Last local oplog sequence number committed.",
        "gauge",
        one(cur.durable),
    );
    m(
        "group_commits_total",
        "Store commits (one per batch of inputs).",
        "counter",
        one(ld(&c.group_commits)),
    );
    m(
        "group_commit_inputs_total",
        "Inputs covered by those commits.",
        "counter",
        one(ld(&c.group_commit_inputs)),
    );
    m(
        "group_commit_seconds_total",
        "Time spent in commits (microsecond resolution).",
        "counter",
        vec![],
    );
    let _ = writeln!(
        s,
        "converge_group_commit_seconds_total {}",
        ld(&c.commit_micros) as f64 / 1e6
    );
    let mut m = |name: &str, help: &str, kind: &str, rows: Vec<(String, u64)>| {
        let _ = writeln!(
            s,
            "# HELP converge_{name} {help}\n# TYPE converge_{name} {kind}"
        );
        for (labels, v) in rows {
            let _ = writeln!(s, "converge_{name}{labels} {v}");
        }
    };
    let one = |v: u64| vec![(String::new(), v)];
    m(
        "connections",
        "Client connections open now.",
        "gauge",
        one(c.connections_open.load(Ordering::Relaxed) as u64),
    );
    m(
        "connections_total",
        "Client connections accepted (and refused over the limit).",
        "counter",
        vec![
            ("{result=\"accepted\"}".into(), ld(&c.connections_total)),
            ("{result=\"refused\"}".into(), ld(&c.connections_refused)),
        ],
    );
    m(
        "requests_total",
        "Requests submitted to the replica.",
        "counter",
        one(ld(&c.requests)),
    );
    m(
        "request_timeouts_total",
        "Requests answered -TIMEOUT by the shell.",
        "counter",
        one(ld(&c.request_timeouts)),
    );
    m(
        "busy_total",
        "Requests refused -BUSY (waiters or queue full).",
        "counter",
        one(ld(&c.busy)),
    );
    m(
        "waiters",
        "Requests waiting for the replica now.",
        "gauge",
        one(node.waiters.len() as u64),
    );
    m(
        "transmits_dropped_total",
        "Replica messages dropped (full outbox or cut link).",
        "counter",
        one(ld(&c.transmits_dropped)),
    );
    m(
        "clock_drift_total",
        "Peer frames stamped beyond the drift bound.",
        "counter",
        one(ld(&c.clock_drift)),
    );
    m(
        "bad_inputs_total",
        "Malformed inputs by kind (RESP, peer frames, HTTP).",
        "counter",
        lock(&c.bad_inputs)
            .iter()
            .map(|(k, v)| (format!("{{kind=\"{k}\"}}"), *v))
            .collect(),
    );
    if let Some(st) = lock(&c.stats).clone() {
        let k = &st.counters;
        m(
            "oplog_entries",
            "Entries retained in the oplog.",
            "gauge",
            one(st.oplog_len as u64),
        );
        m(
            "keys",
            "Keys in the keyspace.",
            "gauge",
            one(st.keys as u64),
        );
        m(
            "pending",
            "Requests waiting for a quorum or a session token.",
            "gauge",
            one(st.pending as u64),
        );
        m(
            "batches_sent_total",
            "Replication batches sent, and how many compressed.",
            "counter",
            vec![
                ("{compressed=\"any\"}".into(), k.batches_sent),
                ("{compressed=\"yes\"}".into(), k.batches_compressed),
            ],
        );
        m(
            "batch_bytes_total",
            "Batch bytes before compression (raw) and as sent (wire).",
            "counter",
            vec![
                ("{encoding=\"raw\"}".into(), k.bytes_raw),
                ("{encoding=\"wire\"}".into(), k.bytes_sent),
            ],
        );
        m(
            "acks_sent_total",
            "Replication acks sent: all of them, and those that rode on a batch.",
            "counter",
            vec![
                ("{carried=\"any\"}".into(), k.acks_sent),
                ("{carried=\"batch\"}".into(), k.acks_piggybacked),
            ],
        );
        m(
            "entries_applied_total",
            "Remote entries applied.",
            "counter",
            one(k.entries_applied),
        );
        m(
            "retransmits_total",
            "Go-back-N retransmissions.",
            "counter",
            one(k.retransmits),
        );
        m(
            "anti_entropy_rounds_total",
            "Anti-entropy rounds by outcome.",
            "counter",
            vec![
                ("{outcome=\"started\"}".into(), k.ae_rounds),
                ("{outcome=\"completed\"}".into(), k.ae_rounds_completed),
                ("{outcome=\"abandoned\"}".into(), k.ae_rounds_abandoned),
            ],
        );
        m(
            "anti_entropy_repairs_total",
            "Keys whose state anti-entropy changed.",
            "counter",
            one(k.ae_keys_repaired),
        );
        m(
            "session_waits_total",
            "Requests that waited for their session token.",
            "counter",
            one(k.session_waits),
        );
        m(
            "session_timeouts_total",
            "Requests that gave up waiting for their session token.",
            "counter",
            one(k.session_timeouts),
        );
        m(
            "quorum_total",
            "Quorum operations by outcome.",
            "counter",
            vec![
                ("{outcome=\"ok\"}".into(), k.quorum_ok),
                ("{outcome=\"timeout\"}".into(), k.quorum_timeouts),
            ],
        );
        m(
            "replica_bad_messages_total",
            "Peer payloads the replica refused.",
            "counter",
            vec![
                ("{reason=\"decode\"}".into(), k.decode_errors),
                ("{reason=\"invalid\"}".into(), k.invalid_messages),
            ],
        );
    }
    s
}
