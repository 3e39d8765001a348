//! `converge sim`: the conformance harness's in-process backend. Reference replicas (each behind
//! the same Maelstrom [`Face`] the stdio node uses) run in this process on virtual time, driven by
//! the harness's own seeded network scheduler, workloads and checkers — there is no second
//! checker here, only a [`Backend`].
//!
//! # Virtual time
//! The harness asks [`Backend::wait`] for events up to a deadline; when nothing is queued,
//! virtual time jumps to the earliest of the deadline, a replica's timer and a queued reply's
//! release. Nothing sleeps, so a run is as fast as the code and the same seed gives the same run.
//!
//! # What the simulator adds to the network the harness already owns
//! - **Clock skew**: each replica's clock is offset by up to ±`skew_ms` (drawn per seed), so the
//!   hybrid logical clocks and last-writer-wins stamps see skewed physical time.
//! - **Client round trips**: a reply reaches its client `reply_ms` after the request (±50 %),
//!   so operations take virtual time and interleave with replication and faults.
//! - **Crash and restart from durable state**: a killed replica loses everything but its "disk",
//!   the [`Durable`] built from the deltas it handed out; by the replica's ordering rule those
//!   deltas are on disk before any reply they back is released, so the restarted replica has
//!   every write it acknowledged.
//! - **Pause**: a paused replica neither reads its input nor fires timers; input waits for it.

use converge_conformance::harness::backend::{Backend, BackendError, NodeEvent};
use converge_conformance::harness::rng::Dice;
use converge_core::replica::Durable;
use converge_node::maelstrom::{Face, FaceConfig};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

/// Inputs held for a paused replica at most; beyond this the oldest are dropped (a real paused
/// process's pipe would fill and its sender block, which the harness never does).
const PAUSED_INBOX_MAX: usize = 100_000;

/// How the simulated cluster is built.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Every replica's face.
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

struct Node {
    face: Option<Face>,
    disk: Durable,
    skew: i64,
    paused: bool,
    inbox: VecDeque<String>,
    incarnation: u64,
}

/// The in-process backend.
pub struct SimBackend {
    config: SimConfig,
    now: u64,
    nodes: Vec<Node>,
    /// Lines released at a virtual time: (at, tie-break, node, line).
    outbox: BinaryHeap<Reverse<(u64, u64, usize, String)>>,
    ready: Vec<NodeEvent>,
    order: u64,
    dice: Dice,
    /// Virtual ms spent, for the report.
    pub steps: u64,
}

impl SimBackend {
    /// A cluster of `config.nodes` replicas, none started.
    pub fn new(config: SimConfig) -> Self {
        let mut dice = Dice::fork(config.seed, 0x5EED_0001);
        let span = config.skew_ms.saturating_mul(2).saturating_add(1);
        let nodes = (0..config.nodes)
            .map(|_| {
                // Offsets up to ±skew_ms; the tie to the seed makes skewed runs replayable.
                let skew = i64::try_from(dice.below(span)).unwrap_or(0)
                    - i64::try_from(config.skew_ms).unwrap_or(0);
                Node {
                    face: None,
                    disk: Durable::new(),
                    skew,
                    paused: false,
                    inbox: VecDeque::new(),
                    incarnation: 0,
                }
            })
            .collect();
        SimBackend {
            config,
            now: 0,
            nodes,
            outbox: BinaryHeap::new(),
            ready: Vec::new(),
            order: 0,
            dice,
            steps: 0,
        }
    }

    /// Each replica's clock offset in ms, for the run's printout.
    pub fn skews(&self) -> Vec<i64> {
        self.nodes.iter().map(|n| n.skew).collect()
    }

    /// The replica's reading of the clock: virtual time plus its skew. Virtual time starts at a
    /// day, so negative skews never go below zero.
    fn local(&self, node: usize) -> u64 {
        (86_400_000 + self.now).saturating_add_signed(self.nodes[node].skew)
    }

    /// Collects what node `node` produced: durable state first (the ordering rule), then lines.
    fn collect(&mut self, node: usize) {
        let now = self.now;
        let mut lines = Vec::new();
        {
            let n = &mut self.nodes[node];
            let Some(face) = n.face.as_mut() else {
                return;
            };
            if let Some(delta) = face.take_durable() {
                n.disk.apply(delta);
            }
            while let Some(line) = face.poll_line() {
                lines.push(line);
            }
            // Diagnostics are the replica's own business in the simulator; drop them.
            while face.poll_log().is_some() {}
        }
        for line in lines {
            // Replies to clients take a round trip; node-to-node messages go straight to the
            // harness, whose network adds their latency.
            let to_client = line.contains("\"dest\":\"c");
            let at = if to_client && self.config.reply_ms > 0 {
                let mean = self.config.reply_ms;
                now + mean / 2 + self.dice.below(mean + 1)
            } else {
                now
            };
            self.order += 1;
            self.outbox.push(Reverse((at, self.order, node, line)));
        }
    }

    fn deliver(&mut self, node: usize, line: &str) {
        let local = self.local(node);
        if let Some(face) = self.nodes[node].face.as_mut() {
            face.handle_line(local, line);
            self.collect(node);
        }
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
                    at.saturating_add_signed(-n.skew)
                        .saturating_sub(86_400_000)
                        .max(self.now),
                )
            })
            .min()
    }

    fn release(&mut self) {
        while let Some(Reverse((at, ..))) = self.outbox.peek() {
            if *at > self.now {
                break;
            }
            let Some(Reverse((_, _, node, line))) = self.outbox.pop() else {
                break;
            };
            self.ready.push(NodeEvent::Line { node, line });
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
        let n = &mut self.nodes[node];
        if n.face.is_none() {
            // A dead process's stdin: the write is lost, as with a killed process.
            return Ok(());
        }
        if n.paused {
            if n.inbox.len() >= PAUSED_INBOX_MAX {
                n.inbox.pop_front();
            }
            n.inbox.push_back(line.to_string());
            return Ok(());
        }
        self.deliver(node, line);
        Ok(())
    }

    fn wait(&mut self, deadline_ms: u64, _max_wait: Duration) -> Vec<NodeEvent> {
        self.release();
        if self.ready.is_empty() {
            self.fire_timers();
            self.release();
        }
        if self.ready.is_empty() {
            // Jump to whatever happens next, but never past the deadline.
            let next_out = self.outbox.peek().map(|Reverse((at, ..))| *at);
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
        std::mem::take(&mut self.ready)
    }

    fn kill(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        if n.face.take().is_some() {
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
        let lines: Vec<String> = self.nodes[node].inbox.drain(..).collect();
        for line in lines {
            self.deliver(node, &line);
        }
    }

    fn shutdown(&mut self) {
        for n in &mut self.nodes {
            n.face = None;
        }
    }
}
