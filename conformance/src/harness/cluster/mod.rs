//! The cluster backend: a deployed system's own processes on their own TCP, certified with the
//! same workloads, network scheduler and checkers as every other backend
//! (`converge certify --cluster FILE.toml`).
//!
//! - **Processes** come from the spec's command templates ([`spec`]), each in a process group
//!   and cgroup of its own ([`super::containment`]), with a data directory kept across kill and
//!   restart; the nemesis kills (SIGKILL to the whole tree), pauses and resumes them.
//! - **The network between them** is the harness's: every proxied port of every node is reached
//!   by each other node through a proxy of its own link ([`proxy`]), whose bytes travel as peer
//!   payloads through the harness's seeded network — partitions, latency and loss apply to TCP,
//!   and the history sees every chunk cross.
//! - **Clients** are the harness's: the built-in RESP client ([`resp`], [`mapping`]), one
//!   connection per client and node on a worker thread of its own, or an *adapter* per node, a
//!   program speaking the harness's client messages as JSON lines (docs/certify.md). The
//!   backend answers `init` itself for RESP subjects, once the node answers on its client port.
//!
//! Invariants: the harness thread never blocks on a node (workers and proxies own every socket,
//! behind bounded queues); every request gets one reply or none (then the loop's timeout makes
//! it indefinite); a request that never left the harness fails definitely, one whose reply was
//! lost is indefinite; [`Backend::shutdown`] kills and reaps every process, closes every proxy
//! and listener, and ends every worker after its current request.

pub mod mapping;
pub mod proxy;
pub mod resp;
pub mod spec;

use super::backend::{Backend, BackendError, NodeEvent};
use super::body::{Body, Kind};
use super::containment::{Contained, Containment};
use super::message::Message;
use super::process::{FakeClocks, ProcessBackend, ProcessConfig};
use mapping::{Mapping, Plan};
use proxy::Proxies;
use resp::{Connection, Reply, RespError};
use spec::{ClusterSpec, Dialect, Ports, Protocol};
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Events buffered between proxies, workers and the harness before their threads block.
const EVENTS_MAX: usize = 65_536;
/// Requests queued for one client's worker (a client has one outstanding; this is slack).
const WORKER_QUEUE: usize = 16;
/// How often a starting node's client port is probed.
const PROBE_EVERY: Duration = Duration::from_millis(50);
/// Longest wait for a killed process to be reaped.
const REAP_WAIT: Duration = Duration::from_secs(5);

/// How to run a cluster.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// The spec.
    pub spec: ClusterSpec,
    /// The workload (the RESP client maps its requests).
    pub workload: String,
    /// Node logs (`n0.log`, …) and data (`data/n0`, …).
    pub log_dir: PathBuf,
    /// What `{converge}` expands to.
    pub converge: PathBuf,
    /// A request's deadline (the loop's `request_timeout_ms`): the client gives up then.
    pub request_timeout_ms: u64,
    /// The other build for the rolling-upgrade nemesis: it replaces the program (the first
    /// word) of an upgraded node's command. The spec's `upgrade_command` is the other way.
    pub upgrade_bin: Option<PathBuf>,
    /// libfaketime, for the clock nemesis: every node process starts with it preloaded (as in
    /// the process backend). `None`: node clocks cannot be moved.
    pub faketime: Option<PathBuf>,
}

/// A running node process.
struct Running {
    contained: Contained,
    waiter: JoinHandle<()>,
    pid: u32,
}

/// A chunk waiting to be sent again.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Retransmit {
    due_ms: u64,
    /// Ties broken in the order the chunks were lost, so one link's retransmissions keep
    /// their order.
    order: u64,
    from: usize,
    to: usize,
    payload: Vec<u8>,
}

/// Most chunks waiting for retransmission at once.
const RETRANSMITS_MAX: usize = 65_536;

/// A request for a client worker.
struct Job {
    message: Message,
    plan: Plan,
    addr: SocketAddr,
}

