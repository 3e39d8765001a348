//! Deterministic multi-replica tests of `Replica`, driven by hand through a tiny message pump.
//!
//! The pump (`Sim`) owns virtual time, the network and each replica's "disk". It jumps to the
//! next event (a delivery or the earliest `poll_timeout`), and draws loss, duplication and
//! latency (hence reordering) from one seeded SplitMix64 stream, so every run is reproducible
//! from its seed; failing proptest cases print theirs. After every input it drains the outputs
//! in the documented order: durable delta first (applied to the replica's `Durable`), then
//! transmits, then replies.

use converge_core::ReplicaId;
use converge_core::replica::{
    Bug, ClientError, Config, Consistency, Durable, KeyKind, Op, Output, Replica, Reply, Request,
    Scalar, SessionToken, Topology, Value,
};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Network behaviour, per mille and milliseconds.
#[derive(Clone, Copy, Debug)]
struct Net {
    loss_pm: u64,
    dup_pm: u64,
    latency_min_ms: u64,
    latency_max_ms: u64,
}

const CLEAN: Net = Net {
    loss_pm: 0,
    dup_pm: 0,
    latency_min_ms: 5,
    latency_max_ms: 5,
};

struct Sim {
    configs: Vec<Config>,
    nodes: Vec<Option<Replica>>,
    disks: Vec<Durable>,
    now: u64,
    rng: u64,
    net: Net,
    in_flight: BTreeMap<(u64, u64), (ReplicaId, ReplicaId, Vec<u8>)>,
    msg_seq: u64,
    /// Cut links, as unordered pairs.
    cut: BTreeSet<(u64, u64)>,
    replies: BTreeMap<u64, Reply>,
    next_request: u64,
    delivered: u64,
}

impl Sim {
    fn new(configs: Vec<Config>, seed: u64, net: Net) -> Sim {
        let nodes = configs
            .iter()
            .map(|c| Some(Replica::new(c.clone(), 0).expect("valid config")))
            .collect();
        Sim {
            disks: vec![Durable::new(); configs.len()],
            configs,
            nodes,
            now: 0,
            rng: seed,
            net,
            in_flight: BTreeMap::new(),
            msg_seq: 0,
            cut: BTreeSet::new(),
            replies: BTreeMap::new(),
            next_request: 0,
            delivered: 0,
        }
    }

    /// `regions × per` replicas, all with the same tweak applied.
    fn grid(regions: u32, per: u32, seed: u64, net: Net, tweak: impl Fn(&mut Config)) -> Sim {
        let configs = (0..u64::from(regions * per))
            .map(|i| {
                let mut c = Config::grid(i, regions, per);
                c.seed = seed;
                tweak(&mut c);
                c
            })
            .collect();
        Sim::new(configs, seed, net)
    }

    fn node(&self, i: usize) -> &Replica {
        self.nodes[i].as_ref().expect("node is up")
    }

    fn is_cut(&self, a: ReplicaId, b: ReplicaId) -> bool {
        self.cut.contains(&(a.0.min(b.0), a.0.max(b.0)))
    }

    fn cut_link(&mut self, a: u64, b: u64) {
        self.cut.insert((a.min(b), a.max(b)));
    }

    /// Cuts every link between `group` and the rest.
    fn isolate(&mut self, group: &[u64]) {
        let n = self.nodes.len() as u64;
        for &a in group {
            for b in 0..n {
                if !group.contains(&b) {
                    self.cut_link(a, b);
                }
            }
        }
    }

    fn heal(&mut self) {
        self.cut.clear();
    }

    fn draw(&mut self) -> u64 {
        splitmix(&mut self.rng)
    }

    /// Drains node `i`'s outputs in the documented order.
    fn drain(&mut self, i: usize) {
        let Some(node) = self.nodes[i].as_mut() else {
            return;
        };
        let from = node.id();
        let (disk, replies) = (&mut self.disks[i], &mut self.replies);
        let mut out = Vec::new();
        node.drain(|o| match o {
            Output::Durable(delta) => disk.apply(delta),
            Output::Transmit(t) => out.push(t),
            Output::Reply(r) => {
                replies.insert(r.id, r);
            }
        });
        for t in out {
            self.enqueue(from, t.to, t.payload);
        }
    }

    fn enqueue(&mut self, from: ReplicaId, to: ReplicaId, payload: Vec<u8>) {
        if self.is_cut(from, to) {
            return;
        }
        let copies = if self.draw() % 1000 < self.net.loss_pm {
            0
        } else if self.draw() % 1000 < self.net.dup_pm {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let spread = self.net.latency_max_ms - self.net.latency_min_ms + 1;
            let at = self.now + self.net.latency_min_ms + self.draw() % spread;
            self.msg_seq += 1;
            self.in_flight
                .insert((at, self.msg_seq), (from, to, payload.clone()));
        }
    }

