//! The timing model (docs/protocol.md, "Timing") on virtual time: an in-process g-counter cluster
//! whose nodes gossip on a timer, driven through the harness's typed path so that every run is
//! exact and fast. Each buggy shape here has a correct-but-slow sibling that must pass:
//! - a correct node gossiping every 2 s passes at the default timing, and the harness measures
//!   its period and stretches the stability window to span three of them;
//! - a node whose merge re-adds what a peer resends, on a 500 ms timer, is caught;
//! - a node that drains an acknowledged backlog slowly after the heal passes (the harness waits
//!   for the traffic to stop), while one that keeps counting after every node agreed is a
//!   `stability` violation;
//! - clients issue at the rate for the whole main phase, and a node that refuses requests at
//!   first does not use the run up.

use converge_conformance::harness::backend::{Backend, BackendError, NodeEvent};
use converge_conformance::harness::body::{Body, Kind};
use converge_conformance::harness::check::Verdict;
use converge_conformance::harness::message::{ErrorCode, Message};
use converge_conformance::harness::nemesis::Fault;
use converge_conformance::harness::run::{RunConfig, RunReport, run};
use converge_conformance::harness::workload;

use std::time::Duration;

/// How a node behaves.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    /// Per-node counts merged by maximum: correct.
    Correct,
    /// Merges by adding what a peer's gossip shows beyond what it had: a resent count is added
    /// again, so every round inflates the total.
    ReAdd,
    /// Correct, but an acknowledged add goes into a backlog that each gossip tick folds in at
    /// most `DRAIN_PER_TICK` units of, a little slower than the clients add: the count settles
    /// seconds after the heal.
    SlowDrain,
    /// Correct until the main phase is over; then node 0 counts one phantom unit every tick, as
    /// a retry loop that re-applies its last write would.
    Creep,
    /// Refuses every add with a definite error (11) before `REFUSE_UNTIL_MS`.
    RefuseAtFirst,
}

const REFUSE_UNTIL_MS: u64 = 3_000;
const DRAIN_PER_TICK: u64 = 3;

struct Cluster {
    shape: Shape,
    gossip_ms: u64,
    now: u64,
    counts: Vec<Vec<u64>>,
    backlog: Vec<u64>,
    out: Vec<NodeEvent>,
    replies: Vec<NodeEvent>,
    next_gossip: u64,
    /// When the last add arrived: the main phase is over some time after it.
    last_request: u64,
    /// Whether a count changed since the last gossip (the slow drain gossips only then).
    dirty: bool,
    /// How long after a request its reply comes: 1 ms, or 0 for a node that answers within the
    /// millisecond, as a process on the same machine usually does.
    reply_ms: u64,
}

impl Cluster {
    fn new(shape: Shape, gossip_ms: u64, n: usize) -> Self {
        Cluster {
            shape,
            gossip_ms,
            now: 0,
            counts: vec![vec![0; n]; n],
            backlog: vec![0; n],
            out: Vec::new(),
            replies: Vec::new(),
            next_gossip: gossip_ms,
            last_request: 0,
            dirty: false,
            reply_ms: 1,
        }
    }

    fn tick(&mut self) {
        let n = self.counts.len();
        for node in 0..n {
            let drained = self.backlog[node].min(DRAIN_PER_TICK);
            self.backlog[node] -= drained;
            self.counts[node][node] += drained;
            self.dirty |= drained > 0;
        }
        // The draining node sends only when something changed, so it goes quiet once its
        // backlog is empty: what the harness's quiescence wait can see.
        if self.shape == Shape::SlowDrain && !std::mem::take(&mut self.dirty) {
            return;
        }
        if self.shape == Shape::Creep && self.now > self.last_request + 2_000 {
            self.counts[0][0] += 1;
        }
        for from in 0..n {
            let payload: Vec<u8> = self.counts[from]
                .iter()
                .flat_map(|c| c.to_le_bytes())
                .collect();
            for to in (0..n).filter(|&t| t != from) {
                self.out.push(NodeEvent::Peer {
                    node: from,
                    to,
                    payload: payload.clone(),
                });
            }
        }
    }
}

impl Backend for Cluster {
    fn now_ms(&self) -> u64 {
        self.now
    }

    fn start(&mut self, _node: usize) -> Result<(), BackendError> {
        Ok(())
    }

    fn send(&mut self, node: usize, line: &str) -> Result<(), BackendError> {
        panic!("node {node} was sent a line: {line}");
    }

