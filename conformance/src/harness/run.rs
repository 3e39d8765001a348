//! The harness loop: init, workload under faults, heal, quiescence, final reads, checks.
//!
//! Invariants: every wait is bounded by a deadline; every client has at most one request in
//! flight; every request ends in the history as ok, fail or info (never silently dropped); all
//! randomness comes from streams forked from the one seed.
//!
//! # Layout
//! This file holds the loop's state (`Loop` with one `NodeState` per node), [`run`], the
//! phases (init, setup, main, settle) and the turn that delivers, expires and waits (`step`).
//! The rest of the loop's methods live beside it, each file an `impl Loop` of one concern:
//! - `faults`: drawing, applying and healing fault windows;
//! - `routing`: what nodes write: node-to-node messages, service requests, client replies;
//! - `finish`: the final reads and the report.
//!
//! `flight` holds the message copies in flight, which this file and `routing` share. Nothing
//! here imports from `faults`, `routing` or `finish`: they extend `Loop`, and the loop reaches
//! them through it. The run's configuration and report types live in `harness/config.rs` and
//! `harness/report.rs` and are re-exported here, their public path.

mod faults;
mod finish;
mod flight;
mod routing;

pub use super::config::{RunConfig, stability_window_ms};
pub use super::report::{
    Availability, FaultSpan, Latency, Problem, RunReport, Settle, merge_order_independence,
};

use super::backend::{Backend, BackendError, NodeEvent};
use super::body::Kind;
use super::cadence::Cadence;
use super::history::{Body, Delivery, Event, History, Outcome, Phase};
use super::message::Message;
use super::nemesis::{ClockNemesis, Fault, faulty_network};
use super::net::{NetConfig, NetStats, Network};
use super::rng::SeededDice;
use super::services::Services;
use super::workload::Workload;
use flight::{Cargo, InFlight};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Longest single wait on the backend, so timers and progress stay responsive.
const WAIT_SLICE: Duration = Duration::from_millis(20);

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
    op_dice: SeededDice,
    fault_dice: SeededDice,
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
    /// The rolling upgrade still to come: `(when, node)`, in order (see
    /// [`RunConfig::upgrades`]).
    upgrade_plan: std::collections::VecDeque<(u64, usize)>,
    /// The clock nemesis: which clocks are moved, and when a strobing one flips next.
    clock: ClockNemesis,
    problems: Vec<Problem>,
    malformed: BTreeMap<usize, (u64, String)>,
    services: Services,
    service_dice: SeededDice,
    main_net_stats: NetStats,
    /// The buffer [`Backend::wait_into`] fills each turn, kept so turns do not allocate.
    events: Vec<NodeEvent>,
    /// Node-to-node send times, reduced to each link's rhythm.
    cadence: Cadence,
    /// When the harness last carried a node-to-node or service message.
    last_traffic_ms: u64,
    /// With a rate: when each client may issue its next request, in fractional ms, so a rate
    /// above one request per client per millisecond is not rounded down to that.
    next_issue: Vec<f64>,
    /// Jitter of the clients' pacing: its own stream, so that pacing never shifts the operations.
    pace_dice: SeededDice,
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
    let mut fault_dice = SeededDice::fork(config.seed, salt(3));
    let network_config = with_latency(
        faulty_network(&config.faults, &mut fault_dice),
        config.latency_ms,
    );
    let mut lp = Loop {
        config,
        ids: (0..config.nodes).map(|i| format!("n{i}")).collect(),
        client_names: (0..config.clients).map(|i| format!("c{i}")).collect(),
        net: Network::new(NetConfig::default(), SeededDice::fork(config.seed, salt(1))),
        op_dice: SeededDice::fork(config.seed, 2),
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
        upgrade_plan: std::collections::VecDeque::new(),
        clock: ClockNemesis::new(config.nodes),
        problems: Vec::new(),
        malformed: BTreeMap::new(),
        services: Services::new(),
        service_dice: SeededDice::fork(config.seed, salt(5)),
        main_net_stats: NetStats::default(),
        events: Vec::new(),
        cadence: Cadence::default(),
        last_traffic_ms: 0,
        next_issue: vec![0.0; config.clients],
        pace_dice: SeededDice::fork(config.seed, 6),
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
        if self.config.upgrades > 0 && !self.backend.supports_upgrade() {
            self.problems.push(Problem::Backend {
                error: "the rolling-upgrade nemesis needs a backend with a second build (--upgrade-bin)".into(),
            });
            return;
        }
        if !self.init() || !self.setup() {
            return;
        }
        // The workload, under faults.
        self.net = Network::new(
            network,
            SeededDice::fork(self.config.seed, 1 + 16 * self.config.schedule),
        );
        self.main_start_ms = self.backend.now_ms();
        let main_deadline = self.main_start_ms + self.config.time_limit_ms;
        self.plan_upgrades();
        if let Some(interval) = self.pace_interval_ms() {
            // Clients start spread over one interval, so a rate is a rate from the first moment.
            for c in 0..self.config.clients {
                self.next_issue[c] = self.main_start_ms as f64 + interval * self.pace_dice.unit();
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
            if let Some(&(at, node)) = self.upgrade_plan.front()
                && now >= at
            {
                self.upgrade_plan.pop_front();
                self.upgrade(node);
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
            let next_upgrade = self.upgrade_plan.front().map_or(u64::MAX, |&(at, _)| at);
            self.step(
                next_fault
                    .min(next_op)
                    .min(self.clock.next_change_ms())
                    .min(aim)
                    .min(next_upgrade),
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
            SeededDice::fork(self.config.seed, 4 + 16 * self.config.schedule),
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
                    self.next_issue[c].floor() as u64
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
            body.msg_id = Some(id);
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
    fn send_from_client(&mut self, client: &str, node: usize, body: Body) -> Body {
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
        let body = Body::new(Kind::Init {
            node_id: self.ids[node].clone(),
            node_ids: self.ids.clone(),
        })
        .with_msg_id(id);
        self.send_from_client("c-init", node, body);
        true
    }

    fn issue_ops(&mut self, now: u64) {
        let interval = self.pace_interval_ms();
        for client in 0..self.config.clients {
            if self.client_busy[client] || self.issued - self.definite_fails >= self.config.ops {
                continue;
            }
            if let Some(interval) = interval {
                // The clock reads whole milliseconds: `now` stands for [now, now + 1), so a
                // request due within it goes now rather than a tick later (which would cap each
                // client at one request per millisecond, whatever the rate).
                if now as f64 + 1.0 <= self.next_issue[client] {
                    continue;
                }
                // The next request is due one jittered interval after this one was; a client
                // that fell behind (a slow reply) catches up by at most one request.
                let gap = interval * (0.5 + self.pace_dice.unit());
                let base = self.next_issue[client].max(now as f64 - interval);
                self.next_issue[client] = base + gap;
            }
            let node = self
                .workload
                .node_for(client, self.config.nodes, &mut self.op_dice);
            let mut body = self.workload.next_op_for(client, &mut self.op_dice);
            let id = self.msg_id();
            body.msg_id = Some(id);
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
            self.history.events[event].request = request;
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
                    let Message { src, dest, body } = message;
                    let body = routing::Incoming::Typed(body);
                    self.handle_message(node, src, dest, body, None, sent_seq);
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
}
