//! `converge certify` against small nodes written in Python from the protocol alone: a correct
//! g-counter passes under every fault; each deliberately broken one is caught by the named check;
//! a node that crashes, prints garbage or never answers gets its own verdict.
//!
//! Every run prints its seed; the reproduce line is asserted where a run must fail.
//!
//! Failing runs are given `--no-shrink`: shrinking would replay each of them up to two dozen
//! times, and has its own test (`certify_shrink.rs`).
//!
//! The runs are a table of [`Case`]s run by [`run_case`]: each row is a test of its own, named
//! for what it shows, holding one run or a few. The report's test reads the files a run writes,
//! so it runs its cases itself.

#[macro_use]
mod common;

use common::{Case, Verdict, run_case};

certify_table! {
    runner: run_case;

    #[test]
    fn a_python_pn_counter_passes_under_every_fault = [Case {
        node: "tests/nodes/gcounter.py",
        workload: Some("pn-counter"),
        args: &[
            "--ops", "2000",
            "--seed", "11",
            "--nemesis", "partition,loss,duplicate,reorder",
        ],
        passing: &["counter-bounds", "convergence"],
        output: &["seed 11"],
        ..Case::PASS
    }];

    #[test]
    fn a_gossip_glomers_style_node_runs_unchanged_on_the_seq_kv_service = [Case {
        node: "tests/nodes/seqkv_counter.py",
        workload: Some("g-counter"),
        args: &["--ops", "300", "--seed", "2", "--nemesis", "partition"],
        output: &["services: seq-kv"],
        ..Case::PASS
    }];

    #[test]
    fn a_counter_that_sends_each_add_once_loses_writes_under_loss = [Case {
        node: "tests/nodes/gcounter.py",
        workload: Some("g-counter"),
        args: &["--ops", "2000", "--seed", "7", "--nemesis", "partition,loss", "--no-shrink"],
        node_args: &["--bug", "once"],
        failing: &["counter-bounds", "convergence"],
        output: &[
            "lost acknowledged writes",
            "reproduce: converge certify --bin tests/nodes/gcounter.py --workload g-counter \
             --nodes 3 --clients 3 --ops 2000 --seed 7 --nemesis partition,loss --no-shrink -- \
             --bug once",
        ],
        ..Case::FAIL
    }];

    #[test]
    fn the_maelstrom_profile_leaves_out_the_convergence_check = [Case {
        node: "tests/nodes/gcounter.py",
        args: &["--ops", "500", "--seed", "3", "--profile", "maelstrom"],
        output: &["counter-bounds"],
        absent: &["convergence"],
        ..Case::PASS
    }];

    #[test]
    fn echo_passes_and_misbehaving_nodes_get_named_verdicts = [
        Case {
            node: "tests/nodes/echo.py",
            workload: Some("echo"),
            args: &["--ops", "300", "--seed", "1"],
            ..Case::PASS
        },
        Case {
            node: "tests/nodes/misbehave.py",
            workload: Some("echo"),
            args: &["--ops", "50", "--seed", "1", "--no-shrink"],
            node_args: &["garbage"],
            output: &["malformed-output", "this is not a message"],
            ..Case::FAIL
        },
        Case {
            node: "tests/nodes/misbehave.py",
            workload: Some("echo"),
            args: &["--ops", "50", "--seed", "1", "--no-shrink"],
            node_args: &["crash"],
            output: &["\"problem\":\"crash\""],
            ..Case::FAIL
        },
        Case {
            node: "tests/nodes/misbehave.py",
            workload: Some("echo"),
            args: &["--ops", "6", "--seed", "1", "--request-timeout-ms", "200", "--no-shrink"],
            node_args: &["silent"],
            failing: &["available"],
            output: &["6 indefinite"],
            ..Case::FAIL
        },
    ];

    #[test]
    fn usage_errors_exit_2_and_say_why = [
        Case {
            node: "tests/nodes/no-such-node",
            args: &["--ops", "1"],
            verdict: Verdict::Usage,
            output: &["does not exist"],
            ..Case::PASS
        },
        Case {
            node: "tests/nodes/echo.py",
            args: &["--nemesis", "earthquake"],
            verdict: Verdict::Usage,
            output: &["unknown nemesis 'earthquake'"],
            ..Case::PASS
        },
        Case {
            node: "tests/nodes/echo.py",
            workload: Some("bank"),
            verdict: Verdict::Usage,
            ..Case::PASS
        },
    ];

    #[test]
    fn session_tokens_give_the_four_guarantees_and_ignoring_them_breaks_all_four = [
        Case {
            node: "tests/nodes/session.py",
            workload: Some("session"),
            args: &["--ops", "300", "--seed", "4", "--nemesis", "partition,loss"],
            ..Case::PASS
        },
        Case {
            node: "tests/nodes/session.py",
            workload: Some("session"),
            args: &["--ops", "600", "--seed", "4", "--nemesis", "partition,loss", "--no-shrink"],
            node_args: &["--bug", "ignore-token"],
            failing: &[
                "read-your-writes",
                "monotonic-reads",
                "monotonic-writes",
                "writes-follow-reads",
            ],
            ..Case::FAIL
        },
    ];

    // The echo node is stateless, so it must pass however often it is killed or frozen; the
    // harness must not mistake a killed incarnation's exit for a crash.
    #[test]
    fn killed_nodes_are_restarted_with_a_fresh_init_and_paused_ones_resumed = [Case {
        node: "tests/nodes/echo.py",
        workload: Some("echo"),
        args: &["--ops", "20000", "--seed", "2", "--nemesis", "kill,pause"],
        output: &["kill:n", "pause:n"],
        ..Case::PASS
    }];

    // A merge that adds instead of taking the maximum double-counts duplicated gossip, so the same
    // operations end differently under different schedules.
    #[test]
    fn the_same_operations_end_equal_under_every_delivery_schedule = [
        Case {
            node: "tests/nodes/gcounter.py",
            workload: Some("pn-counter"),
            args: &[
                "--ops", "400",
                "--seed", "6",
                "--nemesis", "loss,duplicate,reorder",
                "--schedules", "3",
            ],
            passing: &["merge-order-independence (3 schedules)"],
            ..Case::PASS
        },
        Case {
            node: "tests/nodes/gcounter.py",
            workload: Some("g-counter"),
            args: &["--ops", "200", "--seed", "6", "--schedules", "2", "--no-shrink"],
            node_args: &["--bug", "sum-merge"],
            ..Case::FAIL
        },
    ];

    #[test]
    fn registers_keep_the_causally_last_write_and_every_concurrent_one = [
        Case {
            node: "tests/nodes/register.py",
            workload: Some("lww-register"),
            args: &["--ops", "1500", "--seed", "1", "--nemesis", "partition"],
            node_args: &["lww"],
            ..Case::PASS
        },
        Case {
            node: "tests/nodes/register.py",
            workload: Some("lww-register"),
            args: &["--ops", "1500", "--seed", "1", "--nemesis", "partition", "--no-shrink"],
            node_args: &["lww", "--bug", "wall-clock"],
            failing: &["lww-winner"],
            ..Case::FAIL
        },
        Case {
            node: "tests/nodes/register.py",
            workload: Some("mv-register"),
            args: &["--ops", "1500", "--seed", "1", "--nemesis", "partition"],
            node_args: &["mv"],
            ..Case::PASS
        },
        Case {
            node: "tests/nodes/register.py",
            workload: Some("mv-register"),
            args: &["--ops", "1500", "--seed", "1", "--nemesis", "partition", "--no-shrink"],
            node_args: &["mv", "--bug", "keep-one"],
            failing: &["mv-siblings"],
            ..Case::FAIL
        },
    ];

    #[test]
    fn the_or_set_must_let_concurrent_adds_win_and_observed_removes_stick = [
        Case {
            node: "tests/nodes/orset.py",
            workload: Some("or-set"),
            args: &["--ops", "1500", "--seed", "1", "--nemesis", "partition"],
            ..Case::PASS
        },
        Case {
            node: "tests/nodes/orset.py",
            workload: Some("or-set"),
            args: &["--ops", "1500", "--seed", "1", "--nemesis", "partition", "--no-shrink"],
            node_args: &["--bug", "remove-wins"],
            failing: &["add-wins"],
            ..Case::FAIL
        },
        Case {
            node: "tests/nodes/orset.py",
            workload: Some("or-set"),
            args: &["--ops", "1500", "--seed", "1", "--nemesis", "partition", "--no-shrink"],
            node_args: &["--bug", "tagless"],
            failing: &["add-wins"],
            ..Case::FAIL
        },
    ];

    #[test]
    fn lin_kv_is_checked_for_linearizability_and_stale_services_are_caught = [
        Case {
            node: "tests/nodes/kv_proxy.py",
            workload: Some("lin-kv"),
            args: &["--ops", "1500", "--seed", "1", "--nemesis", "partition"],
            node_args: &["lin-kv"],
            passing: &["linearizable"],
            ..Case::PASS
        },
        Case {
            node: "tests/nodes/kv_proxy.py",
            workload: Some("lin-kv"),
            args: &["--ops", "1500", "--seed", "1", "--nemesis", "partition", "--no-shrink"],
            node_args: &["seq-kv"],
            failing: &["linearizable"],
            output: &["not linearizable"],
            ..Case::FAIL
        },
    ];

    // A frozen node stops reading its input; five gossiping nodes fill its pipe within a fault
    // window. The harness must keep running (and resume it), not block on the write, so the run
    // has a deadline.
    #[test]
    fn a_paused_node_never_blocks_the_harness = [Case {
        node: "tests/nodes/broadcast.py",
        workload: Some("broadcast"),
        args: &[
            "--nodes", "5",
            "--ops", "2000",
            "--seed", "10",
            "--nemesis", "partition,loss,duplicate,reorder,pause",
        ],
        output: &["pause:n"],
        deadline: Some(std::time::Duration::from_secs(120)),
        ..Case::PASS
    }];

    // Followers forward to the leader keeping the client's `src`, as Maelstrom's raft demo does.
    // The rule is about who may appear as a sender, not about timing, so the runs are short.
    #[test]
    fn forwarding_with_the_client_src_passes_under_maelstrom_and_is_malformed_under_strict = [
        Case {
            node: "tests/nodes/forward.py",
            workload: Some("echo"),
            args: &[
                "--seed", "4",
                "--time-limit", "2",
                "--settle", "1",
                "--profile", "maelstrom",
                "--no-shrink",
            ],
            passing: &["echo"],
            ..Case::PASS
        },
        Case {
            node: "tests/nodes/forward.py",
            workload: Some("echo"),
            args: &[
                "--seed", "4",
                "--time-limit", "2",
                "--settle", "1",
                "--profile", "strict",
                "--no-shrink",
            ],
            output: &["malformed-output", "is not the sender"],
            ..Case::FAIL
        },
    ];
}

