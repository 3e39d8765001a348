//! `converge certify --suite`: workloads × nemeses × seeds in one table, against the Python
//! g-counter of `tests/nodes/`.

mod common;
use common::certify;

#[test]
fn a_correct_node_passes_every_cell_of_the_suite() {
    let report = std::env::temp_dir().join(format!("converge-suite-{}.json", std::process::id()));
    let (code, out) = certify(&[
        "--suite",
        "--bin",
        "tests/nodes/gcounter.py",
        "--workload",
        "g-counter",
        "--workload",
        "pn-counter",
        "--nemesis",
        "partition,loss",
        "--ops",
        "200",
        "--seeds",
        "2",
        "--seed",
        "11",
        "--report",
        report.to_str().expect("temp paths are UTF-8"),
    ]);
    assert_eq!(code, 0, "{out}");
    let header = out
        .lines()
        .find(|l| l.starts_with("workload"))
        .unwrap_or_else(|| panic!("no table: {out}"));
    let columns: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(columns, ["workload", "none", "partition", "loss", "all"]);
    for row in ["g-counter", "pn-counter"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no {row} row: {out}"));
        assert_eq!(line.matches("pass").count(), 4, "{line}");
    }
    assert!(out.contains("16/16 runs passed"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report written"))
            .expect("the report is JSON");
    assert_eq!(json["verdict"], "pass");
    assert_eq!(json["runs"].as_array().map(Vec::len), Some(16));
    // Seeds are consecutive from --seed, so each run is reproducible on its own.
    assert_eq!(json["runs"][1]["seed"], 12);
    let _ = std::fs::remove_file(report);
}

#[test]
fn a_broken_node_fails_the_cells_its_bug_shows_in_with_a_reproduce_command_each() {
    // `--bug once` sends each increment to its peers once: only lost messages expose it.
    let (code, out) = certify(&[
        "--suite",
        "--bin",
        "tests/nodes/gcounter.py",
        "--workload",
        "g-counter",
        "--nemesis",
        "loss",
        "--ops",
        "300",
        "--seeds",
        "1",
        "--seed",
        "5",
        "--",
        "--bug",
        "once",
    ]);
    assert_eq!(code, 1, "{out}");
    let row: Vec<&str> = out
        .lines()
        .find(|l| l.starts_with("g-counter"))
        .unwrap_or_else(|| panic!("no row: {out}"))
        .split_whitespace()
        .collect();
    assert_eq!(row, ["g-counter", "pass", "FAIL", "1/1"], "{out}");
    assert!(
        out.contains("g-counter × loss seed 5: failed: counter-bounds"),
        "{out}"
    );
    assert!(
        out.contains("reproduce: converge certify --bin tests/nodes/gcounter.py --workload g-counter --nodes 3 --clients 3 --ops 300 --seed 5 --nemesis loss -- --bug once"),
        "{out}"
    );
}

#[test]
fn suite_only_flags_need_the_suite() {
    let (code, out) = certify(&["--bin", "tests/nodes/gcounter.py", "--seeds", "3"]);
    assert_eq!(code, 2, "{out}");
    let (code, out) = certify(&[
        "--bin",
        "tests/nodes/gcounter.py",
        "--workload",
        "g-counter",
        "--workload",
        "g-set",
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("need --suite"), "{out}");
}

#[test]
fn without_bin_the_reference_node_is_certified_and_survives_kills() {
    // The reference node from this very binary, durable under the log directory, so a node the
    // nemesis kills restarts with every write it acknowledged.
    let (code, out) = certify(&[
        "--suite",
        "--workload",
        "g-counter",
        "--workload",
        "session",
        "--nemesis",
        "kill,partition",
        "--ops",
        "300",
        "--seeds",
        "1",
        "--seed",
        "3",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("8/8 runs passed"), "{out}");
    // A single run names no --bin in its reproduce command either.
    let (code, out) = certify(&[
        "--workload",
        "g-counter",
        "--ops",
        "200",
        "--seed",
        "4",
        "--",
        "--bug",
        "x",
    ]);
    assert_eq!(code, 2, "arguments after -- need --bin: {out}");
}

#[test]
fn on_a_pipe_the_suite_prints_a_progress_line_at_least_every_ten_seconds() {
    use std::io::BufRead as _;
    use std::time::{Duration, Instant};
    // The reference node on two workloads under every default nemesis, one seed: a run of a
    // few tens of seconds whose stderr is a pipe, as in a CI log.
    let logs = std::env::temp_dir().join(format!("converge-suite-pipe-{}", std::process::id()));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_converge"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "certify",
            "--suite",
            "--workload",
            "g-counter",
            "--workload",
            "g-set",
        ])
        .args(["--seeds", "1", "--seed", "3", "--jobs", "1", "--log-dir"])
        .arg(&logs)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the converge binary runs");
    let stderr = child.stderr.take().expect("piped");
    let started = Instant::now();
    let mut last = started;
    let mut widest = Duration::ZERO;
    let mut lines = Vec::new();
    for line in std::io::BufReader::new(stderr).lines() {
        let line = line.expect("stderr reads");
        if line.starts_with("progress: ") {
            widest = widest.max(last.elapsed());
            last = Instant::now();
            lines.push(line);
        }
    }
    let status = child.wait().expect("converge ends");
    let total = started.elapsed();
    assert!(status.success(), "the suite passes: {lines:?}");
    assert!(
        total < Duration::from_secs(10) || lines.len() >= 2,
        "a {total:?} run printed {} progress lines: {lines:?}",
        lines.len()
    );
    // The gap before the first line, between lines, and after the last.
    widest = widest.max(last.elapsed());
    assert!(
        widest <= Duration::from_secs(10),
        "{widest:?} without a progress line on a pipe: {lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("runs,") && l.contains("failed")),
        "{lines:?}"
    );
    let _ = std::fs::remove_dir_all(&logs);
}
