//! `converge certify` against the Rust nodes of `converge-mutants` (`mutants/src/bin/`): each
//! correct node passes under every fault that makes sense for it, and each deliberately broken
//! one, with one classic bug, is caught by the check named for it.
//!
//! The nodes are another package's binaries, which `env!` cannot name from here, so the first
//! test to need them builds them with cargo, in this test binary's profile, and finds them next
//! to the `converge` binary.
//!
//! Every run uses the harness's default timing (a 20 s main phase at 50 requests per second,
//! fault windows of 4 s, quiescence and a stability window after the heal; docs/protocol.md,
//! "Timing"), so `--ops` here is only a cap that ends a run early where fewer operations show
//! what the case is about. The seeds were chosen when runs were fired as fast as replies came;
//! they fix the fault plan (which faults, in which order, on which nodes), which the time-driven
//! runs draw the same way, and every case passes or is caught with them under the new timing.
//! `tests/timers.rs` holds the timer-driven nodes, run with nothing but the defaults.

mod common;
use common::mutants_dir;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Longest one `converge certify` run may take: a run is its 20 s main phase, at most 10 s of
/// settling and its final reads (about 35 s; at most 60 s if its nodes never agree). A run that
/// takes longer has hung and is killed with its nodes, so the test fails instead of hanging.
const RUN_DEADLINE: Duration = Duration::from_secs(120);

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
    let command = format!(
        "converge certify --bin {} {}",
        bin.display(),
        args.join(" ")
    );
    let (code, out) = common::certify_bounded(&bin, args, &[], &logs, RUN_DEADLINE, &command);
    Run { code, out, command }
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

/// A seed whose first fault window, under `NETWORK_AND_PAUSE`, pauses a node (on three nodes);
/// its loss rate is 0.116. Runs too short to reach a second window use it next to
/// `NETWORK_AND_PAUSE_SEED`, so that both a partition and a pause are seen.
const PAUSE_FIRST_SEED: &str = "2";
/// Faults for the nodes whose checks are expensive enough that their runs stay short: a partition,
/// a pause and kills, each in a run of its own.
const SHORT_RUNS: [(&str, &str); 3] = [
    (NETWORK_AND_PAUSE, NETWORK_AND_PAUSE_SEED),
    (NETWORK_AND_PAUSE, PAUSE_FIRST_SEED),
    (KILLS, KILLS_SEED),
];
/// Operations in each of the `SHORT_RUNS`. The register checks compare every read with every pair
/// of a write and a value its node had before it, so their cost grows with the cube of the run
/// (three thousand operations take half a minute in a debug build); a thousand check in about a
/// second.
const SHORT_RUN_OPS: &str = "1000";

/// Asserts that a run of `SHORT_RUNS` (or under one partition) saw the windowed fault that its
/// nemesis and seed were chosen for.
fn saw_its_fault(run: &Run, nemesis: &str, seed: &str) {
    let fault = match (nemesis, seed) {
        (KILLS, _) => "kill:n",
        (_, PAUSE_FIRST_SEED) => "pause:n",
        _ => "partition:",
    };
    run.applied(&[fault]);
}

/// A seed whose first fault window, under `partition` alone, cuts one node off from the others
/// (on three nodes). The first window starts with the workload and lasts 4 s (a fifth of the
/// default 20 s main phase), and `ONE_PARTITION_OPS` operations at the default 50 per second are
/// issued within its first 3 s, so the whole workload runs on two sides that cannot hear each
/// other: every operation on one side is concurrent with every operation on the other, and the
/// last operations on each side stay so until the heal. (Clients are paced, not fired as fast as
/// replies come, so this holds on a loaded machine too.) Nodes that restarted would wait for
/// their peers, but these never restart, and `CatchUp` lets a first incarnation answer at once.
const ONE_PARTITION_SEED: &str = "1";
const ONE_PARTITION_OPS: &str = "150";
/// The clock skew between consecutive nodes of the register runs, in milliseconds: `n1` runs this
/// far behind `n0` and `n2` twice as far, more than a small run lasts.
const WALL_CLOCK_SKEW_MS: &str = "500";

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
fn the_or_set_passes_under_every_fault() {
    // The run under one partition is the one that catches `remove-wins` below.
    let one_partition = ("partition", ONE_PARTITION_SEED);
    for (nemesis, seed) in SHORT_RUNS.into_iter().chain([one_partition]) {
        let size = if nemesis == "partition" {
            ONE_PARTITION_OPS
        } else {
            SHORT_RUN_OPS
        };
        let run = certify(
            "orset",
            &[
                "--workload",
                "or-set",
                "--ops",
                size,
                "--seed",
                seed,
                "--nemesis",
                nemesis,
            ],
        );
        run.passes(&["add-wins", "convergence"]);
        saw_its_fault(&run, nemesis, seed);
    }
}

