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
//!
//! The runs are two tables of [`Case`]s, one of correct nodes and one of broken ones, run by
//! [`run`]: each row is a test of its own, named for what it shows, holding one run or a few.

#[macro_use]
mod common;
use common::{Case, Verdict, mutants_dir};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Longest one `converge certify` run may take: a run is its 20 s main phase, at most 10 s of
/// settling and its final reads (about 35 s; at most 60 s if its nodes never agree). A run that
/// takes longer has hung and is killed with its nodes, so the test fails instead of hanging.
const RUN_DEADLINE: Duration = Duration::from_secs(120);

/// The runner of this file's table: runs `converge certify --bin NODE ARGS`, where NODE is the
/// case's mutant binary, and asserts what the case expects; a caught bug must also come with the
/// harness's reproduce line.
fn run(case: &Case) {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let bin = mutants_dir().join(case.node);
    // One log directory per run: the harness appends to its logs, and tests run in parallel.
    let logs = std::env::temp_dir().join(format!(
        "converge-test-logs-mutants-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&logs).expect("the temp dir is writable");
    let args = case.certify_args();
    let command = format!(
        "converge certify --bin {} {}",
        bin.display(),
        args.join(" ")
    );
    let (code, out) = common::certify_bounded(&bin, &args, &[], &logs, RUN_DEADLINE, &command);
    let context = format!("{out}\nreproduce: cargo build -p converge-mutants --bins && {command}");
    case.assert_run(code, &out, &context);
    if case.verdict == Verdict::Fail {
        assert!(
            out.contains("reproduce: converge certify --bin "),
            "{context}"
        );
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

/// What every correct set node must pass.
const SET_CHECKS: &[&str] = &["set-full", "convergence", "monotonic-reads-per-node"];
/// What the correct session node must pass: the set checks and the four session guarantees.
const SESSION_CHECKS: &[&str] = &[
    "set-full",
    "convergence",
    "monotonic-reads-per-node",
    "tokens",
    "read-your-writes",
    "monotonic-reads",
    "monotonic-writes",
    "writes-follow-reads",
];

/// A seed whose first fault window, under `NETWORK_AND_PAUSE`, pauses a node (on three nodes);
/// its loss rate is 0.116. Runs too short to reach a second window use it next to
/// `NETWORK_AND_PAUSE_SEED`, so that both a partition and a pause are seen.
const PAUSE_FIRST_SEED: &str = "2";
/// Operations in each of the short runs below. The register checks compare every read with every
/// pair of a write and a value its node had before it, so their cost grows with the cube of the
/// run (three thousand operations take half a minute in a debug build); a thousand check in
/// about a second.
const SHORT_RUN_OPS: &str = "1000";

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

/// The nodes whose checks are expensive enough that their runs stay short get three of them: a
/// partition, a pause and kills, each in a run of its own. Each run asserts that its nemesis
/// applied the fault it was chosen for.
const SHORT_PARTITION: &[&str] = &[
    "--ops",
    SHORT_RUN_OPS,
    "--seed",
    NETWORK_AND_PAUSE_SEED,
    "--nemesis",
    NETWORK_AND_PAUSE,
];
/// The short run that pauses a node (see [`SHORT_PARTITION`]).
const SHORT_PAUSE: &[&str] = &[
    "--ops",
    SHORT_RUN_OPS,
    "--seed",
    PAUSE_FIRST_SEED,
    "--nemesis",
    NETWORK_AND_PAUSE,
];
/// The short run that kills nodes (see [`SHORT_PARTITION`]).
const SHORT_KILLS: &[&str] = &[
    "--ops",
    SHORT_RUN_OPS,
    "--seed",
    KILLS_SEED,
    "--nemesis",
    KILLS,
];
/// A run under one partition that cuts a node off for the whole workload (see
/// [`ONE_PARTITION_SEED`]).
const ONE_PARTITION: &[&str] = &[
    "--ops",
    ONE_PARTITION_OPS,
    "--seed",
    ONE_PARTITION_SEED,
    "--nemesis",
    "partition",
];

// The correct nodes: each passes under every fault that makes sense for it.
certify_table! {
    runner: run;

    #[test]
    fn echo_passes_under_every_fault = [Case {
        node: "echo",
        workload: Some("echo"),
        args: &[
            "--ops", "3000",
            "--seed", "3",
            "--nemesis", "partition,loss,duplicate,reorder,kill,pause",
        ],
        passing: &["echo", "available"],
        output: &["kill:n"],
        ..Case::PASS
    }];

    #[test]
    fn the_counter_passes_g_counter_and_pn_counter_under_network_faults_and_pauses = [
        Case {
            node: "counter",
            workload: Some("g-counter"),
            args: &[
                "--ops", "15000",
                "--seed", NETWORK_AND_PAUSE_SEED,
                "--nemesis", NETWORK_AND_PAUSE,
            ],
            passing: &["counter-bounds", "convergence"],
            ..Case::PASS
        },
        Case {
            node: "counter",
            workload: Some("pn-counter"),
            args: &[
                "--ops", "15000",
                "--seed", NETWORK_AND_PAUSE_SEED,
                "--nemesis", NETWORK_AND_PAUSE,
            ],
            passing: &["counter-bounds", "convergence"],
            ..Case::PASS
        },
    ];

    #[test]
    fn the_counter_survives_kills = [
        Case {
            node: "counter",
            workload: Some("g-counter"),
            args: &["--ops", "15000", "--seed", KILLS_SEED, "--nemesis", KILLS],
            passing: &["counter-bounds", "convergence"],
            output: &["kill:n"],
            ..Case::PASS
        },
        Case {
            node: "counter",
            workload: Some("pn-counter"),
            args: &["--ops", "15000", "--seed", KILLS_SEED, "--nemesis", KILLS],
            passing: &["counter-bounds", "convergence"],
            output: &["kill:n"],
            ..Case::PASS
        },
    ];

    // Gossip to a paused node waits for it: in its input pipe and, once that is full, in the
    // harness's queue for it (65,536 lines; beyond that it is dropped, as a congested link
    // drops). Full-state gossip makes each waiting message as large as the set, and the resumed
    // node reads them all before the requests queued behind them, so the run under pauses keeps
    // the set small.
    #[test]
    fn the_g_set_passes_under_every_fault = [
        Case {
            node: "gset",
            workload: Some("g-set"),
            args: &[
                "--ops", "2000",
                "--seed", NETWORK_AND_PAUSE_SEED,
                "--nemesis", NETWORK_AND_PAUSE,
            ],
            passing: SET_CHECKS,
            ..Case::PASS
        },
        Case {
            node: "gset",
            workload: Some("g-set"),
            args: &["--ops", "6000", "--seed", KILLS_SEED, "--nemesis", KILLS],
            passing: SET_CHECKS,
            ..Case::PASS
        },
    ];

    // Five nodes make Maelstrom's grid two rows deep, so messages are relayed over several hops.
    // The run under pauses stays small, as for the g-set.
    #[test]
    fn the_broadcast_passes_on_a_grid_under_every_fault = [
        Case {
            node: "broadcast",
            workload: Some("broadcast"),
            args: &[
                "--nodes", "5",
                "--clients", "5",
                "--ops", "2000",
                "--seed", NETWORK_AND_PAUSE_SEED,
                "--nemesis", NETWORK_AND_PAUSE,
            ],
            passing: SET_CHECKS,
            ..Case::PASS
        },
        Case {
            node: "broadcast",
            workload: Some("broadcast"),
            args: &[
                "--nodes", "5",
                "--clients", "5",
                "--ops", "6000",
                "--seed", KILLS_SEED,
                "--nemesis", KILLS,
            ],
            passing: SET_CHECKS,
            ..Case::PASS
        },
    ];

    // Sessions wait for their tokens, so these runs are slower and span many fault windows.
    #[test]
    fn the_session_node_keeps_every_guarantee_under_every_fault = [
        Case {
            node: "session",
            workload: Some("session"),
            args: &[
                "--ops", "600",
                "--seed", NETWORK_AND_PAUSE_SEED,
                "--nemesis", NETWORK_AND_PAUSE,
            ],
            passing: SESSION_CHECKS,
            ..Case::PASS
        },
        Case {
            node: "session",
            workload: Some("session"),
            args: &["--ops", "600", "--seed", KILLS_SEED, "--nemesis", KILLS],
            passing: SESSION_CHECKS,
            ..Case::PASS
        },
    ];

    // The run under one partition is the one that catches `remove-wins` below.
    #[test]
    fn the_or_set_passes_under_every_fault = [
        Case {
            node: "orset",
            workload: Some("or-set"),
            args: SHORT_PARTITION,
            passing: &["add-wins", "convergence"],
            output: &["partition:"],
            ..Case::PASS
        },
        Case {
            node: "orset",
            workload: Some("or-set"),
            args: SHORT_PAUSE,
            passing: &["add-wins", "convergence"],
            output: &["pause:n"],
            ..Case::PASS
        },
        Case {
            node: "orset",
            workload: Some("or-set"),
            args: SHORT_KILLS,
            passing: &["add-wins", "convergence"],
            output: &["kill:n"],
            ..Case::PASS
        },
        Case {
            node: "orset",
            workload: Some("or-set"),
            args: ONE_PARTITION,
            passing: &["add-wins", "convergence"],
            output: &["partition:"],
            ..Case::PASS
        },
    ];

    // The same skew as the `wall-clock` bug's run: the hybrid logical clock makes it harmless.
    #[test]
    fn the_lww_register_keeps_the_causally_last_write_under_every_fault_despite_skewed_clocks = [
        Case {
            node: "register",
            workload: Some("lww-register"),
            args: SHORT_PARTITION,
            node_args: &["--mode", "lww", "--skew-ms", WALL_CLOCK_SKEW_MS],
            passing: &["lww-winner", "convergence"],
            output: &["partition:"],
            ..Case::PASS
        },
        Case {
            node: "register",
            workload: Some("lww-register"),
            args: SHORT_PAUSE,
            node_args: &["--mode", "lww", "--skew-ms", WALL_CLOCK_SKEW_MS],
            passing: &["lww-winner", "convergence"],
            output: &["pause:n"],
            ..Case::PASS
        },
        Case {
            node: "register",
            workload: Some("lww-register"),
            args: SHORT_KILLS,
            node_args: &["--mode", "lww", "--skew-ms", WALL_CLOCK_SKEW_MS],
            passing: &["lww-winner", "convergence"],
            output: &["kill:n"],
            ..Case::PASS
        },
    ];

    // The run under one partition is the one that catches `keep-one` below.
    #[test]
    fn the_mv_register_keeps_every_concurrent_write_under_every_fault = [
        Case {
            node: "register",
            workload: Some("mv-register"),
            args: SHORT_PARTITION,
            node_args: &["--mode", "mv"],
            passing: &["mv-siblings", "convergence"],
            output: &["partition:"],
            ..Case::PASS
        },
        Case {
            node: "register",
            workload: Some("mv-register"),
            args: SHORT_PAUSE,
            node_args: &["--mode", "mv"],
            passing: &["mv-siblings", "convergence"],
            output: &["pause:n"],
            ..Case::PASS
        },
        Case {
            node: "register",
            workload: Some("mv-register"),
            args: SHORT_KILLS,
            node_args: &["--mode", "mv"],
            passing: &["mv-siblings", "convergence"],
            output: &["kill:n"],
            ..Case::PASS
        },
        Case {
            node: "register",
            workload: Some("mv-register"),
            args: ONE_PARTITION,
            node_args: &["--mode", "mv"],
            passing: &["mv-siblings", "convergence"],
            output: &["partition:"],
            ..Case::PASS
        },
    ];

    #[test]
    fn the_lin_kv_proxy_is_linearizable_under_every_fault = [
        Case {
            node: "linkv",
            workload: Some("lin-kv"),
            args: SHORT_PARTITION,
            passing: &["linearizable"],
            output: &["partition:"],
            ..Case::PASS
        },
        Case {
            node: "linkv",
            workload: Some("lin-kv"),
            args: SHORT_PAUSE,
            passing: &["linearizable"],
            output: &["pause:n"],
            ..Case::PASS
        },
        Case {
            node: "linkv",
            workload: Some("lin-kv"),
            args: SHORT_KILLS,
            passing: &["linearizable"],
            output: &["kill:n"],
            ..Case::PASS
        },
    ];

    // A withdrawal spends only rights its node holds, so no read anywhere goes below 0, and the
    // refused ones (22, 11) are answered within the request timeout, so accounting is exact.
    // The escrow node acknowledges before any peer has an add, so kills are left out (see the
    // node's documentation); its slow sibling (`--gossip-ms 1500`) is in `tests/timers.rs`.
    #[test]
    fn the_escrow_counter_never_goes_below_zero_under_network_faults_and_pauses = [Case {
        node: "escrow",
        workload: Some("bounded-counter"),
        args: &["--seed", NETWORK_AND_PAUSE_SEED, "--nemesis", NETWORK_AND_PAUSE],
        passing: &["bound", "accounting", "convergence"],
        output: &["partition:", "withdrawals during partitions: "],
        ..Case::PASS
    }];

    // Anti-entropy acknowledges an add before any peer has it, so kills are left out (see the
    // node's documentation).
    #[test]
    fn the_anti_entropy_g_set_passes_under_network_faults_and_pauses = [
        Case {
            node: "antientropy",
            workload: Some("g-set"),
            args: &[
                "--ops", "2000",
                "--seed", NETWORK_AND_PAUSE_SEED,
                "--nemesis", NETWORK_AND_PAUSE,
            ],
            passing: SET_CHECKS,
            output: &["partition:"],
            ..Case::PASS
        },
        Case {
            node: "antientropy",
            workload: Some("g-set"),
            args: &["--ops", "2000", "--seed", PAUSE_FIRST_SEED, "--nemesis", NETWORK_AND_PAUSE],
            passing: SET_CHECKS,
            output: &["pause:n"],
            ..Case::PASS
        },
    ];
}

// The broken nodes: each classic bug is caught by the check named for it.
certify_table! {
    runner: run;

    // Every gossip round counts the same increments again; duplicates only make it worse.
    #[test]
    fn a_counter_that_merges_by_sum_over_counts = [Case {
        node: "counter",
        workload: Some("g-counter"),
        args: &["--ops", "300", "--seed", "1", "--nemesis", "duplicate"],
        node_args: &["--bug", "sum-merge"],
        failing: &["counter-bounds"],
        ..Case::FAIL
    }];

    #[test]
    fn a_pn_counter_that_keeps_one_net_value_per_node_loses_decrements = [Case {
        node: "counter",
        workload: Some("pn-counter"),
        args: &["--ops", "300", "--seed", "1"],
        node_args: &["--bug", "net-merge"],
        failing: &["counter-bounds"],
        ..Case::FAIL
    }];

    #[test]
    fn a_counter_that_never_retransmits_loses_writes_across_partitions = [Case {
        node: "counter",
        workload: Some("g-counter"),
        args: &["--ops", "300", "--seed", "1", "--nemesis", "partition,loss"],
        node_args: &["--bug", "no-retransmit"],
        failing: &["counter-bounds", "convergence"],
        output: &["lost acknowledged writes"],
        ..Case::FAIL
    }];

    #[test]
    fn a_g_set_that_never_retransmits_loses_acknowledged_elements = [Case {
        node: "gset",
        workload: Some("g-set"),
        args: &["--ops", "300", "--seed", "1", "--nemesis", "partition,loss"],
        node_args: &["--bug", "no-retransmit"],
        failing: &["set-full: lost: n", "convergence"],
        ..Case::FAIL
    }];

    #[test]
    fn a_g_set_that_never_merges_shows_only_local_adds = [Case {
        node: "gset",
        workload: Some("g-set"),
        args: &["--ops", "300", "--seed", "1"],
        node_args: &["--bug", "read-local-only"],
        failing: &["set-full: lost: n", "convergence"],
        ..Case::FAIL
    }];

    #[test]
    fn a_broadcast_that_never_retries_loses_acknowledged_messages = [Case {
        node: "broadcast",
        workload: Some("broadcast"),
        args: &[
            "--nodes", "5",
            "--clients", "5",
            "--ops", "300",
            "--seed", "1",
            "--nemesis", "partition,loss",
        ],
        node_args: &["--bug", "no-retry"],
        failing: &["set-full: lost: n", "convergence"],
        ..Case::FAIL
    }];

    // A client that moves to a node on the other side of a partition finds its writes missing
    // there; without a partition the node's eager push usually outruns the client's next
    // request (60 ms apart at the default rate), so only a run fired faster than replication
    // would show it: the partition makes the catch depend on the node, not on speed.
    #[test]
    fn a_session_node_that_ignores_tokens_breaks_read_your_writes = [Case {
        node: "session",
        workload: Some("session"),
        args: &["--seed", "1", "--nemesis", "partition"],
        node_args: &["--bug", "ignore-token"],
        failing: &["read-your-writes"],
        ..Case::FAIL
    }];

    // Reads still wait for their token, so read-your-writes and monotonic reads hold; what
    // breaks is an add stored where its session's earlier writes have not arrived yet. Whether
    // a reader also sees such an add without what its writer had read before (writes follow
    // reads) depends on which reads the clients happened to make, so only monotonic writes,
    // which every such add breaks, is required.
    #[test]
    fn a_session_node_whose_adds_skip_the_token_breaks_monotonic_writes = [Case {
        node: "session",
        workload: Some("session"),
        args: &["--seed", "1", "--nemesis", "partition"],
        node_args: &["--bug", "token-without-wait-on-add"],
        failing: &["monotonic-writes"],
        passing: &["read-your-writes", "monotonic-reads"],
        ..Case::FAIL
    }];

    // The same seed as `the_counter_survives_kills`, where the correct counter passes. The bug
    // loses only what was acknowledged in the last gossip period (20 ms) before a kill; the kill
    // nemesis lands right after the node acknowledges an update, which is that window, so the
    // default rate catches it (`scripts/sweep-mutants.sh`: seeds 1-5).
    #[test]
    fn a_counter_that_acknowledges_before_replicating_loses_writes_when_killed = [Case {
        node: "counter",
        workload: Some("g-counter"),
        args: &["--seed", KILLS_SEED, "--nemesis", KILLS],
        node_args: &["--bug", "ack-before-replicate"],
        failing: &["counter-bounds"],
        output: &["lost acknowledged writes"],
        ..Case::FAIL
    }];

    // One node is cut off for the whole workload, so an element whose last operation on one
    // side is an add, while the other side removed it, has an add that no remove could have
    // seen and a remove that add never saw: the remove wins, and the element is missing.
    #[test]
    fn an_or_set_where_removes_win_loses_adds_concurrent_with_them = [Case {
        node: "orset",
        workload: Some("or-set"),
        args: ONE_PARTITION,
        node_args: &["--bug", "remove-wins"],
        failing: &["add-wins"],
        passing: &["convergence"],
        output: &["was concurrent with every remove of it"],
        ..Case::FAIL
    }];

    // No faults needed: every contested element that is removed and then added again is gone
    // for good, on every node.
    #[test]
    fn a_tagless_or_set_loses_elements_added_again_after_a_remove = [Case {
        node: "orset",
        workload: Some("or-set"),
        args: &["--ops", "500", "--seed", "1"],
        node_args: &["--bug", "tagless"],
        failing: &["add-wins"],
        output: &["was concurrent with every remove of it"],
        ..Case::FAIL
    }];

    // n1's clock runs half a second behind n0's, n2's a whole second: every write they make
    // within that time of reading n0's value loses to it, with no faults and no luck needed.
    #[test]
    fn an_lww_register_stamped_by_skewed_wall_clocks_lets_a_causally_later_write_lose = [Case {
        node: "register",
        workload: Some("lww-register"),
        args: &["--ops", "300", "--seed", "1"],
        node_args: &["--mode", "lww", "--skew-ms", WALL_CLOCK_SKEW_MS, "--bug", "wall-clock"],
        failing: &["lww-winner"],
        ..Case::FAIL
    }];

    // The last write on each side of the partition is one no other write could have seen, so
    // both must stay siblings; keeping one drops the other.
    #[test]
    fn an_mv_register_that_keeps_one_sibling_drops_concurrent_writes = [Case {
        node: "register",
        workload: Some("mv-register"),
        args: ONE_PARTITION,
        node_args: &["--mode", "mv", "--bug", "keep-one"],
        failing: &["mv-siblings"],
        output: &["no other write could have seen"],
        ..Case::FAIL
    }];

    // With nothing but the default timing and partitions: the balance hovers a few units above
    // 0, so two nodes that withdraw within one 300 ms gossip round, or on two sides of a
    // partition, soon spend the same units: the acknowledged withdrawals exceed the deposits
    // invoked (dozens of times a run, seeds 1-6), and the merged value reads below 0. Every
    // applied withdrawal was acknowledged, so accounting still passes: only the bound sees it.
    #[test]
    fn a_bounded_counter_that_checks_only_its_local_view_overdraws = [Case {
        node: "escrow",
        workload: Some("bounded-counter"),
        args: &["--seed", "1", "--nemesis", "partition"],
        node_args: &["--bug", "local-check"],
        failing: &["bound"],
        passing: &["accounting", "convergence"],
        output: &["withdrawals acknowledged beyond the balance"],
        ..Case::FAIL
    }];

    // About one element in sixteen hashes into the skipped bucket and never leaves its node,
    // whatever the seed and the timing.
    #[test]
    fn anti_entropy_that_skips_a_bucket_never_repairs_its_keys = [Case {
        node: "antientropy",
        workload: Some("g-set"),
        args: &["--ops", "300", "--seed", "1"],
        node_args: &["--bug", "ae-skips-keys"],
        failing: &["set-full: lost: n", "convergence"],
        ..Case::FAIL
    }];
}

// The nodes' own command lines.

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
        ("escrow", &["--bug", "off-by-one"][..], "local-check"),
        (
            "escrow",
            &["--gossip-ms", "0"][..],
            "at least 1 millisecond",
        ),
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