    fn send_message(&mut self, node: usize, message: &Message) -> Result<(), BackendError> {
        let kind = match &message.body.kind {
            Kind::Init { .. } => Kind::InitOk,
            &Kind::Add { delta } => {
                self.last_request = self.now;
                let delta = u64::try_from(delta).unwrap_or(0);
                if self.shape == Shape::RefuseAtFirst && self.now < REFUSE_UNTIL_MS {
                    Kind::Error {
                        code: ErrorCode::TemporarilyUnavailable.code(),
                        text: Some("no leader yet".into()),
                    }
                } else {
                    if self.shape == Shape::SlowDrain {
                        self.backlog[node] += delta;
                    } else {
                        self.counts[node][node] += delta;
                    }
                    Kind::AddOk
                }
            }
            Kind::Read { .. } => {
                let total = self.counts[node]
                    .iter()
                    .fold(0u64, |sum, c| sum.saturating_add(*c));
                Kind::ReadOk {
                    value: Some(total.into()),
                }
            }
            other => Kind::Error {
                code: ErrorCode::NotSupported.code(),
                text: Some(format!("{other:?}")),
            },
        };
        let mut body = Body::new(kind);
        body.in_reply_to = message.body.msg_id;
        self.replies.push(NodeEvent::Message {
            node,
            message: Message {
                src: format!("n{node}"),
                dest: message.src.clone(),
                body,
            },
        });
        Ok(())
    }

    fn deliver_peer(
        &mut self,
        node: usize,
        from: usize,
        payload: Vec<u8>,
    ) -> Result<(), BackendError> {
        for (i, chunk) in payload.chunks_exact(8).enumerate() {
            let mut bytes = [0; 8];
            bytes.copy_from_slice(chunk);
            let theirs = u64::from_le_bytes(bytes);
            let mine = &mut self.counts[node][i];
            match self.shape {
                // Adds the peer's own count to what it holds for that peer, without remembering
                // what it already took: every resend is counted again.
                Shape::ReAdd if i == from && i != node => *mine = mine.saturating_add(theirs),
                _ => *mine = (*mine).max(theirs),
            }
        }
        Ok(())
    }

    fn wait(&mut self, deadline_ms: u64, _max_wait: Duration) -> Vec<NodeEvent> {
        if self.out.is_empty() {
            let next_reply = if self.replies.is_empty() {
                u64::MAX
            } else {
                self.now + self.reply_ms
            };
            self.now = deadline_ms
                .min(self.next_gossip)
                .min(next_reply)
                .max(self.now);
            if self.now >= next_reply {
                self.out.append(&mut self.replies);
            }
            if self.now >= self.next_gossip {
                self.next_gossip = self.now + self.gossip_ms;
                self.tick();
            }
        }
        std::mem::take(&mut self.out)
    }

    fn kill(&mut self, _node: usize) {}

    fn pause(&mut self, _node: usize) {}

    fn resume(&mut self, _node: usize) {}

    fn shutdown(&mut self) {}
}

/// `converge certify`'s default timing for any node (src/certify.rs, `Timing::DEFAULT`).
fn default_timing(seed: u64) -> RunConfig {
    RunConfig {
        nodes: 3,
        clients: 3,
        ops: u64::MAX,
        time_limit_ms: 20_000,
        rate: Some(50.0),
        seed,
        faults: vec![Fault::Partition],
        fault_window_ms: 4_000,
        settle_ms: 10_000,
        quiet_ms: 1_000,
        final_timeout_ms: 10_000,
        ..RunConfig::default()
    }
}

fn certify(shape: Shape, gossip_ms: u64, config: &RunConfig) -> RunReport {
    let mut w = workload::by_name("g-counter").expect("a built-in workload");
    let mut cluster = Cluster::new(shape, gossip_ms, config.nodes);
    run(w.as_mut(), &mut cluster, config, &mut |_| {})
}

fn verdict_of<'a>(report: &'a RunReport, check: &str) -> &'a Verdict {
    &report
        .checks
        .iter()
        .find(|c| c.name == check)
        .unwrap_or_else(|| panic!("no {check} check in {:?}", report.checks))
        .verdict
}

fn summary(report: &RunReport) -> String {
    format!(
        "seed {}: {} ops, faults {:?}, settle {:?}, period {:?}, window {} ms, checks {:?}",
        report.config.seed,
        report.ops,
        report.fault_windows,
        report.settle,
        report.replication_period_ms,
        report.stability_window_ms,
        report.checks
    )
}

