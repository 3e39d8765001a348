//! Configuration: who is in the cluster, how they are wired, and every limit.
//!
//! Every queue, batch, window and wait has a bound here, with the unit last in its name.

use crate::ReplicaId;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A region: a set of replicas close to each other (one data centre).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RegionId(pub u32);

/// How replicas are wired for replication and anti-entropy.
///
/// Replicas of one region always form a full mesh among themselves; the topology says which
/// cross-region links exist. [`Config::neighbours`] is the one place that turns this into links,
/// and every message a replica sends goes to a neighbour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Topology {
    /// Every replica talks to every other: one hop, O(n²) links.
    #[default]
    FullMesh,
    /// Every replica of the hub region talks to every replica of the other regions, which talk
    /// only through the hub: two hops, O(n) links, the hub is critical.
    HubSpoke {
        /// The hub region.
        hub: RegionId,
    },
    /// Regions in a ring, in region-id order; each talks to its two neighbours' replicas.
    Ring,
    /// Each region's super-node (its smallest replica id) talks to every other region's
    /// super-node; the other replicas talk only within their region.
    Hierarchical,
}

/// A deliberately broken variant of the protocol.
///
/// These exist only so that the simulator, the conformance harness and the models can prove
/// that they catch the bug; a correct deployment never sets one ([`Config::bug`] defaults to
/// `None`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bug {
    /// Applies every received oplog entry without the `(origin, seq)` dedup, so duplicated or
    /// re-sent batches are applied again (counters over-count; the frontier still advances only
    /// contiguously).
    ApplyWithoutDedup,
    /// Reads ignore the request's session token and answer from whatever state is local: stale
    /// reads after moving regions.
    ReadIgnoresToken,
    /// Anti-entropy drops the last differing subtree at every level yet still completes the
    /// round and claims the peer's frontier: a frontier claim the state does not back.
    AeSkipsSubtree,
    /// A compare-and-set "fast path": compared against the local acceptor's last decision and,
    /// if it matches, the next instance is declared decided and its commit broadcast — no
    /// promise, no majority. Two regions that both hold `from` both succeed.
    CasDecidedLocally,
    /// A bounded-counter withdrawal is allowed when the replica's local view of the counter's
    /// value covers it, without the rights: the missing rights are taken from the replicas that
    /// hold them in the local view, as if they had transferred them. Two regions can then both
    /// withdraw the last unit, and the counter reads below zero once they merge.
    EscrowLocalCheck,
}

impl Bug {
    /// Every seeded bug, in the order the command line lists them.
    pub const ALL: [Bug; 5] = [
        Bug::ApplyWithoutDedup,
        Bug::ReadIgnoresToken,
        Bug::AeSkipsSubtree,
        Bug::CasDecidedLocally,
        Bug::EscrowLocalCheck,
    ];

    /// The bug's one spelling, used wherever it is chosen or printed (`converge sim --bug`, the
    /// replay command the simulator prints).
    pub fn name(self) -> &'static str {
        match self {
            Bug::ApplyWithoutDedup => "apply-without-dedup",
            Bug::ReadIgnoresToken => "read-ignores-token",
            Bug::AeSkipsSubtree => "ae-skips-subtree",
            Bug::CasDecidedLocally => "cas-decided-locally",
            Bug::EscrowLocalCheck => "escrow-local-check",
        }
    }
}

impl std::fmt::Display for Bug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A bug name that is none of [`Bug::ALL`]'s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownBug(pub String);

impl std::fmt::Display for UnknownBug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = Bug::ALL.iter().map(|b| b.name()).collect();
        write!(
            f,
            "unknown bug {:?} (expected one of {})",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownBug {}

impl std::str::FromStr for Bug {
    type Err = UnknownBug;

    /// Parses exactly the names [`Bug::name`] gives; they are command-line words, which are
    /// case-sensitive like every other value converge's command line takes.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Bug::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| UnknownBug(s.to_string()))
    }
}

