//! The pump: virtual time, the network and each replica's disk, and the helpers the tests
//! share to read replies and values.

use converge_core::ReplicaId;
use converge_core::replica::{
    Config, Consistency, Durable, Op, Output, PeerMsg, Replica, Reply, Request, Scalar,
    SessionToken, Value,
};
use std::collections::{BTreeMap, BTreeSet};

pub(crate) fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Network behaviour, per mille and milliseconds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Net {
    pub(crate) loss_pm: u64,
    pub(crate) dup_pm: u64,
    pub(crate) latency_min_ms: u64,
    pub(crate) latency_max_ms: u64,
}

pub(crate) const CLEAN: Net = Net {
    loss_pm: 0,
    dup_pm: 0,
    latency_min_ms: 5,
    latency_max_ms: 5,
};

pub(crate) struct Sim {
    pub(crate) configs: Vec<Config>,
    pub(crate) nodes: Vec<Option<Replica>>,
    pub(crate) disks: Vec<Durable>,
    pub(crate) now: u64,
    pub(crate) rng: u64,
    pub(crate) net: Net,
    pub(crate) in_flight: BTreeMap<(u64, u64), (ReplicaId, ReplicaId, Vec<u8>)>,
    pub(crate) msg_seq: u64,
    /// Cut links, as unordered pairs.
    pub(crate) cut: BTreeSet<(u64, u64)>,
    pub(crate) replies: BTreeMap<u64, Reply>,
    pub(crate) next_request: u64,
    pub(crate) delivered: u64,
}

impl Sim {
    pub(crate) fn new(configs: Vec<Config>, seed: u64, net: Net) -> Sim {
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
    pub(crate) fn grid(
        regions: u32,
        per: u32,
        seed: u64,
        net: Net,
        tweak: impl Fn(&mut Config),
    ) -> Sim {
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

    pub(crate) fn node(&self, i: usize) -> &Replica {
        self.nodes[i].as_ref().expect("node is up")
    }

    pub(crate) fn is_cut(&self, a: ReplicaId, b: ReplicaId) -> bool {
        self.cut.contains(&(a.0.min(b.0), a.0.max(b.0)))
    }

    pub(crate) fn cut_link(&mut self, a: u64, b: u64) {
        self.cut.insert((a.min(b), a.max(b)));
    }

    /// Cuts every link between `group` and the rest.
    pub(crate) fn isolate(&mut self, group: &[u64]) {
        let n = self.nodes.len() as u64;
        for &a in group {
            for b in 0..n {
                if !group.contains(&b) {
                    self.cut_link(a, b);
                }
            }
        }
    }

    pub(crate) fn heal(&mut self) {
        self.cut.clear();
    }

    pub(crate) fn draw(&mut self) -> u64 {
        splitmix(&mut self.rng)
    }

    /// Drains node `i`'s outputs in the documented order.
    pub(crate) fn drain(&mut self, i: usize) {
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

    pub(crate) fn enqueue(&mut self, from: ReplicaId, to: ReplicaId, payload: Vec<u8>) {
        // Residency: no message names a key its destination may not hold (every config of a
        // run describes the same cluster and pins).
        if let Ok(msg) = PeerMsg::decode(&payload) {
            let config = &self.configs[to.0 as usize];
            for key in msg.keys() {
                assert!(
                    config.may_hold(to, key),
                    "{from} sent pinned key {:?} to {to}, outside its regions: {msg:?}",
                    String::from_utf8_lossy(key)
                );
            }
        }
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

    pub(crate) fn next_event(&self) -> Option<u64> {
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
    pub(crate) fn run_until_time(&mut self, until: u64) {
        while let Some(t) = self.next_event() {
            if t > until {
                break;
            }
            self.now = self.now.max(t);
            self.step();
        }
        self.now = self.now.max(until);
    }

    pub(crate) fn run_for(&mut self, ms: u64) {
        let until = self.now + ms;
        self.run_until_time(until);
    }

    pub(crate) fn step(&mut self) {
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

    pub(crate) fn request(
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
    pub(crate) fn wait(&mut self, id: u64, max_ms: u64) -> Option<Reply> {
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
    pub(crate) fn call(
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

    pub(crate) fn crash(&mut self, i: usize) {
        self.nodes[i] = None;
    }

    pub(crate) fn restart(&mut self, i: usize) {
        let r = Replica::recover(self.configs[i].clone(), self.disks[i].clone(), self.now)
            .expect("durable state recovers");
        self.nodes[i] = Some(r);
        self.drain(i);
    }

    pub(crate) fn roots(&self) -> Vec<u64> {
        self.nodes.iter().flatten().map(|n| n.root_hash()).collect()
    }

    pub(crate) fn converged(&self) -> bool {
        let roots = self.roots();
        roots.windows(2).all(|w| w[0] == w[1])
            && self
                .nodes
                .iter()
                .flatten()
                .all(|n| n.frontier() == self.node(0).frontier())
    }

    /// Runs until every replica has the same keyspace and frontier.
    pub(crate) fn settle(&mut self, max_ms: u64) {
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

pub(crate) fn ok(reply: &Reply) -> (&Value, &SessionToken) {
    match &reply.result {
        Ok(done) => (&done.value, &done.token),
        Err(e) => panic!("request {} failed: {e}", reply.id),
    }
}

pub(crate) fn value(sim: &Sim, i: usize, key: &str) -> Value {
    sim.node(i)
        .get(key.as_bytes())
        .map_or(Value::Absent, |s| s.value())
}

pub(crate) fn int(i: i64) -> Scalar {
    Scalar::Int(i)
}

pub(crate) use Consistency::{GlobalQuorum as GQ, LocalOne as L1, LocalQuorum as LQ};

/// The elements of the set `key` at replica `i` (empty when absent).
pub(crate) fn set_at(sim: &Sim, i: usize, key: &str) -> BTreeSet<i64> {
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

/// The topology a proptest draw picks: full mesh, hub-spoke around region `hub`, ring or
/// hierarchical.
pub(crate) fn topology(draw: u8, hub: u32) -> converge_core::replica::Topology {
    use converge_core::replica::{RegionId, Topology};
    match draw {
        0 => Topology::FullMesh,
        1 => Topology::HubSpoke { hub: RegionId(hub) },
        2 => Topology::Ring,
        _ => Topology::Hierarchical,
    }
}
