//! The backend's typed path, seen from outside: an in-process cluster whose nodes take parsed
//! messages and reply with parsed messages, and gossip to each other as opaque bytes that the
//! harness must route (with loss, duplication and partitions), record and hand back unchanged,
//! without reading them.

use converge_conformance::harness::backend::{Backend, BackendError, NodeEvent};
use converge_conformance::harness::body::{Body, Kind};
use converge_conformance::harness::check::Verdict;
use converge_conformance::harness::message::{ErrorCode, Message};
use converge_conformance::harness::nemesis::Fault;
use converge_conformance::harness::run::{Problem, RunConfig, RunReport, run};
use converge_conformance::harness::workload;

use std::time::Duration;

/// How often each node gossips its counts, in virtual ms.
const GOSSIP_MS: u64 = 20;

/// A state-based g-counter cluster on virtual time: per-node counts merged by maximum, gossiped
/// as 8 little-endian bytes per node.
struct Cluster {
    now: u64,
    counts: Vec<Vec<u64>>,
    up: Vec<bool>,
    out: Vec<NodeEvent>,
    /// Replies to clients, released a virtual millisecond after the request so that the
    /// workload spans time and the harness's fault windows.
    replies: Vec<NodeEvent>,
    next_gossip: u64,
    /// Payloads that arrived in a shape no node sent: must stay zero.
    corrupt: u64,
    /// Payloads delivered.
    delivered: u64,
    /// Sends one payload to a node index that does not exist, once, to see it refused.
    stray: bool,
}

impl Cluster {
    fn new(n: usize) -> Self {
        Cluster {
            now: 0,
            counts: vec![vec![0; n]; n],
            up: vec![false; n],
            out: Vec::new(),
            replies: Vec::new(),
            next_gossip: GOSSIP_MS,
            corrupt: 0,
            delivered: 0,
            stray: false,
        }
    }

    fn reply(&mut self, node: usize, to: &Message, kind: Kind) {
        let mut body = Body::new(kind);
        body.in_reply_to = to.body.msg_id;
        self.replies.push(NodeEvent::Message {
            node,
            message: Message {
                src: format!("n{node}"),
                dest: to.src.clone(),
                body,
            },
        });
    }

    fn gossip(&mut self) {
        let n = self.counts.len();
        for from in (0..n).filter(|&i| self.up[i]) {
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
        if std::mem::take(&mut self.stray) {
            self.out.push(NodeEvent::Peer {
                node: 0,
                to: 99,
                payload: vec![1, 2, 3],
            });
        }
    }
}

impl Backend for Cluster {
    fn now_ms(&self) -> u64 {
        self.now
    }

    fn start(&mut self, node: usize) -> Result<(), BackendError> {
        self.up[node] = true;
        Ok(())
    }

    fn send(&mut self, node: usize, line: &str) -> Result<(), BackendError> {
        // The harness must never fall back to text for a backend that takes messages.
        panic!("node {node} was sent a line: {line}");
    }

    fn send_message(&mut self, node: usize, message: &Message) -> Result<(), BackendError> {
        assert_eq!(message.dest, format!("n{node}"), "misrouted: {message:?}");
        let body = match &message.body.kind {
            Kind::Init { .. } => Kind::InitOk,
            &Kind::Add { delta } => {
                self.counts[node][node] += u64::try_from(delta).unwrap_or(0);
                Kind::AddOk
            }
            Kind::Read { .. } => Kind::ReadOk {
                value: Some(self.counts[node].iter().sum::<u64>().into()),
            },
            other => Kind::Error {
                code: ErrorCode::NotSupported.code(),
                text: Some(format!("{other:?}")),
            },
        };
        self.reply(node, message, body);
        Ok(())
    }

    fn deliver_peer(
        &mut self,
        node: usize,
        from: usize,
        payload: Vec<u8>,
    ) -> Result<(), BackendError> {
        self.delivered += 1;
        let n = self.counts.len();
        if payload.len() != 8 * n || from == node || from >= n {
            self.corrupt += 1;
            return Ok(());
        }
        for (i, chunk) in payload.chunks_exact(8).enumerate() {
            let mut bytes = [0; 8];
            bytes.copy_from_slice(chunk);
            let theirs = u64::from_le_bytes(bytes);
            self.counts[node][i] = self.counts[node][i].max(theirs);
        }
        Ok(())
    }