/// Everything a replica needs to know before it starts. The same cluster description (all but
/// `me`) must be given to every replica.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    /// This replica.
    pub me: ReplicaId,
    /// Every replica of the cluster with its region, this one included. Order does not matter.
    pub replicas: Vec<(ReplicaId, RegionId)>,
    /// Cross-region wiring.
    pub topology: Topology,
    /// Seeds the only randomness the replica uses: the jitter of its anti-entropy timer.
    pub seed: u64,
    /// Most oplog entries in one replication batch.
    pub batch_entries_max: usize,
    /// Most encoded bytes of entries in one batch (a single larger entry still goes alone).
    pub batch_bytes_max: usize,
    /// Longest an entry waits for a batch to fill before it is sent.
    pub batch_delay_ms: u64,
    /// Batches whose encoded entries reach this size are LZ4-compressed.
    pub compress_threshold_bytes: usize,
    /// Most entries of one origin sent to one peer and not yet acknowledged (the go-back-N
    /// window). Per origin, so that a stream whose head waits at the peer for its dependencies
    /// (see `session` § Causal delivery) never keeps the streams that carry them from being sent.
    pub window_entries: u64,
    /// Time without acknowledgement progress after which a peer's unacknowledged entries are sent
    /// again from its acknowledged point. Doubles with each consecutive timeout, up to 16 times.
    pub retransmit_ms: u64,
    /// Most oplog entries kept; beyond it the oldest are truncated even if a peer still needs
    /// them, and anti-entropy repairs that peer.
    pub oplog_entries_max: usize,
    /// Most received entries held back, over all origins, because the entries they depend on
    /// have not arrived yet. Beyond it they are dropped like entries after a gap, and their
    /// sender's go-back-N sends them again; 0 never holds any.
    pub parked_entries_max: usize,
    /// Period of the anti-entropy exchange with each neighbour.
    pub ae_interval_ms: u64,
    /// An anti-entropy round not finished after this long is abandoned.
    pub ae_timeout_ms: u64,
    /// Fan-out of the Merkle tree is `2^merkle_fanout_bits`.
    pub merkle_fanout_bits: u8,
    /// Levels below the root of the Merkle tree.
    pub merkle_depth: u8,
    /// Most key states shipped in one anti-entropy reply; a round that would ship more ships
    /// this many and does not complete (the next round goes on).
    pub ae_keys_max: usize,
    /// Deadline of a quorum operation (LOCAL_QUORUM, GLOBAL_QUORUM).
    pub quorum_timeout_ms: u64,
    /// Longest a request waits for its session token to be covered.
    pub session_wait_ms: u64,
    /// Most requests waiting at once, for quorums and session tokens together.
    pub pending_max: usize,
    /// Remote HLC timestamps further ahead of local time than this are not absorbed.
    pub max_drift_ms: u64,
    /// Largest peer message accepted, compressed or not.
    pub message_bytes_max: usize,
    /// Whether to record what changes for [`Replica::take_durable`](super::Replica::take_durable).
    /// A shell that persists turns it on; the simulator and models leave it off and pay nothing.
    pub track_durable: bool,
    /// Data residency: keys pinned, by prefix, to a set of regions (see [`Pin`]). Empty: every
    /// key may live everywhere.
    pub residency: Vec<Pin>,
    /// A deliberately broken variant, for testing the testers. `None` in any real use.
    pub bug: Option<Bug>,
}

/// A residency pin: every key that starts with `prefix` may be held only by the replicas of
/// `regions` (GDPR-style data residency).
///
/// What a pin guarantees, and how (see also `links` § Residency and `anti_entropy` § Residency):
/// no replica outside `regions` ever receives a pinned key's name or state — not in an oplog
/// entry (it gets the entry *redacted*: origin, sequence number, stamp and dependencies only, so
/// its logs stay gap-free and its frontier advances), not in an anti-entropy comparison or
/// repair, not in a routed request (operations that would route the key, a `GlobalQuorum` level,
/// consensus registers and bounded counters, are refused on pinned keys). A request for a pinned
/// key at a replica outside `regions` is refused with a definite error.
///
/// Validated with the configuration: pins never overlap (a key has at most one pin), name at
/// least one region with a replica, and every route between two of a pin's replicas stays among
/// its replicas, so that a redacted entry is never relayed to a replica that should hold it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pin {
    /// The keys pinned: every key starting with these bytes. Never empty.
    pub prefix: Vec<u8>,
    /// The regions whose replicas may hold the keys.
    pub regions: BTreeSet<RegionId>,
}