#[test]
fn a_correct_node_gossiping_every_two_seconds_passes_and_its_period_sets_the_window() {
    for seed in 1..=3 {
        let report = certify(Shape::Correct, 2_000, &default_timing(seed));
        assert_eq!(report.verdict(), Verdict::Pass, "{}", summary(&report));
        assert_eq!(
            report.replication_period_ms,
            Some(2_000),
            "{}",
            summary(&report)
        );
        assert_eq!(report.stability_window_ms, 6_000, "{}", summary(&report));
        assert!(report.settle.stable, "{}", summary(&report));
        // Three fault windows of four seconds each in the twenty-second main phase.
        assert_eq!(report.fault_windows.len(), 3, "{}", summary(&report));
        assert!(
            report
                .fault_windows
                .iter()
                .all(|f| f.end_ms - f.start_ms >= 3_900),
            "{}",
            summary(&report)
        );
    }
}

#[test]
fn clients_issue_at_the_rate_for_the_whole_main_phase() {
    for seed in 1..=3 {
        let config = RunConfig {
            rate: Some(100.0),
            time_limit_ms: 5_000,
            ..default_timing(seed)
        };
        let report = certify(Shape::Correct, 100, &config);
        // 500 requests are due; the jitter of each client's interval averages out.
        assert!(
            (450..=550).contains(&report.ops),
            "{} ops at 100/s over 5 s: {}",
            report.ops,
            summary(&report)
        );
        assert!(report.main_ms >= 5_000, "{}", summary(&report));
        assert_eq!(report.verdict(), Verdict::Pass, "{}", summary(&report));
    }
}

#[test]
fn a_rate_above_one_request_per_client_per_millisecond_is_reached() {
    // This node answers within the millisecond of the request, as a process on the same
    // machine does. The harness's clock reads whole milliseconds; a client that waited for the
    // next tick before issuing a request due within the current one would be held to one
    // request per millisecond (3,000/s for three clients), whatever the rate asked.
    let config = RunConfig {
        rate: Some(9_000.0),
        time_limit_ms: 2_000,
        ..default_timing(1)
    };
    let mut w = workload::by_name("g-counter").expect("a built-in workload");
    let mut cluster = Cluster::new(Shape::Correct, 100, config.nodes);
    cluster.reply_ms = 0;
    let report = run(w.as_mut(), &mut cluster, &config, &mut |_| {});
    assert!(
        (16_000..=20_000).contains(&report.ops),
        "{} ops at 9,000/s over 2 s: {}",
        report.ops,
        summary(&report)
    );
}

#[test]
fn a_node_that_refuses_requests_at_first_does_not_use_the_run_up() {
    let config = RunConfig {
        ops: 200,
        rate: Some(100.0),
        ..default_timing(1)
    };
    let report = certify(Shape::RefuseAtFirst, 100, &config);
    assert!(report.fail > 0, "{}", summary(&report));
    // Definite failures do not count against the cap: 200 operations still took effect or
    // might have, after the node started serving.
    assert_eq!(report.ok + report.info, 200, "{}", summary(&report));
    assert_eq!(report.verdict(), Verdict::Pass, "{}", summary(&report));
}

#[test]
fn a_merge_that_re_adds_resent_gossip_on_a_half_second_timer_is_caught() {
    for seed in 1..=3 {
        let report = certify(Shape::ReAdd, 500, &default_timing(seed));
        assert!(
            matches!(verdict_of(&report, "counter-bounds"), Verdict::Fail { .. }),
            "{}",
            summary(&report)
        );
    }
}

#[test]
fn a_backlog_drained_after_the_heal_is_waited_for() {
    for seed in 1..=3 {
        let report = certify(Shape::SlowDrain, 100, &default_timing(seed));
        assert_eq!(report.verdict(), Verdict::Pass, "{}", summary(&report));
        // The backlog really was still draining after the heal: the harness saw traffic for
        // seconds after it, and waited until the drain went quiet rather than reading early.
        assert!(report.settle.quiet, "{}", summary(&report));
        assert!(report.settle.waited_ms >= 2_000, "{}", summary(&report));
    }
}

#[test]
fn a_count_that_moves_after_every_node_agreed_is_a_stability_violation() {
    for seed in 1..=3 {
        let report = certify(Shape::Creep, 1_000, &default_timing(seed));
        let Verdict::Fail { detail } = verdict_of(&report, "stability") else {
            panic!("not caught: {}", summary(&report));
        };
        assert!(
            detail.contains("after every node agreed on"),
            "{detail}: {}",
            summary(&report)
        );
    }
}
