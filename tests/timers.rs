//! `converge certify`, with its defaults, against the timer-driven nodes of `converge-mutants`:
//! each correct one passes and each deliberately broken one is caught by the check named for it.
//!
//! The project's rule is that a verdict depends on the node, never on how fast the run happened
//! to be. These nodes replicate on timers of 200 ms to 2 s, so a harness that fires its
//! operations as fast as replies come and reads right after heal finishes before most of their
//! replication has happened: their bugs pass it, and a correct node that needs a few periods to
//! settle may fail it. The time-driven harness (a 20 s main phase at a fixed rate, fault windows
//! of about 5 s, a wait for quiescence after heal and a stability window around the final reads)
//! must get every case below right with nothing but its defaults, so each run is given only
//! `--bin`, `--workload`, `--nemesis`, `--seed` and `--log-dir` (and the node's own `--bug`),
//! over two seeds. A case that needs tuning to pass or to be caught is a finding about the
//! harness, not something to tune here. Until the time-driven harness lands, these tests fail.
//!
//! # The timer-driven mutants (`mutants/src/bin/`)
//!
//! None of them is built to be caught: each is a design real engineers write, and each bug is a
//! plausible slip in it. All of them acknowledge a write before any peer has it, so none is
//! certified under `kill`.
//! - `gossip_counter` (`g-counter`, `pn-counter`): per-origin numbered deltas, resent to each
//!   peer every `--gossip-ms` (500) until acknowledged, applied once per (origin, seq).
//!   `--bug re-add` applies every delta it receives: a resend after a lost acknowledgement, or a
//!   duplicated message, is counted twice. `counter-bounds` catches the excess.
//! - `lazy_set` (`g-set`): every `--sync-ms` (2000) each peer is sent the elements it has not
//!   acknowledged. `--bug drop-on-partition` sends only what was added since the last tick, once:
//!   a batch a fault window eats is never sent again. `set-full` (lost elements) and
//!   `convergence` catch it.
//! - `slow_drain_counter` (`g-counter`, Gossip Glomers style): adds go into a local backlog, and
//!   every `--drain-ms` (200) the backlog is folded into one `seq-kv` key by read + `cas`, with
//!   one attempt per tick. Most attempts lose a race and retry, so the count settles a few ticks
//!   after heal: the harness must wait for service traffic to stop. `--bug leaked-timeout`
//!   guards against lost `cas` replies with a timeout (`--cas-timeout-ms`, 2000) that the error
//!   path forgets to cancel, so every batch that lost a race is folded again two seconds later,
//!   after the nodes agreed. `counter-bounds` catches the excess.
//! - `gossip_broadcast` (`broadcast`): correct only; every `--gossip-ms` (1500) each grid
//!   neighbour is sent the messages it has not acknowledged, so a message needs about one period
//!   per hop after heal.
//! - `escrow` (`bounded-counter`): an escrow counter whose replicas spend only the rights they
//!   hold, asking peers for more and waiting 600 ms for them; its whole state goes every
//!   `--gossip-ms` (300) to each peer that has not confirmed it, and transferred rights travel
//!   only in that gossip. Run here also with `--gossip-ms 1500`, where most transfers come too
//!   late and withdrawals are refused with 11: slow but correct, and it must pass.
//!   `--bug local-check` withdraws whenever the node's view of the value covers it, so two
//!   nodes spend the same balance; `bound` catches the overdraft.
//!
//! The nodes are another package's binaries, which `env!` cannot name from here, so the first
//! test to need them builds them with cargo, in this test binary's profile, and finds them next
//! to the `converge` binary (as `tests/mutants.rs` does).

mod common;
use common::mutants_dir;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The seeds every case runs with.
const SEEDS: [&str; 2] = ["1", "2"];
/// Longest one `converge certify` run may take: a 20 s main phase, up to 10 s for quiescence,
/// final reads with their stability window (runs are not shrunk). A run that takes longer has hung and is killed with its nodes, so the test fails
/// instead of hanging.
const RUN_DEADLINE: Duration = Duration::from_secs(240);
/// Every fault but `kill`, which none of these nodes survives by design (see above).
const ALL_BUT_KILL: &str = "partition,loss,duplicate,reorder,pause";

/// What a case must come to.
enum Expected {
    /// Exit 0.
    Pass,
    /// Exit 1, with each named check `FAIL`.
    Caught(&'static [&'static str]),
}
use Expected::{Caught, Pass};