/// A configuration that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `me` is not among `replicas`.
    #[error("replica {0} is not in the replica list")]
    NotAMember(ReplicaId),
    /// A replica is listed twice.
    #[error("replica {0} is listed twice")]
    Duplicate(ReplicaId),
    /// The hub of a hub-spoke topology has no replica.
    #[error("hub region {0:?} has no replica")]
    NoHub(RegionId),
    /// Some replica cannot reach another through the topology.
    #[error("the topology does not connect every replica")]
    Disconnected,
    /// A limit is out of range.
    #[error("bad limit: {0}")]
    Limit(&'static str),
    /// A residency pin has an empty prefix, or overlaps another pin (one prefix starts the
    /// other): a key would have no single set of regions.
    #[error("residency pin {prefix:?}: {why}")]
    PinPrefix {
        /// The pin's prefix, lossily as text.
        prefix: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A residency pin names no region that has a replica: its keys could live nowhere.
    #[error("residency pin {prefix:?} names no region with a replica")]
    PinNoRegion {
        /// The pin's prefix, lossily as text.
        prefix: String,
    },
    /// The topology routes entries between two replicas of a pin's regions through a replica
    /// outside them: the pinned keys could not replicate without leaving their regions.
    #[error(
        "residency pin {prefix:?}: replica {via} outside its regions relays between {from} and {to}"
    )]
    PinRouteLeaves {
        /// The pin's prefix, lossily as text.
        prefix: String,
        /// A replica of the pin's regions.
        from: ReplicaId,
        /// Another one, whose entries reach `from` through `via`.
        to: ReplicaId,
        /// The next hop from `from` towards `to`, outside the pin's regions.
        via: ReplicaId,
    },
}

impl Config {
    /// A configuration with the default limits: full mesh, 1 ms batching, 2 s quorum deadline.
    pub fn new(me: ReplicaId, replicas: Vec<(ReplicaId, RegionId)>) -> Self {
        Config {
            me,
            replicas,
            topology: Topology::FullMesh,
            seed: 0,
            batch_entries_max: 256,
            batch_bytes_max: 64 * 1024,
            batch_delay_ms: 1,
            compress_threshold_bytes: 512,
            window_entries: 4096,
            retransmit_ms: 200,
            oplog_entries_max: 100_000,
            parked_entries_max: 4096,
            ae_interval_ms: 1_000,
            ae_timeout_ms: 2_000,
            merkle_fanout_bits: 4,
            merkle_depth: 3,
            ae_keys_max: 1_024,
            quorum_timeout_ms: 2_000,
            session_wait_ms: 1_000,
            pending_max: 1_024,
            max_drift_ms: 500,
            message_bytes_max: 16 * 1024 * 1024,
            track_durable: false,
            residency: Vec::new(),
            bug: None,
        }
    }

    /// `regions × per_region` replicas, ids `0..`, region `r` holding ids
    /// `r*per_region .. (r+1)*per_region`: the layout tests and the simulator use.
    pub fn grid(me: u64, regions: u32, per_region: u32) -> Self {
        let replicas = (0..regions)
            .flat_map(|r| {
                (0..per_region)
                    .map(move |i| (ReplicaId(u64::from(r * per_region + i)), RegionId(r)))
            })
            .collect();
        Config::new(ReplicaId(me), replicas)
    }

    /// The region of `replica`, if it is a member.
    pub fn region_of(&self, replica: ReplicaId) -> Option<RegionId> {
        self.replicas
            .iter()
            .find(|(r, _)| *r == replica)
            .map(|&(_, g)| g)
    }

    /// Whether `a` and `b` (distinct members) are linked by the topology. This is the one
    /// definition of the wiring; routes and forwarding derive from it.
    pub fn linked(&self, a: ReplicaId, b: ReplicaId) -> bool {
        if a == b {
            return false;
        }
        let (Some(ga), Some(gb)) = (self.region_of(a), self.region_of(b)) else {
            return false;
        };
        if ga == gb {
            return true;
        }
        match self.topology {
            Topology::FullMesh => true,
            Topology::HubSpoke { hub } => ga == hub || gb == hub,
            Topology::Ring => {
                let regions = self.regions();
                let n = regions.len();
                let pos = |g| regions.iter().position(|&(x, _)| x == g).unwrap_or(0);
                let (i, j) = (pos(ga), pos(gb));
                (i + 1) % n == j || (j + 1) % n == i
            }
            Topology::Hierarchical => {
                self.super_node(ga) == Some(a) && self.super_node(gb) == Some(b)
            }
        }
    }

