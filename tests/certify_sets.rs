//! `converge certify` on the set workloads, `g-set` and `broadcast`, against small nodes written
//! in Python from the protocol alone: a correct node passes under faults; a node that sends each
//! element once and never repairs a loss is caught by `set-full` and `convergence`, with the
//! command that reproduces the run.
//!
//! Runs are a few hundred operations: enough for the first partition window (it starts with the
//! workload) to cut links while elements are added, small enough that the file stays fast. A
//! failing run takes the harness's whole final-read window (5 s), because its nodes never agree.
//!
//! Failing runs are given `--no-shrink`: shrinking would replay each of them up to two dozen
//! times, and has its own test (`certify_shrink.rs`).

mod common;

use common::certify;

/// Every set check passed.
fn assert_all_pass(code: i32, out: &str) {
    assert_eq!(code, 0, "{out}");
    for check in ["set-full", "convergence", "monotonic-reads-per-node"] {
        assert!(out.contains(&format!("pass    {check}")), "{check}: {out}");
    }
}

#[test]
fn a_gossiping_python_g_set_passes_under_every_fault() {
    let (code, out) = certify(&[
        "--bin",
        "tests/nodes/gset.py",
        "--workload",
        "g-set",
        "--ops",
        "600",
        "--seed",
        "21",
        "--nemesis",
        "partition,loss,duplicate,reorder",
    ]);
    assert_all_pass(code, &out);
    assert!(
        out.contains("g-set on 3 nodes") && out.contains("seed 21"),
        "{out}"
    );
}

#[test]
fn a_retrying_python_broadcast_passes_on_a_grid_under_partitions_and_loss() {
    // Five nodes make Maelstrom's grid two rows deep, so messages must be relayed over several
    // hops through the neighbours the topology names.
    let (code, out) = certify(&[
        "--bin",
        "tests/nodes/broadcast.py",
        "--workload",
        "broadcast",
        "--nodes",
        "5",
        "--clients",
        "5",
        "--ops",
        "600",
        "--seed",
        "22",
        "--nemesis",
        "partition,loss",
    ]);
    assert_all_pass(code, &out);
    assert!(out.contains("broadcast on 5 nodes"), "{out}");
}

#[test]
fn a_g_set_that_sends_each_element_once_loses_acknowledged_elements() {
    let (code, out) = certify(&[
        "--bin",
        "tests/nodes/gset.py",
        "--workload",
        "g-set",
        "--ops",
        "300",
        "--seed",
        "23",
        "--nemesis",
        "partition,loss",
        "--no-shrink",
        "--",
        "--bug",
        "once",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL    set-full: lost: n") && out.contains("acknowledged elements: "),
        "{out}"
    );
    assert!(
        out.contains("FAIL    convergence: final reads differ after heal and quiescence"),
        "{out}"
    );
    assert!(
        out.contains("reproduce: converge certify --bin tests/nodes/gset.py --workload g-set --nodes 3 --clients 3 --ops 300 --seed 23 --nemesis partition,loss --no-shrink -- --bug once"),
        "{out}"
    );
}

#[test]
fn a_broadcast_that_never_retries_loses_acknowledged_messages() {
    let (code, out) = certify(&[
        "--bin",
        "tests/nodes/broadcast.py",
        "--workload",
        "broadcast",
        "--nodes",
        "5",
        "--clients",
        "5",
        "--ops",
        "300",
        "--seed",
        "24",
        "--nemesis",
        "partition,loss",
        "--no-shrink",
        "--",
        "--bug",
        "no-retry",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL    set-full: lost: n") && out.contains("acknowledged elements: "),
        "{out}"
    );
    assert!(out.contains("FAIL    convergence"), "{out}");
    assert!(
        out.contains("reproduce: converge certify --bin tests/nodes/broadcast.py --workload broadcast --nodes 5 --clients 5 --ops 300 --seed 24 --nemesis partition,loss --no-shrink -- --bug no-retry"),
        "{out}"
    );
}

#[test]
fn the_maelstrom_profile_keeps_set_full_only() {
    let (code, out) = certify(&[
        "--bin",
        "tests/nodes/broadcast.py",
        "--workload",
        "broadcast",
        "--ops",
        "200",
        "--seed",
        "25",
        "--profile",
        "maelstrom",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("pass    set-full")
            && !out.contains("convergence")
            && !out.contains("monotonic-reads-per-node"),
        "{out}"
    );
}

#[test]
fn a_node_that_ignores_the_topology_fails_setup() {
    // The g-set node knows no `topology` message and never answers it.
    let (code, out) = certify(&[
        "--bin",
        "tests/nodes/gset.py",
        "--workload",
        "broadcast",
        "--ops",
        "50",
        "--seed",
        "26",
        "--no-shrink",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("\"problem\":\"setup-failed\""), "{out}");
}
