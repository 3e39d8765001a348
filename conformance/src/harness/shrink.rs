//! Shrinking a failing run: a search for a smaller configuration (fewer operations, nodes,
//! clients and faults, a shorter main phase) that still fails the same way.
//!
//! The search sees the run only through a closure that replays a configuration and says whether
//! it failed the same way ([`Replay`]), so it knows nothing of processes or of the implementation
//! under test, and tests drive it with a plain predicate. [`Signature`] is the usual meaning of
//! "the same way": the same failing checks, or the same kinds of node misbehaviour.
//!
//! Invariants:
//! - Every candidate keeps the original's seed, schedule, profile and timeouts: only the size of
//!   the run changes, so each replay draws the same operation stream (cut shorter) and the same
//!   seeded decisions, and the result is a run anyone can replay from the command line.
//! - A candidate is adopted only after a replay of it failed the same way: the result is always a
//!   configuration that was *observed* failing, never one inferred to fail. If nothing is adopted,
//!   the result is the original.
//! - Candidates only shrink: each adopted configuration is no larger than the current one in every
//!   dimension and smaller in at least one, so the search ends even without its budget.
//! - Replays are bounded by [`Limits`]: the number of replays, and the wall time, checked before
//!   each replay (a replay that has started runs to its end). No configuration is replayed twice.
//!
//! On a real-time backend, replays are not exact: timing decides some deliveries, so the search
//! assumes only that a failure is *usually* monotone in each dimension, and a minimal run may on
//! occasion pass when replayed. The seed keeps that rare for failures the operations themselves
//! provoke.

use super::check::{Check, Verdict};
use super::config::RunConfig;
use super::nemesis::Fault;
use super::report::{Problem, RunReport};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// What replaying one candidate showed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replay {
    /// It failed the same way as the original.
    Same,
    /// It passed, or failed differently.
    Different,
    /// Stop shrinking now (the user interrupted, or the replay could not run); the current
    /// configuration is the result.
    Stop,
}

impl From<bool> for Replay {
    fn from(same: bool) -> Self {
        if same {
            Replay::Same
        } else {
            Replay::Different
        }
    }
}

/// How much the search may spend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Most replays.
    pub max_runs: u32,
    /// Most wall time; checked before each replay.
    pub max_wall: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        // A shrunk run is usually short, so most of two dozen replays cost well under a second;
        // the wall budget stops a search whose replays are long (nodes that never agree spend
        // the whole final-read window on each).
        Limits {
            max_runs: 24,
            max_wall: Duration::from_secs(60),
        }
    }
}

/// The smallest value the search tries in each dimension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Floors {
    /// Fewest nodes (a workload's minimum: see `Workload::min_nodes`).
    pub nodes: usize,
    /// Fewest clients.
    pub clients: usize,
    /// Fewest operations.
    pub ops: u64,
    /// Shortest main phase, in ms; the time limit only ever shrinks to a multiple of this, which
    /// is the command line's granularity (whole seconds).
    pub time_limit_ms: u64,
}

impl Default for Floors {
    fn default() -> Self {
        Floors {
            nodes: 1,
            clients: 1,
            ops: 1,
            time_limit_ms: 1_000,
        }
    }
}

/// One dimension the search reduced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reduction {
    /// `ops`, `nodes`, `clients`, `faults` or `time-limit`.
    pub what: &'static str,
    /// The original's value.
    pub from: String,
    /// The smallest failing run's value.
    pub to: String,
}

/// The result of a search.
#[derive(Clone, Debug, Serialize)]
pub struct Shrunk {
    /// The smallest configuration observed failing the same way (the original if none was).
    pub config: RunConfig,
    /// Replays made.
    pub runs: u32,
    /// Wall time spent, in ms.
    pub elapsed_ms: u64,
    /// What shrank, from the original to `config`.
    pub reductions: Vec<Reduction>,
    /// Why the search stopped before it had tried everything, if it did.
    pub cut_short: Option<String>,
}

