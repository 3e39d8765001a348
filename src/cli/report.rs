//! `converge report merge`: the reports of a sharded run's shards (`converge sim --partition K/N
//! --report FILE`, one per CI matrix job or Kubernetes Indexed Job pod) combined into the one
//! verdict and listing the unsharded run would have printed.
//!
//! Invariant: a merge either covers exactly the unsharded run — the same plan in every report,
//! every shard 1..N once, every seed once — or is refused (exit 2) saying what is missing or
//! extra; it never prints a verdict over a partial set of seeds.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

/// The `kind` of a `converge sim --report`.
pub(crate) const SIM_REPORT: &str = "converge-sim";

/// `converge report`'s subcommands.
#[derive(clap::Subcommand)]
pub(crate) enum ReportCommand {
    /// Merge the reports of every shard of one sharded `converge sim` run (each written with
    /// --partition K/N --report FILE) and print what the unsharded run prints: each seed's line
    /// in seed order, the failing seeds in full, and the verdict. Exits 0 if every seed passed,
    /// 1 if one failed, 2 if the reports do not make up one whole run.
    Merge(MergeArgs),
}

/// `converge report merge`'s arguments.
#[derive(clap::Args)]
pub(crate) struct MergeArgs {
    /// The shards' reports.
    #[arg(required = true, value_name = "REPORT.json")]
    reports: Vec<PathBuf>,
    /// Write the merged report here (the format of one unsharded run's --report).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
}

/// Runs `converge report`.
pub(crate) fn run(cmd: ReportCommand) -> ExitCode {
    match cmd {
        ReportCommand::Merge(args) => match merge(&args.reports) {
            Ok(merged) => print(&merged, args.report.as_deref()),
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
    }
}

/// One whole run, merged.
struct Merged {
    plan: serde_json::Value,
    shards: u64,
    /// By seed.
    results: BTreeMap<u64, serde_json::Value>,
    ops: u64,
}

fn merge(paths: &[PathBuf]) -> Result<Merged, String> {
    let mut plan: Option<serde_json::Value> = None;
    let mut shards: BTreeMap<u64, PathBuf> = BTreeMap::new();
    let mut n_of_all = None;
    let mut results = BTreeMap::new();
    let mut ops = 0u64;
    for path in paths {
        let shown = path.display();
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        let report: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{shown} is not JSON: {e}"))?;
        if report["kind"] != SIM_REPORT {
            return Err(format!(
                "{shown} is not a `converge sim --report` (its kind is {})",
                report["kind"]
            ));
        }
        match &plan {
            None => plan = Some(report["plan"].clone()),
            Some(p) if *p != report["plan"] => {
                return Err(format!(
                    "{shown} is a shard of another run: its plan is {}, the first report's {p}",
                    report["plan"]
                ));
            }
            Some(_) => {}
        }
        let (k, n) = match (
            report["partition"][0].as_u64(),
            report["partition"][1].as_u64(),
        ) {
            (Some(k), Some(n)) if k >= 1 && k <= n => (k, n),
            _ => return Err(format!("{shown}: no valid partition K/N")),
        };
        if *n_of_all.get_or_insert(n) != n {
            return Err(format!(
                "{shown} is shard {k}/{n}, but another report is of {} shards",
                n_of_all.unwrap_or(n)
            ));
        }
        if let Some(other) = shards.insert(k, path.clone()) {
            return Err(format!(
                "shard {k}/{n} given twice: {} and {shown}",
                other.display()
            ));
        }
        ops += report["ops"].as_u64().unwrap_or(0);
        for r in report["results"].as_array().into_iter().flatten() {
            let seed = r["seed"]
                .as_u64()
                .ok_or_else(|| format!("{shown}: a result without a seed"))?;
            if results.insert(seed, r.clone()).is_some() {
                return Err(format!("seed {seed} is in two reports"));
            }
        }
    }
    let plan = plan.ok_or("no reports")?;
    let n = n_of_all.unwrap_or(1);
    let missing: Vec<u64> = (1..=n).filter(|k| !shards.contains_key(k)).collect();
    if !missing.is_empty() {
        return Err(format!(
            "shards {missing:?} of {n} are missing: a merge must cover the whole run"
        ));
    }
    let (first, count) = (
        plan["seed"].as_u64().unwrap_or(0),
        plan["seeds"].as_u64().unwrap_or(0),
    );
    let absent: Vec<u64> = (0..count)
        .map(|i| first.wrapping_add(i))
        .filter(|s| !results.contains_key(s))
        .take(10)
        .collect();
    if !absent.is_empty() || results.len() as u64 != count {
        return Err(format!(
            "the shards ran {} of the plan's {count} seeds (missing, first few: {absent:?}): \
             was a shard interrupted?",
            results.len()
        ));
    }
    Ok(Merged {
        plan,
        shards: n,
        results,
        ops,
    })
}

/// Writes a `converge sim --report` (or a merge of them, as shard 1/1) to `path`; on an error,
/// says so and gives the usage-error exit code, 2.
pub(crate) fn write_sim_report<R: serde::Serialize>(
    path: &std::path::Path,
    plan: &serde_json::Value,
    (k, n): (u64, u64),
    results: &[R],
    ops: u64,
) -> Result<(), ExitCode> {
    let report = serde_json::json!({
        "kind": SIM_REPORT,
        "plan": plan,
        "partition": [k, n],
        "results": results,
        "ops": ops,
    });
    std::fs::write(
        path,
        serde_json::to_string_pretty(&report).unwrap_or_default(),
    )
    .map_err(|e| {
        eprintln!("error: cannot write report {}: {e}", path.display());
        ExitCode::from(2)
    })
}

fn print(m: &Merged, report: Option<&std::path::Path>) -> ExitCode {
    let first = m.plan["seed"].as_u64().unwrap_or(0);
    say!(
        "converge report merge: {} shards of converge sim, seeds {first}..{}",
        m.shards,
        first.saturating_add(m.results.len().saturating_sub(1) as u64)
    );
    let mut failed = Vec::new();
    for (seed, r) in &m.results {
        let line = r["line"].as_str().unwrap_or_default();
        if r["passed"].as_bool() == Some(true) {
            say!("{line}");
        } else {
            say!("{line}\n{}", r["details"].as_str().unwrap_or_default());
            failed.push(*seed);
        }
    }
    if let Some(path) = report {
        let results: Vec<&serde_json::Value> = m.results.values().collect();
        if let Err(code) = write_sim_report(path, &m.plan, (1, 1), &results, m.ops) {
            return code;
        }
    }
    say!(
        "{} seeds, {} failed; {} client ops",
        m.results.len(),
        failed.len(),
        m.ops
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        say!("failing seeds: {failed:?}");
        ExitCode::FAILURE
    }
}
