//! The clock nemesis (`converge certify --nemesis clock`) on process nodes: libfaketime moves the
//! wall clocks of the `register` mutant's nodes from outside. A last-writer-wins register that
//! stamps writes with its wall clock (`--bug wall-clock`, with no skew of its own) is caught by
//! `lww-winner` on every seed here, and passes without the nemesis, so the catch is the
//! nemesis's and not the timing of a run; the hybrid-logical-clock register passes under it.
//!
//! The tests skip, with a notice, only when libfaketime is not installed (Debian package
//! `faketime`; `scripts/install-deps.sh` installs it, and CI runs that first). Under CI (`CI`
//! set) a missing libfaketime fails them instead, so they cannot skip there unseen.
//!
//! The mutant nodes are another package's binaries, built here as `tests/mutants.rs` builds
//! them.

mod common;
use common::mutants_dir;
use converge_conformance::harness::process::find_libfaketime;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Longest one `converge certify` run may take: these take a few seconds.
const RUN_DEADLINE: Duration = Duration::from_secs(120);

/// Operations per run, and the longest main phase in seconds. The first fault window starts
/// with the workload, and every fault window moves clocks; a few hundred operations fill it
/// whether operations are issued as fast as nodes answer or at a fixed rate, and keep the
/// register checks (cubic in the run) cheap.
const RUN: [&str; 4] = ["--ops", "300", "--time-limit", "10"];

/// Seeds whose first window's clock fault is, with the harness's draws today: 3, every node
/// bumped its own way (`n0+422ms,n1-1598ms,n2+4171ms`); 7, one node ahead (`n0+2232ms`); 8, one
/// node strobing (`strobe:n1+111ms/48ms`). Every seed from 1 to 10 catches the bug; these cover
/// each kind of plan.
const SEEDS: [&str; 3] = ["3", "7", "8"];

/// Whether libfaketime is here; otherwise prints why the test is skipped (or, under CI, fails).
fn have_libfaketime(test: &str) -> bool {
    match find_libfaketime() {
        Ok(_) => true,
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{test}: libfaketime is missing under CI, where scripts/install-deps.sh should \
                 have installed it: {e}"
            );
            eprintln!("SKIPPED {test}: {e}");
            false
        }
    }
}

/// What one `converge certify` run printed.
struct Run {
    code: i32,
    out: String,
    command: String,
}

impl Run {
    fn context(&self) -> String {
        format!(
            "{}\nreproduce: cargo build -p converge-mutants --bin register && {}",
            self.out, self.command
        )
    }

    fn passes(&self, checks: &[&str]) {
        assert_eq!(self.code, 0, "{}", self.context());
        for check in checks {
            let line = format!("pass    {check}");
            assert!(self.out.contains(&line), "{check}: {}", self.context());
        }
    }

    fn caught_by(&self, check: &str) {
        assert_eq!(self.code, 1, "{}", self.context());
        let line = format!("FAIL    {check}");
        assert!(self.out.contains(&line), "{check}: {}", self.context());
    }

    /// The nemesis moved a clock (`faults: clock:…`).
    fn moved_a_clock(&self) {
        assert!(
            self.out.contains("faults: clock:"),
            "no clock fault: {}",
            self.context()
        );
    }
}

/// Runs `converge certify --bin register ARGS` (the harness's own flags, then `--` and the
/// node's), with extra environment `env`, output to files and a deadline.
fn certify(args: &[&str], env: &[(&str, &str)]) -> Run {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let bin = mutants_dir().join("register");
    let logs = std::env::temp_dir().join(format!(
        "converge-test-logs-clock-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs).expect("the temp dir is writable");
    let command = format!(
        "converge certify --bin {} {}",
        bin.display(),
        args.join(" ")
    );
    let (code, out) = common::certify_bounded(&bin, args, env, &logs, RUN_DEADLINE, &command);
    Run { code, out, command }
}

/// `--workload lww-register SEED_ARGS NEMESIS -- --mode lww NODE_ARGS`.
fn register_args<'a>(seed: &'a str, nemesis: &[&'a str], node: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--workload", "lww-register", "--seed", seed];
    args.extend(RUN);
    args.extend(nemesis);
    args.extend(["--", "--mode", "lww"]);
    args.extend(node);
    args
}

#[test]
fn a_wall_clock_lww_register_is_caught_by_the_clock_nemesis() {
    if !have_libfaketime("a_wall_clock_lww_register_is_caught_by_the_clock_nemesis") {
        return;
    }
    for seed in SEEDS {
        let run = certify(
            &register_args(seed, &["--nemesis", "clock"], &["--bug", "wall-clock"]),
            &[],
        );
        run.caught_by("lww-winner");
        run.moved_a_clock();
    }
}

#[test]
fn the_wall_clock_register_is_not_caught_without_moved_clocks() {
    // The nodes share one machine's clock, read to the microsecond: without the nemesis the bug
    // stays hidden, so the catch above is the nemesis's, not the luck of a run's timing.
    let run = certify(&register_args("7", &[], &["--bug", "wall-clock"]), &[]);
    run.passes(&["lww-winner", "convergence"]);
}

#[test]
fn the_hybrid_logical_clock_register_passes_under_the_clock_nemesis() {
    if !have_libfaketime("the_hybrid_logical_clock_register_passes_under_the_clock_nemesis") {
        return;
    }
    for seed in SEEDS {
        let run = certify(&register_args(seed, &["--nemesis", "clock"], &[]), &[]);
        run.passes(&["lww-winner", "convergence"]);
        run.moved_a_clock();
    }
}

#[test]
fn without_libfaketime_the_clock_nemesis_refuses_to_start() {
    let run = certify(
        &register_args("1", &["--nemesis", "clock"], &[]),
        &[("CONVERGE_LIBFAKETIME", "/nonexistent/libfaketime.so.1")],
    );
    assert_eq!(run.code, 2, "{}", run.context());
    assert!(
        run.out.contains("error: ") && run.out.contains("`faketime`"),
        "{}",
        run.context()
    );
}
