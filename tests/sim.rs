//! The simulator: reference replicas in process on virtual time under the harness's faults.
//! Every run is deterministic, so these tests name exact seeds; a failure prints the command
//! that replays the seed.

use converge::simulator::{Plan, SeedReport, run_seed};
use converge_conformance::harness::check::Verdict;
use converge_conformance::harness::nemesis::Fault;
use converge_core::replica::Bug;

fn plan(workloads: &[&str], faults: &[Fault], every_fault: bool, bug: Option<Bug>) -> Plan {
    Plan {
        workloads: workloads.iter().map(|w| w.to_string()).collect(),
        faults: faults.to_vec(),
        every_fault,
        regions: 3,
        replicas_per_region: 1,
        ops: 400,
        skew_ms: 250,
        bug,
        residency: false,
        cancel: None,
    }
}

fn failed_checks(o: &SeedReport) -> Vec<String> {
    o.report
        .checks
        .iter()
        .filter(|c| matches!(c.verdict, Verdict::Fail { .. }))
        .map(|c| c.name.clone())
        .collect()
}

const ALL_WORKLOADS: [&str; 9] = [
    "g-counter",
    "pn-counter",
    "g-set",
    "broadcast",
    "or-set",
    "lww-register",
    "mv-register",
    "lin-kv",
    "session",
];

#[test]
fn the_reference_passes_every_workload_under_every_fault_kind() {
    // Every fault kind at once, on every seed; the seed draws the workload, the fault rates, the
    // clock skews and whether the oplog is short enough to need anti-entropy. Not yet the clock
    // nemesis: with clocks moved by seconds (past the replicas' 500 ms drift bound, and back,
    // which a replica clamps), a few seeds end with a replica that has not caught up
    // (`converge sim --every-fault --nemesis partition,loss,duplicate,reorder,kill,pause,clock
    // --seed 1 --seeds 200` fails seeds 28 and 109; with offsets under 400 ms none fails).
    let plan = plan(&ALL_WORKLOADS, &Fault::DEFAULT, true, None);
    let mut seen = std::collections::BTreeSet::new();
    for seed in 1..=45 {
        let o = run_seed(&plan, seed);
        assert!(o.passed(), "{}\n{}", o.summary(), o.details());
        seen.insert(o.workload.clone());
    }
    assert_eq!(seen.len(), ALL_WORKLOADS.len(), "seeds drew {seen:?}");
}

#[test]
fn the_reference_registers_keep_the_causally_last_write_under_moved_clocks() {
    // The clock nemesis on virtual time: replicas' clocks bumped and strobed by up to 5 s, on top
    // of their skews; the hybrid logical clock keeps every causally later write on top.
    let plan = plan(
        &["lww-register", "mv-register"],
        &[Fault::Clock],
        true,
        None,
    );
    for seed in 1..=10 {
        let o = run_seed(&plan, seed);
        assert!(o.passed(), "{}\n{}", o.summary(), o.details());
        assert!(
            o.report.faults.iter().any(|f| f.starts_with("clock:")),
            "no clock moved: {}",
            o.summary()
        );
    }
}

#[test]
fn the_same_seed_is_the_same_run() {
    let plan = plan(&ALL_WORKLOADS, &Fault::ALL, false, None);
    for seed in [3, 17] {
        let a = run_seed(&plan, seed);
        let b = run_seed(&plan, seed);
        let history =
            |o: &SeedReport| serde_json::to_string(&o.report.history).expect("serialises");
        assert_eq!(history(&a), history(&b), "seed {seed}");
        assert_eq!(a.summary(), b.summary());
    }
}

#[test]
fn applying_without_dedup_over_counts_under_duplication() {
    let plan = plan(
        &["g-counter"],
        &[Fault::Duplicate],
        true,
        Some(Bug::ApplyWithoutDedup),
    );
    // Seed 6 draws a duplication rate high enough that re-applied batches over-count.
    let o = run_seed(&plan, 6);
    assert!(
        failed_checks(&o).contains(&"counter-bounds".to_string()),
        "{}\n{}",
        o.summary(),
        o.details()
    );
    assert!(
        o.reproduce.contains("--bug apply-without-dedup"),
        "{}",
        o.reproduce
    );
}