impl Shrunk {
    /// Whether any dimension shrank.
    pub fn reduced(&self) -> bool {
        !self.reductions.is_empty()
    }

    /// One line: `ops 1000 → 12, nodes 3 → 1, faults partition,loss → none`.
    pub fn summary(&self) -> String {
        if self.reductions.is_empty() {
            return "nothing smaller failed the same way".into();
        }
        self.reductions
            .iter()
            .map(|r| format!("{} {} → {}", r.what, r.from, r.to))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// How a run failed, for deciding whether a smaller run failed the same way: the kinds of node
/// misbehaviour (`crash`, `malformed-output`, …) and the names of the failing checks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Signature {
    /// Kinds of [`Problem`], by their report names.
    pub problems: BTreeSet<String>,
    /// Names of failing checks.
    pub checks: BTreeSet<String>,
}

impl Signature {
    /// The signature of the runs of one certification (one per schedule) and of any check made
    /// across them (merge-order independence).
    pub fn of(reports: &[RunReport], across: Option<&Check>) -> Signature {
        let mut s = Signature::default();
        for r in reports {
            s.problems.extend(r.problems.iter().map(problem_kind));
            s.checks.extend(failing(&r.checks));
        }
        s.checks.extend(failing(across));
        s
    }

    /// Whether this is a failure at all.
    pub fn is_failure(&self) -> bool {
        !self.problems.is_empty() || !self.checks.is_empty()
    }

    /// Whether `candidate` fails the same way as `self`. A run whose nodes misbehaved is judged
    /// by the kinds of misbehaviour alone, since its checks only show the consequences; otherwise
    /// the candidate must have no misbehaviour and exactly the same failing checks. Exactness
    /// keeps the shrunk run about the original bug: a smaller run that also fails some other
    /// check (say, availability, because a shorter run timed out) is a different failure.
    pub fn matches(&self, candidate: &Signature) -> bool {
        if !self.is_failure() {
            return false;
        }
        if !self.problems.is_empty() {
            return candidate.problems == self.problems;
        }
        candidate.problems.is_empty() && candidate.checks == self.checks
    }
}

fn failing<'a>(checks: impl IntoIterator<Item = &'a Check>) -> impl Iterator<Item = String> {
    checks
        .into_iter()
        .filter(|c| matches!(c.verdict, Verdict::Fail { .. }))
        .map(|c| c.name.clone())
}

/// A problem's kind as reports name it (`crash`, `init-timeout`, …): its serialized tag, so that
/// kinds added to [`Problem`] need no change here.
pub fn problem_kind(p: &Problem) -> String {
    serde_json::to_value(p)
        .ok()
        .and_then(|v| v.get("problem").and_then(|k| k.as_str()).map(String::from))
        .unwrap_or_else(|| "unknown".into())
}

/// Searches for the smallest configuration that `replay` says fails the same way as `original`,
/// within `limits`, trying no dimension below `floors`.
pub fn shrink(
    original: &RunConfig,
    floors: &Floors,
    limits: &Limits,
    replay: impl FnMut(&RunConfig) -> Replay,
) -> Shrunk {
    let started = Instant::now();
    shrink_with_clock(original, floors, limits, replay, move || started.elapsed())
}

/// [`shrink`] with the elapsed time read from `clock`, so tests can spend the wall budget
/// without waiting.
pub fn shrink_with_clock(
    original: &RunConfig,
    floors: &Floors,
    limits: &Limits,
    replay: impl FnMut(&RunConfig) -> Replay,
    clock: impl FnMut() -> Duration,
) -> Shrunk {
    let mut search = Search {
        current: original.clone(),
        floors: *floors,
        limits: *limits,
        replay,
        clock,
        runs: 0,
        tried: BTreeSet::new(),
        lows: HashMap::new(),
        stop: None,
    };
    search.run();
    let elapsed_ms = (search.clock)().as_millis() as u64;
    Shrunk {
        reductions: reductions(original, &search.current),
        config: search.current,
        runs: search.runs,
        elapsed_ms,
        cut_short: search.stop,
    }
}