    /// The neighbours of `replica`, sorted.
    pub fn neighbours(&self, replica: ReplicaId) -> Vec<ReplicaId> {
        let mut out: Vec<ReplicaId> = self
            .replicas
            .iter()
            .map(|&(r, _)| r)
            .filter(|&r| self.linked(replica, r))
            .collect();
        out.sort();
        out
    }

    /// The regions with their replicas, both sorted.
    pub fn regions(&self) -> Vec<(RegionId, Vec<ReplicaId>)> {
        let mut map: BTreeMap<RegionId, Vec<ReplicaId>> = BTreeMap::new();
        for &(r, g) in &self.replicas {
            map.entry(g).or_default().push(r);
        }
        map.into_iter()
            .map(|(g, mut rs)| {
                rs.sort();
                (g, rs)
            })
            .collect()
    }

    /// The index of the residency pin of `key` in [`Config::residency`], if it is pinned.
    /// Pins never overlap (validated), so there is at most one.
    #[inline]
    pub fn pin_of(&self, key: &[u8]) -> Option<usize> {
        if self.residency.is_empty() {
            return None;
        }
        self.residency
            .iter()
            .position(|p| key.starts_with(&p.prefix))
    }

    /// Whether `replica` may hold `key` under the residency pins: the key is not pinned, or
    /// the replica's region is among its pin's regions.
    pub fn may_hold(&self, replica: ReplicaId, key: &[u8]) -> bool {
        match self.pin_of(key) {
            None => true,
            Some(i) => self
                .region_of(replica)
                .is_some_and(|g| self.residency[i].regions.contains(&g)),
        }
    }