#[test]
fn a_compare_and_set_decided_locally_is_not_linearizable() {
    // The "fast path" commits a compare-and-set that matches the local copy without asking a
    // majority; concurrent clients of two replicas then both succeed from one value.
    let broken = plan(
        &["lin-kv"],
        &[Fault::Partition],
        false,
        Some(Bug::CasDecidedLocally),
    );
    for seed in 1..=3 {
        let o = run_seed(&broken, seed);
        assert!(
            failed_checks(&o).contains(&"linearizable".to_string()),
            "seed {seed}: {}\n{}",
            o.summary(),
            o.details()
        );
    }
    // The correct replica passes the very same seeds, serving compare-and-sets (not refusing
    // them) and failing some of them on their precondition, as contention makes it.
    let correct = plan(&["lin-kv"], &[Fault::Partition], false, None);
    for seed in 1..=3 {
        let o = run_seed(&correct, seed);
        assert!(o.passed(), "seed {seed}: {}\n{}", o.summary(), o.details());
        let f = o.figures;
        assert!(
            f.consensus_ok > 0 && f.consensus_precondition_failed > 0,
            "seed {seed}: {}",
            o.summary()
        );
        assert!(o.summary().contains("; consensus "), "{}", o.summary());
    }
}

#[test]
fn a_withdrawal_checked_against_the_local_value_overdraws_the_escrow_counter() {
    let broken = plan(
        &["bounded-counter"],
        &[Fault::Partition],
        false,
        Some(Bug::EscrowLocalCheck),
    );
    let correct = plan(&["bounded-counter"], &[Fault::Partition], false, None);
    for seed in 1..=3 {
        let o = run_seed(&broken, seed);
        assert!(
            failed_checks(&o).contains(&"bound".to_string()),
            "seed {seed}: {}\n{}",
            o.summary(),
            o.details()
        );
        let o = run_seed(&correct, seed);
        assert!(o.passed(), "seed {seed}: {}\n{}", o.summary(), o.details());
        // Some withdrawals were served from rights held, some only after a peer's transfer.
        let f = o.figures;
        assert!(
            f.withdrawals_applied > f.withdrawals_covered_by_transfer
                && f.withdrawals_covered_by_transfer > 0
                && f.rights_granted > 0,
            "seed {seed}: {}",
            o.summary()
        );
    }
}

#[test]
fn reading_without_waiting_for_the_token_breaks_read_your_writes() {
    let plan = plan(
        &["session"],
        &[Fault::Partition],
        true,
        Some(Bug::ReadIgnoresToken),
    );
    let o = run_seed(&plan, 1);
    assert!(
        failed_checks(&o).contains(&"read-your-writes".to_string()),
        "{}\n{}",
        o.summary(),
        o.details()
    );
}

#[test]
fn anti_entropy_that_skips_a_subtree_loses_writes_behind_a_short_oplog() {
    let plan = plan(
        &["g-set"],
        &[Fault::Partition, Fault::Kill],
        true,
        Some(Bug::AeSkipsSubtree),
    );
    // Seed 4 draws a 50-entry oplog: replicas cut off by a partition or a kill fall behind its
    // truncation point and depend on anti-entropy.
    let o = run_seed(&plan, 4);
    assert!(o.oplog_cap.is_some(), "{}", o.summary());
    let failed = failed_checks(&o);
    assert!(
        failed.contains(&"set-full".to_string()) || failed.contains(&"convergence".to_string()),
        "{}\n{}",
        o.summary(),
        o.details()
    );
    // The correct replica repairs the same run.
    let correct = run_seed(
        &Plan {
            bug: None,
            ..plan.clone()
        },
        4,
    );
    assert!(
        correct.passed(),
        "{}\n{}",
        correct.summary(),
        correct.details()
    );
}

#[test]
fn a_failing_seed_prints_a_command_that_replays_it() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_converge"))
        .args(["sim", "--seeds", "2", "--seed", "5", "--ops", "400"])
        .args(["--workload", "g-counter", "--every-fault"])
        .args(["--nemesis", "duplicate", "--bug", "apply-without-dedup"])
        .output()
        .expect("converge runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("reproduce: converge sim"))
        .unwrap_or_else(|| panic!("no reproduce line: {text}"));
    let failing = text
        .lines()
        .find(|l| l.starts_with("seed ") && l.ends_with("FAIL"))
        .unwrap_or_else(|| panic!("no failing seed: {text}"));
    let args: Vec<String> = line
        .trim_start()
        .trim_start_matches("reproduce: converge ")
        .split_whitespace()
        .map(|a| a.trim_matches('\'').to_string())
        .collect();
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_converge"))
        .args(&args)
        .output()
        .expect("converge runs");
    let again_text = String::from_utf8_lossy(&again.stdout).into_owned();
    assert_eq!(again.status.code(), Some(1), "{again_text}");
    assert!(
        again_text.lines().any(|l| l == failing),
        "replay differs:\n{failing}\nvs\n{again_text}"
    );
}

