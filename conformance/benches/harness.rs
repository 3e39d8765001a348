//! What the harness itself costs per operation and per routed message, with the nodes' own cost
//! taken out: a `Backend` of in-process g-counter nodes on virtual time, so nothing waits on a
//! clock or a pipe. The process backend's figures (docs/perf.md) add process I/O on top.
//!
//! Run: `cargo bench -p converge-conformance --bench harness`.

use converge_conformance::harness::backend::{Backend, BackendError, NodeEvent};
use converge_conformance::harness::nemesis::Fault;
use converge_conformance::harness::run::{RunConfig, run};
use converge_conformance::harness::workload;
use criterion::{Criterion, Throughput};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::time::Duration;

/// How often each node gossips its counts, in virtual ms.
const GOSSIP_MS: u64 = 20;

/// A state-based g-counter node: per-node counts, merged by maximum, gossiped to every peer on
/// a timer, so it survives the partitions the nemesis makes.
struct Node {
    id: String,
    peers: Vec<String>,
    counts: Vec<u64>,
    up: bool,
}

struct Virtual {
    now: u64,
    nodes: Vec<Node>,
    out: VecDeque<NodeEvent>,
    next_gossip: u64,
}

impl Virtual {
    fn new(n: usize) -> Self {
        Virtual {
            now: 0,
            nodes: (0..n)
                .map(|i| Node {
                    id: format!("n{i}"),
                    peers: Vec::new(),
                    counts: vec![0; n],
                    up: false,
                })
                .collect(),
            out: VecDeque::new(),
            next_gossip: GOSSIP_MS,
        }
    }

    fn emit(&mut self, node: usize, dest: &str, body: Value) {
        let line = json!({"src": self.nodes[node].id, "dest": dest, "body": body}).to_string();
        self.out.push_back(NodeEvent::Line { node, line });
    }

    fn gossip(&mut self) {
        for i in 0..self.nodes.len() {
            if !self.nodes[i].up {
                continue;
            }
            for peer in self.nodes[i].peers.clone() {
                let counts = self.nodes[i].counts.clone();
                self.emit(i, &peer, json!({"type": "gossip", "counts": counts}));
            }
        }
    }
}

impl Backend for Virtual {
    fn now_ms(&self) -> u64 {
        self.now
    }

    fn start(&mut self, node: usize) -> Result<(), BackendError> {
        self.nodes[node].up = true;
        Ok(())
    }

    fn send(&mut self, node: usize, line: &str) -> Result<(), BackendError> {
        let msg: Value = serde_json::from_str(line).expect("the harness writes JSON");
        let body = &msg["body"];
        let src = msg["src"].as_str().unwrap_or_default().to_string();
        let reply = match body["type"].as_str() {
            Some("init") => {
                let ids: Vec<String> = body["node_ids"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect();
                let me = &mut self.nodes[node];
                me.peers = ids.into_iter().filter(|p| *p != me.id).collect();
                Some(json!({"type": "init_ok"}))
            }
            Some("add") => {
                self.nodes[node].counts[node] += body["delta"].as_u64().unwrap_or(0);
                Some(json!({"type": "add_ok"}))
            }
            Some("read") => {
                let value: u64 = self.nodes[node].counts.iter().sum();
                Some(json!({"type": "read_ok", "value": value}))
            }
            Some("gossip") => {
                let theirs = body["counts"].as_array().cloned().unwrap_or_default();
                for (mine, t) in self.nodes[node].counts.iter_mut().zip(theirs) {
                    *mine = (*mine).max(t.as_u64().unwrap_or(0));
                }
                None
            }
            _ => None,
        };
        if let Some(mut reply) = reply {
            reply["in_reply_to"] = body["msg_id"].clone();
            self.emit(node, &src, reply);
        }
        Ok(())
    }

    fn wait(&mut self, deadline_ms: u64, _max_wait: Duration) -> Vec<NodeEvent> {
        if self.out.is_empty() {
            // Nothing to report: virtual time jumps to the next thing that happens.
            let next = deadline_ms.min(self.next_gossip).max(self.now);
            self.now = next;
            if self.now >= self.next_gossip {
                self.next_gossip = self.now + GOSSIP_MS;
                self.gossip();
            }
        }
        self.out.drain(..).collect()
    }

    fn kill(&mut self, node: usize) {
        self.nodes[node].up = false;
    }

    fn pause(&mut self, _node: usize) {}

    fn resume(&mut self, _node: usize) {}

    fn shutdown(&mut self) {}
}

fn config(ops: u64) -> RunConfig {
    RunConfig {
        nodes: 3,
        clients: 3,
        ops,
        seed: 1,
        faults: vec![Fault::Partition],
        ..RunConfig::default()
    }
}

fn once(ops: u64) -> (u64, u64) {
    let mut workload = workload::by_name("g-counter").expect("a built-in workload");
    let mut backend = Virtual::new(3);
    let report = run(workload.as_mut(), &mut backend, &config(ops), &mut |_| {});
    assert_eq!(
        report.verdict(),
        converge_conformance::harness::check::Verdict::Pass,
        "the bench node is correct: {:?}",
        report.checks
    );
    // Client requests and replies pass through the harness too, so they count as routed.
    let routed = report.net_stats.delivered + 2 * report.ops;
    (report.ops, routed)
}

fn harness(c: &mut Criterion) {
    let ops = 20_000;
    let (done, routed) = once(ops);
    let mut group = c.benchmark_group("harness");
    group.sample_size(10);
    group.throughput(Throughput::Elements(done));
    group.bench_function("g-counter 3 nodes partition: per op", |b| {
        b.iter(|| once(ops))
    });
    group.throughput(Throughput::Elements(routed));
    group.bench_function("g-counter 3 nodes partition: per routed message", |b| {
        b.iter(|| once(ops))
    });
    group.finish();
}

// `criterion_group!` would generate an undocumented `pub fn`, which the workspace's `missing_docs`
// lint refuses; this is what it and `criterion_main!` expand to.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    harness(&mut c);
    c.final_summary();
}