    /// Checks the residency pins against the routes (see [`Pin`]).
    fn validate_residency(&self, routes: &Routes) -> Result<(), ConfigError> {
        let text = |p: &Pin| String::from_utf8_lossy(&p.prefix).into_owned();
        for (i, pin) in self.residency.iter().enumerate() {
            if pin.prefix.is_empty() {
                return Err(ConfigError::PinPrefix {
                    prefix: text(pin),
                    why: "the prefix is empty",
                });
            }
            let overlaps = self.residency.iter().enumerate().any(|(j, q)| {
                j != i && (pin.prefix.starts_with(&q.prefix) || q.prefix.starts_with(&pin.prefix))
            });
            if overlaps {
                return Err(ConfigError::PinPrefix {
                    prefix: text(pin),
                    why: "it overlaps another pin",
                });
            }
            let allowed: BTreeSet<ReplicaId> = self
                .replicas
                .iter()
                .filter(|(_, g)| pin.regions.contains(g))
                .map(|&(r, _)| r)
                .collect();
            if allowed.is_empty() {
                return Err(ConfigError::PinNoRegion { prefix: text(pin) });
            }
            // Entries of an origin reach a replica along the next hops towards the origin
            // (`Routes`); if every next hop between two allowed replicas is allowed, by
            // induction every whole route is, and an allowed replica never receives a pinned
            // entry through a replica that only has it redacted.
            for &from in &allowed {
                for &to in &allowed {
                    if let Some(via) = routes.next_hop(from, to)
                        && from != to
                        && !allowed.contains(&via)
                    {
                        return Err(ConfigError::PinRouteLeaves {
                            prefix: text(pin),
                            from,
                            to,
                            via,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    fn super_node(&self, region: RegionId) -> Option<ReplicaId> {
        self.replicas
            .iter()
            .filter(|&&(_, g)| g == region)
            .map(|&(r, _)| r)
            .min()
    }

    /// Checks the configuration and derives the routing tables.
    pub(crate) fn validate(&self) -> Result<Routes, ConfigError> {
        let mut seen = BTreeSet::new();
        for &(r, _) in &self.replicas {
            if !seen.insert(r) {
                return Err(ConfigError::Duplicate(r));
            }
        }
        if !seen.contains(&self.me) {
            return Err(ConfigError::NotAMember(self.me));
        }
        if let Topology::HubSpoke { hub } = self.topology
            && self.super_node(hub).is_none()
        {
            return Err(ConfigError::NoHub(hub));
        }
        if !(1..=8).contains(&self.merkle_fanout_bits)
            || !(1..=4).contains(&self.merkle_depth)
            || u32::from(self.merkle_fanout_bits) * u32::from(self.merkle_depth) > 16
        {
            return Err(ConfigError::Limit(
                "merkle_fanout_bits in 1..=8, merkle_depth in 1..=4, at most 2^16 leaves",
            ));
        }
        if self.batch_entries_max == 0 || self.window_entries == 0 || self.ae_keys_max == 0 {
            return Err(ConfigError::Limit(
                "batch_entries_max, window_entries and ae_keys_max must be positive",
            ));
        }
        if self.retransmit_ms == 0 || self.ae_interval_ms == 0 {
            return Err(ConfigError::Limit(
                "retransmit_ms and ae_interval_ms must be positive",
            ));
        }
        let routes = Routes::compute(self)?;
        self.validate_residency(&routes)?;
        Ok(routes)
    }
}

/// Shortest-path routes over the topology, derived once from the configuration.
///
/// `next_hop[(x, o)]` is the neighbour of `x` on a shortest path from `x` to `o`, chosen by a
/// breadth-first search from `o` that visits neighbours in id order, so that every replica
/// computes the same table. Read the other way, the parent links of the search from `o` form a
/// spanning tree rooted at `o`: `o`'s writes flow down that tree, each replica forwarding them to
/// the neighbours whose next hop towards `o` is itself (its *children* for `o`). Every replica
/// then receives each origin's writes from exactly one neighbour, in order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Routes {
    next_hop: BTreeMap<(ReplicaId, ReplicaId), ReplicaId>,
}

impl Routes {
    fn compute(config: &Config) -> Result<Routes, ConfigError> {
        let ids: Vec<ReplicaId> = {
            let mut v: Vec<ReplicaId> = config.replicas.iter().map(|&(r, _)| r).collect();
            v.sort();
            v
        };
        let adjacency: BTreeMap<ReplicaId, Vec<ReplicaId>> =
            ids.iter().map(|&r| (r, config.neighbours(r))).collect();
        let mut next_hop = BTreeMap::new();
        for &root in &ids {
            let mut visited = BTreeSet::from([root]);
            let mut queue = VecDeque::from([root]);
            while let Some(x) = queue.pop_front() {
                for &n in &adjacency[&x] {
                    if visited.insert(n) {
                        // `n` reaches `root` through `x`.
                        next_hop.insert((n, root), x);
                        queue.push_back(n);
                    }
                }
            }
            if visited.len() != ids.len() {
                return Err(ConfigError::Disconnected);
            }
        }
        Ok(Routes { next_hop })
    }

    /// The neighbour of `from` on the route to `to` (`to` itself when they are linked).
    pub(crate) fn next_hop(&self, from: ReplicaId, to: ReplicaId) -> Option<ReplicaId> {
        self.next_hop.get(&(from, to)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(regions: u32, per: u32, topology: Topology) -> Config {
        let mut c = Config::grid(0, regions, per);
        c.topology = topology;
        c
    }

    fn ids(v: &[u64]) -> Vec<ReplicaId> {
        v.iter().map(|&i| ReplicaId(i)).collect()
    }

    #[test]
    fn each_topology_links_what_it_says() {
        let mesh = config(3, 2, Topology::FullMesh);
        assert_eq!(mesh.neighbours(ReplicaId(0)), ids(&[1, 2, 3, 4, 5]));
        let hub = config(3, 2, Topology::HubSpoke { hub: RegionId(1) });
        assert_eq!(hub.neighbours(ReplicaId(0)), ids(&[1, 2, 3]));
        assert_eq!(hub.neighbours(ReplicaId(2)), ids(&[0, 1, 3, 4, 5]));
        let ring = config(4, 1, Topology::Ring);
        assert_eq!(ring.neighbours(ReplicaId(0)), ids(&[1, 3]));
        assert_eq!(ring.neighbours(ReplicaId(2)), ids(&[1, 3]));
        let tree = config(3, 2, Topology::Hierarchical);
        assert_eq!(tree.neighbours(ReplicaId(0)), ids(&[1, 2, 4]));
        assert_eq!(tree.neighbours(ReplicaId(1)), ids(&[0]));
    }

    #[test]
    fn routes_follow_shortest_paths_and_agree_everywhere() {
        let ring = config(5, 1, Topology::Ring);
        let routes = ring.validate().unwrap();
        assert_eq!(
            routes.next_hop(ReplicaId(0), ReplicaId(2)),
            Some(ReplicaId(1))
        );
        assert_eq!(
            routes.next_hop(ReplicaId(0), ReplicaId(3)),
            Some(ReplicaId(4))
        );
        assert_eq!(
            routes.next_hop(ReplicaId(0), ReplicaId(1)),
            Some(ReplicaId(1))
        );
        let tree = config(3, 2, Topology::Hierarchical);
        let routes = tree.validate().unwrap();
        // A non-super-node reaches another region through its super-node.
        assert_eq!(
            routes.next_hop(ReplicaId(1), ReplicaId(5)),
            Some(ReplicaId(0))
        );
        assert_eq!(
            routes.next_hop(ReplicaId(0), ReplicaId(5)),
            Some(ReplicaId(4))
        );
    }

    #[test]
    fn bad_configurations_are_refused() {
        let mut c = Config::grid(9, 2, 1);
        assert_eq!(c.validate(), Err(ConfigError::NotAMember(ReplicaId(9))));
        c.me = ReplicaId(0);
        c.replicas.push((ReplicaId(1), RegionId(0)));
        assert_eq!(c.validate(), Err(ConfigError::Duplicate(ReplicaId(1))));
        let mut c = config(2, 1, Topology::HubSpoke { hub: RegionId(7) });
        assert_eq!(c.validate(), Err(ConfigError::NoHub(RegionId(7))));
        c.topology = Topology::FullMesh;
        c.merkle_depth = 5;
        assert!(matches!(c.validate(), Err(ConfigError::Limit(_))));
    }

    fn pin(prefix: &str, regions: &[u32]) -> Pin {
        Pin {
            prefix: prefix.as_bytes().to_vec(),
            regions: regions.iter().map(|&g| RegionId(g)).collect(),
        }
    }

    #[test]
    fn residency_pins_are_validated_against_the_routes() {
        // Two spokes of a hub-spoke reach each other only through the hub: a pin to the two
        // spokes could not replicate without its entries passing the hub.
        let mut c = config(3, 1, Topology::HubSpoke { hub: RegionId(0) });
        c.residency = vec![pin("eu:", &[1, 2])];
        assert!(matches!(
            c.validate(),
            Err(ConfigError::PinRouteLeaves {
                via: ReplicaId(0),
                ..
            })
        ));
        c.residency = vec![pin("eu:", &[0, 2])];
        assert!(c.validate().is_ok());
        // A ring of five: regions 0 and 2 are two hops apart, through region 1.
        let mut c = config(5, 1, Topology::Ring);
        c.residency = vec![pin("eu:", &[0, 2])];
        assert!(matches!(
            c.validate(),
            Err(ConfigError::PinRouteLeaves { .. })
        ));
        c.residency = vec![pin("eu:", &[0, 1, 2])];
        assert!(c.validate().is_ok());
        let mut c = config(3, 2, Topology::FullMesh);
        c.residency = vec![pin("", &[0])];
        assert!(matches!(c.validate(), Err(ConfigError::PinPrefix { .. })));
        c.residency = vec![pin("eu:", &[0]), pin("eu:x", &[1])];
        assert!(matches!(c.validate(), Err(ConfigError::PinPrefix { .. })));
        c.residency = vec![pin("eu:", &[7])];
        assert!(matches!(c.validate(), Err(ConfigError::PinNoRegion { .. })));
        c.residency = vec![pin("eu:", &[0]), pin("us:", &[1, 2])];
        assert!(c.validate().is_ok());
        assert!(c.may_hold(ReplicaId(1), b"eu:anna"));
        assert!(!c.may_hold(ReplicaId(2), b"eu:anna"));
        assert!(c.may_hold(ReplicaId(2), b"other"));
        assert_eq!(c.pin_of(b"us:bob"), Some(1));
    }
}