#[test]
fn pinned_keys_never_reach_a_region_outside_their_pin_under_every_fault() {
    // Every fault kind on every seed, with the simulator's own traffic on keys pinned to
    // regions 0 and 1 of three: every transmit, every reply to a pinned write and every store
    // (at each kill and at the end) is checked, and any pinned key outside its regions fails
    // the seed. The workloads' own checks must still pass beside the pinned traffic.
    let plan = Plan {
        residency: true,
        ..plan(&ALL_WORKLOADS, &Fault::DEFAULT, true, None)
    };
    let (mut writes, mut refused) = (0, 0);
    for seed in 1..=12 {
        let o = run_seed(&plan, seed);
        assert!(o.passed(), "{}\n{}", o.summary(), o.details());
        assert!(o.reproduce.ends_with(" --residency"), "{}", o.reproduce);
        let r = o.residency.as_ref().expect("the plan pins keys");
        assert!(r.transmits > 0, "{}", o.summary());
        writes += r.writes;
        refused += r.refused;
    }
    // Both sides of the pin were exercised: writes inside it, and refusals outside it.
    assert!(
        writes > refused && refused > 0,
        "{writes} writes, {refused} refused"
    );
}

/// `converge sim ARGS` from the repository root: exit code and stdout.
fn sim_cli(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_converge"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .expect("the converge binary runs");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The per-seed lines of a sim or merge listing, and its verdict line.
fn seed_lines(out: &str) -> (Vec<&str>, Option<&str>) {
    let lines = out.lines().filter(|l| l.starts_with("seed ")).collect();
    let verdict = out
        .lines()
        .find(|l| l.contains(" seeds, ") && l.contains(" failed"));
    (lines, verdict.and_then(|v| v.split(';').next()))
}

#[test]
fn shards_merged_print_the_same_seeds_and_verdict_as_the_whole_run() {
    let dir = std::env::temp_dir().join(format!("converge-shards-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let report = |name: &str| dir.join(name).to_string_lossy().into_owned();
    // A broken replica, so some seeds fail and the verdict has something to agree on.
    let common = [
        "sim",
        "--seeds",
        "24",
        "--seed",
        "40",
        "--ops",
        "150",
        "--bug",
        "apply-without-dedup",
    ];
    let whole_report = report("whole.json");
    let (whole_code, whole) = sim_cli(&[&common[..], &["--report", &whole_report]].concat());
    let mut shard_reports = Vec::new();
    for k in 1..=3 {
        let path = report(&format!("shard-{k}.json"));
        let partition = format!("{k}/3");
        let (code, out) =
            sim_cli(&[&common[..], &["--partition", &partition, "--report", &path]].concat());
        assert!(code == 0 || code == 1, "{out}");
        assert!(out.contains(&format!("shard {k}/3: 8 seeds")), "{out}");
        shard_reports.push(path);
    }
    let merged_report = report("merged.json");
    let mut merge_args = vec!["report", "merge", "--report", &merged_report];
    merge_args.extend(shard_reports.iter().map(String::as_str));
    let (merged_code, merged) = sim_cli(&merge_args);
    assert_eq!(
        merged_code, whole_code,
        "whole:\n{whole}\nmerged:\n{merged}"
    );
    let (a, va) = seed_lines(&whole);
    let (b, vb) = seed_lines(&merged);
    assert_eq!(a.len(), 24, "{whole}");
    assert_eq!(a, b, "the same per-seed lines, in seed order");
    assert_eq!(va, vb, "the same verdict line");
    let results = |path: &str| -> serde_json::Value {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("report reads"))
                .expect("JSON");
        v["results"].clone()
    };
    assert_eq!(results(&whole_report), results(&merged_report));
    // A missing shard, or one given twice, is refused rather than judged.
    let (code, out) = sim_cli(&["report", "merge", &shard_reports[0], &shard_reports[1]]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("missing"), "{out}");
    let (code, out) = sim_cli(&[
        "report",
        "merge",
        &shard_reports[0],
        &shard_reports[0],
        &shard_reports[1],
    ]);
    assert_eq!(code, 2, "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