/// The dimensions a candidate differs in; two candidates with the same key are the same run.
type Key = (usize, usize, u64, u64, Vec<Fault>);

fn key(c: &RunConfig) -> Key {
    (c.nodes, c.clients, c.ops, c.time_limit_ms, c.faults.clone())
}

/// How a numeric dimension is searched.
#[derive(Clone, Copy)]
enum Strategy {
    /// Grow from the floor by `factor` until a value fails, then bisect to within a quarter of
    /// the smallest failing value: operation counts, where a few more do not matter.
    Approximate { factor: u64 },
    /// Grow from the floor by doubling, then bisect to the exact smallest failing value: nodes
    /// and clients, small numbers where each one counts.
    Exact,
    /// Only the floor: the time limit, which rarely matters once the operations are few.
    FloorOnly,
}

struct Dimension {
    name: &'static str,
    floor: u64,
    /// Values are multiples of this.
    step: u64,
    strategy: Strategy,
    get: fn(&RunConfig) -> u64,
    set: fn(&mut RunConfig, u64),
}

struct Search<R, C> {
    current: RunConfig,
    floors: Floors,
    limits: Limits,
    replay: R,
    clock: C,
    runs: u32,
    /// Candidates replayed that did not fail the same way.
    tried: BTreeSet<Key>,
    /// Per dimension, the largest value a previous round saw fail differently: later rounds
    /// start there rather than at the floor, since a smaller cluster rarely needs fewer
    /// operations than a larger one did.
    lows: HashMap<&'static str, u64>,
    stop: Option<String>,
}

impl<R: FnMut(&RunConfig) -> Replay, C: FnMut() -> Duration> Search<R, C> {
    fn run(&mut self) {
        let dimensions = [
            Dimension {
                name: "ops",
                floor: self.floors.ops.max(1),
                step: 1,
                strategy: Strategy::Approximate { factor: 4 },
                get: |c| c.ops,
                set: |c, v| c.ops = v,
            },
            Dimension {
                name: "nodes",
                floor: self.floors.nodes.max(1) as u64,
                step: 1,
                strategy: Strategy::Exact,
                get: |c| c.nodes as u64,
                set: |c, v| c.nodes = v as usize,
            },
            Dimension {
                name: "clients",
                floor: self.floors.clients.max(1) as u64,
                step: 1,
                strategy: Strategy::Exact,
                get: |c| c.clients as u64,
                set: |c, v| c.clients = v as usize,
            },
        ];
        let time = Dimension {
            name: "time-limit",
            floor: self.floors.time_limit_ms.max(1),
            step: self.floors.time_limit_ms.max(1),
            strategy: Strategy::FloorOnly,
            get: |c| c.time_limit_ms,
            set: |c, v| c.time_limit_ms = v,
        };
        // Operations first, so that later replays are short; then the cluster, the faults and
        // the time limit. Another round follows whenever one shrank anything, since a smaller
        // cluster may fail with fewer operations.
        loop {
            let before = key(&self.current);
            for d in &dimensions {
                self.minimize(d);
            }
            self.drop_faults();
            self.minimize(&time);
            if self.stop.is_some() || key(&self.current) == before {
                return;
            }
        }
    }

    /// Replays `candidate` unless it was tried or the budget is spent; adopts it if it failed the
    /// same way. `None` once the search must stop.
    fn probe(&mut self, candidate: RunConfig) -> Option<bool> {
        if self.stop.is_some() {
            return None;
        }
        let k = key(&candidate);
        if k == key(&self.current) {
            return Some(true);
        }
        if self.tried.contains(&k) {
            return Some(false);
        }
        if self.runs >= self.limits.max_runs {
            self.stop = Some(format!(
                "replay budget spent ({} runs)",
                self.limits.max_runs
            ));
            return None;
        }
        if (self.clock)() >= self.limits.max_wall {
            self.stop = Some(format!(
                "wall budget spent ({} s)",
                self.limits.max_wall.as_secs()
            ));
            return None;
        }
        self.runs += 1;
        match (self.replay)(&candidate) {
            Replay::Same => {
                self.current = candidate;
                Some(true)
            }
            Replay::Different => {
                self.tried.insert(k);
                Some(false)
            }
            Replay::Stop => {
                self.stop = Some("stopped".into());
                None
            }
        }
    }