/// The cluster backend.
pub struct ClusterBackend {
    config: ClusterConfig,
    started: Instant,
    ports: Ports,
    proxies: Proxies,
    containment: Containment,
    running: Vec<Option<Running>>,
    incarnations: Vec<u64>,
    /// The clock nemesis's clocks, with libfaketime.
    clocks: Option<FakeClocks>,
    /// Nodes the rolling-upgrade nemesis switched to the other build.
    upgraded: Vec<bool>,
    mapping: Option<Mapping>,
    adapters: Option<ProcessBackend>,
    adapter_started: Vec<bool>,
    workers: BTreeMap<(String, usize), SyncSender<Job>>,
    /// Chunks the network dropped, to be sent again when due (TCP's retransmission).
    retransmits: std::collections::BinaryHeap<std::cmp::Reverse<Retransmit>>,
    retransmit_order: u64,
    events_tx: SyncSender<NodeEvent>,
    events_rx: Receiver<NodeEvent>,
    /// Set at shutdown: readiness probes still waiting give up at once.
    stopping: Arc<AtomicBool>,
}

/// Why a cluster cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The workload has no RESP mapping, or the spec and the run disagree.
    #[error("{0}")]
    Unusable(String),
    /// Ports or proxies could not be opened.
    #[error("cannot set up the cluster's network: {0}")]
    Io(#[from] std::io::Error),
}

impl ClusterBackend {
    /// Allocates every node's ports and opens every link's proxy; starts nothing.
    pub fn new(config: ClusterConfig) -> Result<ClusterBackend, ClusterError> {
        let spec = &config.spec;
        let mapping = match spec.client.protocol {
            Protocol::Resp => Some(
                Mapping::new(&config.workload, spec.dialect()).map_err(ClusterError::Unusable)?,
            ),
            Protocol::Adapter => None,
        };
        let (events_tx, events_rx) = sync_channel(EVENTS_MAX);
        let mut ports = Ports::default();
        // Node ports are held bound until every proxy is, so no proxy takes one; they are picked
        // below the kernel's ephemeral range, so no outgoing connection of the run (a client's,
        // a proxy's, a node's) can sit on one when its node starts or restarts.
        let mut held = Vec::new();
        for n in 0..spec.nodes {
            for name in &spec.node.ports {
                let listener = free_port()?;
                ports.set_port(n, name, listener.local_addr()?.port());
                held.push(listener);
            }
        }
        let mut proxies = Proxies::new(events_tx.clone());
        for from in 0..spec.nodes {
            for to in (0..spec.nodes).filter(|&t| t != from) {
                for name in &spec.node.proxied {
                    let target = SocketAddr::from(([127, 0, 0, 1], ports.port(to, name)));
                    let port = proxies.listen(from, to, target)?;
                    ports.set_proxy(from, to, name, port);
                }
            }
        }
        drop(held);
        // Which port is which, for whoever reads the logs (and for the tests that check every
        // port is closed after a run).
        std::fs::create_dir_all(&config.log_dir)?;
        std::fs::write(
            config.log_dir.join("ports.json"),
            serde_json::to_string_pretty(&ports.to_json()).unwrap_or_default(),
        )?;
        let nodes = spec.nodes;
        Ok(ClusterBackend {
            started: Instant::now(),
            ports,
            proxies,
            containment: Containment::new(),
            running: (0..nodes).map(|_| None).collect(),
            incarnations: vec![0; nodes],
            upgraded: vec![false; nodes],
            clocks: config
                .faketime
                .clone()
                .map(|lib| FakeClocks::new(lib, &config.log_dir, nodes)),
            mapping,
            adapters: None,
            adapter_started: vec![false; nodes],
            workers: BTreeMap::new(),
            retransmits: std::collections::BinaryHeap::new(),
            retransmit_order: 0,
            events_tx,
            events_rx,
            stopping: Arc::new(AtomicBool::new(false)),
            config,
        })
    }

    fn data_dir(&self, node: usize) -> PathBuf {
        let dir = self.config.log_dir.join("data").join(format!("n{node}"));
        std::path::absolute(&dir).unwrap_or(dir)
    }

    fn vars(&self, node: usize) -> BTreeMap<String, String> {
        self.config.spec.vars(
            node,
            &self.ports,
            &self.data_dir(node),
            &std::path::absolute(&self.config.log_dir).unwrap_or(self.config.log_dir.clone()),
            &self.config.converge.display().to_string(),
        )
    }

