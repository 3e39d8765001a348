//! Faults: which ones a run injects, and the seeded plans of partitions and clock faults.

use super::net::NetConfig;
use super::rng::SeededDice;
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
    /// Nodes' wall clocks are moved for the fault window (a bump of one or more nodes, or a
    /// strobe of one), then reset: see [`clock_plan`]. Needs a backend that can set a node's
    /// clock ([`super::backend::Backend::set_clock_offset`]).
    Clock,
}

impl Fault {
    /// Every fault this build injects.
    pub const ALL: [Fault; 7] = [
        Fault::Partition,
        Fault::Loss,
        Fault::Duplicate,
        Fault::Reorder,
        Fault::Kill,
        Fault::Pause,
        Fault::Clock,
    ];

    /// The faults that "every fault" means where the command line leaves the nemesis out (the
    /// certification suite, the simulator): all but [`Fault::Clock`], which process nodes get
    /// only through libfaketime, so it runs only when asked for by name.
    pub const DEFAULT: [Fault; 6] = [
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
        matches!(
            self,
            Fault::Partition | Fault::Kill | Fault::Pause | Fault::Clock
        )
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
            Fault::Clock => "clock",
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A fault name that is none of [`Fault::ALL`]'s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownFault(pub String);

impl std::fmt::Display for UnknownFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
        write!(
            f,
            "unknown fault '{}'; expected one of {}",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownFault {}

impl std::str::FromStr for Fault {
    type Err = UnknownFault;

    /// Parses exactly the names [`Fault::name`] gives, as the command line spells them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Fault::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| UnknownFault(s.to_string()))
    }
}

/// The network during the workload: probabilities drawn per seed ("swarm" testing), so different
/// seeds explore different mixes rather than one fixed rate.
pub fn faulty_network(faults: &[Fault], dice: &mut SeededDice) -> NetConfig {
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
pub fn partition(nodes: usize, dice: &mut SeededDice) -> Partition {
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

/// Smallest clock offset a clock fault gives a node, either way, in ms: far above the skew of
/// clocks on one machine (none) and of NTP-synchronized ones (a few ms), so a clock that trusts
/// its wall time is visibly wrong.
pub const CLOCK_OFFSET_MIN_MS: i64 = 100;
/// Largest clock offset a clock fault gives a node, either way, in ms.
pub const CLOCK_OFFSET_MAX_MS: i64 = 5_000;
/// Shortest time between two flips of a strobing clock, in ms.
pub const STROBE_PERIOD_MIN_MS: u64 = 10;
/// Longest time between two flips of a strobing clock, in ms: well below the smallest offset, so
/// a value stamped before a flip back is still ahead of the clock after it.
pub const STROBE_PERIOD_MAX_MS: u64 = 50;

/// What one clock fault window does to the nodes' wall clocks (Jepsen's clock nemesis: bump,
/// strobe, and a reset when the window heals). Monotonic clocks are never touched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClockPlan {
    /// `bump` (one node), `bumps` (every node, each its own way) or `strobe` (one node).
    pub kind: &'static str,
    /// Each node's clock offset for the window, in ms (positive: ahead); 0 leaves it alone.
    pub offsets: Vec<i64>,
    /// A node whose clock flips between its offset above and 0 for the whole window.
    pub strobe: Option<Strobe>,
}

/// A clock that flips between an offset and the true time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Strobe {
    /// The node.
    pub node: usize,
    /// Time between two flips, in ms.
    pub period_ms: u64,
}

impl ClockPlan {
    /// The fault's name in reports: `clock:n1+1500ms`, `clock:n0-250ms,n2+4000ms`, or for a
    /// strobe `clock:strobe:n1+800ms/20ms` (flipping between +800 ms and 0 every 20 ms).
    pub fn name(&self) -> String {
        let moved: Vec<String> = self
            .offsets
            .iter()
            .enumerate()
            .filter(|(_, ms)| **ms != 0)
            .map(|(node, ms)| format!("n{node}{ms:+}ms"))
            .collect();
        match self.strobe {
            Some(s) => format!("clock:strobe:{}/{}ms", moved.join(","), s.period_ms),
            None => format!("clock:{}", moved.join(",")),
        }
    }
}

/// An offset of [`CLOCK_OFFSET_MIN_MS`, `CLOCK_OFFSET_MAX_MS`] ms either way, log-uniform, so
/// small skews (that a node's own round trips hide) are drawn as often as large ones.
fn clock_offset(dice: &mut SeededDice) -> i64 {
    let (lo, hi) = (CLOCK_OFFSET_MIN_MS as f64, CLOCK_OFFSET_MAX_MS as f64);
    let magnitude = (lo * (hi / lo).powf(dice.unit())).round() as i64;
    let magnitude = magnitude.clamp(CLOCK_OFFSET_MIN_MS, CLOCK_OFFSET_MAX_MS);
    if dice.chance(0.5) {
        magnitude
    } else {
        -magnitude
    }
}

/// A random clock fault on `nodes` nodes: one node's clock bumped, every node's clock bumped its
/// own way (their skews are what matter), or one node's clock strobing between an offset and the
/// true time. Every clock is reset at the end of the window.
pub fn clock_plan(nodes: usize, dice: &mut SeededDice) -> ClockPlan {
    let mut offsets = vec![0; nodes];
    if nodes == 0 {
        return ClockPlan {
            kind: "bump",
            offsets,
            strobe: None,
        };
    }
    match dice.below(3) {
        0 => {
            let node = dice.below(nodes as u64) as usize;
            offsets[node] = clock_offset(dice);
            ClockPlan {
                kind: "bump",
                offsets,
                strobe: None,
            }
        }
        1 => {
            for offset in &mut offsets {
                *offset = clock_offset(dice);
            }
            ClockPlan {
                kind: "bumps",
                offsets,
                strobe: None,
            }
        }
        _ => {
            let node = dice.below(nodes as u64) as usize;
            offsets[node] = clock_offset(dice);
            let span = STROBE_PERIOD_MAX_MS - STROBE_PERIOD_MIN_MS + 1;
            let period_ms = STROBE_PERIOD_MIN_MS + dice.below(span);
            ClockPlan {
                kind: "strobe",
                offsets,
                strobe: Some(Strobe { node, period_ms }),
            }
        }
    }
}

/// The clock faults in force: the offset each node's clock has, and when a strobing clock flips
/// next. The harness loop starts a window's [`ClockPlan`] with [`ClockNemesis::begin`], asks
/// [`ClockNemesis::next_change_ms`] when to come back, applies [`ClockNemesis::poll`]'s changes
/// then, and [`ClockNemesis::heal`]'s at the end of the window. Each returns the changes only,
/// as `(node, offset in ms)`, for the backend's [`super::backend::Backend::set_clock_offset`]:
/// a run that never moves a clock never calls the backend.
#[derive(Clone, Debug, Default)]
pub struct ClockNemesis {
    /// The offset each node's clock has now.
    current: Vec<i64>,
    /// The strobe in force, its offset, and when it flips next.
    strobe: Option<(Strobe, i64, u64)>,
}

impl ClockNemesis {
    /// Every clock of `nodes` nodes true.
    pub fn new(nodes: usize) -> Self {
        ClockNemesis {
            current: vec![0; nodes],
            strobe: None,
        }
    }

    /// The offset node `node`'s clock has now, in ms.
    pub fn offset(&self, node: usize) -> i64 {
        self.current.get(node).copied().unwrap_or(0)
    }

    fn set(&mut self, node: usize, offset: i64, changes: &mut Vec<(usize, i64)>) {
        if let Some(current) = self.current.get_mut(node)
            && *current != offset
        {
            *current = offset;
            changes.push((node, offset));
        }
    }

    /// Starts `plan` at `now_ms`; returns the clock changes to make.
    pub fn begin(&mut self, plan: &ClockPlan, now_ms: u64) -> Vec<(usize, i64)> {
        let mut changes = Vec::new();
        for (node, &offset) in plan.offsets.iter().enumerate() {
            self.set(node, offset, &mut changes);
        }
        self.strobe = plan.strobe.map(|s| {
            let offset = plan.offsets.get(s.node).copied().unwrap_or(0);
            (s, offset, now_ms.saturating_add(s.period_ms.max(1)))
        });
        changes
    }

    /// When a clock changes next (`u64::MAX` when none will).
    pub fn next_change_ms(&self) -> u64 {
        self.strobe.map_or(u64::MAX, |(_, _, next)| next)
    }

    /// The clock changes due at `now_ms`: a strobing clock flips (once, however late the call;
    /// the next flip is a period later).
    pub fn poll(&mut self, now_ms: u64) -> Vec<(usize, i64)> {
        let mut changes = Vec::new();
        if let Some((s, offset, next)) = self.strobe
            && now_ms >= next
        {
            let flipped = if self.offset(s.node) == 0 { offset } else { 0 };
            self.set(s.node, flipped, &mut changes);
            let next = next.saturating_add(s.period_ms.max(1)).max(now_ms + 1);
            self.strobe = Some((s, offset, next));
        }
        changes
    }

    /// Ends the clock fault: every clock back to the true time. Returns the changes to make
    /// (none when no clock was moved).
    pub fn heal(&mut self) -> Vec<(usize, i64)> {
        self.strobe = None;
        let mut changes = Vec::new();
        for node in 0..self.current.len() {
            self.set(node, 0, &mut changes);
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bridge_node_reaches_both_sides_that_cannot_reach_each_other() {
        let mut dice = SeededDice::new(3);
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

    #[test]
    fn a_seed_decides_the_clock_plan() {
        let draw = |seed| {
            let mut dice = SeededDice::new(seed);
            (0..20)
                .map(|_| clock_plan(3, &mut dice))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn clock_plans_bump_or_strobe_within_bounds() {
        let mut dice = SeededDice::new(11);
        let mut kinds = std::collections::BTreeSet::new();
        let (mut ahead, mut behind) = (false, false);
        for _ in 0..300 {
            let plan = clock_plan(5, &mut dice);
            kinds.insert(plan.kind);
            assert_eq!(plan.offsets.len(), 5, "{plan:?}");
            let moved: Vec<usize> = (0..5).filter(|&n| plan.offsets[n] != 0).collect();
            for &n in &moved {
                let magnitude = plan.offsets[n].abs();
                assert!(
                    (CLOCK_OFFSET_MIN_MS..=CLOCK_OFFSET_MAX_MS).contains(&magnitude),
                    "{plan:?}"
                );
                ahead |= plan.offsets[n] > 0;
                behind |= plan.offsets[n] < 0;
            }
            match plan.kind {
                "bump" => assert_eq!(moved.len(), 1, "{plan:?}"),
                "bumps" => assert_eq!(moved.len(), 5, "{plan:?}"),
                "strobe" => {
                    let s = plan.strobe.expect("a strobe plan has a strobe");
                    assert_eq!(moved, [s.node], "{plan:?}");
                    assert!(
                        (STROBE_PERIOD_MIN_MS..=STROBE_PERIOD_MAX_MS).contains(&s.period_ms),
                        "{plan:?}"
                    );
                }
                other => panic!("unknown kind {other}"),
            }
            assert_eq!(plan.kind == "strobe", plan.strobe.is_some(), "{plan:?}");
        }
        assert_eq!(kinds.len(), 3, "{kinds:?}");
        assert!(ahead && behind, "offsets go both ways");
    }

    #[test]
    fn clock_plans_are_named_by_what_they_do() {
        let bump = ClockPlan {
            kind: "bump",
            offsets: vec![0, 1500, 0],
            strobe: None,
        };
        assert_eq!(bump.name(), "clock:n1+1500ms");
        let bumps = ClockPlan {
            kind: "bumps",
            offsets: vec![-250, 4000],
            strobe: None,
        };
        assert_eq!(bumps.name(), "clock:n0-250ms,n1+4000ms");
        let strobe = ClockPlan {
            kind: "strobe",
            offsets: vec![0, 0, 800],
            strobe: Some(Strobe {
                node: 2,
                period_ms: 20,
            }),
        };
        assert_eq!(strobe.name(), "clock:strobe:n2+800ms/20ms");
    }

    #[test]
    fn a_strobe_flips_every_period_and_heal_resets_every_clock() {
        let plan = ClockPlan {
            kind: "strobe",
            offsets: vec![0, -300, 0],
            strobe: Some(Strobe {
                node: 1,
                period_ms: 10,
            }),
        };
        let mut clocks = ClockNemesis::new(3);
        assert_eq!(clocks.next_change_ms(), u64::MAX);
        assert_eq!(clocks.begin(&plan, 100), [(1, -300)]);
        assert_eq!(clocks.next_change_ms(), 110);
        assert!(clocks.poll(109).is_empty());
        assert_eq!(clocks.poll(110), [(1, 0)]);
        assert_eq!(clocks.next_change_ms(), 120);
        // A late poll flips once and keeps the cadence.
        assert_eq!(clocks.poll(125), [(1, -300)]);
        assert_eq!(clocks.next_change_ms(), 130);
        assert_eq!(clocks.offset(1), -300);
        assert_eq!(clocks.heal(), [(1, 0)]);
        assert_eq!(clocks.next_change_ms(), u64::MAX);
        assert!(clocks.heal().is_empty(), "a healed clock is not set again");
        assert!(clocks.poll(1000).is_empty());
    }

    #[test]
    fn a_bump_sets_and_resets_only_the_clocks_it_moves() {
        let plan = ClockPlan {
            kind: "bumps",
            offsets: vec![120, 0, -4000],
            strobe: None,
        };
        let mut clocks = ClockNemesis::new(3);
        assert_eq!(clocks.begin(&plan, 0), [(0, 120), (2, -4000)]);
        assert_eq!(clocks.next_change_ms(), u64::MAX);
        assert!(clocks.poll(5000).is_empty());
        assert_eq!(clocks.heal(), [(0, 0), (2, 0)]);
    }
}
