//! Where CRDTs cannot go, certified over real processes. `converge certify --workload lin-kv`
//! against the reference node, whose reads, writes and compare-and-sets go through consensus: it
//! passes under every fault, and the same node with a compare-and-set decided on its local copy
//! (`--bug cas-decided-locally`) is caught by `linearizable` on every seed. `--workload
//! bounded-counter` against the reference's escrow counter: it passes under every fault, and the
//! same node withdrawing against its view of the value instead of its rights (`--bug
//! escrow-local-check`) is caught by `bound`.
//!
//! The runs use `--rate 200`: four times the default, so that clients of different nodes often
//! race compare-and-sets on one key. The broken node is caught at the default rate too, but on
//! fewer seeds; the correct node must pass at either rate, and does.

mod common;
use common::certify;

const FAULTS: &str = "partition,loss,duplicate,reorder,kill,pause";

#[test]
fn the_reference_serves_lin_kv_with_cas_linearizably_under_every_fault() {
    for seed in ["1", "2"] {
        let (code, out) = certify(&[
            "--workload",
            "lin-kv",
            "--nemesis",
            FAULTS,
            "--rate",
            "200",
            "--seed",
            seed,
            "--no-shrink",
        ]);
        assert_eq!(code, 0, "seed {seed}:\n{out}");
        assert!(out.contains("pass    linearizable"), "seed {seed}:\n{out}");
    }
}

#[test]
fn a_compare_and_set_decided_locally_is_caught_by_linearizable() {
    let bin = env!("CARGO_BIN_EXE_converge");
    for seed in ["1", "2", "3"] {
        let (code, out) = certify(&[
            "--bin",
            bin,
            "--workload",
            "lin-kv",
            "--rate",
            "200",
            "--seed",
            seed,
            "--no-shrink",
            "--",
            "node",
            "--stdio",
            "--workload",
            "lin-kv",
            "--bug",
            "cas-decided-locally",
        ]);
        assert_eq!(code, 1, "seed {seed}: the broken node passed:\n{out}");
        assert!(out.contains("FAIL    linearizable"), "seed {seed}:\n{out}");
        assert!(
            out.contains("--bug cas-decided-locally"),
            "the reproduce command names the bug:\n{out}"
        );
    }
}

#[test]
fn the_reference_escrow_counter_never_goes_below_zero_under_every_fault() {
    for seed in ["1", "2"] {
        let (code, out) = certify(&[
            "--workload",
            "bounded-counter",
            "--nemesis",
            FAULTS,
            "--seed",
            seed,
            "--no-shrink",
        ]);
        assert_eq!(code, 0, "seed {seed}:\n{out}");
        for check in ["bound", "accounting", "convergence"] {
            assert!(
                out.contains(&format!("pass    {check}")),
                "seed {seed}:\n{out}"
            );
        }
        assert!(
            out.contains("withdrawals during"),
            "availability is reported:\n{out}"
        );
    }
}

#[test]
fn a_withdrawal_checked_against_the_local_value_is_caught_by_bound() {
    let bin = env!("CARGO_BIN_EXE_converge");
    for seed in ["1", "2"] {
        let (code, out) = certify(&[
            "--bin",
            bin,
            "--workload",
            "bounded-counter",
            "--nemesis",
            "partition",
            "--seed",
            seed,
            "--no-shrink",
            "--",
            "node",
            "--stdio",
            "--workload",
            "bounded-counter",
            "--bug",
            "escrow-local-check",
        ]);
        assert_eq!(code, 1, "seed {seed}: the broken node passed:\n{out}");
        assert!(out.contains("FAIL    bound"), "seed {seed}:\n{out}");
    }
}