    fn client_addr(&self, node: usize) -> SocketAddr {
        let port = self.ports.port(node, self.config.spec.client_port());
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn stop(&mut self, node: usize) {
        if let Some(mut r) = self.running[node].take() {
            r.contained.stop();
            // The waiter reaps the node's own process; the rest of its tree is reaped here.
            let deadline = Instant::now() + REAP_WAIT;
            while !r.waiter.is_finished() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(2));
            }
            if r.waiter.is_finished() {
                let _ = r.waiter.join();
            }
            r.contained.reap();
            if self.clocks.is_some() {
                FakeClocks::forget(r.pid);
            }
        }
    }

    /// Starts node `node`'s adapter if it is not running (adapters outlive their node's kills).
    fn ensure_adapter(&mut self, node: usize) -> Result<(), BackendError> {
        let Some(template) = self.config.spec.client.adapter.clone() else {
            return Ok(());
        };
        if self.adapter_started[node] {
            return Ok(());
        }
        let vars = self.vars(node);
        let args = self
            .config
            .spec
            .expand_command(&template, &vars, &self.ports)
            .map_err(|e| spawn_error(node, &template[0], e))?;
        let nodes = self.config.spec.nodes;
        let log_dir = self.config.log_dir.join("adapters");
        let adapters = self.adapters.get_or_insert_with(|| {
            ProcessBackend::new(
                ProcessConfig {
                    program: PathBuf::new(),
                    args: Vec::new(),
                    log_dir: log_dir.clone(),
                    faketime: None,
                },
                nodes,
            )
        });
        adapters.set_command(node, PathBuf::from(&args[0]), args[1..].to_vec());
        adapters.start(node)?;
        self.adapter_started[node] = true;
        Ok(())
    }

    /// Answers `message` from node `node` directly (the backend's own replies: `init_ok`,
    /// `topology_ok`, refusals).
    fn answer(&self, node: usize, request: &Message, mut body: Body) {
        body.in_reply_to = request.body.msg_id;
        let reply = Message::new(format!("n{node}"), request.src.clone(), body);
        // Never block the harness on its own channel: a full channel loses the reply, and the
        // request times out as indefinite.
        let _ = self.events_tx.try_send(NodeEvent::Message {
            node,
            message: reply,
        });
    }

    fn probe_ready(&self, node: usize, request: &Message) {
        let addr = self.client_addr(node);
        let deadline = Instant::now() + Duration::from_millis(self.config.spec.ready_timeout_ms());
        let probe = match self.config.spec.dialect() {
            // A read goes through the replica, which answers -LOADING until the node may serve.
            Dialect::Converge => resp::command(["GET", "converge:ready-probe"]),
            Dialect::Redis => resp::command(["PING"]),
        };
        let events = self.events_tx.clone();
        let stopping = Arc::clone(&self.stopping);
        let mut body = Body::new(Kind::InitOk);
        body.in_reply_to = request.body.msg_id;
        let reply = Message::new(format!("n{node}"), request.src.clone(), body);
        let _ = thread::Builder::new()
            .name(format!("probe-n{node}"))
            .spawn(move || {
                while Instant::now() < deadline && !stopping.load(Ordering::Relaxed) {
                    let answered = Connection::connect(addr, Duration::from_millis(200))
                        .ok()
                        .and_then(|mut c| {
                            c.pipeline(
                                std::slice::from_ref(&probe),
                                Instant::now() + Duration::from_millis(500),
                            )
                            .ok()
                        });
                    if let Some(replies) = answered
                        && replies.iter().all(|r| r.error_word().is_none())
                    {
                        let _ = events.send(NodeEvent::Message {
                            node,
                            message: reply,
                        });
                        return;
                    }
                    thread::sleep(PROBE_EVERY);
                }
            });
    }

    fn dispatch(&mut self, node: usize, message: &Message) {
        let Some(mapping) = &self.mapping else { return };
        let plan = match mapping.plan(&message.body) {
            Ok(plan) => plan,
            Err(why) => {
                return self.answer(
                    node,
                    message,
                    Body::new(Kind::Error {
                        code: 10,
                        text: Some(format!("not supported by the RESP client: {}", why.0)),
                    }),
                );
            }
        };
        let target = match self.config.spec.client.writes_to {
            Some(primary) if plan.update => primary,
            _ => node,
        };
        let addr = self.client_addr(target);
        let key = (message.src.clone(), target);
        let worker = match self.workers.get(&key) {
            Some(w) => w.clone(),
            None => {
                let w = spawn_worker(
                    node,
                    mapping.clone(),
                    self.events_tx.clone(),
                    Duration::from_millis(self.config.request_timeout_ms),
                );
                self.workers.insert(key, w.clone());
                w
            }
        };
        let job = Job {
            message: message.clone(),
            plan,
            addr,
        };
        if let Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) = worker.try_send(job)
        {
            self.answer(
                node,
                &job.message,
                Body::new(Kind::Error {
                    code: 11,
                    text: Some("the client's queue is full".into()),
                }),
            );
        }
    }
}