    fn try_value(&mut self, d: &Dimension, value: u64) -> Option<bool> {
        let mut candidate = self.current.clone();
        (d.set)(&mut candidate, value);
        self.probe(candidate)
    }

    /// Shrinks one numeric dimension: from the floor upwards until a value fails the same way,
    /// then bisects between the largest value seen to fail differently and the smallest seen to
    /// fail the same way. Growing from the floor tries the cheapest replays first, and a bug that
    /// shows in a handful of operations is found in a handful of replays.
    fn minimize(&mut self, d: &Dimension) {
        let round = |v: u64| v / d.step * d.step;
        let mut hi = (d.get)(&self.current);
        let mut lo = None;
        let mut value = self.lows.get(d.name).copied().unwrap_or(0).max(d.floor);
        while value < hi {
            match self.try_value(d, value) {
                None => return,
                Some(true) => hi = value,
                Some(false) => lo = Some(value),
            }
            let factor = match d.strategy {
                Strategy::FloorOnly => return,
                Strategy::Exact => 2,
                Strategy::Approximate { factor } => factor,
            };
            value = round(value.saturating_mul(factor)).max(value + d.step);
        }
        let Some(mut lo) = lo else { return };
        self.lows.insert(d.name, lo);
        let tolerance = |hi: u64| match d.strategy {
            Strategy::Approximate { .. } => (hi / 4).max(d.step),
            _ => d.step,
        };
        while hi - lo > tolerance(hi) {
            let mid = round(lo + (hi - lo) / 2);
            if mid <= lo || mid >= hi {
                return;
            }
            match self.try_value(d, mid) {
                None => return,
                Some(true) => hi = mid,
                Some(false) => {
                    lo = mid;
                    self.lows.insert(d.name, lo);
                }
            }
        }
    }

    /// Tries no faults at all, then each fault left out in turn.
    fn drop_faults(&mut self) {
        if self.current.faults.is_empty() {
            return;
        }
        let none = RunConfig {
            faults: Vec::new(),
            ..self.current.clone()
        };
        match self.probe(none) {
            None | Some(true) => return,
            Some(false) => {}
        }
        for fault in self.current.faults.clone() {
            if self.current.faults.len() <= 1 {
                // Leaving out the last one is the empty set, tried above.
                return;
            }
            let mut candidate = self.current.clone();
            candidate.faults.retain(|f| *f != fault);
            if self.probe(candidate).is_none() {
                return;
            }
        }
    }
}