    fn next_event(&self) -> Option<u64> {
        let msg = self.in_flight.keys().next().map(|&(t, _)| t);
        let timer = self
            .nodes
            .iter()
            .flatten()
            .filter_map(|n| n.poll_timeout())
            .min();
        match (msg, timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Processes every event up to `until`, then sets the clock there.
    fn run_until_time(&mut self, until: u64) {
        while let Some(t) = self.next_event() {
            if t > until {
                break;
            }
            self.now = self.now.max(t);
            self.step();
        }
        self.now = self.now.max(until);
    }

    fn run_for(&mut self, ms: u64) {
        let until = self.now + ms;
        self.run_until_time(until);
    }

    fn step(&mut self) {
        while let Some((&(t, seq), _)) = self.in_flight.iter().next() {
            if t > self.now {
                break;
            }
            let (from, to, payload) = self.in_flight.remove(&(t, seq)).expect("present");
            if self.is_cut(from, to) {
                continue;
            }
            let i = to.0 as usize;
            if let Some(node) = self.nodes[i].as_mut() {
                node.handle_message(self.now, from, &payload);
                self.delivered += 1;
                self.drain(i);
            }
        }
        for i in 0..self.nodes.len() {
            let due = self.nodes[i]
                .as_ref()
                .and_then(|n| n.poll_timeout())
                .is_some_and(|t| t <= self.now);
            if due {
                let now = self.now;
                if let Some(n) = self.nodes[i].as_mut() {
                    n.handle_timeout(now);
                }
                self.drain(i);
            }
        }
    }

    fn request(
        &mut self,
        i: usize,
        key: &str,
        op: Op,
        level: Consistency,
        token: Option<SessionToken>,
    ) -> u64 {
        self.next_request += 1;
        let id = self.next_request;
        let request = Request {
            id,
            key: key.as_bytes().into(),
            op,
            consistency: level,
            token,
        };
        let now = self.now;
        self.nodes[i]
            .as_mut()
            .expect("node is up")
            .handle_request(now, request);
        self.drain(i);
        id
    }

    /// Runs until request `id` is answered (or `max_ms` pass) and returns the reply.
    fn wait(&mut self, id: u64, max_ms: u64) -> Option<Reply> {
        let until = self.now + max_ms;
        while !self.replies.contains_key(&id) {
            match self.next_event() {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    self.step();
                }
                _ => break,
            }
        }
        self.replies.remove(&id)
    }

    /// A request and its reply.
    fn call(
        &mut self,
        i: usize,
        key: &str,
        op: Op,
        level: Consistency,
        token: Option<SessionToken>,
    ) -> Reply {
        let id = self.request(i, key, op, level, token);
        self.wait(id, 10_000)
            .expect("every request is answered by its deadline")
    }

    fn crash(&mut self, i: usize) {
        self.nodes[i] = None;
    }

    fn restart(&mut self, i: usize) {
        let r = Replica::recover(self.configs[i].clone(), self.disks[i].clone(), self.now)
            .expect("durable state recovers");
        self.nodes[i] = Some(r);
        self.drain(i);
    }

    fn roots(&self) -> Vec<u64> {
        self.nodes.iter().flatten().map(|n| n.root_hash()).collect()
    }

    fn converged(&self) -> bool {
        let roots = self.roots();
        roots.windows(2).all(|w| w[0] == w[1])
            && self
                .nodes
                .iter()
                .flatten()
                .all(|n| n.frontier() == self.node(0).frontier())
    }

    /// Runs until every replica has the same keyspace and frontier.
    fn settle(&mut self, max_ms: u64) {
        let until = self.now + max_ms;
        while !self.converged() && self.now < until {
            self.run_for(50);
        }
        assert!(
            self.converged(),
            "replicas did not converge within {max_ms} ms (roots {:x?})",
            self.roots()
        );
    }
}

fn ok(reply: &Reply) -> (&Value, &SessionToken) {
    match &reply.result {
        Ok(done) => (&done.value, &done.token),
        Err(e) => panic!("request {} failed: {e}", reply.id),
    }
}

fn value(sim: &Sim, i: usize, key: &str) -> Value {
    sim.node(i)
        .get(key.as_bytes())
        .map_or(Value::Absent, |s| s.value())
}

fn int(i: i64) -> Scalar {
    Scalar::Int(i)
}

use Consistency::{GlobalQuorum as GQ, LocalOne as L1, LocalQuorum as LQ};

#[test]
fn replicas_converge_after_a_partition_heals() {
    let mut sim = Sim::grid(3, 1, 7, CLEAN, |_| {});
    for i in 0..3 {
        sim.isolate(&[i as u64]);
    }
    for i in 0..3 {
        for n in 0..5 {
            sim.call(i, "hits", Op::Incr(1), L1, None);
            sim.call(i, "cart", Op::SetAdd(int((i * 10 + n) as i64)), L1, None);
        }
        sim.call(
            i,
            "name",
            Op::Put(Scalar::from(format!("r{i}").as_str())),
            L1,
            None,
        );
    }
    sim.run_for(500);
    assert!(!sim.converged());
    sim.heal();
    sim.settle(5_000);
    for i in 0..3 {
        assert_eq!(value(&sim, i, "hits"), Value::Counter(15));
        let Value::Set(cart) = value(&sim, i, "cart") else {
            panic!("set expected")
        };
        assert_eq!(cart.len(), 15);
    }
    // One register winner everywhere.
    assert_eq!(value(&sim, 0, "name"), value(&sim, 2, "name"));
}

#[test]
fn apply_is_idempotent_under_duplication_loss_and_reordering() {
    let net = Net {
        loss_pm: 100,
        dup_pm: 300,
        latency_min_ms: 1,
        latency_max_ms: 40,
    };
    let mut sim = Sim::grid(3, 1, 11, net, |c| c.batch_entries_max = 4);
    for n in 0..60 {
        sim.request(n % 3, "c", Op::Incr(1), L1, None);
        sim.run_for(3);
    }
    sim.net = CLEAN;
    sim.settle(20_000);
    for i in 0..3 {
        assert_eq!(value(&sim, i, "c"), Value::Counter(60));
    }
    let duplicates: u64 = (0..3)
        .map(|i| sim.node(i).stats().counters.entries_duplicate)
        .sum();
    assert!(duplicates > 0, "duplicates were delivered");
    let retransmits: u64 = (0..3)
        .map(|i| sim.node(i).stats().counters.retransmits)
        .sum();
    assert!(retransmits > 0, "losses were repaired by retransmission");
}

#[test]
fn the_apply_without_dedup_bug_over_counts_under_duplication() {
    let net = Net {
        loss_pm: 0,
        dup_pm: 500,
        latency_min_ms: 1,
        latency_max_ms: 20,
    };
    let mut sim = Sim::grid(3, 1, 3, net, |c| c.bug = Some(Bug::ApplyWithoutDedup));
    for n in 0..30 {
        sim.request(n % 3, "c", Op::Incr(1), L1, None);
        sim.run_for(2);
    }
    sim.run_for(3_000);
    let Value::Counter(v) = value(&sim, 0, "c") else {
        panic!("counter expected")
    };
    assert!(v > 30, "the bug must be observable: counter {v}");
}

#[test]
fn local_quorum_acks_with_a_region_majority_and_fails_definitely_without_one() {
    let mut sim = Sim::grid(1, 3, 5, CLEAN, |_| {});
    let r = sim.call(0, "k", Op::Incr(1), LQ, None);
    assert_eq!(ok(&r).0, &Value::Counter(1));
    // One peer cut: a majority (2 of 3) still holds the write.
    sim.isolate(&[2]);
    let r = sim.call(0, "k", Op::Incr(1), LQ, None);
    assert!(r.result.is_ok());
    // Both peers cut: the level cannot be met; a definite error by the deadline.
    sim.isolate(&[1]);
    let id = sim.request(0, "k", Op::Incr(1), LQ, None);
    let r = sim.wait(id, 10_000).expect("answered by the deadline");
    assert_eq!(
        r.result,
        Err(ClientError::Unavailable {
            level: Consistency::LocalQuorum
        })
    );
    assert_eq!(sim.node(0).stats().counters.quorum_timeouts, 1);
    // Local-quorum reads need answers from a majority too.
    let r = sim.call(0, "k", Op::Get, LQ, None);
    assert!(matches!(r.result, Err(ClientError::Unavailable { .. })));
    sim.heal();
    let r = sim.call(1, "k", Op::Get, LQ, None);
    assert_eq!(ok(&r).0, &Value::Counter(3));
}

#[test]
fn global_quorum_needs_a_majority_of_regions() {
    let mut sim = Sim::grid(3, 2, 9, CLEAN, |_| {});
    let r = sim.call(0, "k", Op::Put(int(1)), GQ, None);
    assert_eq!(ok(&r).0, &Value::Written);
    // Region 0 alone (replicas 0 and 1) is not a majority of regions.
    sim.isolate(&[0, 1]);
    let r = sim.call(0, "k", Op::Put(int(2)), GQ, None);
    assert_eq!(
        r.result,
        Err(ClientError::Unavailable {
            level: Consistency::GlobalQuorum
        })
    );
    let r = sim.call(1, "k", Op::Get, GQ, None);
    assert!(matches!(r.result, Err(ClientError::Unavailable { .. })));
    // The majority side goes on.
    let r = sim.call(2, "k", Op::Put(int(3)), GQ, None);
    assert!(r.result.is_ok());
    let r = sim.call(5, "k", Op::Get, GQ, None);
    assert_eq!(ok(&r).0, &Value::Register(int(3)));
}

#[test]
fn a_global_quorum_read_sees_a_completed_global_quorum_write_through_any_quorum() {
    // Three regions of one replica. Replica 0 writes while cut from replica 2, so only 0 and 1
    // hold the write; replica 2 then reads while still cut from 0: its quorum {1, 2} meets the
    // write's quorum {0, 1} in replica 1.
    let mut sim = Sim::grid(3, 1, 13, CLEAN, |c| c.ae_interval_ms = 1_000_000);
    sim.cut_link(0, 2);
    let r = sim.call(0, "reg", Op::Put(int(42)), GQ, None);
    assert!(r.result.is_ok());
    assert_eq!(
        value(&sim, 2, "reg"),
        Value::Absent,
        "2 has not received it"
    );
    let r = sim.call(2, "reg", Op::Get, GQ, None);
    assert_eq!(ok(&r).0, &Value::Register(int(42)));
    // A later global-quorum write from 2 wins over 42 everywhere.
    let r = sim.call(2, "reg", Op::Put(int(43)), GQ, None);
    assert!(r.result.is_ok());
    let r = sim.call(1, "reg", Op::Get, GQ, None);
    assert_eq!(ok(&r).0, &Value::Register(int(43)));
}

#[test]
fn a_session_token_makes_a_read_wait_until_covered_never_stale() {
    let mut sim = Sim::grid(2, 1, 17, CLEAN, |c| c.session_wait_ms = 2_000);
    sim.isolate(&[0]);
    let r = sim.call(0, "k", Op::Put(int(1)), L1, None);
    let token = ok(&r).1.clone();
    // Replica 1 has not seen the write: the read waits instead of answering stale.
    let id = sim.request(1, "k", Op::Get, L1, Some(token.clone()));
    sim.run_for(500);
    assert!(
        !sim.replies.contains_key(&id),
        "no stale answer while waiting"
    );
    sim.heal();
    let r = sim.wait(id, 3_000).expect("answered once covered");
    assert_eq!(ok(&r).0, &Value::Register(int(1)));
    assert_eq!(sim.node(1).stats().counters.session_waits, 1);
}

#[test]
fn a_session_token_never_covered_gives_a_definite_error() {
    let mut sim = Sim::grid(2, 1, 19, CLEAN, |c| c.session_wait_ms = 300);
    sim.isolate(&[0]);
    let r = sim.call(0, "k", Op::Put(int(1)), L1, None);
    let token = ok(&r).1.clone();
    let r = sim.call(1, "k", Op::Get, L1, Some(token));
    assert_eq!(r.result, Err(ClientError::SessionTimeout));
    assert_eq!(sim.node(1).stats().counters.session_timeouts, 1);
}

#[test]
fn the_read_ignores_token_bug_reads_stale() {
    let mut sim = Sim::grid(2, 1, 19, CLEAN, |c| c.bug = Some(Bug::ReadIgnoresToken));
    sim.isolate(&[0]);
    let r = sim.call(0, "k", Op::Put(int(1)), L1, None);
    let token = ok(&r).1.clone();
    let r = sim.call(1, "k", Op::Get, L1, Some(token));
    assert_eq!(ok(&r).0, &Value::Absent, "the bug must be observable");
}

#[test]
fn read_your_writes_and_monotonic_reads_hold_when_the_client_moves_regions() {
    let net = Net {
        loss_pm: 0,
        dup_pm: 0,
        latency_min_ms: 20,
        latency_max_ms: 80,
    };
    let mut sim = Sim::grid(3, 2, 23, net, |_| {});
    let mut token = None;
    let mut last_seen = 0i128;
    let mut state = 7u64;
    for step in 0..40 {
        let at = (splitmix(&mut state) % 6) as usize;
        let r = if step % 2 == 0 {
            sim.call(at, "views", Op::Incr(1), L1, token.clone())
        } else {
            sim.call(at, "views", Op::Get, L1, token.clone())
        };
        let (v, t) = ok(&r);
        let Value::Counter(n) = v else {
            panic!("counter expected")
        };
        // Monotonic reads and read-your-writes: never below what the session saw or did.
        assert!(
            *n >= last_seen,
            "step {step}: read {n} after seeing {last_seen}"
        );
        if step % 2 == 0 {
            assert!(
                *n > last_seen,
                "step {step}: the increment itself is visible"
            );
        }
        last_seen = *n;
        token = Some(t.clone());
        sim.run_for(1);
    }
}

#[test]
fn writes_follow_reads_orders_a_moved_write_after_what_the_session_read() {
    let mut sim = Sim::grid(3, 1, 29, CLEAN, |_| {});
    // A register written at 0; the session reads it at 0, then writes at 2 right away.
    sim.call(0, "r", Op::Put(int(1)), L1, None);
    let r = sim.call(0, "r", Op::Get, L1, None);
    let token = ok(&r).1.clone();
    let r = sim.call(2, "r", Op::Put(int(2)), L1, Some(token));
    assert!(r.result.is_ok());
    sim.settle(5_000);
    for i in 0..3 {
        assert_eq!(value(&sim, i, "r"), Value::Register(int(2)));
    }
}

/// The elements of the set `key` at replica `i` (empty when absent).
fn set_at(sim: &Sim, i: usize, key: &str) -> BTreeSet<i64> {
    match value(sim, i, key) {
        Value::Absent => BTreeSet::new(),
        Value::Set(v) => v
            .into_iter()
            .map(|x| match x {
                Scalar::Int(n) => n,
                other => panic!("int expected, got {other:?}"),
            })
            .collect(),
        other => panic!("set expected, got {other:?}"),
    }
}

/// A session adds e1 at A, then e2 (and an increment of another key) at B carrying A's token.
/// C hears from B before it hears from A: it must not show e2 — nor the other key's increment —
/// to a reader without the writer's token until it holds e1. Before causal delivery C applied
/// B's entries on arrival, and such a read showed {e2} (monotonic writes and writes-follow-reads
/// broken for every other client).
#[test]
fn a_write_is_not_visible_before_the_writes_its_session_depended_on() {
    let (a, b, c) = (0, 1, 2);
    let mut sim = Sim::grid(3, 1, 71, CLEAN, |c| c.ae_interval_ms = 1_000_000);
    // A's stream to C is cut, so C can learn of e1 only later.
    sim.cut_link(a as u64, c as u64);
    let r = sim.call(a, "s", Op::SetAdd(int(1)), L1, None);
    let t1 = ok(&r).1.clone();
    // B waits until it covers A:1, then applies e2 as its entry B:1, and the increment as B:2.
    let r = sim.call(b, "s", Op::SetAdd(int(2)), L1, Some(t1));
    let t2 = ok(&r).1.clone();
    let r = sim.call(b, "other", Op::Incr(1), L1, Some(t2));
    assert!(r.result.is_ok());
    sim.run_for(100);
    // A reader without a token at C sees neither e2 nor the increment.
    let r = sim.call(c, "s", Op::Get, L1, None);
    assert_eq!(ok(&r).0, &Value::Absent, "e2 shown before e1");
    let r = sim.call(c, "other", Op::Get, L1, None);
    assert_eq!(ok(&r).0, &Value::Absent, "B:2 shown before A:1");
    // Because B's entries arrived and wait, parked, for A:1.
    assert_eq!(
        sim.node(c).frontier().get(ReplicaId(b as u64)),
        0,
        "B's entries wait at C for A:1"
    );
    assert_eq!(sim.node(c).stats().parked, 2, "B:1 and B:2 are parked");
    assert!(sim.node(c).stats().counters.entries_parked >= 2);
    // Once A's stream gets through (go-back-N re-sends it), C applies A:1 and then B's parked
    // entries, in causal order.
    sim.heal();
    sim.settle(5_000);
    assert_eq!(set_at(&sim, c, "s"), BTreeSet::from([1, 2]));
    assert_eq!(value(&sim, c, "other"), Value::Counter(1));
    assert_eq!(sim.node(c).stats().parked, 0);
}

/// Through relays: outside the full mesh most entries are forwarded along their origin's
/// spanning tree, and the trees of two origins differ, so a write and the one it depends on reach
/// a replica over different paths and links. Whatever the loss, duplication and reordering, no
/// replica ever shows one of a session's writes before its earlier ones, and everything converges
/// (no replica waits forever on a dependency).
#[test]
fn causal_delivery_holds_through_forwarding_under_loss_and_reordering() {
    for topology in [
        Topology::Ring,
        Topology::HubSpoke {
            hub: converge_core::replica::RegionId(0),
        },
        Topology::Hierarchical,
    ] {
        let net = Net {
            loss_pm: 150,
            dup_pm: 100,
            latency_min_ms: 1,
            latency_max_ms: 80,
        };
        let mut sim = Sim::grid(4, 2, 73, net, |c| {
            c.topology = topology;
            c.ae_interval_ms = 1_000_000;
            c.retransmit_ms = 50;
            c.session_wait_ms = 10_000;
        });
        // One session writes 1, 2, 3, ... hopping between replicas; after each write every
        // replica is checked: it shows a prefix of the session's writes.
        let mut token = None;
        let mut state = 5u64;
        for n in 1..=24i64 {
            let at = (splitmix(&mut state) % 8) as usize;
            let r = sim.call(at, "s", Op::SetAdd(int(n)), L1, token.clone());
            token = Some(ok(&r).1.clone());
            for _ in 0..4 {
                sim.run_for(7);
                for i in 0..8 {
                    let shown = set_at(&sim, i, "s");
                    let prefix: BTreeSet<i64> = (1..=shown.len() as i64).collect();
                    assert_eq!(shown, prefix, "{topology:?}: replica {i} shows a gap");
                }
            }
        }
        sim.net = CLEAN;
        sim.settle(20_000);
        assert_eq!(set_at(&sim, 0, "s").len(), 24, "{topology:?}");
    }
}

/// An entry names only the dependencies its origin's earlier entries did not: none without a
/// token, the token's new part otherwise, and nothing that only repeats what was sent. The
/// dependencies are part of the durable image, and recovery refuses an entry whose dependencies
/// the replica does not hold.
#[test]
fn entries_name_only_dependencies_not_already_implied() {
    let mut sim = Sim::grid(3, 1, 79, CLEAN, |c| c.ae_interval_ms = 1_000_000);
    // Keep B's entries in its log: C is cut from B and never acknowledges them.
    sim.cut_link(1, 2);
    let r = sim.call(0, "k", Op::Incr(1), L1, None);
    let t = ok(&r).1.clone();
    let r = sim.call(1, "k", Op::Incr(1), L1, Some(t.clone()));
    let t = ok(&r).1.clone();
    sim.call(1, "k", Op::Incr(1), L1, Some(t));
    sim.call(1, "k", Op::Incr(1), L1, None);
    let r = sim.call(0, "k", Op::Incr(1), L1, None);
    let t0 = ok(&r).1.clone();
    sim.run_for(50);
    sim.call(1, "k", Op::Incr(1), L1, Some(t0));
    let log: Vec<(u64, Vec<(ReplicaId, u64)>)> = sim
        .node(1)
        .durable()
        .oplog
        .iter()
        .filter(|e| e.origin == ReplicaId(1))
        .map(|e| (e.seq, e.deps.iter().collect()))
        .collect();
    let a = ReplicaId(0);
    assert_eq!(
        log,
        vec![
            (1, vec![(a, 1)]),
            // B:1 already named A:1, and B's own writes are implied.
            (2, vec![]),
            (3, vec![]),
            // A second write of A's, newly observed by the session.
            (4, vec![(a, 2)]),
        ]
    );
    // The entries keep their dependencies through a crash and recovery.
    let mut durable = sim.node(1).durable();
    assert_eq!(
        Replica::recover(sim.configs[1].clone(), durable.clone(), sim.now)
            .expect("recovers")
            .durable()
            .oplog,
        durable.oplog
    );
    // An image whose retained entry depends on something its frontier does not hold is refused.
    let e = durable
        .oplog
        .iter_mut()
        .find(|e| e.origin == ReplicaId(1))
        .expect("retained");
    e.deps.raise(ReplicaId(2), 1);
    assert_eq!(
        Replica::recover(sim.configs[1].clone(), durable, sim.now).err(),
        Some(converge_core::replica::RecoverError::Inconsistent(
            "oplog entry depends on entries not held"
        ))
    );
}

#[test]
fn a_peer_behind_the_truncation_point_is_repaired_by_anti_entropy() {
    let mut sim = Sim::grid(3, 1, 31, CLEAN, |c| {
        c.oplog_entries_max = 8;
        c.ae_interval_ms = 200;
    });
    sim.isolate(&[2]);
    let mut token = None;
    for n in 0..50 {
        let r = sim.call(0, &format!("k{}", n % 20), Op::Incr(1), L1, None);
        token = Some(ok(&r).1.clone());
    }
    sim.run_for(100);
    let s0 = sim.node(0).stats();
    assert!(
        s0.counters.truncated_cap > 0,
        "the cap truncated entries 2 needs"
    );
    assert!(s0.oplog_len <= 8);
    sim.heal();
    sim.settle(10_000);
    let s2 = sim.node(2).stats().counters;
    assert!(s2.ae_keys_repaired > 0, "anti-entropy shipped the keys");
    assert!(
        s2.ae_frontier_claims > 0,
        "and the round claimed the frontier"
    );
    assert_eq!(sim.node(2).frontier().get(ReplicaId(0)), 50);
    // The session token from replica 0 is now covered at replica 2.
    let r = sim.call(2, "k0", Op::Get, L1, token);
    assert_eq!(ok(&r).0, &Value::Counter(3));
    // Once 2 acknowledged past the gap, 0 truncated what everyone has.
    assert!(
        sim.node(0)
            .stats()
            .peer_lag
            .iter()
            .all(|&(_, lag)| lag == 0)
    );
}

#[test]
fn the_ae_skips_subtree_bug_claims_a_frontier_it_does_not_hold() {
    let mut sim = Sim::grid(2, 1, 37, CLEAN, |c| {
        c.oplog_entries_max = 4;
        c.ae_interval_ms = 200;
        c.bug = Some(Bug::AeSkipsSubtree);
    });
    sim.isolate(&[1]);
    let mut token = None;
    for n in 0..20 {
        let r = sim.call(0, &format!("k{n}"), Op::Incr(1), L1, None);
        token = Some(ok(&r).1.clone());
    }
    sim.heal();
    sim.run_for(2_000);
    // Replica 1 claims 0's frontier, so the token is "covered" — and the read is stale.
    let r = sim.call(1, "k0", Op::Get, L1, token);
    assert_eq!(ok(&r).0, &Value::Absent, "the bug must be observable");
}

#[test]
fn every_topology_delivers_every_write_to_every_replica() {
    for topology in [
        Topology::FullMesh,
        Topology::HubSpoke {
            hub: converge_core::replica::RegionId(1),
        },
        Topology::Ring,
        Topology::Hierarchical,
    ] {
        let mut sim = Sim::grid(4, 2, 41, CLEAN, |c| {
            c.topology = topology;
            c.ae_interval_ms = 1_000_000;
        });
        for i in 0..8 {
            sim.call(i, "all", Op::SetAdd(int(i as i64)), L1, None);
        }
        sim.settle(5_000);
        for i in 0..8 {
            assert_eq!(
                value(&sim, i, "all"),
                Value::Set((0..8).map(int).collect()),
                "{topology:?} at replica {i}"
            );
        }
        // Quorum levels work through relays too.
        let r = sim.call(7, "g", Op::Put(int(5)), GQ, None);
        assert!(r.result.is_ok(), "{topology:?}: {:?}", r.result);
        let r = sim.call(2, "g", Op::Get, GQ, None);
        assert_eq!(ok(&r).0, &Value::Register(int(5)), "{topology:?}");
        let r = sim.call(3, "g2", Op::Incr(1), LQ, None);
        assert!(r.result.is_ok(), "{topology:?}");
    }
}

#[test]
fn a_replica_recovered_from_durable_state_loses_no_acknowledged_write() {
    let net = Net {
        loss_pm: 50,
        dup_pm: 50,
        latency_min_ms: 1,
        latency_max_ms: 30,
    };
    let mut sim = Sim::grid(3, 1, 43, net, |c| c.track_durable = true);
    let mut acked: BTreeMap<String, i128> = BTreeMap::new();
    let mut state = 99u64;
    for step in 0..200 {
        let i = (splitmix(&mut state) % 3) as usize;
        if sim.nodes[i].is_none() {
            sim.restart(i);
            continue;
        }
        let key = format!("c{}", splitmix(&mut state) % 5);
        let level = if step % 4 == 0 { LQ } else { L1 };
        let id = sim.request(i, &key, Op::Incr(1), level, None);
        if let Some(r) = sim.wait(id, 3_000)
            && r.result.is_ok()
        {
            *acked.entry(key).or_default() += 1;
        }
        if splitmix(&mut state).is_multiple_of(10) {
            sim.crash(i);
        }
    }
    for i in 0..3 {
        if sim.nodes[i].is_none() {
            sim.restart(i);
        }
    }
    sim.net = CLEAN;
    sim.settle(20_000);
    for (key, n) in &acked {
        for i in 0..3 {
            let Value::Counter(v) = value(&sim, i, key) else {
                panic!("counter expected")
            };
            assert!(
                v >= *n,
                "replica {i} lost acknowledged increments of {key}: {v} < {n}"
            );
        }
    }
    // And the recovered replicas' durable images match their live state.
    for i in 0..3 {
        let live = sim.node(i).durable();
        assert_eq!(live.keys, sim.disks[i].keys, "replica {i} keys");
        assert_eq!(live.meta, sim.disks[i].meta, "replica {i} meta");
        assert_eq!(live.oplog, sim.disks[i].oplog, "replica {i} oplog");
    }
}

#[test]
fn wrong_types_are_refused_and_concurrent_type_conflicts_resolve_everywhere() {
    let mut sim = Sim::grid(2, 1, 47, CLEAN, |_| {});
    sim.call(0, "k", Op::Incr(1), L1, None);
    let r = sim.call(0, "k", Op::SetAdd(int(1)), L1, None);
    assert_eq!(
        r.result,
        Err(ClientError::WrongType {
            key: KeyKind::Counter,
            op: KeyKind::Set
        })
    );
    // Concurrent creation with two types: the later kind wins at every replica.
    sim.isolate(&[0]);
    sim.call(0, "t", Op::Incr(1), L1, None);
    sim.call(1, "t", Op::Put(int(9)), L1, None);
    sim.heal();
    sim.settle(5_000);
    assert_eq!(value(&sim, 0, "t"), Value::Register(int(9)));
    assert_eq!(value(&sim, 1, "t"), Value::Register(int(9)));
}

#[test]
fn multi_value_writes_supersede_what_the_client_read_even_elsewhere() {
    let mut sim = Sim::grid(2, 1, 53, CLEAN, |_| {});
    sim.isolate(&[0]);
    sim.call(
        0,
        "m",
        Op::MvPut {
            value: int(1),
            seen: Default::default(),
        },
        L1,
        None,
    );
    sim.call(
        1,
        "m",
        Op::MvPut {
            value: int(2),
            seen: Default::default(),
        },
        L1,
        None,
    );
    sim.heal();
    sim.settle(5_000);
    let r = sim.call(0, "m", Op::Get, L1, None);
    let (Value::Siblings { values, context }, token) = ok(&r) else {
        panic!("siblings expected")
    };
    assert_eq!(values, &vec![int(1), int(2)]);
    let seen = context.clone();
    let r = sim.call(
        1,
        "m",
        Op::MvPut {
            value: int(3),
            seen,
        },
        L1,
        Some(token.clone()),
    );
    assert!(r.result.is_ok());
    sim.settle(5_000);
    for i in 0..2 {
        let Value::Siblings { values, .. } = value(&sim, i, "m") else {
            panic!("siblings expected")
        };
        assert_eq!(values, vec![int(3)]);
    }
}

#[test]
fn overload_and_bad_tokens_are_typed_errors() {
    let mut sim = Sim::grid(3, 1, 59, CLEAN, |c| c.pending_max = 2);
    sim.isolate(&[0]);
    let a = sim.request(0, "k", Op::Incr(1), GQ, None);
    let b = sim.request(0, "k", Op::Incr(1), GQ, None);
    let c = sim.request(0, "k", Op::Incr(1), GQ, None);
    assert_eq!(sim.replies[&c].result, Err(ClientError::Overloaded));
    assert!(sim.wait(a, 5_000).is_some_and(|r| r.result.is_err()));
    assert!(sim.wait(b, 5_000).is_some_and(|r| r.result.is_err()));
    let bogus = SessionToken::from_frontier([(ReplicaId(77), 1)].into_iter().collect());
    let r = sim.call(0, "k", Op::Get, L1, Some(bogus));
    assert_eq!(r.result, Err(ClientError::BadToken));
}

#[test]
fn bad_peer_input_is_counted_and_changes_nothing() {
    let mut sim = Sim::grid(2, 1, 61, CLEAN, |_| {});
    sim.call(0, "k", Op::Incr(1), L1, None);
    sim.settle(1_000);
    let before = sim.node(1).clone();
    let node = sim.nodes[1].as_mut().expect("up");
    node.handle_message(10_000, ReplicaId(0), &[0xC7, 1, 99]);
    node.handle_message(10_000, ReplicaId(0), b"");
    node.handle_message(
        10_000,
        ReplicaId(0),
        &[0xC7, 1, 1, 1, 200, 200, 200, 200, 200],
    );
    // Decodes, but claims replica 1's own write number 9, never issued.
    let forged = converge_core::replica::PeerMsg::Ack(converge_core::replica::Ack {
        frontier: [(ReplicaId(1), 9)].into_iter().collect(),
        table: vec![],
    });
    node.handle_message(10_000, ReplicaId(0), &forged.encode());
    // From a replica outside the cluster.
    node.handle_message(10_000, ReplicaId(5), &forged.encode());
    let c = node.stats().counters;
    assert_eq!(c.decode_errors, 3);
    assert_eq!(c.invalid_messages, 2);
    assert_eq!(node.root_hash(), before.root_hash());
    assert_eq!(node.frontier(), before.frontier());
}

#[test]
fn time_going_backwards_is_clamped_and_counted() {
    let config = Config::grid(0, 1, 1);
    let mut r = Replica::new(config, 1_000).expect("valid");
    r.handle_request(
        500,
        Request {
            id: 1,
            key: b"k".as_slice().into(),
            op: Op::Put(int(1)),
            consistency: L1,
            token: None,
        },
    );
    assert_eq!(r.now_ms(), 1_000);
    assert_eq!(r.stats().counters.time_regressions, 1);
    assert!(r.poll_reply().is_some_and(|x| x.result.is_ok()));
}

#[test]
fn same_inputs_give_the_same_outputs() {
    let run = || {
        let net = Net {
            loss_pm: 100,
            dup_pm: 100,
            latency_min_ms: 1,
            latency_max_ms: 50,
        };
        let mut sim = Sim::grid(3, 1, 67, net, |_| {});
        for n in 0..40u64 {
            sim.request(
                (n % 3) as usize,
                &format!("k{}", n % 7),
                Op::SetAdd(int(n as i64)),
                L1,
                None,
            );
            sim.run_for(7);
        }
        sim.run_for(2_000);
        (sim.roots(), sim.delivered, sim.nodes.clone())
    };
    assert_eq!(run(), run());
}

/// One step of a random schedule.
#[derive(Clone, Debug)]
enum Step {
    Write { at: usize, key: u8, op: u8, arg: i8 },
    Run(u16),
    Partition(u8),
    Heal,
    Crash(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0usize..4, 0u8..4, 0u8..5, any::<i8>())
            .prop_map(|(at, key, op, arg)| Step::Write { at, key, op, arg }),
        3 => (1u16..200).prop_map(Step::Run),
        1 => any::<u8>().prop_map(Step::Partition),
        1 => Just(Step::Heal),
        1 => (0usize..4).prop_map(Step::Crash),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever the interleaving, faults and crashes, once the network heals every replica ends
    /// with the same keyspace and frontier.
    #[test]
    fn random_schedules_converge(
        seed in any::<u64>(),
        topology in 0u8..4,
        steps in proptest::collection::vec(step(), 1..60),
    ) {
        let topology = match topology {
            0 => Topology::FullMesh,
            1 => Topology::HubSpoke { hub: converge_core::replica::RegionId(0) },
            2 => Topology::Ring,
            _ => Topology::Hierarchical,
        };
        let net = Net { loss_pm: 100, dup_pm: 100, latency_min_ms: 1, latency_max_ms: 40 };
        let mut sim = Sim::grid(2, 2, seed, net, |c| {
            c.topology = topology;
            c.track_durable = true;
            c.oplog_entries_max = 16;
            c.ae_interval_ms = 300;
        });
        for s in steps {
            match s {
                Step::Write { at, key, op, arg } => {
                    if sim.nodes[at].is_none() {
                        sim.restart(at);
                    }
                    // Each key has one type, so every write is accepted.
                    let (name, op) = match (key, op) {
                        (0, _) => ("c", Op::Incr(u64::from(arg.unsigned_abs()))),
                        (1, 0..=2) => ("s", Op::SetAdd(int(i64::from(arg % 8)))),
                        (1, _) => ("s", Op::SetRemove(int(i64::from(arg % 8)))),
                        (2, _) => ("l", Op::Put(int(i64::from(arg)))),
                        _ => ("p", Op::PnAdd(i64::from(arg))),
                    };
                    sim.request(at, name, op, L1, None);
                }
                Step::Run(ms) => sim.run_for(u64::from(ms)),
                Step::Partition(mask) => {
                    let group: Vec<u64> = (0..4).filter(|i| mask & (1 << i) != 0).collect();
                    sim.isolate(&group);
                }
                Step::Heal => sim.heal(),
                Step::Crash(i) => sim.crash(i),
            }
        }
        for i in 0..4 {
            if sim.nodes[i].is_none() {
                sim.restart(i);
            }
        }
        sim.heal();
        sim.net = CLEAN;
        sim.settle(30_000);
    }
}

/// What a client does next in the session and register schedules.
#[derive(Clone, Debug)]
enum Act {
    /// Client `c` increments (or reads) key `k` at replica `at`.
    Session {
        c: usize,
        at: usize,
        k: u8,
        read: bool,
    },
    Run(u16),
    Partition(u8),
    Heal,
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        8 => (0usize..3, 0usize..6, 0u8..3, any::<bool>())
            .prop_map(|(c, at, k, read)| Act::Session { c, at, k, read }),
        2 => (1u16..300).prop_map(Act::Run),
        1 => any::<u8>().prop_map(Act::Partition),
        1 => Just(Act::Heal),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Three clients wander between six replicas (three regions of two) carrying their tokens,
    /// under loss, duplication, partitions, a tiny oplog (so anti-entropy claims frontiers) and
    /// every topology. A successful read never shows less than the session saw or wrote
    /// (monotonic reads, read-your-writes); failures are only the definite `SessionTimeout`.
    #[test]
    fn sessions_never_read_stale_under_faults(
        seed in any::<u64>(),
        topology in 0u8..4,
        acts in proptest::collection::vec(act(), 1..80),
    ) {
        let topology = match topology {
            0 => Topology::FullMesh,
            1 => Topology::HubSpoke { hub: converge_core::replica::RegionId(2) },
            2 => Topology::Ring,
            _ => Topology::Hierarchical,
        };
        let net = Net { loss_pm: 100, dup_pm: 100, latency_min_ms: 1, latency_max_ms: 60 };
        let mut sim = Sim::grid(3, 2, seed, net, |c| {
            c.topology = topology;
            c.oplog_entries_max = 4;
            c.ae_interval_ms = 100;
            c.session_wait_ms = 400;
        });
        let mut tokens: Vec<Option<SessionToken>> = vec![None; 3];
        let mut seen: Vec<BTreeMap<u8, i128>> = vec![BTreeMap::new(); 3];
        for a in acts {
            match a {
                Act::Session { c, at, k, read } => {
                    let op = if read { Op::Get } else { Op::Incr(1) };
                    let r = sim.call(at, &format!("k{k}"), op, L1, tokens[c].clone());
                    match r.result {
                        Ok(done) => {
                            let n = match done.value {
                                Value::Counter(n) => n,
                                Value::Absent => 0,
                                other => panic!("unexpected {other:?}"),
                            };
                            let last = seen[c].get(&k).copied().unwrap_or(0);
                            prop_assert!(n >= last, "client {c} read {n} at {at} after seeing {last}");
                            if !read {
                                prop_assert!(n > last, "client {c}'s increment not visible");
                            }
                            seen[c].insert(k, n);
                            tokens[c] = Some(done.token);
                        }
                        Err(e) => prop_assert_eq!(e, ClientError::SessionTimeout),
                    }
                }
                Act::Run(ms) => sim.run_for(u64::from(ms)),
                Act::Partition(mask) => {
                    let group: Vec<u64> = (0..6).filter(|i| mask & (1 << i) != 0).collect();
                    sim.isolate(&group);
                }
                Act::Heal => sim.heal(),
            }
        }
        sim.heal();
        sim.net = CLEAN;
        sim.settle(30_000);
    }