/// Where node ports are looked for: below Linux's default ephemeral range (32768–60999), above
/// the well-known and most registered ports.
const NODE_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A free loopback port in [`NODE_PORTS`], bound (so it stays free until dropped). Probing
/// starts at a place drawn from the process id and the clock, so concurrent runs spread out.
fn free_port() -> std::io::Result<TcpListener> {
    let span = u32::from(NODE_PORTS.end - NODE_PORTS.start);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let start = (std::process::id().wrapping_mul(7919) ^ nanos) % span;
    for i in 0..span {
        let port = NODE_PORTS.start + ((start + i) % span) as u16;
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            return Ok(l);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        format!("no free loopback port in {NODE_PORTS:?}"),
    ))
}

fn spawn_error(node: usize, program: &str, e: impl ToString) -> BackendError {
    BackendError::Spawn {
        node,
        program: program.to_string(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// A client's connection to one node, on a thread of its own: requests in order, one at a time.
fn spawn_worker(
    node: usize,
    mapping: Mapping,
    events: SyncSender<NodeEvent>,
    timeout: Duration,
) -> SyncSender<Job> {
    let (tx, rx) = sync_channel::<Job>(WORKER_QUEUE);
    let _ = thread::Builder::new()
        .name(format!("client-n{node}"))
        .spawn(move || {
            let mut conn: Option<(SocketAddr, Connection)> = None;
            for job in rx {
                let deadline = Instant::now() + timeout;
                let body = run_job(&mapping, &job, &mut conn, deadline);
                let Some(mut body) = body else { continue };
                body.in_reply_to = job.message.body.msg_id;
                let reply = Message::new(format!("n{node}"), job.message.src.clone(), body);
                if events
                    .send(NodeEvent::Message {
                        node,
                        message: reply,
                    })
                    .is_err()
                {
                    return;
                }
            }
        });
    tx
}

/// Runs one request; `None` when no reply may be given (the deadline passed with the outcome
/// unknown: the loop's own timeout then records it as indefinite).
fn run_job(
    mapping: &Mapping,
    job: &Job,
    conn: &mut Option<(SocketAddr, Connection)>,
    deadline: Instant,
) -> Option<Body> {
    let error = |code: u64, text: String| {
        Some(Body::new(Kind::Error {
            code,
            text: Some(text),
        }))
    };
    if conn
        .as_ref()
        .is_none_or(|(a, c)| *a != job.addr || !c.alive())
    {
        *conn = None;
        let left = deadline.saturating_duration_since(Instant::now());
        match Connection::connect(job.addr, left.min(Duration::from_secs(1))) {
            Ok(c) => *conn = Some((job.addr, c)),
            // Nothing was sent: the request certainly did not run.
            Err(e) => return error(11, format!("cannot connect to {}: {e}", job.addr)),
        }
    }
    let (_, c) = conn.as_mut()?;
    let mut stages = Vec::with_capacity(job.plan.stages.len());
    for (i, stage) in job.plan.stages.iter().enumerate() {
        match c.pipeline(stage, deadline) {
            Ok(replies) => {
                let failed = replies.iter().any(|r: &Reply| r.error_word().is_some());
                stages.push(replies);
                if failed {
                    break;
                }
            }
            Err(e) => {
                *conn = None;
                return match e {
                    // The first stage never left: nothing ran.
                    RespError::NotSent(e) if i == 0 => error(11, format!("not sent: {e}")),
                    RespError::Protocol(p) => error(13, format!("protocol error: {p}")),
                    // Sent, and no reply by the deadline or the connection broke: unknown.
                    other => error(0, format!("{other}")),
                };
            }
        }
    }
    Some(mapping.reply(&job.plan, &stages))
}

impl Backend for ClusterBackend {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn start(&mut self, node: usize) -> Result<(), BackendError> {
        self.stop(node);
        let spec = &self.config.spec;
        let upgraded = self.upgraded[node];
        let template = match (&spec.node.upgrade_command, upgraded) {
            (Some(upgrade), true) => Some(upgrade.clone()),
            _ => spec.command(node).cloned(),
        }
        .ok_or_else(|| spawn_error(node, "?", "no command"))?;
        let mut args = spec
            .expand_command(&template, &self.vars(node), &self.ports)
            .map_err(|e| spawn_error(node, &template[0], e))?;
        if upgraded
            && spec.node.upgrade_command.is_none()
            && let Some(bin) = &self.config.upgrade_bin
        {
            args[0] = bin.display().to_string();
        }
        let io = |e: std::io::Error| BackendError::Spawn {
            node,
            program: args[0].clone(),
            source: e,
        };
        std::fs::create_dir_all(self.data_dir(node)).map_err(io)?;
        std::fs::create_dir_all(&self.config.log_dir).map_err(io)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.config.log_dir.join(format!("n{node}.log")))
            .map_err(io)?;
        let err_log = log.try_clone().map_err(io)?;
        let mut contained = self.containment.prepare(node, self.incarnations[node]);
        let (tag_var, tag) = contained.env();
        let mut command = Command::new(&args[0]);
        command
            .args(&args[1..])
            .env(tag_var, tag)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err_log));
        if let Some(clocks) = &self.clocks {
            clocks.prepare(node, &mut command).map_err(io)?;
        }
        let mut child = command.spawn().map_err(io)?;
        let pid = child.id();
        contained.started(pid);
        let incarnation = self.incarnations[node];
        self.incarnations[node] += 1;
        let events = self.events_tx.clone();
        let waiter = thread::Builder::new()
            .name(format!("wait-n{node}"))
            .spawn(move || {
                let status = match child.wait() {
                    Ok(s) => s.to_string(),
                    Err(e) => format!("cannot wait for it: {e}"),
                };
                let _ = events.send(NodeEvent::Exited {
                    node,
                    incarnation,
                    status,
                });
            })
            .map_err(io)?;
        self.running[node] = Some(Running {
            contained,
            waiter,
            pid,
        });
        self.ensure_adapter(node)
    }

    fn send(&mut self, node: usize, line: &str) -> Result<(), BackendError> {
        match Message::parse(line) {
            Ok(m) => self.send_message(node, &m),
            Err(_) => Ok(()),
        }
    }

    fn send_message(&mut self, node: usize, message: &Message) -> Result<(), BackendError> {
        if let Some(adapters) = self.adapters.as_mut() {
            return adapters.send_message(node, message);
        }
        match &message.body.kind {
            Kind::Init { .. } => self.probe_ready(node, message),
            // RESP subjects need no topology: the harness's own relay is the network.
            Kind::Topology { .. } => self.answer(node, message, Body::new(Kind::TopologyOk)),
            _ => self.dispatch(node, message),
        }
        Ok(())
    }

    fn deliver_peer(
        &mut self,
        node: usize,
        _from: usize,
        payload: Vec<u8>,
    ) -> Result<(), BackendError> {
        self.proxies.deliver(node, &payload);
        Ok(())
    }

    fn peer_dropped(&mut self, node: usize, to: usize, payload: Vec<u8>) {
        if let Some((delay_ms, again)) = self.proxies.dropped(payload) {
            if self.retransmits.len() >= RETRANSMITS_MAX {
                // Beyond the bound the chunk is lost for good; its connection then stalls
                // until a later chunk's gap resets it, which is what a saturated path does.
                return;
            }
            self.retransmit_order += 1;
            self.retransmits.push(std::cmp::Reverse(Retransmit {
                due_ms: self.now_ms() + delay_ms,
                order: self.retransmit_order,
                from: node,
                to,
                payload: again,
            }));
        }
    }

    fn wait(&mut self, deadline_ms: u64, max_wait: Duration) -> Vec<NodeEvent> {
        let mut out = Vec::new();
        self.wait_into(deadline_ms, max_wait, &mut out);
        out
    }

    fn wait_into(&mut self, deadline_ms: u64, max_wait: Duration, out: &mut Vec<NodeEvent>) {
        let before = out.len();
        // Retransmissions that are due leave now, as the sender's kernel would send them.
        let now = self.now_ms();
        while self
            .retransmits
            .peek()
            .is_some_and(|std::cmp::Reverse(r)| r.due_ms <= now)
        {
            if let Some(std::cmp::Reverse(r)) = self.retransmits.pop() {
                out.push(NodeEvent::Peer {
                    node: r.from,
                    to: r.to,
                    payload: r.payload,
                });
            }
        }
        let next_retransmit = self
            .retransmits
            .peek()
            .map_or(u64::MAX, |std::cmp::Reverse(r)| r.due_ms);
        let deadline_ms = deadline_ms.min(next_retransmit);
        if let Some(adapters) = self.adapters.as_mut() {
            let now = adapters.now_ms();
            for event in adapters.wait(now, Duration::ZERO) {
                out.push(match event {
                    // An adapter that ends is its node's crash, whichever start of the node is
                    // running.
                    NodeEvent::Exited { node, status, .. } => NodeEvent::Exited {
                        node,
                        incarnation: self.incarnations[node].saturating_sub(1),
                        status: format!("its adapter exited: {status}"),
                    },
                    other => other,
                });
            }
        }
        let now = self.now_ms();
        let mut timeout = Duration::from_millis(deadline_ms.saturating_sub(now)).min(max_wait);
        if self.adapters.is_some() {
            // Adapters' lines arrive on their own channel: look at it again soon.
            timeout = timeout.min(Duration::from_millis(2));
        }
        if out.len() == before {
            match self.events_rx.recv_timeout(timeout) {
                Ok(event) => out.push(event),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return,
            }
        }
        while out.len() - before < 1024 {
            match self.events_rx.try_recv() {
                Ok(event) => out.push(event),
                Err(_) => break,
            }
        }
    }

    fn kill(&mut self, node: usize) {
        self.stop(node);
    }

    fn pause(&mut self, node: usize) {
        if let Some(r) = &self.running[node] {
            r.contained.signal_group(nix::sys::signal::Signal::SIGSTOP);
        }
    }

    fn resume(&mut self, node: usize) {
        if let Some(r) = &self.running[node] {
            r.contained.signal_group(nix::sys::signal::Signal::SIGCONT);
        }
    }

    fn supports_clock_offset(&self) -> bool {
        self.clocks.is_some()
    }

    fn set_clock_offset(&mut self, node: usize, offset_ms: i64) -> Result<(), BackendError> {
        FakeClocks::set_on(self.clocks.as_mut(), node, offset_ms)
    }

    fn supports_upgrade(&self) -> bool {
        self.config.upgrade_bin.is_some() || self.config.spec.node.upgrade_command.is_some()
    }

    fn upgrade(&mut self, node: usize) -> Result<(), BackendError> {
        if !self.supports_upgrade() {
            return Err(BackendError::Unsupported {
                node,
                what: "an upgrade (no --upgrade-bin or upgrade_command)",
            });
        }
        self.upgraded[node] = true;
        Ok(())
    }

    fn shutdown(&mut self) {
        self.stopping.store(true, Ordering::Relaxed);
        for node in 0..self.running.len() {
            self.stop(node);
        }
        if let Some(adapters) = self.adapters.as_mut() {
            adapters.shutdown();
        }
        self.proxies.shutdown();
        // Workers end when their queue closes, after the request in hand (bounded by its
        // deadline).
        self.workers.clear();
    }
}

impl Drop for ClusterBackend {
    fn drop(&mut self) {
        self.shutdown();
    }
}
