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
//!
//! The runs are a table of [`Case`]s run by [`run_case`]: each row is a test of its own.

#[macro_use]
mod common;

use common::{Case, run_case};

/// What every correct set node must pass.
const SET_CHECKS: &[&str] = &["set-full", "convergence", "monotonic-reads-per-node"];

certify_table! {
    runner: run_case;

    #[test]
    fn a_gossiping_python_g_set_passes_under_every_fault = [Case {
        node: "tests/nodes/gset.py",
        workload: Some("g-set"),
        args: &[
            "--ops", "600",
            "--seed", "21",
            "--nemesis", "partition,loss,duplicate,reorder",
        ],
        passing: SET_CHECKS,
        output: &["g-set on 3 nodes", "seed 21"],
        ..Case::PASS
    }];

    // Five nodes make Maelstrom's grid two rows deep, so messages must be relayed over several
    // hops through the neighbours the topology names.
    #[test]
    fn a_retrying_python_broadcast_passes_on_a_grid_under_partitions_and_loss = [Case {
        node: "tests/nodes/broadcast.py",
        workload: Some("broadcast"),
        args: &[
            "--nodes", "5",
            "--clients", "5",
            "--ops", "600",
            "--seed", "22",
            "--nemesis", "partition,loss",
        ],
        passing: SET_CHECKS,
        output: &["broadcast on 5 nodes"],
        ..Case::PASS
    }];

    #[test]
    fn a_g_set_that_sends_each_element_once_loses_acknowledged_elements = [Case {
        node: "tests/nodes/gset.py",
        workload: Some("g-set"),
        args: &["--ops", "300", "--seed", "23", "--nemesis", "partition,loss", "--no-shrink"],
        node_args: &["--bug", "once"],
        failing: &[
            "set-full: lost: n",
            "convergence: final reads differ after heal and quiescence",
        ],
        output: &[
            "acknowledged elements: ",
            "reproduce: converge certify --bin tests/nodes/gset.py --workload g-set --nodes 3 \
             --clients 3 --ops 300 --seed 23 --nemesis partition,loss --no-shrink -- --bug once",
        ],
        ..Case::FAIL
    }];

    #[test]
    fn a_broadcast_that_never_retries_loses_acknowledged_messages = [Case {
        node: "tests/nodes/broadcast.py",
        workload: Some("broadcast"),
        args: &[
            "--nodes", "5",
            "--clients", "5",
            "--ops", "300",
            "--seed", "24",
            "--nemesis", "partition,loss",
            "--no-shrink",
        ],
        node_args: &["--bug", "no-retry"],
        failing: &["set-full: lost: n", "convergence"],
        output: &[
            "acknowledged elements: ",
            "reproduce: converge certify --bin tests/nodes/broadcast.py --workload broadcast \
             --nodes 5 --clients 5 --ops 300 --seed 24 --nemesis partition,loss --no-shrink -- \
             --bug no-retry",
        ],
        ..Case::FAIL
    }];

    #[test]
    fn the_maelstrom_profile_keeps_set_full_only = [Case {
        node: "tests/nodes/broadcast.py",
        workload: Some("broadcast"),
        args: &["--ops", "200", "--seed", "25", "--profile", "maelstrom"],
        passing: &["set-full"],
        absent: &["convergence", "monotonic-reads-per-node"],
        ..Case::PASS
    }];

    // The g-set node knows no `topology` message and never answers it.
    #[test]
    fn a_node_that_ignores_the_topology_fails_setup = [Case {
        node: "tests/nodes/gset.py",
        workload: Some("broadcast"),
        args: &["--ops", "50", "--seed", "26", "--no-shrink"],
        output: &["\"problem\":\"setup-failed\""],
        ..Case::FAIL
    }];
}