    fn wait(&mut self, deadline_ms: u64, _max_wait: Duration) -> Vec<NodeEvent> {
        if self.out.is_empty() {
            let next_reply = if self.replies.is_empty() {
                u64::MAX
            } else {
                self.now + 1
            };
            self.now = deadline_ms
                .min(self.next_gossip)
                .min(next_reply)
                .max(self.now);
            if self.now >= next_reply {
                self.out.append(&mut self.replies);
            }
            if self.now >= self.next_gossip {
                self.next_gossip = self.now + GOSSIP_MS;
                self.gossip();
            }
        }
        std::mem::take(&mut self.out)
    }

    fn kill(&mut self, node: usize) {
        self.up[node] = false;
    }

    fn pause(&mut self, _node: usize) {}

    fn resume(&mut self, _node: usize) {}

    fn shutdown(&mut self) {}
}

fn once(seed: u64, stray: bool) -> (RunReport, Cluster) {
    let config = RunConfig {
        nodes: 3,
        clients: 3,
        ops: 400,
        seed,
        faults: vec![Fault::Partition, Fault::Loss, Fault::Duplicate],
        ..RunConfig::default()
    };
    let mut w = workload::by_name("g-counter").expect("a built-in workload");
    let mut cluster = Cluster::new(3);
    cluster.stray = stray;
    let report = run(w.as_mut(), &mut cluster, &config, &mut |_| {});
    (report, cluster)
}

#[test]
fn opaque_payloads_are_routed_recorded_and_returned_unchanged() {
    for seed in 1..=5 {
        let (report, cluster) = once(seed, false);
        let again = || {
            format!(
                "seed {seed}; reproduce: cargo test -p converge-conformance --test typed_backend"
            )
        };
        assert_eq!(
            report.verdict(),
            Verdict::Pass,
            "{:?}; {}",
            report.checks,
            again()
        );
        assert_eq!(
            cluster.corrupt,
            0,
            "a payload changed on the way; {}",
            again()
        );
        assert!(
            cluster.delivered > 0 && report.net_stats.sent > 0,
            "delivered {} sent {}; {}",
            cluster.delivered,
            report.net_stats.sent,
            again()
        );
        // The network's faults reached the payloads: something was cut, lost or duplicated.
        let s = &report.net_stats;
        assert!(s.cut + s.lost + s.duplicated > 0, "{s:?}; {}", again());
        // Every delivery of a payload is in the history, between two nodes.
        let peer = report
            .history
            .deliveries
            .iter()
            .filter(|d| d.from < 3 && d.to < 3)
            .count() as u64;
        assert_eq!(peer, cluster.delivered, "{}", again());
        // Same seed, same run, payloads and all.
        assert_eq!(report.history, once(seed, false).0.history, "{}", again());
    }
}

#[test]
fn a_payload_to_a_node_that_does_not_exist_is_reported_not_delivered() {
    let (report, cluster) = once(1, true);
    assert_eq!(cluster.corrupt, 0);
    let refused = report.problems.iter().any(|p| {
        matches!(p, Problem::MalformedOutput { node, first, .. }
            if node == "n0" && first.contains("unknown node index 99"))
    });
    assert!(refused, "{:?}", report.problems);
}

#[test]
fn the_clock_nemesis_is_refused_up_front_by_a_backend_that_cannot_move_clocks() {
    let config = RunConfig {
        nodes: 3,
        clients: 3,
        ops: 100,
        seed: 1,
        faults: vec![Fault::Clock],
        ..RunConfig::default()
    };
    let mut w = workload::by_name("g-counter").expect("a built-in workload");
    let mut cluster = Cluster::new(3);
    assert!(!cluster.supports_clock_offset());
    let report = run(w.as_mut(), &mut cluster, &config, &mut |_| {});
    let refused = report
        .problems
        .iter()
        .any(|p| matches!(p, Problem::Backend { error } if error.contains("clock nemesis")));
    assert!(refused, "{:?}", report.problems);
    assert!(cluster.up.iter().all(|up| !up), "no node was started");
    assert!(!matches!(report.verdict(), Verdict::Pass));
}
