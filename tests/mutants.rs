//! `converge certify` against the Rust nodes of `converge-mutants` (`mutants/src/bin/`): each
//! correct node passes under every fault that makes sense for it, and each deliberately broken
//! one, with one classic bug, is caught by the check named for it.
//!
//! The nodes are another package's binaries, which `env!` cannot name from here, so the first
//! test to need them builds them with cargo, in this test binary's profile, and finds them next
//! to the `converge` binary.
//!
//! Seeds and sizes were chosen by running each case over many seeds, two at a time on a 2-core
//! machine: a correct node passes every time, and each bug is caught every time. Runs stay small
//! because a run whose nodes never agree spends the harness's whole final-read window (5 s), and
//! because the harness writes to a paused node's input pipe and blocks once that is full (and then
//! hangs for good), so the state gossiped to a paused node must stay well under 64 KiB.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Longest one `converge certify` run may take: the slowest here takes about 10 s. A run that
/// takes longer has hung (see above) and is killed, so the test fails instead of hanging.
const RUN_DEADLINE: Duration = Duration::from_secs(120);

/// Builds the mutant nodes once, and returns the directory that holds them.
fn mutants_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let converge = Path::new(env!("CARGO_BIN_EXE_converge"));
        let dir = converge
            .parent()
            .expect("the converge binary lives in a profile directory")
            .to_path_buf();
        let mut build = Command::new(env!("CARGO"));
        build.current_dir(env!("CARGO_MANIFEST_DIR")).args([
            "build",
            "--quiet",
            "-p",
            "converge-mutants",
            "--bins",
        ]);
        if converge.to_string_lossy().contains("/release/") {
            build.arg("--release");
        }
        let out = build.output().expect("cargo runs");
        assert!(
            out.status.success(),
            "building converge-mutants failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            dir.join("counter").exists(),
            "the mutant nodes were built, but not next to {} (a --target build?)",
            converge.display()
        );
        dir
    })
}

/// What one `converge certify` run printed, and how to run it again.
struct Run {
    code: i32,
    out: String,
    command: String,
}

impl Run {
    fn context(&self) -> String {
        format!(
            "{}\nreproduce: cargo build -p converge-mutants --bins && {}",
            self.out, self.command
        )
    }

    /// Exit 0, with every named check passed.
    fn passes(&self, checks: &[&str]) {
        assert_eq!(self.code, 0, "{}", self.context());
        for check in checks {
            let line = format!("pass    {check}");
            assert!(self.out.contains(&line), "{check}: {}", self.context());
        }
    }

    /// Every named check passed, whatever the verdict.
    fn also_passes(&self, checks: &[&str]) {
        for check in checks {
            let line = format!("pass    {check}");
            assert!(self.out.contains(&line), "{check}: {}", self.context());
        }
    }

    /// Exit 1, with every named check failed, and the harness's reproduce line.
    fn caught_by(&self, checks: &[&str]) {
        assert_eq!(self.code, 1, "{}", self.context());
        for check in checks {
            let line = format!("FAIL    {check}");
            assert!(self.out.contains(&line), "{check}: {}", self.context());
        }
        assert!(
            self.out.contains("reproduce: converge certify --bin "),
            "{}",
            self.context()
        );
    }

    /// The nemesis applied every named fault at least once (`kill:n`, `pause:n`, `partition:`).
    fn applied(&self, faults: &[&str]) {
        for fault in faults {
            assert!(self.out.contains(fault), "no {fault}: {}", self.context());
        }
    }
}

