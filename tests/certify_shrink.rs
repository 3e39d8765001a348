//! `converge certify` on a failure: it shrinks the run to a smaller one that fails the same way,
//! draws that run as a Lamport diagram, and prints the command that replays it; the command, run,
//! fails again.
//!
//! The broken node is the OR-Set whose removes leave tombstones that beat later adds: a remove
//! then an add of one element at one node is enough, so the failure survives shrinking to a
//! single node, and each replay converges quickly (no run waits out the final-read window).

mod common;

use common::Case;
use converge_conformance::harness::diagram::check_well_formed;

/// The value of `--flag` in a command line.
fn flag(command: &str, name: &str) -> u64 {
    let mut words = command.split_whitespace();
    words
        .find(|w| *w == name)
        .and_then(|_| words.next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {command}"))
}

#[test]
fn a_failing_run_shrinks_and_its_reproduce_command_fails_again() {
    let report = std::env::temp_dir().join(format!("converge-shrink-{}.json", std::process::id()));
    let out = common::run_case(&Case {
        node: "tests/nodes/orset.py",
        workload: Some("or-set"),
        args: &[
            "--ops",
            "100",
            "--seed",
            "1",
            "--nemesis",
            "partition",
            "--shrink-runs",
            "10",
            // Each replay waits for quiescence up to --settle; the Python node gossips forever, so
            // the default ten seconds per replay would spend the shrinking budget on waiting.
            "--settle",
            "1",
            "--report",
            report.to_str().expect("temp paths are UTF-8"),
        ],
        node_args: &["--bug", "remove-wins"],
        failing: &["add-wins"],
        output: &["shrunk: ops 100 → "],
        ..Case::FAIL
    });

    // The reproduce line is the smallest run's: fewer operations and nodes, the same seed, the
    // node's arguments, and no second search.
    let reproduce = out
        .lines()
        .find_map(|l| l.strip_prefix("reproduce: converge certify "))
        .unwrap_or_else(|| panic!("no reproduce line:\n{out}"));
    assert!(
        flag(reproduce, "--ops") < 100 && flag(reproduce, "--nodes") < 3,
        "{out}"
    );
    assert_eq!(flag(reproduce, "--seed"), 1, "{out}");
    assert!(
        reproduce.contains(" --no-shrink") && reproduce.ends_with(" -- --bug remove-wins"),
        "{out}"
    );

    // The diagram is of the smallest run, and well-formed.
    let path = out
        .lines()
        .find_map(|l| l.strip_prefix("diagram: "))
        .unwrap_or_else(|| panic!("no diagram line:\n{out}"));
    let svg = std::fs::read_to_string(path).expect("the diagram was written");
    check_well_formed(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
    assert!(svg.contains("FAIL add-wins: "), "{svg}");
    assert!(
        svg.contains(&format!("or-set on {} nodes, ", flag(reproduce, "--nodes"))),
        "{svg}"
    );

    // The report describes the run as given, and the smallest one under "shrunk".
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report written"))
            .expect("the report is JSON");
    let _ = std::fs::remove_file(&report);
    assert_eq!(json["runs"][0]["config"]["ops"], 100);
    assert_eq!(json["shrunk"]["config"]["ops"], flag(reproduce, "--ops"));
    assert_eq!(json["shrunk"]["verdict"]["verdict"], "fail");

    // Replayed, the smallest run fails the same way, without shrinking again. The replay is the
    // reproduce line word for word, so it is run as given rather than as a table's case.
    assert!(
        !reproduce.contains('\''),
        "needs a shell to split: {reproduce}"
    );
    let args: Vec<&str> = reproduce.split_whitespace().collect();
    let (code, again) = common::certify(&args);
    assert_eq!(code, 1, "{again}");
    assert!(again.contains("FAIL    add-wins"), "{again}");
    assert!(!again.contains("shrunk:"), "{again}");
    assert!(
        again.contains(&format!("reproduce: converge certify {reproduce}")),
        "{again}"
    );
}
