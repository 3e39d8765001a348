//! The network the harness owns: every node-to-node message passes through [`Network::route`],
//! which decides, from the seeded stream alone, whether it is lost, duplicated, and when each
//! copy arrives.
//!
//! Invariants: a message on a cut link is dropped; without the `reorder` fault, messages on one
//! directed link arrive in the order they were sent (like TCP); decisions depend only on the seed
//! and on the sequence of `route` and `partition` calls.

use super::rng::SeededDice;
use std::collections::{BTreeMap, BTreeSet};

/// The arrival times (ms) of the copies of one message: none, one, or two. Inline, because every
/// message the harness routes gets one.
pub type Arrivals = smallvec::SmallVec<[u64; 2]>;

/// Fault probabilities and latencies, all derived from the seed and the chosen nemeses.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct NetConfig {
    /// Fixed part of every delivery, in ms.
    pub latency_ms_min: f64,
    /// Mean of the exponential part, in ms.
    pub latency_ms_mean: f64,
    /// Probability that a message is lost.
    pub loss: f64,
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
    /// Whether messages on one link may overtake each other.
    pub reorder: bool,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            latency_ms_min: 0.2,
            latency_ms_mean: 1.0,
            loss: 0.0,
            duplicate: 0.0,
            reorder: false,
        }
    }
}

/// Counters of what the network did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct NetStats {
    /// Messages offered by nodes.
    pub sent: u64,
    /// Copies delivered (or scheduled for delivery).
    pub delivered: u64,
    /// Dropped by loss.
    pub lost: u64,
    /// Dropped because the link was cut.
    pub cut: u64,
    /// Extra copies made.
    pub duplicated: u64,
}

/// The seeded network between nodes.
#[derive(Debug)]
pub struct Network {
    config: NetConfig,
    dice: SeededDice,
    cut: BTreeSet<(usize, usize)>,
    /// Latest scheduled arrival per directed link, to keep links FIFO without `reorder`.
    last_arrival: BTreeMap<(usize, usize), u64>,
    stats: NetStats,
}

impl Network {
    /// A fully connected network.
    pub fn new(config: NetConfig, dice: SeededDice) -> Self {
        Network {
            config,
            dice,
            cut: BTreeSet::new(),
            last_arrival: BTreeMap::new(),
            stats: NetStats::default(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &NetConfig {
        &self.config
    }

    /// What the network has done so far.
    pub fn stats(&self) -> &NetStats {
        &self.stats
    }

    /// Arrival times (ms) of the copies of a message sent `from` → `to` at `now_ms`: none if lost
    /// or cut, two if duplicated.
    pub fn route(&mut self, from: usize, to: usize, now_ms: u64) -> Arrivals {
        self.stats.sent += 1;
        if self.cut.contains(&(from, to)) {
            self.stats.cut += 1;
            return Arrivals::new();
        }
        if self.dice.chance(self.config.loss) {
            self.stats.lost += 1;
            return Arrivals::new();
        }
        let copies = if self.dice.chance(self.config.duplicate) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        let mut arrivals = Arrivals::new();
        for _ in 0..copies {
            let delay =
                self.config.latency_ms_min + self.dice.exponential(self.config.latency_ms_mean);
            let mut at = now_ms + delay.round() as u64;
            if !self.config.reorder {
                let last = self.last_arrival.entry((from, to)).or_insert(0);
                at = at.max(*last);
                *last = at;
            }
            arrivals.push(at);
        }
        self.stats.delivered += arrivals.len() as u64;
        arrivals
    }

    /// Cuts every link between nodes in different groups. Nodes in no group are cut off from
    /// everyone. Replaces any earlier partition.
    pub fn partition(&mut self, groups: &[Vec<usize>], nodes: usize) {
        self.cut.clear();
        let group_of = |n: usize| groups.iter().position(|g| g.contains(&n));
        for a in 0..nodes {
            for b in 0..nodes {
                if a != b && (group_of(a).is_none() || group_of(a) != group_of(b)) {
                    self.cut.insert((a, b));
                }
            }
        }
    }

    /// Cuts exactly these directed links (for bridge partitions, where groups overlap).
    pub fn cut_links(&mut self, links: impl IntoIterator<Item = (usize, usize)>) {
        self.cut.clear();
        self.cut.extend(links);
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Whether `from` can currently reach `to`.
    pub fn connected(&self, from: usize, to: usize) -> bool {
        !self.cut.contains(&(from, to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_decisions_and_links_stay_fifo() {
        let config = NetConfig {
            loss: 0.2,
            duplicate: 0.2,
            ..NetConfig::default()
        };
        let run = || {
            let mut net = Network::new(config.clone(), SeededDice::new(9));
            (0..200).map(|t| net.route(0, 1, t)).collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        let arrivals: Vec<u64> = a.into_iter().flatten().collect();
        assert!(
            arrivals.windows(2).all(|w| w[0] <= w[1]),
            "link reordered without the reorder fault"
        );
    }

    #[test]
    fn a_partition_cuts_exactly_the_links_between_groups() {
        let mut net = Network::new(NetConfig::default(), SeededDice::new(1));
        net.partition(&[vec![0, 1], vec![2, 3, 4]], 5);
        assert!(net.connected(0, 1) && net.connected(3, 4));
        assert!(!net.connected(1, 2) && !net.connected(4, 0));
        assert!(net.route(0, 3, 0).is_empty());
        net.heal();
        assert_eq!(net.route(0, 3, 0).len(), 1);
    }
}
