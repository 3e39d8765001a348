//! Faults: which ones a run injects, and the seeded plan of partitions.

use super::net::NetConfig;
use super::rng::Dice;
use serde::Serialize;

/// A fault the harness can inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// Network partitions (one node, halves, majorities ring, bridge), healed between windows.
    Partition,
    /// Message loss.
    Loss,
    /// Message duplication.
    Duplicate,
    /// Messages on one link overtake each other.
    Reorder,
    /// A node is killed (SIGKILL) and restarted with a fresh `init` after the fault window.
    Kill,
    /// A node is frozen (SIGSTOP) for the fault window, then resumed (SIGCONT).
    Pause,
}

impl Fault {
    /// Every fault this build injects.
    pub const ALL: [Fault; 6] = [
        Fault::Partition,
        Fault::Loss,
        Fault::Duplicate,
        Fault::Reorder,
        Fault::Kill,
        Fault::Pause,
    ];

    /// Whether the fault comes and goes in windows (as opposed to a network property that holds
    /// for the whole workload).
    pub fn windowed(self) -> bool {
        matches!(self, Fault::Partition | Fault::Kill | Fault::Pause)
    }

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Partition => "partition",
            Fault::Loss => "loss",
            Fault::Duplicate => "duplicate",
            Fault::Reorder => "reorder",
            Fault::Kill => "kill",
            Fault::Pause => "pause",
        }
    }

    /// The fault called `name`.
    pub fn from_name(name: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// The network during the workload: probabilities drawn per seed ("swarm" testing), so different
/// seeds explore different mixes rather than one fixed rate.
pub fn faulty_network(faults: &[Fault], dice: &mut Dice) -> NetConfig {
    let mut config = NetConfig::default();
    if faults.contains(&Fault::Loss) {
        config.loss = 0.02 + 0.18 * dice.unit();
    }
    if faults.contains(&Fault::Duplicate) {
        config.duplicate = 0.02 + 0.18 * dice.unit();
    }
    if faults.contains(&Fault::Reorder) {
        config.reorder = true;
        config.latency_ms_mean = 2.0 + 8.0 * dice.unit();
    }
    config
}

/// One partition: the directed links it cuts, and its name for reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Partition {
    /// `one`, `halves`, `ring` or `bridge`.
    pub kind: &'static str,
    /// Cut links `(from, to)`.
    pub cut: Vec<(usize, usize)>,
}

/// A random partition of `nodes` nodes.
pub fn partition(nodes: usize, dice: &mut Dice) -> Partition {
    let mut order: Vec<usize> = (0..nodes).collect();
    // Fisher-Yates with the seeded stream.
    for i in (1..order.len()).rev() {
        order.swap(i, dice.below(i as u64 + 1) as usize);
    }
    let between = |a: &[usize], b: &[usize]| {
        let mut cut = Vec::new();
        for &x in a {
            for &y in b {
                if x != y {
                    cut.push((x, y));
                    cut.push((y, x));
                }
            }
        }
        cut
    };
    match dice.below(4) {
        0 => Partition {
            kind: "one",
            cut: between(&order[..1], &order[1..]),
        },
        1 => {
            let half = nodes / 2;
            Partition {
                kind: "halves",
                cut: between(&order[..half], &order[half..]),
            }
        }
        2 => {
            // Majorities ring: each node still sees a majority (itself and its ring neighbours),
            // but no two nodes see the same majority.
            let keep = nodes / 2;
            let mut cut = Vec::new();
            for (i, &x) in order.iter().enumerate() {
                for (j, &y) in order.iter().enumerate() {
                    let distance = (i as isize - j as isize).unsigned_abs();
                    let ring = distance.min(nodes - distance);
                    if x != y && ring > keep / 2 + keep % 2 {
                        cut.push((x, y));
                    }
                }
            }
            Partition { kind: "ring", cut }
        }
        _ => {
            // Bridge: two halves that can reach one node in the middle, but not each other.
            let mid = nodes / 2;
            let (left, right) = (&order[..mid], &order[mid + 1..]);
            Partition {
                kind: "bridge",
                cut: between(left, right),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bridge_node_reaches_both_sides_that_cannot_reach_each_other() {
        let mut dice = Dice::new(3);
        for _ in 0..50 {
            let p = partition(5, &mut dice);
            if p.kind == "bridge" {
                let cut_from = |x: usize| p.cut.iter().filter(|(a, _)| *a == x).count();
                assert_eq!((0..5).filter(|&x| cut_from(x) == 0).count(), 1, "{p:?}");
                return;
            }
        }
        panic!("no bridge partition in 50 draws");
    }
}
