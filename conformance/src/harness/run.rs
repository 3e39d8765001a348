//! The harness loop: init, workload under faults, heal, quiescence, final reads, checks.
//!
//! Invariants: every wait is bounded by a deadline; every client has at most one request in
//! flight; every request ends in the history as ok, fail or info (never silently dropped); all
//! randomness comes from streams forked from the one seed.

pub use super::config::{RunConfig, stability_window_ms};
pub use super::report::{
    Availability, FaultSpan, Latency, Problem, RunReport, Settle, merge_order_independence,
};

use super::backend::{Backend, BackendError, NodeEvent};
use super::cadence::Cadence;
use super::check::Check;
use super::history::{Body, Delivery, Event, FaultWindow, History, Outcome, Phase};
use super::message::{Message, error_is_definite};
use super::nemesis::{ClockNemesis, Fault, clock_plan, faulty_network, partition};
use super::net::{NetConfig, NetStats, Network};
use super::rng::Dice;
use super::services::Services;
use super::workload::{Profile, Workload};
use serde_json::{Map, Value, json};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Longest single wait on the backend, so timers and progress stay responsive.
const WAIT_SLICE: Duration = Duration::from_millis(20);
/// Messages in flight inside the harness before it stops accepting more from nodes: a bound on
/// memory, far above what a correct node produces.
const IN_FLIGHT_MAX: usize = 1_000_000;

/// What the loop is doing, for progress displays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Waiting for `init_ok`.
    Init,
    /// The workload: `done` operations finished, `elapsed_ms` of the main phase's `total_ms`.
    Main {
        /// Finished operations.
        done: u64,
        /// Time spent in the main phase.
        elapsed_ms: u64,
        /// The main phase's length.
        total_ms: u64,
    },
    /// Healed; letting the cluster go quiet.
    Settle,
    /// Reading final states until every node agrees and stays equal.
    Final,
}

/// What a message copy in flight carries: the line a process node wrote, a parsed message (a
/// service's reply, or an in-process node's message), or an in-process node's opaque payload.
#[derive(Debug)]
enum Cargo {
    Line(String),
    // Boxed: the in-flight heap moves its elements on every push and pop, and the common cargo
    // (an in-process node's payload) is a third of a message's size.
    Message(Box<Message>),
    Peer(Vec<u8>),
}

/// A message copy in flight. Ordered by arrival, then by the order the harness scheduled it
/// (`order` is unique), so the cargo itself is never compared.
#[derive(Debug)]
struct InFlight {
    at: u64,
    order: u64,
    to: usize,
    cargo: Cargo,
    from: usize,
    sent_seq: u64,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}

impl Eq for InFlight {}

impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

/// A kill the nemesis drew, waiting for its moment (see [`kill_aim_ms`]).
#[derive(Clone, Copy, Debug)]
struct ArmedKill {
    node: usize,
    /// When it is dealt even if the node acknowledged no update.
    by_ms: u64,
}

/// How long a drawn kill waits for its node to acknowledge an update: a tenth of the fault
/// window, at most one second, so the node stays down for most of the window whatever happens.
pub fn kill_aim_ms(fault_window_ms: u64) -> u64 {
    (fault_window_ms / 10).min(1_000)
}

#[derive(Clone, Copy, Debug)]
enum Pending {
    Init(usize),
    Setup(usize),
    Op { client: usize, event: usize },
    Final { event: usize },
}

/// What the loop knows of one node's process. A node's state lives in one place, so that
/// starting, killing, pausing and losing a node each update one record.
#[derive(Clone, Copy, Debug, Default)]
struct NodeState {
    /// Times the node was started; its current incarnation is `starts - 1`, so an exit of an
    /// earlier one is expected and ignored.
    starts: u64,
    /// Whether it has answered an `init`. Only the start of the run waits for this; a restarted
    /// node is not waited for again.
    inited: bool,
    /// Killed by the nemesis and not yet restarted: messages to it are dropped and its exit is
    /// no crash.
    killed: bool,
    /// Paused by the nemesis and not yet resumed.
    paused: bool,
    /// Its process ended or stopped reading on its own (a crash, reported once), until it is
    /// started again.
    dead: bool,
}

struct Loop<'a> {
    config: &'a RunConfig,
    backend: &'a mut dyn Backend,
    workload: &'a mut dyn Workload,
    ids: Vec<String>,
    /// `c0…`, built once rather than per request.
    client_names: Vec<String>,
    net: Network,
    op_dice: Dice,
    fault_dice: Dice,
    next_msg_id: u64,
    pending: BTreeMap<u64, (Pending, u64)>,
    deliveries: BinaryHeap<Reverse<InFlight>>,
    /// The harness's total order of observations.
    seq: u64,
    delivery_seq: u64,
    history: History,
    client_busy: Vec<bool>,
    /// Per node, indexed like `ids`.
    nodes: Vec<NodeState>,
    issued: u64,
    finished: u64,
    faulty: bool,
    partitioned: bool,
    faults_applied: Vec<String>,
    /// A kill drawn but not yet dealt: it waits for its node to acknowledge an update.
    armed_kill: Option<ArmedKill>,
    /// The clock nemesis: which clocks are moved, and when a strobing one flips next.
    clock: ClockNemesis,
    problems: Vec<Problem>,
    malformed: BTreeMap<usize, (u64, String)>,
    services: Services,
    service_dice: Dice,
    main_net_stats: NetStats,
    /// The buffer [`Backend::wait_into`] fills each turn, kept so turns do not allocate.
    events: Vec<NodeEvent>,
    /// Node-to-node send times, reduced to each link's rhythm.
    cadence: Cadence,
    /// When the harness last carried a node-to-node or service message.
    last_traffic_ms: u64,
    /// With a rate: when each client may issue its next request.
    next_issue: Vec<u64>,
    /// Jitter of the clients' pacing: its own stream, so that pacing never shifts the operations.
    pace_dice: Dice,
    /// Main-phase operations that failed definitely (they do not count against `ops`).
    definite_fails: u64,
    /// Fault windows with their times, in ms of the backend's clock.
    fault_spans: Vec<FaultSpan>,
    /// When the main phase began, on the backend's clock.
    main_start_ms: u64,
    /// When it ended.
    main_end_ms: u64,
    /// Values that changed after every node had agreed, with no write to explain the change.
    unstable: Vec<String>,
    settle: Settle,
    stability_window_ms: u64,
}

