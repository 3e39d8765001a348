//! The checks that judge every read and every consistency level, end to end: `converge certify`
//! against the Rust nodes of `converge-mutants` (`mutants/src/bin/`), a correct one passing each
//! check and one with a classic bug caught by it.
//!
//! - `consistency-levels`: a session node that answers `GLOBAL_QUORUM` requests after its local
//!   apply, without waiting for any peer (`--bug fake-quorum`), keeps every session guarantee,
//!   so only this check can catch it.
//! - `counter-read-bounds`: a counter that merges by summing over-counts during the run, which
//!   this check sees in reads long before the final ones.
//!
//! Seeds and sizes were run over several seeds and nemeses first: the correct nodes passed
//! every time and each bug was caught every time.

mod common;
use common::mutants_dir;
use std::fs::File;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Longest one run may take; these take a second or two.
const RUN_DEADLINE: Duration = Duration::from_secs(120);

/// Runs `converge certify --bin NODE ARGS` with a log directory of its own; returns the exit
/// code and what it printed, with the command to run it again.
fn certify(node: &str, args: &[&str]) -> (i32, String) {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let bin = mutants_dir().join(node);
    let logs = std::env::temp_dir().join(format!(
        "converge-test-logs-checks-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&logs).expect("the temp dir is writable");
    // Output goes to files rather than pipes, so a waiting test cannot block the harness.
    let (stdout, stderr) = (logs.join("certify.out"), logs.join("certify.err"));
    let file = |path: &Path| File::create(path).expect("the temp dir is writable");
    let mut child = Command::new(env!("CARGO_BIN_EXE_converge"))
        .arg("certify")
        .arg("--log-dir")
        .arg(&logs)
        .arg("--bin")
        .arg(&bin)
        .args(args)
        .stdout(file(&stdout))
        .stderr(file(&stderr))
        .spawn()
        .expect("the converge binary runs");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting on converge") {
            break status;
        }
        if started.elapsed() > RUN_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("converge certify {args:?} ran past {RUN_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
    let out = format!(
        "{}{}\nreproduce: cargo build -p converge-mutants --bins && converge certify --bin {} {}",
        read(&stdout),
        read(&stderr),
        bin.display(),
        args.join(" ")
    );
    (status.code().unwrap_or(-1), out)
}

/// The session guarantees, which the fake-quorum node keeps.
const SESSION_CHECKS: [&str; 5] = [
    "tokens",
    "read-your-writes",
    "monotonic-reads",
    "monotonic-writes",
    "writes-follow-reads",
];

fn session_run(seed: &str, bug: Option<&str>) -> (i32, String) {
    let mut args = vec![
        "--workload",
        "session",
        "--nemesis",
        "partition",
        "--ops",
        "400",
        "--seed",
        seed,
        "--no-shrink",
    ];
    if let Some(bug) = bug {
        args.extend(["--", "--bug", bug]);
    }
    certify("session", &args)
}

#[test]
fn a_session_node_that_waits_for_a_majority_passes_consistency_levels() {
    for seed in ["1", "2"] {
        let (code, out) = session_run(seed, None);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("pass    consistency-levels"), "{out}");
    }
}

#[test]
fn a_session_node_that_fakes_its_quorums_is_caught_by_consistency_levels() {
    for seed in ["1", "2"] {
        let (code, out) = session_run(seed, Some("fake-quorum"));
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("FAIL    consistency-levels: "), "{out}");
        assert!(
            out.contains("acknowledged quorum requests had too few peers take part: n"),
            "{out}"
        );
        assert!(out.contains("'s GLOBAL_QUORUM "), "{out}");
        assert!(out.contains("after round trips with no peer"), "{out}");
        // Nothing else is wrong with it: only the level is a lie.
        for check in SESSION_CHECKS {
            assert!(out.contains(&format!("pass    {check}")), "{check}: {out}");
        }
    }
}

#[test]
fn a_counter_that_over_counts_is_caught_in_reads_during_the_run_and_a_correct_one_is_not() {
    let (code, out) = certify(
        "counter",
        &[
            "--workload",
            "g-counter",
            "--nemesis",
            "duplicate",
            "--ops",
            "300",
            "--seed",
            "1",
            "--no-shrink",
            "--",
            "--bug",
            "sum-merge",
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL    counter-read-bounds: "), "{out}");
    assert!(
        out.contains("the sum of every positive add invoked before it completed"),
        "{out}"
    );
    for workload in ["g-counter", "pn-counter"] {
        let (code, out) = certify(
            "counter",
            &[
                "--workload",
                workload,
                "--nemesis",
                "partition,duplicate",
                "--ops",
                "300",
                "--seed",
                "2",
            ],
        );
        assert_eq!(code, 0, "{workload}: {out}");
        assert!(
            out.contains("pass    counter-read-bounds"),
            "{workload}: {out}"
        );
    }
}