    /// One client, one register, global-quorum reads and writes at random replicas while a
    /// random region is cut off. A read never returns a value older than the last acknowledged
    /// write: it returns that write, or one of the writes that failed with `Unavailable` (which
    /// may take effect later, at any time, as a write whose reply never came may), or nothing
    /// before any write was acknowledged.
    #[test]
    fn global_quorum_registers_never_read_behind_an_acknowledged_write(
        seed in any::<u64>(),
        ops in proptest::collection::vec((0usize..6, any::<bool>(), any::<u8>()), 1..40),
    ) {
        let net = Net { loss_pm: 50, dup_pm: 50, latency_min_ms: 1, latency_max_ms: 30 };
        let mut sim = Sim::grid(3, 2, seed, net, |c| c.quorum_timeout_ms = 500);
        let mut acked: Option<i64> = None;
        let mut failed: BTreeSet<i64> = BTreeSet::new();
        let mut next = 0i64;
        let mut completed = 0;
        let mut on_majority_side = 0;
        for (at, read, cut) in ops {
            sim.heal();
            // Cutting one region off leaves a majority of regions; cutting none is fine too.
            let mut cut_region = None;
            if cut % 2 == 0 {
                let region = u64::from(cut / 2 % 3);
                sim.isolate(&[region * 2, region * 2 + 1]);
                cut_region = Some(region as usize);
            }
            if cut_region != Some(at / 2) {
                on_majority_side += 1;
            }
            if read {
                let r = sim.call(at, "reg", Op::Get, GQ, None);
                if let Ok(done) = r.result {
                    completed += 1;
                    match done.value {
                        Value::Absent => prop_assert!(acked.is_none(), "read nothing after {acked:?}"),
                        Value::Register(Scalar::Int(v)) => prop_assert!(
                            Some(v) == acked || failed.contains(&v),
                            "read {v}; last acknowledged {acked:?}, failed {failed:?}"
                        ),
                        other => panic!("unexpected {other:?}"),
                    }
                }
            } else {
                next += 1;
                let r = sim.call(at, "reg", Op::Put(int(next)), GQ, None);
                if r.result.is_ok() {
                    completed += 1;
                    acked = Some(next);
                } else {
                    failed.insert(next);
                }
            }
        }
        // Not vacuous: operations issued on the majority side complete despite loss (queries
        // and batches are retransmitted), so reads are checked against acknowledged writes.
        prop_assert!(completed >= on_majority_side / 2, "{completed} of {on_majority_side} completed");
    }
}

/// What a client of the set-session schedule does next.
#[derive(Clone, Debug)]
enum SetAct {
    /// Client `c` adds its next element to (or reads) the set at replica `at`, at a level.
    Session {
        c: usize,
        at: usize,
        read: bool,
        level: u8,
    },
    Run(u16),
    Partition(u8),
    Heal,
}

fn set_act() -> impl Strategy<Value = SetAct> {
    prop_oneof![
        8 => (0usize..3, 0usize..6, any::<bool>(), 0u8..6)
            .prop_map(|(c, at, read, level)| SetAct::Session { c, at, read, level }),
        2 => (1u16..300).prop_map(SetAct::Run),
        1 => any::<u8>().prop_map(SetAct::Partition),
        1 => Just(SetAct::Heal),
    ]
}

/// The four session guarantees as the conformance harness judges them on a grow-only set of
/// unique elements, over every read by anyone.
#[derive(Default)]
struct SessionJudge {
    /// Per client: its acknowledged adds, everything its reads returned, its last read.
    adds: Vec<BTreeSet<i64>>,
    read: Vec<BTreeSet<i64>>,
    last: Vec<BTreeSet<i64>>,
    /// Per element: what its client had added and read before adding it.
    before: BTreeMap<i64, BTreeSet<i64>>,
}

impl SessionJudge {
    fn new(clients: usize) -> Self {
        SessionJudge {
            adds: vec![BTreeSet::new(); clients],
            read: vec![BTreeSet::new(); clients],
            last: vec![BTreeSet::new(); clients],
            before: BTreeMap::new(),
        }
    }