/// One row of the table: a mutant binary with its arguments, a workload and the faults.
struct Case {
    binary: &'static str,
    args: &'static [&'static str],
    workload: &'static str,
    nemesis: &'static str,
    expected: Expected,
}

/// The table: one test per row, named by its first column.
macro_rules! cases {
    ($($test:ident: ($binary:expr, $args:expr, $workload:expr, $nemesis:expr, $expected:expr);)*) => {
        $(
            #[test]
            fn $test() {
                check(&Case {
                    binary: $binary,
                    args: $args,
                    workload: $workload,
                    nemesis: $nemesis,
                    expected: $expected,
                });
            }
        )*
    };
}

cases! {
    gossip_counter_passes_g_counter:
        ("gossip_counter", &[], "g-counter", ALL_BUT_KILL, Pass);
    gossip_counter_passes_pn_counter:
        ("gossip_counter", &[], "pn-counter", ALL_BUT_KILL, Pass);
    gossip_counter_that_re_adds_resent_deltas_is_caught:
        ("gossip_counter", &["--bug", "re-add"], "g-counter", "partition,loss,duplicate",
         Caught(&["counter-bounds"]));
    lazy_set_passes:
        ("lazy_set", &[], "g-set", ALL_BUT_KILL, Pass);
    lazy_set_that_ships_each_batch_once_is_caught:
        ("lazy_set", &["--bug", "drop-on-partition"], "g-set", "partition",
         Caught(&["set-full", "convergence"]));
    slow_drain_counter_passes:
        ("slow_drain_counter", &[], "g-counter", ALL_BUT_KILL, Pass);
    slow_drain_counter_with_a_leaked_timeout_is_caught:
        ("slow_drain_counter", &["--bug", "leaked-timeout"], "g-counter", "partition,pause",
         Caught(&["counter-bounds"]));
    gossip_broadcast_passes:
        ("gossip_broadcast", &[], "broadcast", ALL_BUT_KILL, Pass);
    escrow_passes_bounded_counter:
        ("escrow", &[], "bounded-counter", ALL_BUT_KILL, Pass);
    escrow_with_slow_gossip_passes_bounded_counter:
        ("escrow", &["--gossip-ms", "1500"], "bounded-counter", ALL_BUT_KILL, Pass);
    escrow_that_checks_only_its_local_view_is_caught:
        ("escrow", &["--bug", "local-check"], "bounded-counter", "partition",
         Caught(&["bound"]));
}

/// Runs `case` once per seed and asserts its expected outcome on each.
fn check(case: &Case) {
    for seed in SEEDS {
        let run = certify(case, seed);
        match case.expected {
            Pass => {
                assert_eq!(run.code, 0, "{}", run.context());
                assert!(!run.out.contains("FAIL    "), "{}", run.context());
            }
            Caught(checks) => {
                assert_eq!(run.code, 1, "{}", run.context());
                for check in checks {
                    let line = format!("FAIL    {check}");
                    assert!(run.out.contains(&line), "{check}: {}", run.context());
                }
                assert!(
                    run.out.contains("reproduce: converge certify --bin "),
                    "{}",
                    run.context()
                );
            }
        }
    }
}

/// What one `converge certify` run printed, and how to run it again.
struct Run {
    code: i32,
    out: String,
    command: String,
    logs: PathBuf,
}

impl Run {
    fn context(&self) -> String {
        format!(
            "{}\nnode logs in {}\nreproduce: cargo build -p converge-mutants --bins && {}",
            self.out,
            self.logs.display(),
            self.command
        )
    }
}

/// Runs `converge certify` on `case` with `seed`, and nothing else but a log directory of its
/// own; output goes to files, so a waiting test cannot block the harness.
fn certify(case: &Case, seed: &str) -> Run {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let bin = mutants_dir().join(case.binary);
    // One log directory per run: the harness appends to its logs, and tests run in parallel.
    let logs = std::env::temp_dir().join(format!(
        "converge-test-logs-timers-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&logs).expect("the temp dir is writable");
    let mut args: Vec<&str> = vec![
        "--workload",
        case.workload,
        "--nemesis",
        case.nemesis,
        "--seed",
        seed,
    ];
    if !case.args.is_empty() {
        args.push("--");
        args.extend(case.args);
    }
    let command = format!(
        "converge certify --bin {} {}",
        bin.display(),
        args.join(" ")
    );
    let (code, out) = common::certify_bounded(&bin, &args, &[], &logs, RUN_DEADLINE, &command);
    Run {
        code,
        out,
        command,
        logs,
    }
}