fn reductions(from: &RunConfig, to: &RunConfig) -> Vec<Reduction> {
    let faults = |c: &RunConfig| {
        if c.faults.is_empty() {
            "none".to_string()
        } else {
            c.faults
                .iter()
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join(",")
        }
    };
    let seconds = |ms: u64| {
        if ms.is_multiple_of(1000) {
            format!("{} s", ms / 1000)
        } else {
            format!("{ms} ms")
        }
    };
    let pairs = [
        ("ops", from.ops.to_string(), to.ops.to_string()),
        ("nodes", from.nodes.to_string(), to.nodes.to_string()),
        ("clients", from.clients.to_string(), to.clients.to_string()),
        ("faults", faults(from), faults(to)),
        (
            "time-limit",
            seconds(from.time_limit_ms),
            seconds(to.time_limit_ms),
        ),
    ];
    pairs
        .into_iter()
        .filter(|(_, a, b)| a != b)
        .map(|(what, from, to)| Reduction { what, from, to })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn original() -> RunConfig {
        RunConfig {
            nodes: 5,
            clients: 5,
            ops: 1000,
            time_limit_ms: 60_000,
            seed: 42,
            schedule: 1,
            faults: vec![Fault::Partition, Fault::Loss, Fault::Duplicate],
            ..RunConfig::default()
        }
    }

    /// A bug that needs at least 37 operations, two nodes and partitions, and nothing else.
    fn bug(c: &RunConfig) -> bool {
        c.ops >= 37 && c.nodes >= 2 && c.faults.contains(&Fault::Partition)
    }

    #[test]
    fn a_threshold_bug_shrinks_to_near_its_thresholds_with_the_same_seed() {
        let mut seen = Vec::new();
        let shrunk = shrink(&original(), &Floors::default(), &Limits::default(), |c| {
            // Every replay keeps the seed and schedule, and is no larger than the original.
            assert_eq!((c.seed, c.schedule), (42, 1));
            assert!(c.ops <= 1000 && c.nodes <= 5 && c.clients <= 5, "{c:?}");
            seen.push(key(c));
            bug(c).into()
        });
        let c = &shrunk.config;
        assert!((37..=37 + 37 / 4).contains(&c.ops), "{c:?}");
        assert_eq!((c.nodes, c.clients), (2, 1));
        assert_eq!(c.faults, [Fault::Partition]);
        assert_eq!(c.time_limit_ms, 1_000);
        assert!(bug(c));
        assert_eq!(shrunk.runs as usize, seen.len());
        assert!(shrunk.runs <= Limits::default().max_runs, "{}", shrunk.runs);
        let unique: BTreeSet<&Key> = seen.iter().collect();
        assert_eq!(
            unique.len(),
            seen.len(),
            "a configuration was replayed twice"
        );
        assert_eq!(
            shrunk.summary(),
            format!(
                "ops 1000 → {}, nodes 5 → 2, clients 5 → 1, faults partition,loss,duplicate → \
                 partition, time-limit 60 s → 1 s",
                c.ops
            )
        );
    }

    #[test]
    fn a_run_that_no_smaller_run_reproduces_is_kept_as_it_is() {
        let shrunk = shrink(&original(), &Floors::default(), &Limits::default(), |_| {
            Replay::Different
        });
        assert_eq!(key(&shrunk.config), key(&original()));
        assert!(!shrunk.reduced());
        assert_eq!(shrunk.summary(), "nothing smaller failed the same way");
        assert_eq!(shrunk.cut_short, None);
    }

    #[test]
    fn the_replay_budget_bounds_the_search() {
        let limits = Limits {
            max_runs: 3,
            ..Limits::default()
        };
        let shrunk = shrink(&original(), &Floors::default(), &limits, |c| bug(c).into());
        assert_eq!(shrunk.runs, 3);
        assert_eq!(
            shrunk.cut_short.as_deref(),
            Some("replay budget spent (3 runs)")
        );
        // Whatever it adopted within budget still fails.
        assert!(bug(&shrunk.config));
    }

    #[test]
    fn the_wall_budget_is_checked_before_each_replay() {
        let now = Cell::new(Duration::ZERO);
        let limits = Limits {
            max_runs: 100,
            max_wall: Duration::from_secs(25),
        };
        let shrunk = shrink_with_clock(
            &original(),
            &Floors::default(),
            &limits,
            |c| {
                now.set(now.get() + Duration::from_secs(10));
                bug(c).into()
            },
            || now.get(),
        );
        // Replays start at 0, 10 and 20 s; the fourth would start at 30 s.
        assert_eq!(shrunk.runs, 3);
        assert_eq!(
            shrunk.cut_short.as_deref(),
            Some("wall budget spent (25 s)")
        );
    }

    #[test]
    fn the_caller_can_stop_the_search_and_keep_what_it_found() {
        let mut calls = 0;
        let shrunk = shrink(&original(), &Floors::default(), &Limits::default(), |c| {
            calls += 1;
            if calls == 3 {
                Replay::Stop
            } else {
                bug(c).into()
            }
        });
        assert_eq!(shrunk.runs, 3);
        assert_eq!(shrunk.cut_short.as_deref(), Some("stopped"));
        assert!(bug(&shrunk.config));
    }

    #[test]
    fn floors_are_never_crossed() {
        let floors = Floors {
            nodes: 3,
            clients: 2,
            ops: 10,
            time_limit_ms: 5_000,
        };
        let shrunk = shrink(&original(), &floors, &Limits::default(), |c| {
            assert!(c.nodes >= 3 && c.clients >= 2 && c.ops >= 10, "{c:?}");
            assert!(c.time_limit_ms.is_multiple_of(5_000), "{c:?}");
            Replay::Same
        });
        let c = &shrunk.config;
        assert_eq!((c.nodes, c.clients, c.ops), (3, 2, 10));
        assert_eq!((c.time_limit_ms, c.faults.len()), (5_000, 0));
    }

    #[test]
    fn a_flaky_failure_is_only_adopted_where_it_was_observed() {
        // Fails at every third replay whatever the size: the result must be a configuration
        // that was seen failing.
        let mut calls = 0;
        let mut failed = Vec::new();
        let shrunk = shrink(&original(), &Floors::default(), &Limits::default(), |c| {
            calls += 1;
            let same = calls % 3 == 0;
            if same {
                failed.push(key(c));
            }
            same.into()
        });
        assert!(shrunk.reduced());
        assert!(failed.contains(&key(&shrunk.config)));
    }

    fn check(name: &str, fail: bool) -> Check {
        let verdict = if fail {
            Verdict::Fail { detail: "x".into() }
        } else {
            Verdict::Pass
        };
        Check::new(name, false, verdict)
    }

    fn signature(problems: &[&str], checks: &[&str]) -> Signature {
        Signature {
            problems: problems.iter().map(|s| s.to_string()).collect(),
            checks: checks.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn the_same_way_means_the_same_failing_checks_or_the_same_misbehaviour() {
        let original = signature(&[], &["counter-bounds", "convergence"]);
        assert!(original.matches(&signature(&[], &["convergence", "counter-bounds"])));
        assert!(!original.matches(&signature(&[], &["counter-bounds"])));
        assert!(!original.matches(&signature(&[], &["counter-bounds", "convergence", "x"])));
        assert!(!original.matches(&signature(&["crash"], &["counter-bounds", "convergence"])));
        let crash = signature(&["crash"], &["available"]);
        assert!(crash.matches(&signature(&["crash"], &[])));
        assert!(!crash.matches(&signature(&["malformed-output"], &["available"])));
        // A pass is never the same failure, not even as another pass.
        assert!(!Signature::default().matches(&Signature::default()));
    }

    #[test]
    fn a_signature_collects_every_schedule_and_the_check_across_them() {
        let report = |checks: Vec<Check>, problems: Vec<Problem>| RunReport {
            workload: "w".into(),
            config: RunConfig::default(),
            network: Default::default(),
            net_stats: Default::default(),
            faults: Vec::new(),
            ops: 0,
            ok: 0,
            fail: 0,
            info: 0,
            msgs_per_op: 0.0,
            latency: Default::default(),
            availability: Default::default(),
            elapsed_ms: 0,
            main_ms: 0,
            fault_windows: Vec::new(),
            settle: Default::default(),
            replication_period_ms: None,
            stability_window_ms: 0,
            problems,
            final_values: Default::default(),
            services: Default::default(),
            checks,
            figures: Vec::new(),
            order_independent: true,
            history: Default::default(),
        };
        let runs = [
            report(vec![check("a", true), check("b", false)], Vec::new()),
            report(
                vec![check("c", true)],
                vec![Problem::Crash {
                    node: "n0".into(),
                    status: "exit 3".into(),
                }],
            ),
        ];
        let across = check("merge-order-independence", true);
        assert_eq!(
            Signature::of(&runs, Some(&across)),
            signature(&["crash"], &["a", "c", "merge-order-independence"])
        );
    }
}