    fn adding(&mut self, c: usize, x: i64) {
        let seen = self.adds[c].union(&self.read[c]).copied().collect();
        self.before.insert(x, seen);
    }

    /// Monotonic writes and writes-follow-reads: a set showing an add shows what its client
    /// had added and read before it.
    fn shown(&self, shown: &BTreeSet<i64>) -> Result<(), String> {
        for x in shown {
            if let Some(before) = self.before.get(x)
                && !before.is_subset(shown)
            {
                let missing: Vec<_> = before.difference(shown).collect();
                return Err(format!("shows {x} but not {missing:?}, observed before it"));
            }
        }
        Ok(())
    }

    /// Read-your-writes and monotonic reads for client `c`'s read.
    fn client_read(&mut self, c: usize, shown: BTreeSet<i64>) -> Result<(), String> {
        self.shown(&shown)?;
        if !self.adds[c].is_subset(&shown) || !self.last[c].is_subset(&shown) {
            return Err(format!("client {c} read {shown:?}, older than its session"));
        }
        self.read[c].extend(shown.iter().copied());
        self.last[c] = shown;
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// The session workload, judged on every read: three clients add unique elements to one set
    /// and read it at random replicas and levels, carrying their tokens, and after every step
    /// every replica's state is read as a token-less client would — under loss, duplication,
    /// partitions, a tiny oplog (so anti-entropy ships keys and claims frontiers), global-quorum
    /// reads that write back, and every topology. No read shows an add without its client's
    /// earlier adds and reads (causal delivery, and per-key closure of state joined whole).
    #[test]
    fn every_read_shows_an_add_with_everything_its_session_observed_before(
        seed in any::<u64>(),
        topology in 0u8..4,
        acts in proptest::collection::vec(set_act(), 1..80),
    ) {
        let topology = match topology {
            0 => Topology::FullMesh,
            1 => Topology::HubSpoke { hub: converge_core::replica::RegionId(1) },
            2 => Topology::Ring,
            _ => Topology::Hierarchical,
        };
        let net = Net { loss_pm: 100, dup_pm: 100, latency_min_ms: 1, latency_max_ms: 60 };
        let mut sim = Sim::grid(3, 2, seed, net, |c| {
            c.topology = topology;
            c.oplog_entries_max = 4;
            c.ae_interval_ms = 100;
            c.session_wait_ms = 400;
            c.quorum_timeout_ms = 500;
        });
        let mut judge = SessionJudge::new(3);
        let mut tokens: Vec<Option<SessionToken>> = vec![None; 3];
        let mut next = 0i64;
        for a in acts {
            match a {
                SetAct::Session { c, at, read, level } => {
                    let level = match level {
                        0..=2 => L1,
                        3 | 4 => LQ,
                        _ => GQ,
                    };
                    let op = if read {
                        Op::Get
                    } else {
                        next += 1;
                        judge.adding(c, next);
                        Op::SetAdd(int(next))
                    };
                    let r = sim.call(at, "s", op, level, tokens[c].clone());
                    if let Ok(done) = r.result {
                        tokens[c] = Some(done.token);
                        if read {
                            let shown = match done.value {
                                Value::Absent => BTreeSet::new(),
                                Value::Set(v) => v.into_iter().map(|x| match x {
                                    Scalar::Int(n) => n,
                                    other => panic!("unexpected {other:?}"),
                                }).collect(),
                                other => panic!("unexpected {other:?}"),
                            };
                            let verdict = judge.client_read(c, shown);
                            prop_assert!(verdict.is_ok(), "{:?}", verdict);
                        } else {
                            judge.adds[c].insert(next);
                        }
                    }
                }
                SetAct::Run(ms) => sim.run_for(u64::from(ms)),
                SetAct::Partition(mask) => {
                    let group: Vec<u64> = (0..6).filter(|i| mask & (1 << i) != 0).collect();
                    sim.isolate(&group);
                }
                SetAct::Heal => sim.heal(),
            }
            for i in 0..6 {
                let verdict = judge.shown(&set_at(&sim, i, "s"));
                prop_assert!(verdict.is_ok(), "replica {}: {:?}", i, verdict);
            }
        }
        sim.heal();
        sim.net = CLEAN;
        sim.settle(30_000);
        for i in 0..6 {
            let verdict = judge.shown(&set_at(&sim, i, "s"));
            prop_assert!(verdict.is_ok(), "replica {}: {:?}", i, verdict);
        }
    }
}