#[test]
fn the_report_holds_the_verdict_seed_and_figures() {
    let path = std::env::temp_dir().join(format!("converge-report-{}.json", std::process::id()));
    run_case(&Case {
        node: "tests/nodes/gcounter.py",
        args: &[
            "--ops",
            "300",
            "--seed",
            "5",
            "--nemesis",
            "partition",
            "--report",
            path.to_str().expect("temp paths are UTF-8"),
        ],
        ..Case::PASS
    });
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("report written"))
            .expect("report is JSON");
    assert_eq!(report["verdict"]["verdict"], "pass");
    let run = &report["runs"][0];
    assert_eq!(run["config"]["seed"], 5);
    assert_eq!(run["ops"], 300);
    for field in [
        "msgs_per_op",
        "latency",
        "availability",
        "checks",
        "net_stats",
        "final_values",
    ] {
        assert!(!run[field].is_null(), "report lacks {field}: {report}");
    }
    let _ = std::fs::remove_file(path);
    let junit = std::env::temp_dir().join(format!("converge-junit-{}.xml", std::process::id()));
    run_case(&Case {
        node: "tests/nodes/gcounter.py",
        args: &[
            "--ops",
            "300",
            "--seed",
            "5",
            "--nemesis",
            "loss",
            "--junit",
            junit.to_str().expect("temp paths are UTF-8"),
            "--no-shrink",
        ],
        node_args: &["--bug", "once"],
        ..Case::FAIL
    });
    let xml = std::fs::read_to_string(&junit).expect("JUnit written");
    assert!(
        xml.contains("<testcase classname=\"g-counter.schedule0\" name=\"counter-bounds\">"),
        "{xml}"
    );
    assert!(xml.contains("<failure message="), "{xml}");
    let _ = std::fs::remove_file(junit);
}