/// Runs `workload` against the nodes of `backend`.
pub fn run(
    workload: &mut dyn Workload,
    backend: &mut dyn Backend,
    config: &RunConfig,
    progress: &mut dyn FnMut(Stage),
) -> RunReport {
    // Operations depend on the seed alone; everything the harness decides about delivery and
    // faults also depends on the schedule.
    let salt = |stream: u64| stream + 16 * config.schedule;
    let mut fault_dice = Dice::fork(config.seed, salt(3));
    let network_config = with_latency(
        faulty_network(&config.faults, &mut fault_dice),
        config.latency_ms,
    );
    let mut lp = Loop {
        config,
        ids: (0..config.nodes).map(|i| format!("n{i}")).collect(),
        client_names: (0..config.clients).map(|i| format!("c{i}")).collect(),
        net: Network::new(NetConfig::default(), Dice::fork(config.seed, salt(1))),
        op_dice: Dice::fork(config.seed, 2),
        fault_dice,
        backend,
        workload,
        next_msg_id: 1,
        pending: BTreeMap::new(),
        deliveries: BinaryHeap::new(),
        seq: 0,
        delivery_seq: 0,
        history: History::default(),
        client_busy: vec![false; config.clients],
        nodes: vec![NodeState::default(); config.nodes],
        issued: 0,
        finished: 0,
        faulty: false,
        partitioned: false,
        faults_applied: Vec::new(),
        armed_kill: None,
        clock: ClockNemesis::new(config.nodes),
        problems: Vec::new(),
        malformed: BTreeMap::new(),
        services: Services::new(),
        service_dice: Dice::fork(config.seed, salt(5)),
        main_net_stats: NetStats::default(),
        events: Vec::new(),
        cadence: Cadence::default(),
        last_traffic_ms: 0,
        next_issue: vec![0; config.clients],
        pace_dice: Dice::fork(config.seed, 6),
        definite_fails: 0,
        fault_spans: Vec::new(),
        main_start_ms: 0,
        main_end_ms: 0,
        unstable: Vec::new(),
        settle: Settle::default(),
        stability_window_ms: 0,
    };
    // Every issued operation becomes an event: room for them up front saves the copies of a
    // growing vector (bounded, so a huge --ops cannot reserve memory it may never use).
    lp.history.events.reserve(
        usize::try_from(config.ops)
            .unwrap_or(usize::MAX)
            .min(1 << 20),
    );
    let started = lp.backend.now_ms();
    lp.go(network_config.clone(), progress);
    let elapsed_ms = lp.backend.now_ms() - started;
    lp.backend.shutdown();
    lp.report(network_config, elapsed_ms)
}

/// `net` with every delivery taking at least `latency_ms` (0 leaves it as it is).
fn with_latency(mut net: NetConfig, latency_ms: u64) -> NetConfig {
    if latency_ms > 0 {
        net.latency_ms_min = latency_ms as f64;
    }
    net
}