/// Runs `converge certify --bin NODE ARGS`, where NODE is one of the mutant binaries.
fn certify(node: &str, args: &[&str]) -> Run {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let bin = mutants_dir().join(node);
    // One log directory per run: the harness appends to its logs, and tests run in parallel.
    let logs = std::env::temp_dir().join(format!(
        "converge-test-logs-mutants-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&logs).expect("the temp dir is writable");
    // Output goes to files rather than pipes, so a waiting test cannot block the harness.
    let (stdout, stderr) = (logs.join("certify.out"), logs.join("certify.err"));
    let file = |path: &Path| File::create(path).expect("the temp dir is writable");
    let command = format!(
        "converge certify --bin {} {}",
        bin.display(),
        args.join(" ")
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_converge"))
        .arg("certify")
        .arg("--log-dir")
        .arg(&logs)
        .arg("--bin")
        .arg(&bin)
        .args(args)
        .stdout(file(&stdout))
        .stderr(file(&stderr))
        // Its own process group, which its nodes join, so a hung run can be ended whole.
        .process_group(0)
        .spawn()
        .expect("the converge binary runs");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("the harness can be waited for") {
            break Some(status);
        }
        if started.elapsed() > RUN_DEADLINE {
            // SIGKILL to the group ends the harness and its nodes, stopped ones too.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |path: &Path| {
        String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
    };
    let out = format!("{}{}", read(&stdout), read(&stderr));
    let Some(status) = status else {
        panic!(
            "converge certify did not finish within {} s, so it was killed with its nodes; node \
             logs in {}\n{out}\nreproduce: {command}",
            RUN_DEADLINE.as_secs(),
            logs.display()
        );
    };
    Run {
        code: status.code().unwrap_or(-1),
        out,
        command,
    }
}

/// Network faults and pauses: everything but kill.
const NETWORK_AND_PAUSE: &str = "partition,loss,duplicate,reorder,pause";
/// A seed whose first two fault windows, under `NETWORK_AND_PAUSE`, partition the network and
/// then pause a node, on three nodes and on five; its loss rate is 0.077.
const NETWORK_AND_PAUSE_SEED: &str = "32";
/// Kills in every fault window, with duplication and reordering. A node acknowledges a write once
/// it has written it to a peer, so the write survives the node's kill right after; under loss
/// those copies may all be dropped before the next gossip, and no design that answers during a
/// partition can promise more. Partitions and pauses are left to `NETWORK_AND_PAUSE`, so that
/// every fault window here kills.
const KILLS: &str = "kill,duplicate,reorder";
/// A seed whose kills at 400 and 800 ms hit nodes whose clients are busy (on three nodes): a
/// node killed earlier has its client stuck until the request it had sent times out (1 s).
const KILLS_SEED: &str = "3";

const SET_CHECKS: [&str; 3] = ["set-full", "convergence", "monotonic-reads-per-node"];

#[test]
fn echo_passes_under_every_fault() {
    let run = certify(
        "echo",
        &[
            "--workload",
            "echo",
            "--ops",
            "3000",
            "--seed",
            "3",
            "--nemesis",
            "partition,loss,duplicate,reorder,kill,pause",
        ],
    );
    run.passes(&["echo", "available"]);
    run.applied(&["kill:n"]);
}

#[test]
fn the_counter_passes_g_counter_and_pn_counter_under_network_faults_and_pauses() {
    for workload in ["g-counter", "pn-counter"] {
        let run = certify(
            "counter",
            &[
                "--workload",
                workload,
                "--ops",
                "15000",
                "--seed",
                NETWORK_AND_PAUSE_SEED,
                "--nemesis",
                NETWORK_AND_PAUSE,
            ],
        );
        run.passes(&["counter-bounds", "convergence"]);
    }
}

#[test]
fn the_counter_survives_kills() {
    for workload in ["g-counter", "pn-counter"] {
        let run = certify(
            "counter",
            &[
                "--workload",
                workload,
                "--ops",
                "15000",
                "--seed",
                KILLS_SEED,
                "--nemesis",
                KILLS,
            ],
        );
        run.passes(&["counter-bounds", "convergence"]);
        run.applied(&["kill:n"]);
    }
}

#[test]
fn the_g_set_passes_under_every_fault() {
    // Full-state gossip to a paused node piles up in its input pipe, so the run under pauses
    // keeps the set small.
    for (nemesis, seed, size) in [
        (NETWORK_AND_PAUSE, NETWORK_AND_PAUSE_SEED, "2000"),
        (KILLS, KILLS_SEED, "6000"),
    ] {
        let run = certify(
            "gset",
            &[
                "--workload",
                "g-set",
                "--ops",
                size,
                "--seed",
                seed,
                "--nemesis",
                nemesis,
            ],
        );
        run.passes(&SET_CHECKS);
    }
}

#[test]
fn the_broadcast_passes_on_a_grid_under_every_fault() {
    // Five nodes make Maelstrom's grid two rows deep, so messages are relayed over several hops.
    // The run under pauses stays small, as for the g-set.
    for (nemesis, seed, size) in [
        (NETWORK_AND_PAUSE, NETWORK_AND_PAUSE_SEED, "2000"),
        (KILLS, KILLS_SEED, "6000"),
    ] {
        let run = certify(
            "broadcast",
            &[
                "--workload",
                "broadcast",
                "--nodes",
                "5",
                "--clients",
                "5",
                "--ops",
                size,
                "--seed",
                seed,
                "--nemesis",
                nemesis,
            ],
        );
        run.passes(&SET_CHECKS);
    }
}

#[test]
fn the_session_node_keeps_every_guarantee_under_every_fault() {
    // Sessions wait for their tokens, so these runs are slower and span many fault windows.
    for (nemesis, seed) in [
        (NETWORK_AND_PAUSE, NETWORK_AND_PAUSE_SEED),
        (KILLS, KILLS_SEED),
    ] {
        let run = certify(
            "session",
            &[
                "--workload",
                "session",
                "--ops",
                "600",
                "--seed",
                seed,
                "--nemesis",
                nemesis,
            ],
        );
        run.passes(&SET_CHECKS);
        run.passes(&[
            "tokens",
            "read-your-writes",
            "monotonic-reads",
            "monotonic-writes",
            "writes-follow-reads",
        ]);
    }
}

#[test]
fn a_counter_that_merges_by_sum_over_counts() {
    // Every gossip round counts the same increments again; duplicates only make it worse.
    let run = certify(
        "counter",
        &[
            "--workload",
            "g-counter",
            "--ops",
            "300",
            "--seed",
            "1",
            "--nemesis",
            "duplicate",
            "--",
            "--bug",
            "sum-merge",
        ],
    );
    run.caught_by(&["counter-bounds"]);
}

#[test]
fn a_pn_counter_that_keeps_one_net_value_per_node_loses_decrements() {
    let run = certify(
        "counter",
        &[
            "--workload",
            "pn-counter",
            "--ops",
            "300",
            "--seed",
            "1",
            "--",
            "--bug",
            "net-merge",
        ],
    );
    run.caught_by(&["counter-bounds"]);
}

#[test]
fn a_counter_that_never_retransmits_loses_writes_across_partitions() {
    let run = certify(
        "counter",
        &[
            "--workload",
            "g-counter",
            "--ops",
            "300",
            "--seed",
            "1",
            "--nemesis",
            "partition,loss",
            "--",
            "--bug",
            "no-retransmit",
        ],
    );
    run.caught_by(&["counter-bounds", "convergence"]);
    assert!(
        run.out.contains("lost acknowledged writes"),
        "{}",
        run.context()
    );
}

#[test]
fn a_g_set_that_never_retransmits_loses_acknowledged_elements() {
    let run = certify(
        "gset",
        &[
            "--workload",
            "g-set",
            "--ops",
            "300",
            "--seed",
            "1",
            "--nemesis",
            "partition,loss",
            "--",
            "--bug",
            "no-retransmit",
        ],
    );
    run.caught_by(&["set-full: lost: n", "convergence"]);
}

#[test]
fn a_g_set_that_never_merges_shows_only_local_adds() {
    let run = certify(
        "gset",
        &[
            "--workload",
            "g-set",
            "--ops",
            "300",
            "--seed",
            "1",
            "--",
            "--bug",
            "read-local-only",
        ],
    );
    run.caught_by(&["set-full: lost: n", "convergence"]);
}

#[test]
fn a_broadcast_that_never_retries_loses_acknowledged_messages() {
    let run = certify(
        "broadcast",
        &[
            "--workload",
            "broadcast",
            "--nodes",
            "5",
            "--clients",
            "5",
            "--ops",
            "300",
            "--seed",
            "1",
            "--nemesis",
            "partition,loss",
            "--",
            "--bug",
            "no-retry",
        ],
    );
    run.caught_by(&["set-full: lost: n", "convergence"]);
}

#[test]
fn a_session_node_that_ignores_tokens_breaks_read_your_writes() {
    let run = certify(
        "session",
        &[
            "--workload",
            "session",
            "--ops",
            "300",
            "--seed",
            "1",
            "--",
            "--bug",
            "ignore-token",
        ],
    );
    run.caught_by(&["read-your-writes"]);
}

#[test]
fn a_session_node_whose_adds_skip_the_token_breaks_monotonic_writes() {
    // Reads still wait for their token, so read-your-writes and monotonic reads hold; what
    // breaks is an add stored where its session's earlier writes have not arrived yet.
    let run = certify(
        "session",
        &[
            "--workload",
            "session",
            "--ops",
            "400",
            "--seed",
            "1",
            "--nemesis",
            "partition",
            "--",
            "--bug",
            "token-without-wait-on-add",
        ],
    );
    run.caught_by(&["monotonic-writes", "writes-follow-reads"]);
    run.also_passes(&["read-your-writes", "monotonic-reads"]);
}

#[test]
fn a_counter_that_acknowledges_before_replicating_loses_writes_when_killed() {
    // The same seed as `the_counter_survives_kills`, where the correct counter passes.
    let run = certify(
        "counter",
        &[
            "--workload",
            "g-counter",
            "--ops",
            "15000",
            "--seed",
            KILLS_SEED,
            "--nemesis",
            KILLS,
            "--",
            "--bug",
            "ack-before-replicate",
        ],
    );
    run.caught_by(&["counter-bounds"]);
    assert!(
        run.out.contains("lost acknowledged writes"),
        "{}",
        run.context()
    );
}

#[test]
fn an_unknown_bug_is_refused_with_exit_code_2() {
    let out = Command::new(mutants_dir().join("counter"))
        .args(["--bug", "off-by-one"])
        .output()
        .expect("the counter node runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("unknown bug \"off-by-one\"") && stderr.contains("sum-merge"),
        "{stderr}"
    );
}