#[test]
fn the_lww_register_keeps_the_causally_last_write_under_every_fault_despite_skewed_clocks() {
    // The same skew as the `wall-clock` bug's run: the hybrid logical clock makes it harmless.
    for (nemesis, seed) in SHORT_RUNS {
        let run = certify(
            "register",
            &[
                "--workload",
                "lww-register",
                "--ops",
                SHORT_RUN_OPS,
                "--seed",
                seed,
                "--nemesis",
                nemesis,
                "--",
                "--mode",
                "lww",
                "--skew-ms",
                WALL_CLOCK_SKEW_MS,
            ],
        );
        run.passes(&["lww-winner", "convergence"]);
        saw_its_fault(&run, nemesis, seed);
    }
}

#[test]
fn the_mv_register_keeps_every_concurrent_write_under_every_fault() {
    // The run under one partition is the one that catches `keep-one` below.
    let one_partition = ("partition", ONE_PARTITION_SEED);
    for (nemesis, seed) in SHORT_RUNS.into_iter().chain([one_partition]) {
        let size = if nemesis == "partition" {
            ONE_PARTITION_OPS
        } else {
            SHORT_RUN_OPS
        };
        let run = certify(
            "register",
            &[
                "--workload",
                "mv-register",
                "--ops",
                size,
                "--seed",
                seed,
                "--nemesis",
                nemesis,
                "--",
                "--mode",
                "mv",
            ],
        );
        run.passes(&["mv-siblings", "convergence"]);
        saw_its_fault(&run, nemesis, seed);
    }
}

#[test]
fn the_lin_kv_proxy_is_linearizable_under_every_fault() {
    for (nemesis, seed) in SHORT_RUNS {
        let run = certify(
            "linkv",
            &[
                "--workload",
                "lin-kv",
                "--ops",
                SHORT_RUN_OPS,
                "--seed",
                seed,
                "--nemesis",
                nemesis,
            ],
        );
        run.passes(&["linearizable"]);
        saw_its_fault(&run, nemesis, seed);
    }
}