impl Loop<'_> {
    fn go(&mut self, network: NetConfig, progress: &mut dyn FnMut(Stage)) {
        progress(Stage::Init);
        if self.config.faults.contains(&Fault::Clock) && !self.backend.supports_clock_offset() {
            self.problems.push(Problem::Backend {
                error: "the clock nemesis needs a backend that can move a node's clock".into(),
            });
            return;
        }
        if !self.init() || !self.setup() {
            return;
        }
        // The workload, under faults.
        self.net = Network::new(
            network,
            Dice::fork(self.config.seed, 1 + 16 * self.config.schedule),
        );
        self.main_start_ms = self.backend.now_ms();
        let main_deadline = self.main_start_ms + self.config.time_limit_ms;
        if let Some(interval) = self.pace_interval_ms() {
            // Clients start spread over one interval, so a rate is a rate from the first moment.
            for c in 0..self.config.clients {
                self.next_issue[c] =
                    self.main_start_ms + (interval * self.pace_dice.unit()).round() as u64;
            }
        }
        // The first partition starts with the workload, so even a short run sees one. Without
        // windowed faults there is no fault clock at all: a deadline left at the start would make
        // every turn's wait return at once (a busy loop on real time, and no progress at all on
        // virtual time).
        let windowed = self.config.faults.iter().any(|f| f.windowed());
        let mut next_fault = if windowed {
            self.backend.now_ms()
        } else {
            u64::MAX
        };
        let mut last_progress = (u64::MAX, 0);
        loop {
            let now = self.backend.now_ms();
            if windowed && now >= next_fault {
                // No new fault once the main phase is over: the run only waits for replies then
                // (the fault clock stops, so a deadline in the past cannot stall the loop).
                if self.faulty || now < main_deadline {
                    self.toggle_fault();
                    next_fault = now + self.config.fault_window_ms;
                } else {
                    next_fault = u64::MAX;
                }
            }
            if now >= self.clock.next_change_ms() {
                let changes = self.clock.poll(now);
                self.set_clocks(changes);
            }
            if self.armed_kill.is_some_and(|k| now >= k.by_ms) {
                self.fire_kill();
            }
            if now < main_deadline {
                self.issue_ops(now);
            }
            let capped = self.issued - self.definite_fails >= self.config.ops;
            let all_done = self.issued == self.finished && (capped || now >= main_deadline);
            if all_done
                || self
                    .problems
                    .iter()
                    .any(|p| matches!(p, Problem::Crash { .. } | Problem::Interrupted))
            {
                break;
            }
            let elapsed_ms = now.saturating_sub(self.main_start_ms);
            // At most one report per finished operation or per tenth of a second.
            if (self.finished, elapsed_ms / 100) != last_progress {
                last_progress = (self.finished, elapsed_ms / 100);
                progress(Stage::Main {
                    done: self.finished,
                    elapsed_ms,
                    total_ms: self.config.time_limit_ms,
                });
            }
            let next_op = if now < main_deadline && !capped {
                self.next_pace_deadline().min(main_deadline)
            } else {
                main_deadline + self.config.request_timeout_ms
            };
            let aim = self.armed_kill.map_or(u64::MAX, |k| k.by_ms);
            self.step(
                next_fault
                    .min(next_op)
                    .min(self.clock.next_change_ms())
                    .min(aim),
                Phase::Main,
            );
        }
        self.main_end_ms = self.backend.now_ms();
        // Heal, and let the cluster go quiet.
        progress(Stage::Settle);
        // Messages per operation count the workload's traffic; the network is replaced below.
        self.main_net_stats = self.net.stats().clone();
        self.heal_all();
        self.net = Network::new(
            self.base_net(),
            Dice::fork(self.config.seed, 4 + 16 * self.config.schedule),
        );
        self.settle_down();
        if self.interrupted() {
            return;
        }
        progress(Stage::Final);
        self.final_reads();
    }

    /// The network outside the workload's faults: the default, with `latency_ms` if given.
    fn base_net(&self) -> NetConfig {
        with_latency(NetConfig::default(), self.config.latency_ms)
    }

    /// Waits after the heal until no node-to-node or service message was carried for
    /// `quiet_ms`, or `settle_ms` passed: a node still draining a backlog is not read early, and
    /// one that gossips forever on a timer costs at most the bound.
    fn settle_down(&mut self) {
        let start = self.backend.now_ms();
        let bound = start + self.config.settle_ms;
        // Quiet is measured from the heal: traffic before it says nothing about after.
        self.last_traffic_ms = self.last_traffic_ms.max(start);
        loop {
            let now = self.backend.now_ms();
            let quiet_at = self.last_traffic_ms + self.config.quiet_ms;
            if now >= quiet_at || now >= bound || self.interrupted() {
                self.settle.quiet = now >= quiet_at;
                self.settle.waited_ms = now - start;
                return;
            }
            self.step(quiet_at.min(bound), Phase::Final);
        }
    }

    /// With a rate, the mean gap between one client's requests: `clients / rate` seconds.
    fn pace_interval_ms(&self) -> Option<f64> {
        self.config
            .rate
            .filter(|r| *r > 0.0)
            .map(|rate| 1000.0 * self.config.clients as f64 / rate)
    }

    /// The earliest moment an idle client may issue (now, without a rate).
    fn next_pace_deadline(&self) -> u64 {
        (0..self.config.clients)
            .filter(|&c| !self.client_busy[c])
            .map(|c| {
                if self.config.rate.is_some() {
                    self.next_issue[c]
                } else {
                    0
                }
            })
            .min()
            .unwrap_or(u64::MAX)
    }

    fn init(&mut self) -> bool {
        for node in 0..self.config.nodes {
            if !self.start_node(node) {
                return false;
            }
        }
        let deadline = self.backend.now_ms() + self.config.init_timeout_ms;
        while self.nodes.iter().any(|n| !n.inited)
            && self.backend.now_ms() < deadline
            && self.problems.is_empty()
        {
            self.step(deadline, Phase::Main);
        }
        let missing: Vec<String> = (0..self.config.nodes)
            .filter(|&n| !self.nodes[n].inited)
            .map(|n| self.ids[n].clone())
            .collect();
        if !missing.is_empty() && self.problems.is_empty() {
            self.problems.push(Problem::InitTimeout { nodes: missing });
        }
        self.problems.is_empty()
    }

    /// Sends the workload's setup requests and waits for every answer.
    fn setup(&mut self) -> bool {
        let requests = self.workload.setup(&self.ids);
        for (node, mut body) in requests {
            let id = self.msg_id();
            body["msg_id"] = json!(id);
            self.pending
                .insert(id, (Pending::Setup(node), self.backend.now_ms()));
            self.send_from_client("c-init", node, body);
        }
        let deadline = self.backend.now_ms() + self.config.init_timeout_ms;
        let waiting = |lp: &Self| {
            lp.pending
                .values()
                .any(|(p, _)| matches!(p, Pending::Setup(_)))
        };
        while waiting(self) && self.backend.now_ms() < deadline && self.problems.is_empty() {
            self.step(deadline, Phase::Main);
        }
        let late: Vec<usize> = self
            .pending
            .values()
            .filter_map(|(p, _)| match p {
                Pending::Setup(node) => Some(*node),
                _ => None,
            })
            .collect();
        for node in late {
            self.problems.push(Problem::SetupFailed {
                node: self.ids[node].clone(),
                detail: format!("no answer within {} ms", self.config.init_timeout_ms),
            });
        }
        self.problems.is_empty()
    }

    /// Whether the run was cancelled; records the problem the first time it is seen, so every
    /// loop (whose conditions test `problems` or this) winds down.
    fn interrupted(&mut self) -> bool {
        let cancelled = self
            .config
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed));
        if cancelled && !self.problems.contains(&Problem::Interrupted) {
            self.problems.push(Problem::Interrupted);
        }
        cancelled
    }

    /// The next place in the total order of observations.
    fn tick(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn msg_id(&mut self) -> u64 {
        self.next_msg_id += 1;
        self.next_msg_id
    }

    /// Sends `body` from `client` to `node` and gives the body back, for the history.
    fn send_from_client(&mut self, client: &str, node: usize, body: Value) -> Map<String, Value> {
        // Events record `self.seq + 1` as their invocation before calling this.
        self.tick();
        let message = Message::new(client, self.ids[node].clone(), body);
        if let Err(e) = self.backend.send_message(node, &message) {
            self.note_backend_error(e);
        }
        message.body
    }

    fn note_backend_error(&mut self, e: BackendError) {
        // A write to a node that has exited is reported once, as its crash.
        if let BackendError::Write { node, .. } = e {
            if !self.nodes[node].dead {
                self.nodes[node].dead = true;
                self.problems.push(Problem::Crash {
                    node: self.ids[node].clone(),
                    status: "stopped reading its input".into(),
                });
            }
        } else {
            self.problems.push(Problem::Backend {
                error: e.to_string(),
            });
        }
    }

    /// Starts node `node` (again) and sends it `init`.
    fn start_node(&mut self, node: usize) -> bool {
        if let Err(e) = self.backend.start(node) {
            self.problems.push(Problem::Backend {
                error: e.to_string(),
            });
            return false;
        }
        self.nodes[node].starts += 1;
        self.nodes[node].dead = false;
        let id = self.msg_id();
        self.pending
            .insert(id, (Pending::Init(node), self.backend.now_ms()));
        let body =
            json!({"type": "init", "msg_id": id, "node_id": self.ids[node], "node_ids": self.ids});
        self.send_from_client("c-init", node, body);
        true
    }

    /// Alternates fault windows and healthy windows: each fault window applies one of the
    /// windowed faults, drawn from the fault stream.
    fn toggle_fault(&mut self) {
        if self.faulty {
            self.heal_all();
            return;
        }
        let kinds: Vec<Fault> = self
            .config
            .faults
            .iter()
            .copied()
            .filter(|f| f.windowed())
            .collect();
        let n = self.config.nodes;
        match kinds[self.fault_dice.below(kinds.len() as u64) as usize] {
            Fault::Kill => {
                let node = self.fault_dice.below(n as u64) as usize;
                self.faults_applied.push(format!("kill:n{node}"));
                // The kill lands right after the node next acknowledges an update, or at the
                // aim bound: a random moment in a quiet node's life is usually one with nothing
                // in flight, while the moment after an acknowledgement is the one where a node
                // that acknowledges before replicating or persisting holds a write nobody else
                // has. A correct node has already written what makes the write survive (its
                // messages to peers precede its reply on its output, and the harness has them).
                let by_ms = self.backend.now_ms() + kill_aim_ms(self.config.fault_window_ms);
                self.armed_kill = Some(ArmedKill { node, by_ms });
            }
            Fault::Pause => {
                let node = self.fault_dice.below(n as u64) as usize;
                self.faults_applied.push(format!("pause:n{node}"));
                self.nodes[node].paused = true;
                self.backend.pause(node);
            }
            Fault::Clock => {
                let plan = clock_plan(n, &mut self.fault_dice);
                self.faults_applied.push(plan.name());
                let changes = self.clock.begin(&plan, self.backend.now_ms());
                self.set_clocks(changes);
            }
            _ => {
                let p = partition(n, &mut self.fault_dice);
                self.faults_applied.push(format!("partition:{}", p.kind));
                self.net.cut_links(p.cut);
                self.partitioned = true;
            }
        }
        self.faulty = true;
        let now = self.backend.now_ms();
        self.fault_spans.push(FaultSpan {
            fault: self.faults_applied.last().cloned().unwrap_or_default(),
            start_ms: now.saturating_sub(self.main_start_ms),
            end_ms: now.saturating_sub(self.main_start_ms),
        });
        // The window is recorded for reports and diagrams; it starts after the last observation.
        self.history.faults.push(FaultWindow {
            fault: self.faults_applied.last().cloned().unwrap_or_default(),
            after_seq: self.seq,
            healed_after_seq: None,
        });
    }

    /// Deals the armed kill, if any.
    fn fire_kill(&mut self) {
        if let Some(ArmedKill { node, .. }) = self.armed_kill.take() {
            self.nodes[node].killed = true;
            self.backend.kill(node);
        }
    }

    /// Ends every fault: heals the network, resumes paused nodes, restarts killed ones.
    fn heal_all(&mut self) {
        // A kill still waiting for its moment when the window closes is dealt now, so a window
        // that drew a kill always kills (the aim bound is far shorter than a window, so this
        // only happens when the main phase ends early).
        self.fire_kill();
        // The window closes before restarted nodes get their new `init`, which is observed after.
        if let Some(window) = self.history.faults.last_mut()
            && window.healed_after_seq.is_none()
        {
            window.healed_after_seq = Some(self.seq);
        }
        if self.faulty
            && let Some(span) = self.fault_spans.last_mut()
        {
            span.end_ms = self.backend.now_ms().saturating_sub(self.main_start_ms);
        }
        self.net.heal();
        self.partitioned = false;
        let changes = self.clock.heal();
        self.set_clocks(changes);
        for node in 0..self.config.nodes {
            if std::mem::take(&mut self.nodes[node].paused) {
                self.backend.resume(node);
            }
            if std::mem::take(&mut self.nodes[node].killed) && self.start_node(node) {
                // A restarted node has lost its setup (broadcast's topology) with everything
                // else; it gets it again right after its new `init`.
                for (to, mut body) in self.workload.setup(&self.ids) {
                    if to == node {
                        let id = self.msg_id();
                        body["msg_id"] = json!(id);
                        self.pending
                            .insert(id, (Pending::Setup(node), self.backend.now_ms()));
                        self.send_from_client("c-init", node, body);
                    }
                }
            }
        }
        self.faulty = false;
    }

    /// Moves node clocks as the clock nemesis says: `(node, offset in ms)`.
    fn set_clocks(&mut self, changes: Vec<(usize, i64)>) {
        for (node, offset_ms) in changes {
            if let Err(e) = self.backend.set_clock_offset(node, offset_ms) {
                self.note_backend_error(e);
            }
        }
    }

    fn issue_ops(&mut self, now: u64) {
        let interval = self.pace_interval_ms();
        for client in 0..self.config.clients {
            if self.client_busy[client] || self.issued - self.definite_fails >= self.config.ops {
                continue;
            }
            if let Some(interval) = interval {
                if now < self.next_issue[client] {
                    continue;
                }
                // The next request is due one jittered interval after this one was; a client
                // that fell behind (a slow reply) catches up by at most one request.
                let gap = interval * (0.5 + self.pace_dice.unit());
                let base = self.next_issue[client].max(now.saturating_sub(interval as u64));
                self.next_issue[client] = base + gap.round().max(1.0) as u64;
            }
            let node = self
                .workload
                .node_for(client, self.config.nodes, &mut self.op_dice);
            let mut body = self.workload.next_op_for(client, &mut self.op_dice);
            let id = self.msg_id();
            body["msg_id"] = json!(id);
            self.history.events.push(Event {
                client,
                node,
                // Filled in with the body once it is sent, so the body is never copied.
                request: Body::default(),
                invoke_ms: now,
                complete_ms: None,
                invoke_seq: self.seq + 1,
                complete_seq: None,
                outcome: Outcome::Info {
                    reason: "no reply".into(),
                },
                phase: Phase::Main,
                during_fault: self.faulty,
            });
            let event = self.history.events.len() - 1;
            self.pending
                .insert(id, (Pending::Op { client, event }, now));
            self.client_busy[client] = true;
            self.issued += 1;
            let name = std::mem::take(&mut self.client_names[client]);
            let request = self.send_from_client(&name, node, body);
            self.client_names[client] = name;
            self.history.events[event].request = request.into();
        }
    }

    /// One turn: deliver due messages, expire timed-out requests, wait for node output until
    /// `deadline` (or the next delivery), and handle it.
    fn step(&mut self, deadline: u64, phase: Phase) {
        if self.interrupted() {
            return;
        }
        let now = self.backend.now_ms();
        while self.deliveries.peek().is_some_and(|Reverse(f)| f.at <= now) {
            let Some(Reverse(flight)) = self.deliveries.pop() else {
                break;
            };
            let node = flight.to;
            if !self.nodes[node].dead && !self.nodes[node].killed {
                let delivered_seq = self.tick();
                self.history.deliveries.push(Delivery {
                    from: flight.from,
                    to: node,
                    sent_seq: flight.sent_seq,
                    delivered_seq,
                });
            }
            let sent = match flight.cargo {
                Cargo::Line(line) => self.backend.send(node, &line),
                Cargo::Message(message) => self.backend.send_message(node, &message),
                Cargo::Peer(payload) => self.backend.deliver_peer(node, flight.from, payload),
            };
            if let Err(e) = sent {
                self.note_backend_error(e);
            }
        }
        self.expire(now, phase);
        let next_delivery = self.deliveries.peek().map_or(u64::MAX, |Reverse(f)| f.at);
        let next_timeout = self
            .pending
            .values()
            .filter(|(pending, _)| !matches!(pending, Pending::Init(_) | Pending::Setup(_)))
            .map(|(_, sent)| sent + self.config.request_timeout_ms)
            .min()
            .unwrap_or(u64::MAX);
        let until = deadline.min(next_delivery).min(next_timeout).max(now);
        let mut events = std::mem::take(&mut self.events);
        self.backend.wait_into(until, WAIT_SLICE, &mut events);
        for event in events.drain(..) {
            match event {
                NodeEvent::Line { node, line } => self.handle_line(node, line),
                NodeEvent::Message { node, message } => {
                    let sent_seq = self.tick();
                    self.handle_message(node, message, None, sent_seq);
                }
                NodeEvent::Peer { node, to, payload } => self.handle_peer(node, to, payload),
                NodeEvent::Exited {
                    node,
                    incarnation,
                    status,
                } => {
                    // The end of an incarnation the nemesis killed, or of one already replaced,
                    // is expected; anything else is a crash.
                    let current = self.nodes[node].starts.saturating_sub(1);
                    if self.nodes[node].killed || incarnation < current {
                        continue;
                    }
                    if !self.nodes[node].dead {
                        self.nodes[node].dead = true;
                        self.problems.push(Problem::Crash {
                            node: self.ids[node].clone(),
                            status,
                        });
                    }
                }
            }
        }
        self.events = events;
    }

    fn expire(&mut self, now: u64, _phase: Phase) {
        let timeout = self.config.request_timeout_ms;
        let expired: Vec<u64> = self
            .pending
            .iter()
            // `init` and setup have their own, longer deadline (`init_timeout_ms`).
            .filter(|(_, (pending, sent))| {
                !matches!(pending, Pending::Init(_) | Pending::Setup(_)) && sent + timeout <= now
            })
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            if let Some((pending, _)) = self.pending.remove(&id) {
                self.complete(
                    pending,
                    None,
                    now,
                    Outcome::Info {
                        reason: format!("no reply within {timeout} ms").into(),
                    },
                );
            }
        }
    }

    fn complete(&mut self, pending: Pending, node: Option<usize>, now: u64, outcome: Outcome) {
        match pending {
            Pending::Init(n) => {
                if matches!(outcome, Outcome::Ok { .. }) && Some(n) == node {
                    self.nodes[n].inited = true;
                }
            }
            Pending::Setup(n) => {
                if !matches!(outcome, Outcome::Ok { .. }) {
                    self.problems.push(Problem::SetupFailed {
                        node: self.ids[n].clone(),
                        detail: format!("{outcome:?}"),
                    });
                }
            }
            Pending::Op { client, event } => {
                if let Outcome::Ok { reply } = &outcome {
                    self.workload.observe(client, reply);
                    let update = self.history.events[event].kind() != "read";
                    if update && node.is_some() && self.armed_kill.map(|k| k.node) == node {
                        self.fire_kill();
                    }
                }
                let seq = self.seq;
                let e = &mut self.history.events[event];
                if !matches!(outcome, Outcome::Info { .. }) {
                    e.complete_ms = Some(now);
                    e.complete_seq = Some(seq);
                }
                if matches!(outcome, Outcome::Fail { .. }) {
                    self.definite_fails += 1;
                }
                e.outcome = outcome;
                self.client_busy[client] = false;
                self.finished += 1;
            }
            Pending::Final { event } => {
                let seq = self.seq;
                let e = &mut self.history.events[event];
                if !matches!(outcome, Outcome::Info { .. }) {
                    e.complete_ms = Some(now);
                    e.complete_seq = Some(seq);
                }
                e.outcome = outcome;
            }
        }
    }

    fn malformed(&mut self, node: usize, what: String) {
        let entry = self.malformed.entry(node).or_insert((0, what));
        entry.0 += 1;
    }

    fn handle_line(&mut self, node: usize, line: String) {
        let sent_seq = self.tick();
        let msg = match Message::parse(&line) {
            Ok(m) => m,
            Err(e) => return self.malformed(node, e.to_string()),
        };
        self.handle_message(node, msg, Some(line), sent_seq);
    }

    /// A payload from an in-process node to node `to`: routed like any node-to-node message,
    /// without being read.
    fn handle_peer(&mut self, node: usize, to: usize, payload: Vec<u8>) {
        let sent_seq = self.tick();
        if to >= self.config.nodes {
            return self.malformed(node, format!("peer payload to unknown node index {to}"));
        }
        self.route(node, to, Cargo::Peer(payload), sent_seq);
    }

    /// Schedules the copies the network makes of a message from `node` to node `to`.
    fn route(&mut self, node: usize, to: usize, cargo: Cargo, sent_seq: u64) {
        if self.deliveries.len() >= IN_FLIGHT_MAX {
            return self.malformed(
                node,
                format!("more than {IN_FLIGHT_MAX} messages in flight"),
            );
        }
        let now = self.backend.now_ms();
        self.cadence.sent(node, to, now);
        self.last_traffic_ms = now;
        let arrivals = self.net.route(node, to, now);
        // The last copy takes the cargo; only duplicates pay for a clone.
        let mut cargo = Some(cargo);
        for (i, &at) in arrivals.iter().enumerate() {
            let copy = if i + 1 == arrivals.len() {
                cargo.take()
            } else {
                cargo.as_ref().map(|c| match c {
                    Cargo::Line(l) => Cargo::Line(l.clone()),
                    Cargo::Message(m) => Cargo::Message(m.clone()),
                    Cargo::Peer(p) => Cargo::Peer(p.clone()),
                })
            };
            let Some(copy) = copy else {
                break;
            };
            self.delivery_seq += 1;
            self.deliveries.push(Reverse(InFlight {
                at,
                order: self.delivery_seq,
                to,
                cargo: copy,
                from: node,
                sent_seq,
            }));
        }
    }

    /// A message node `node` sent, parsed: from `line` if it came as one (a node-to-node message
    /// is then delivered as the very line), or typed from an in-process backend.
    fn handle_message(&mut self, node: usize, msg: Message, line: Option<String>, sent_seq: u64) {
        if msg.src != self.ids[node] && !self.src_allowed(&msg.src) {
            let shown = line.unwrap_or_else(|| msg.to_line());
            let cut: String = shown.chars().take(200).collect();
            return self.malformed(
                node,
                format!(
                    "src {:?} is not the sender {}: {cut}",
                    msg.src, self.ids[node]
                ),
            );
        }
        let now = self.backend.now_ms();
        if let Some(to) = self.ids.iter().position(|id| *id == msg.dest) {
            let cargo = match line {
                Some(line) => Cargo::Line(line),
                None => Cargo::Message(Box::new(msg)),
            };
            return self.route(node, to, cargo, sent_seq);
        }
        if Services::is_service(&msg.dest) {
            self.last_traffic_ms = now;
            // Services answer at once; the reply reaches the node after the network's minimum
            // latency, like any message. Partitions cut nodes from each other, not from services.
            let reply = self.services.handle_body(
                &msg.src,
                &msg.dest,
                &msg.body,
                now,
                &mut self.service_dice,
            );
            let party = self.config.nodes
                + super::services::Service::ALL
                    .iter()
                    .position(|s| s.name() == msg.dest)
                    .unwrap_or(0);
            let reply = Message {
                src: msg.dest,
                dest: msg.src,
                body: reply,
            };
            // The service read the request when the harness did, and answered at once.
            self.history.deliveries.push(Delivery {
                from: node,
                to: party,
                sent_seq,
                delivered_seq: sent_seq,
            });
            self.delivery_seq += 1;
            self.deliveries.push(Reverse(InFlight {
                at: now + 1,
                order: self.delivery_seq,
                to: node,
                cargo: Cargo::Message(Box::new(reply)),
                from: party,
                sent_seq,
            }));
            return;
        }
        if msg.dest.starts_with('c') {
            // A reply to a client: it completes the pending request it answers, if any. Late
            // replies to requests that already timed out are expected and ignored.
            let Some(id) = msg.in_reply_to() else {
                return self.malformed(
                    node,
                    format!("message to client {} without in_reply_to", msg.dest),
                );
            };
            if let Some((pending, _)) = self.pending.remove(&id) {
                let outcome = match msg.error_code() {
                    Some(code) if error_is_definite(code) => Outcome::Fail { code },
                    Some(code) => Outcome::Info {
                        reason: format!("indefinite error {code}").into(),
                    },
                    None => Outcome::Ok {
                        reply: msg.body.into(),
                    },
                };
                self.complete(pending, Some(node), now, outcome);
            }
            return;
        }
        self.malformed(
            node,
            format!("message to unknown destination {:?}", msg.dest),
        );
    }

    /// Whether a message from one node may name `src` as its sender. The strict profile accepts
    /// only the sender itself: the harness carries every message, so a node that speaks for
    /// another hides who sent what from the causality the checks rest on. Maelstrom accepts any
    /// known node or client id (followers that forward a client's request to the leader keep the
    /// client's `src`, and the leader answers the client directly), so its profile does too.
    fn src_allowed(&self, src: &str) -> bool {
        self.config.profile == Profile::Maelstrom
            && (self.ids.iter().any(|id| id == src)
                || src == "c-init"
                || src
                    .strip_prefix('c')
                    .and_then(|n| n.parse::<usize>().ok())
                    .is_some_and(|n| n < self.config.clients + self.config.nodes))
    }

    /// Reads every node until all agree, then keeps reading for the stability window: the run
    /// ends once the values stayed equal for the whole window, or at `final_timeout_ms` plus one
    /// window. A value that moves after agreement restarts the wait (a node still draining a
    /// backlog agrees for a moment and then moves on), and is a violation when the workload says
    /// no write could explain the move.
    fn final_reads(&mut self) {
        let Some(read) = self.workload.final_read() else {
            return;
        };
        let window = self.config.stability_ms.unwrap_or_else(|| {
            stability_window_ms(
                self.cadence.period_ms().unwrap_or(0),
                2 * self.config.quiet_ms,
            )
        });
        self.stability_window_ms = window;
        let start = self.backend.now_ms();
        let deadline = start + self.config.final_timeout_ms + window;
        // The agreed value and when agreement began.
        let mut agreed: Option<(Value, u64)> = None;
        loop {
            let round_start = self.history.events.len();
            self.settle.read_rounds += 1;
            for node in 0..self.config.nodes {
                if self.nodes[node].dead {
                    continue;
                }
                let id = self.msg_id();
                let mut body = read.clone();
                body["msg_id"] = json!(id);
                self.history.events.push(Event {
                    client: self.config.clients + node,
                    node,
                    request: body.as_object().cloned().unwrap_or_default().into(),
                    invoke_ms: self.backend.now_ms(),
                    complete_ms: None,
                    invoke_seq: self.seq + 1,
                    complete_seq: None,
                    outcome: Outcome::Info {
                        reason: "no reply".into(),
                    },
                    phase: Phase::Final,
                    during_fault: false,
                });
                let event = self.history.events.len() - 1;
                self.pending
                    .insert(id, (Pending::Final { event }, self.backend.now_ms()));
                self.send_from_client(&format!("c{}", self.config.clients + node), node, body);
            }
            while self
                .pending
                .values()
                .any(|(p, _)| matches!(p, Pending::Final { .. }))
                && self.backend.now_ms() < deadline
                && !self.interrupted()
            {
                self.step(deadline, Phase::Final);
            }
            let values: Vec<(usize, Option<Value>)> = self.history.events[round_start..]
                .iter()
                .map(|e| (e.node, e.reply().and_then(|r| self.workload.final_value(r))))
                .collect();
            let now = self.backend.now_ms();
            if let Some((value, since)) = &agreed {
                // Every node that answered must still show the agreed value.
                let moved = values
                    .iter()
                    .find(|(_, v)| v.as_ref().is_some_and(|v| v != value));
                if let Some((node, Some(to))) = moved {
                    if let Some(why) = self.workload.unexplained_change(&self.history, value, to) {
                        let cut = |v: &Value| v.to_string().chars().take(120).collect::<String>();
                        self.unstable.push(format!(
                            "n{node} read {} {} ms after every node agreed on {}: {why}",
                            cut(to),
                            now - since,
                            cut(value)
                        ));
                    }
                    agreed = None;
                } else if now - since >= window {
                    self.settle.stable = true;
                    break;
                }
            }
            if agreed.is_none() {
                let all = values.iter().all(|(_, v)| v.is_some())
                    && values.len() == self.nodes.iter().filter(|n| !n.dead).count();
                if all && !values.is_empty() && values.windows(2).all(|w| w[0].1 == w[1].1) {
                    agreed = values[0].1.clone().map(|v| (v, now));
                }
            }
            // Checkers judge each node by its last successful final read, so a round cut short
            // by the deadline does not hide the rounds before it.
            if now >= deadline
                || self.interrupted()
                || (agreed.is_none() && now >= start + self.config.final_timeout_ms)
            {
                break;
            }
            let pause_until = (now + self.config.read_interval_ms).min(deadline);
            while self.backend.now_ms() < pause_until && !self.interrupted() {
                self.step(pause_until, Phase::Final);
            }
        }
        self.settle.reads_ms = self.backend.now_ms() - start;
    }

    fn report(mut self, network: NetConfig, elapsed_ms: u64) -> RunReport {
        for (node, (count, first)) in std::mem::take(&mut self.malformed) {
            self.problems.push(Problem::MalformedOutput {
                node: self.ids[node].clone(),
                count,
                first,
            });
        }
        let main: Vec<&Event> = self
            .history
            .phase(Phase::Main)
            .filter(|e| e.client < self.config.clients)
            .collect();
        let count =
            |f: &dyn Fn(&Outcome) -> bool| main.iter().filter(|e| f(&e.outcome)).count() as u64;
        let ok = count(&|o| matches!(o, Outcome::Ok { .. }));
        let fail = count(&|o| matches!(o, Outcome::Fail { .. }));
        let info = count(&|o| matches!(o, Outcome::Info { .. }));
        let mut latencies: Vec<u64> = main
            .iter()
            .filter(|e| e.reply().is_some())
            .filter_map(|e| e.complete_ms.map(|c| c - e.invoke_ms))
            .collect();
        latencies.sort_unstable();
        let q = |p: f64| {
            latencies
                .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
                .copied()
                .unwrap_or(0)
        };
        let latency = Latency {
            p50_ms: q(0.5),
            p95_ms: q(0.95),
            p99_ms: q(0.99),
            max_ms: latencies.last().copied().unwrap_or(0),
        };
        let share = |events: &[&&Event]| {
            (!events.is_empty()).then(|| {
                events.iter().filter(|e| e.reply().is_some()).count() as f64 / events.len() as f64
            })
        };
        let all: Vec<&&Event> = main.iter().collect();
        let faulted: Vec<&&Event> = main.iter().filter(|e| e.during_fault).collect();
        let availability = Availability {
            overall: share(&all).unwrap_or(0.0),
            during_faults: share(&faulted),
        };
        let order_independent = self.workload.order_independent();
        // A cluster that never started has no history worth checking: its problem is the verdict.
        let started = !self.problems.iter().any(|p| {
            matches!(
                p,
                Problem::InitTimeout { .. }
                    | Problem::SetupFailed { .. }
                    | Problem::Backend { .. }
                    | Problem::Interrupted
            )
        });
        let mut checks: Vec<Check> = if started {
            self.workload.check(&self.history, self.config.nodes)
        } else {
            Vec::new()
        };
        if started && self.workload.final_read().is_some() {
            let mut unstable = std::mem::take(&mut self.unstable);
            unstable.truncate(5);
            checks.push(Check::from_bool(
                "stability",
                false,
                unstable.is_empty(),
                || unstable.join("; "),
            ));
        }
        checks.retain(|c| self.config.profile == Profile::Strict || c.maelstrom);
        let ops = main.len() as u64;
        let mut final_values = BTreeMap::new();
        for e in self.history.phase(Phase::Final) {
            if let Some(value) = e.reply().and_then(|r| self.workload.final_value(r)) {
                final_values.insert(self.ids[e.node].clone(), value);
            }
        }
        RunReport {
            workload: self.workload.name().to_string(),
            config: self.config.clone(),
            network,
            net_stats: self.main_net_stats.clone(),
            faults: self.faults_applied,
            ops,
            ok,
            fail,
            info,
            msgs_per_op: if ops == 0 {
                0.0
            } else {
                self.main_net_stats.sent as f64 / ops as f64
            },
            latency,
            availability,
            elapsed_ms,
            main_ms: self.main_end_ms.saturating_sub(self.main_start_ms),
            fault_windows: self.fault_spans,
            settle: self.settle,
            replication_period_ms: self.cadence.period_ms(),
            stability_window_ms: self.stability_window_ms,
            problems: self.problems,
            final_values,
            services: self
                .services
                .stats()
                .into_iter()
                .filter(|(_, stats)| stats.requests > 0)
                .map(|(service, stats)| (service.name().to_string(), stats))
                .collect(),
            checks,
            order_independent,
            history: self.history,
        }
    }
}
