//! `converge certify` against small nodes written in Python from the protocol alone: a correct
//! g-counter passes under every fault; each deliberately broken one is caught by the named check;
//! a node that crashes, prints garbage or never answers gets its own verdict.
//!
//! Every run prints its seed; the reproduce line is asserted where a run must fail.
//!
//! Failing runs are given `--no-shrink`: shrinking would replay each of them up to two dozen
//! times, and has its own test (`certify_shrink.rs`).

mod common;

use common::certify;

#[test]
fn a_python_pn_counter_passes_under_every_fault() {
    let (code, out) = certify(&[
        "--bin",
        "tests/nodes/gcounter.py",
        "--workload",
        "pn-counter",
        "--ops",
        "2000",
        "--seed",
        "11",
        "--nemesis",
        "partition,loss,duplicate,reorder",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("pass    counter-bounds") && out.contains("pass    convergence"),
        "{out}"
    );
    assert!(out.contains("seed 11"), "{out}");
}

#[test]
fn a_gossip_glomers_style_node_runs_unchanged_on_the_seq_kv_service() {
    let (code, out) = certify(&[
        "--bin",
        "tests/nodes/seqkv_counter.py",
        "--workload",
        "g-counter",
        "--ops",
        "300",
        "--seed",
        "2",
        "--nemesis",
        "partition",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("services: seq-kv"), "{out}");
}

#[test]
fn a_counter_that_sends_each_add_once_loses_writes_under_loss() {
    let (code, out) = certify(&[
        "--bin",
        "tests/nodes/gcounter.py",
        "--workload",
        "g-counter",
        "--ops",
        "2000",
        "--seed",
        "7",
        "--nemesis",
        "partition,loss",
        "--no-shrink",
        "--",
        "--bug",
        "once",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL    counter-bounds") && out.contains("lost acknowledged writes"),
        "{out}"
    );
    assert!(out.contains("FAIL    convergence"), "{out}");
    assert!(
        out.contains("reproduce: converge certify --bin tests/nodes/gcounter.py --workload g-counter --nodes 3 --clients 3 --ops 2000 --seed 7 --nemesis partition,loss --no-shrink -- --bug once"),
        "{out}"
    );
}

#[test]
fn the_maelstrom_profile_leaves_out_the_convergence_check() {
    let (code, out) = certify(&[
        "--bin",
        "tests/nodes/gcounter.py",
        "--ops",
        "500",
        "--seed",
        "3",
        "--profile",
        "maelstrom",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("counter-bounds") && !out.contains("convergence"),
        "{out}"
    );
}

#[test]
fn echo_passes_and_misbehaving_nodes_get_named_verdicts() {
    let (code, out) = certify(&[
        "--bin",
        "tests/nodes/echo.py",
        "--workload",
        "echo",
        "--ops",
        "300",
        "--seed",
        "1",
    ]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = certify(&[
        "--bin",
        "tests/nodes/misbehave.py",
        "--workload",
        "echo",
        "--ops",
        "50",
        "--seed",
        "1",
        "--no-shrink",
        "--",
        "garbage",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("malformed-output") && out.contains("this is not a message"),
        "{out}"
    );
    let (code, out) = certify(&[
        "--bin",
        "tests/nodes/misbehave.py",
        "--workload",
        "echo",
        "--ops",
        "50",
        "--seed",
        "1",
        "--no-shrink",
        "--",
        "crash",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("\"problem\":\"crash\""), "{out}");
    let (code, out) = certify(&[
        "--bin",
        "tests/nodes/misbehave.py",
        "--workload",
        "echo",
        "--ops",
        "6",
        "--seed",
        "1",
        "--request-timeout-ms",
        "200",
        "--no-shrink",
        "--",
        "silent",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL    available") && out.contains("6 indefinite"),
        "{out}"
    );
}

#[test]
fn the_report_holds_the_verdict_seed_and_figures() {
    let path = std::env::temp_dir().join(format!("converge-report-{}.json", std::process::id()));
    let (code, out) = certify(&[
        "--bin",
        "tests/nodes/gcounter.py",
        "--ops",
        "300",
        "--seed",
        "5",
        "--nemesis",
        "partition",
        "--report",
        path.to_str().expect("temp paths are UTF-8"),
    ]);
    assert_eq!(code, 0, "{out}");
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
    let (code, out) = certify(&[
        "--bin",
        "tests/nodes/gcounter.py",
        "--ops",
        "300",
        "--seed",
        "5",
        "--nemesis",
        "loss",
        "--junit",
        junit.to_str().expect("temp paths are UTF-8"),
        "--no-shrink",
        "--",
        "--bug",
        "once",
    ]);
    assert_eq!(code, 1, "{out}");
    let xml = std::fs::read_to_string(&junit).expect("JUnit written");
    assert!(
        xml.contains("<testcase classname=\"g-counter.schedule0\" name=\"counter-bounds\">"),
        "{xml}"
    );
    assert!(xml.contains("<failure message="), "{xml}");
    let _ = std::fs::remove_file(junit);
}

#[test]
fn usage_errors_exit_2_and_say_why() {
    let (code, out) = certify(&["--bin", "tests/nodes/no-such-node", "--ops", "1"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("does not exist"), "{out}");
    let (code, out) = certify(&["--bin", "tests/nodes/echo.py", "--nemesis", "earthquake"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("unknown nemesis 'earthquake'"), "{out}");
    let (code, _) = certify(&["--bin", "tests/nodes/echo.py", "--workload", "bank"]);
    assert_eq!(code, 2);
}

#[test]
fn session_tokens_give_the_four_guarantees_and_ignoring_them_breaks_all_four() {
    let (code, out) = certify(&[
        "--bin",
        "tests/nodes/session.py",
        "--workload",
        "session",
        "--ops",
        "300",
        "--seed",
        "4",
        "--nemesis",
        "partition,loss",
    ]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = certify(&[
        "--bin",
        "tests/nodes/session.py",
        "--workload",
        "session",
        "--ops",
        "600",
        "--seed",
        "4",
        "--nemesis",
        "partition,loss",
        "--no-shrink",
        "--",
        "--bug",
        "ignore-token",
    ]);
    assert_eq!(code, 1, "{out}");
    for check in [
        "read-your-writes",
        "monotonic-reads",
        "monotonic-writes",
        "writes-follow-reads",
    ] {
        assert!(
            out.contains(&format!("FAIL    {check}")),
            "{check} not caught:\n{out}"
        );
    }
}

#[test]
fn killed_nodes_are_restarted_with_a_fresh_init_and_paused_ones_resumed() {
    // The echo node is stateless, so it must pass however often it is killed or frozen; the
    // harness must not mistake a killed incarnation's exit for a crash.
    let (code, out) = certify(&[
        "--bin",
        "tests/nodes/echo.py",
        "--workload",
        "echo",
        "--ops",
        "20000",
        "--seed",
        "2",
        "--nemesis",
        "kill,pause",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("kill:n") && out.contains("pause:n"), "{out}");
}

#[test]
fn the_same_operations_end_equal_under_every_delivery_schedule() {
    let (code, out) = certify(&[
        "--bin",
        "tests/nodes/gcounter.py",
        "--workload",
        "pn-counter",
        "--ops",
        "400",
        "--seed",
        "6",
        "--nemesis",
        "loss,duplicate,reorder",
        "--schedules",
        "3",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("pass    merge-order-independence (3 schedules)"),
        "{out}"
    );
    // A merge that adds instead of taking the maximum double-counts duplicated gossip, so the same
    // operations end differently under different schedules.
    let (code, out) = certify(&[
        "--bin",
        "tests/nodes/gcounter.py",
        "--workload",
        "g-counter",
        "--ops",
        "200",
        "--seed",
        "6",
        "--schedules",
        "2",
        "--no-shrink",
        "--",
        "--bug",
        "sum-merge",
    ]);
    assert_eq!(code, 1, "{out}");
}

#[test]
fn registers_keep_the_causally_last_write_and_every_concurrent_one() {
    for (workload, args, bug, check) in [
        ("lww-register", "lww", "wall-clock", "lww-winner"),
        ("mv-register", "mv", "keep-one", "mv-siblings"),
    ] {
        let (code, out) = certify(&[
            "--bin",
            "tests/nodes/register.py",
            "--workload",
            workload,
            "--ops",
            "1500",
            "--seed",
            "1",
            "--nemesis",
            "partition",
            "--",
            args,
        ]);
        assert_eq!(code, 0, "{workload}: {out}");
        let (code, out) = certify(&[
            "--bin",
            "tests/nodes/register.py",
            "--workload",
            workload,
            "--ops",
            "1500",
            "--seed",
            "1",
            "--nemesis",
            "partition",
            "--no-shrink",
            "--",
            args,
            "--bug",
            bug,
        ]);
        assert_eq!(code, 1, "{workload} --bug {bug}: {out}");
        assert!(
            out.contains(&format!("FAIL    {check}")),
            "{workload} --bug {bug}: {out}"
        );
    }
}

#[test]
fn the_or_set_must_let_concurrent_adds_win_and_observed_removes_stick() {
    let (code, out) = certify(&[
        "--bin",
        "tests/nodes/orset.py",
        "--workload",
        "or-set",
        "--ops",
        "1500",
        "--seed",
        "1",
        "--nemesis",
        "partition",
    ]);
    assert_eq!(code, 0, "{out}");
    for bug in ["remove-wins", "tagless"] {
        let (code, out) = certify(&[
            "--bin",
            "tests/nodes/orset.py",
            "--workload",
            "or-set",
            "--ops",
            "1500",
            "--seed",
            "1",
            "--nemesis",
            "partition",
            "--no-shrink",
            "--",
            "--bug",
            bug,
        ]);
        assert_eq!(code, 1, "--bug {bug}: {out}");
        assert!(out.contains("FAIL    add-wins"), "--bug {bug}: {out}");
    }
}

#[test]
fn lin_kv_is_checked_for_linearizability_and_stale_services_are_caught() {
    let (code, out) = certify(&[
        "--bin",
        "tests/nodes/kv_proxy.py",
        "--workload",
        "lin-kv",
        "--ops",
        "1500",
        "--seed",
        "1",
        "--nemesis",
        "partition",
        "--",
        "lin-kv",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("pass    linearizable"), "{out}");
    let (code, out) = certify(&[
        "--bin",
        "tests/nodes/kv_proxy.py",
        "--workload",
        "lin-kv",
        "--ops",
        "1500",
        "--seed",
        "1",
        "--nemesis",
        "partition",
        "--no-shrink",
        "--",
        "seq-kv",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL    linearizable") && out.contains("not linearizable"),
        "{out}"
    );
}

#[test]
fn a_paused_node_never_blocks_the_harness() {
    // A frozen node stops reading its input; five gossiping nodes fill its pipe within a fault
    // window. The harness must keep running (and resume it), not block on the write.
    let (code, out) = common::certify_within(
        &[
            "--bin",
            "tests/nodes/broadcast.py",
            "--workload",
            "broadcast",
            "--nodes",
            "5",
            "--ops",
            "2000",
            "--seed",
            "10",
            "--nemesis",
            "partition,loss,duplicate,reorder,pause",
        ],
        std::time::Duration::from_secs(120),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("pause:n"), "{out}");
}

#[test]
fn forwarding_with_the_client_src_passes_under_maelstrom_and_is_malformed_under_strict() {
    // Followers forward to the leader keeping the client's `src`, as Maelstrom's raft demo does.
    // The rule is about who may appear as a sender, not about timing, so the runs are short.
    let run = |profile: &str| {
        certify(&[
            "--bin",
            "tests/nodes/forward.py",
            "--workload",
            "echo",
            "--seed",
            "4",
            "--time-limit",
            "2",
            "--settle",
            "1",
            "--profile",
            profile,
            "--no-shrink",
        ])
    };
    let (code, out) = run("maelstrom");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("pass    echo"), "{out}");
    let (code, out) = run("strict");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("malformed-output") && out.contains("is not the sender"),
        "{out}"
    );
}