#[test]
fn the_anti_entropy_g_set_passes_under_network_faults_and_pauses() {
    // Anti-entropy acknowledges an add before any peer has it, so kills are left out (see the
    // node's documentation).
    for seed in [NETWORK_AND_PAUSE_SEED, PAUSE_FIRST_SEED] {
        let run = certify(
            "antientropy",
            &[
                "--workload",
                "g-set",
                "--ops",
                "2000",
                "--seed",
                seed,
                "--nemesis",
                NETWORK_AND_PAUSE,
            ],
        );
        run.passes(&SET_CHECKS);
        saw_its_fault(&run, NETWORK_AND_PAUSE, seed);
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
    // A client that moves to a node on the other side of a partition finds its writes missing
    // there; without a partition the node's eager push usually outruns the client's next
    // request (60 ms apart at the default rate), so only a run fired faster than replication
    // would show it: the partition makes the catch depend on the node, not on speed.
    let run = certify(
        "session",
        &[
            "--workload",
            "session",
            "--seed",
            "1",
            "--nemesis",
            "partition",
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
    // breaks is an add stored where its session's earlier writes have not arrived yet. Whether
    // a reader also sees such an add without what its writer had read before (writes follow
    // reads) depends on which reads the clients happened to make, so only monotonic writes,
    // which every such add breaks, is required.
    let run = certify(
        "session",
        &[
            "--workload",
            "session",
            "--seed",
            "1",
            "--nemesis",
            "partition",
            "--",
            "--bug",
            "token-without-wait-on-add",
        ],
    );
    run.caught_by(&["monotonic-writes"]);
    run.also_passes(&["read-your-writes", "monotonic-reads"]);
}

#[test]
fn a_counter_that_acknowledges_before_replicating_loses_writes_when_killed() {
    // The same seed as `the_counter_survives_kills`, where the correct counter passes. The bug
    // loses only what was acknowledged in the last gossip period (20 ms) before a kill; the kill
    // nemesis lands right after the node acknowledges an update, which is that window, so the
    // default rate catches it (`scripts/sweep-mutants.sh`: seeds 1-5).
    let run = certify(
        "counter",
        &[
            "--workload",
            "g-counter",
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

#[test]
fn an_or_set_where_removes_win_loses_adds_concurrent_with_them() {
    // One node is cut off for the whole workload, so an element whose last operation on one
    // side is an add, while the other side removed it, has an add that no remove could have
    // seen and a remove that add never saw: the remove wins, and the element is missing.
    let run = certify(
        "orset",
        &[
            "--workload",
            "or-set",
            "--ops",
            ONE_PARTITION_OPS,
            "--seed",
            ONE_PARTITION_SEED,
            "--nemesis",
            "partition",
            "--",
            "--bug",
            "remove-wins",
        ],
    );
    run.caught_by(&["add-wins"]);
    run.also_passes(&["convergence"]);
    assert!(
        run.out.contains("was concurrent with every remove of it"),
        "{}",
        run.context()
    );
}

#[test]
fn a_tagless_or_set_loses_elements_added_again_after_a_remove() {
    // No faults needed: every contested element that is removed and then added again is gone
    // for good, on every node.
    let run = certify(
        "orset",
        &[
            "--workload",
            "or-set",
            "--ops",
            "500",
            "--seed",
            "1",
            "--",
            "--bug",
            "tagless",
        ],
    );
    run.caught_by(&["add-wins"]);
    assert!(
        run.out.contains("was concurrent with every remove of it"),
        "{}",
        run.context()
    );
}

#[test]
fn an_lww_register_stamped_by_skewed_wall_clocks_lets_a_causally_later_write_lose() {
    // n1's clock runs half a second behind n0's, n2's a whole second: every write they make
    // within that time of reading n0's value loses to it, with no faults and no luck needed.
    let run = certify(
        "register",
        &[
            "--workload",
            "lww-register",
            "--ops",
            "300",
            "--seed",
            "1",
            "--",
            "--mode",
            "lww",
            "--skew-ms",
            WALL_CLOCK_SKEW_MS,
            "--bug",
            "wall-clock",
        ],
    );
    run.caught_by(&["lww-winner"]);
}

#[test]
fn an_mv_register_that_keeps_one_sibling_drops_concurrent_writes() {
    // The last write on each side of the partition is one no other write could have seen, so
    // both must stay siblings; keeping one drops the other.
    let run = certify(
        "register",
        &[
            "--workload",
            "mv-register",
            "--ops",
            ONE_PARTITION_OPS,
            "--seed",
            ONE_PARTITION_SEED,
            "--nemesis",
            "partition",
            "--",
            "--mode",
            "mv",
            "--bug",
            "keep-one",
        ],
    );
    run.caught_by(&["mv-siblings"]);
    assert!(
        run.out.contains("no other write could have seen"),
        "{}",
        run.context()
    );
}

#[test]
fn anti_entropy_that_skips_a_bucket_never_repairs_its_keys() {
    // About one element in sixteen hashes into the skipped bucket and never leaves its node,
    // whatever the seed and the timing.
    let run = certify(
        "antientropy",
        &[
            "--workload",
            "g-set",
            "--ops",
            "300",
            "--seed",
            "1",
            "--",
            "--bug",
            "ae-skips-keys",
        ],
    );
    run.caught_by(&["set-full: lost: n", "convergence"]);
}

#[test]
fn the_newer_nodes_refuse_bad_command_lines_with_exit_code_2() {
    for (node, args, expected) in [
        (
            "orset",
            &["--bug", "off-by-one"][..],
            "remove-wins, tagless",
        ),
        ("register", &["--bug", "keep-one"][..], "--mode"),
        ("register", &["--mode", "lvv"][..], "modes: lww, mv"),
        (
            "register",
            &["--mode", "mv", "--bug", "wall-clock"][..],
            "needs --mode lww",
        ),
        (
            "register",
            &["--mode", "lww", "--skew-ms", "x"][..],
            "integer",
        ),
        ("linkv", &["--bug", "off-by-one"][..], "no bugs"),
        ("antientropy", &["--bug", "off-by-one"][..], "ae-skips-keys"),
    ] {
        let out = Command::new(mutants_dir().join(node))
            .args(args)
            .output()
            .expect("the node runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{node} {args:?}: {stderr}");
        assert!(stderr.contains(expected), "{node} {args:?}: {stderr}");
    }
}
