//! `converge certify --suite`: every selected workload under every nemesis, over a few seeds, in
//! parallel, summarised in one table.
//!
//! Each cell is an ordinary certification (the same [`certify`] a
//! single run uses), so a failing cell is reproduced by the single-run command printed for it,
//! which also shrinks it. Cells are independent: their seeds depend on the suite seed and the
//! seed index only, never on which worker thread ran them or in what order.

use crate::certify::{Certification, Request, certify, escape, reproduce};
use converge_conformance::harness::check::Verdict;
use converge_conformance::harness::nemesis::Fault;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// One column of the table: a set of faults injected together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// The heading: `none`, a fault's name, or `all`.
    pub name: String,
    /// What `--nemesis` gets.
    pub faults: Vec<Fault>,
}

/// The columns for `selected` faults: no fault, each fault alone, and (with two or more) all of
/// them together, since faults that are harmless alone can break a node together.
pub fn columns(selected: &[Fault]) -> Vec<Column> {
    let mut columns = vec![Column {
        name: "none".into(),
        faults: Vec::new(),
    }];
    columns.extend(selected.iter().map(|f| Column {
        name: f.name().into(),
        faults: vec![*f],
    }));
    if selected.len() > 1 {
        columns.push(Column {
            name: "all".into(),
            faults: selected.to_vec(),
        });
    }
    columns
}

/// What the suite runs.
pub struct Suite {
    /// The template of every cell: program, arguments, log folder and run settings. Its
    /// workload, faults and seed are replaced per cell.
    pub template: Request,
    /// Rows.
    pub workloads: Vec<String>,
    /// Columns.
    pub columns: Vec<Column>,
    /// Seeds each cell runs with.
    pub seeds: Vec<u64>,
    /// Cells run at once.
    pub jobs: usize,
}

impl Suite {
    /// Every cell's request, row by row, column by column, seed by seed.
    pub fn requests(&self) -> Vec<(usize, usize, Request)> {
        let mut out = Vec::new();
        for (row, workload) in self.workloads.iter().enumerate() {
            for (col, column) in self.columns.iter().enumerate() {
                for &seed in &self.seeds {
                    let mut request = self.template.clone();
                    request.workload = workload.clone();
                    request.config.faults = column.faults.clone();
                    request.config.seed = seed;
                    request.log_dir = self
                        .template
                        .log_dir
                        .join(format!("{workload}-{}-seed{seed}", column.name));
                    out.push((row, col, request));
                }
            }
        }
        out
    }
}

/// One finished cell run.
pub struct CellRun {
    /// Row index.
    pub row: usize,
    /// Column index.
    pub col: usize,
    /// What ran.
    pub request: Request,
    /// What it found, or why it could not run.
    pub outcome: Result<Certification, String>,
}

impl CellRun {
    /// The run's verdict; a run that could not start is a failure.
    pub fn verdict(&self) -> Verdict {
        match &self.outcome {
            Ok(c) => c.verdict(),
            Err(e) => Verdict::Fail { detail: e.clone() },
        }
    }

    /// Names of what failed: checks, and node problems as `node-behaviour`.
    pub fn failed(&self) -> Vec<String> {
        let Ok(c) = &self.outcome else {
            return vec!["configuration".into()];
        };
        let mut names = Vec::new();
        for run in &c.runs {
            if !run.problems.is_empty() && !names.iter().any(|n| n == "node-behaviour") {
                names.push("node-behaviour".to_string());
            }
            for check in &run.checks {
                if matches!(check.verdict, Verdict::Fail { .. }) && !names.contains(&check.name) {
                    names.push(check.name.clone());
                }
            }
        }
        if let Some(m) = &c.merge_order
            && matches!(m.verdict, Verdict::Fail { .. })
        {
            names.push(m.name.clone());
        }
        names
    }
}

/// Runs every cell, `suite.jobs` at a time; `done` is called after each, from the worker that ran
/// it. Results come back in cell order whatever order they finished in. Stops starting new cells
/// once `stop()` says so (Ctrl-C); cells not started are absent from the result.
pub fn run(
    suite: &Suite,
    stop: &(dyn Fn() -> bool + Sync),
    done: &(dyn Fn(&CellRun) + Sync),
) -> Vec<CellRun> {
    let requests = suite.requests();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<CellRun>>> =
        Mutex::new((0..requests.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..suite.jobs.clamp(1, requests.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= requests.len() || stop() {
                        return;
                    }
                    let (row, col, request) = &requests[i];
                    let outcome = certify(request, &mut |_, _| {});
                    let cell = CellRun {
                        row: *row,
                        col: *col,
                        request: request.clone(),
                        outcome,
                    };
                    done(&cell);
                    // A poisoned lock means another worker panicked; its panic is the news, so
                    // this result is still recorded.
                    let mut results = results.lock().unwrap_or_else(|p| p.into_inner());
                    results[i] = Some(cell);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

/// The table (rows are workloads, columns nemeses; a cell passes only if every seed passed),
/// then every failing run with its reproduce command.
pub fn render(suite: &Suite, cells: &[CellRun]) -> String {
    let mut out = String::new();
    let width = suite
        .workloads
        .iter()
        .map(String::len)
        .max()
        .unwrap_or(0)
        .max("workload".len());
    let marks: Vec<Vec<String>> = (0..suite.workloads.len())
        .map(|row| {
            (0..suite.columns.len())
                .map(|col| {
                    let runs: Vec<Verdict> = cells
                        .iter()
                        .filter(|c| c.row == row && c.col == col)
                        .map(CellRun::verdict)
                        .collect();
                    let failed = runs
                        .iter()
                        .filter(|v| matches!(v, Verdict::Fail { .. }))
                        .count();
                    if runs.is_empty() {
                        "-".to_string()
                    } else if failed > 0 {
                        format!("FAIL {failed}/{}", runs.len())
                    } else if runs.iter().any(|v| matches!(v, Verdict::Unknown { .. })) {
                        "unknown".to_string()
                    } else {
                        "pass".to_string()
                    }
                })
                .collect()
        })
        .collect();
    let widths: Vec<usize> = suite
        .columns
        .iter()
        .enumerate()
        .map(|(col, c)| {
            marks
                .iter()
                .map(|row| row[col].len())
                .max()
                .unwrap_or(0)
                .max(c.name.len())
        })
        .collect();
    let _ = write!(out, "{:width$}", "workload");
    for (c, w) in suite.columns.iter().zip(&widths) {
        let _ = write!(out, "  {:>w$}", c.name);
    }
    out.push('\n');
    for (workload, row) in suite.workloads.iter().zip(&marks) {
        let _ = write!(out, "{workload:width$}");
        for (mark, w) in row.iter().zip(&widths) {
            let _ = write!(out, "  {mark:>w$}");
        }
        out.push('\n');
    }
    let total = suite.workloads.len() * suite.columns.len() * suite.seeds.len();
    let passed = cells
        .iter()
        .filter(|c| c.verdict() == Verdict::Pass)
        .count();
    let _ = writeln!(
        out,
        "\n{passed}/{total} runs passed ({} workloads × {} nemeses × {} seeds{})",
        suite.workloads.len(),
        suite.columns.len(),
        suite.seeds.len(),
        if cells.len() < total {
            format!("; {} not run", total - cells.len())
        } else {
            String::new()
        }
    );
    let bad: Vec<&CellRun> = cells
        .iter()
        .filter(|c| c.verdict() != Verdict::Pass)
        .collect();
    if !bad.is_empty() {
        out.push_str("\nruns that did not pass:\n");
        for c in bad {
            let what = match c.verdict() {
                Verdict::Unknown { reason } => format!("unknown: {reason}"),
                _ => format!("failed: {}", c.failed().join(", ")),
            };
            let _ = writeln!(
                out,
                "  {} × {} seed {}: {what}\n    reproduce: {}",
                c.request.workload,
                suite.columns[c.col].name,
                c.request.config.seed,
                reproduce(&c.request)
            );
        }
    }
    out
}

/// The suite as JSON: one summary per run (the full histories would be megabytes; each run's
/// reproduce command gets them back).
pub fn json(suite: &Suite, cells: &[CellRun]) -> serde_json::Value {
    let runs: Vec<serde_json::Value> = cells
        .iter()
        .map(|c| {
            let report = c.outcome.as_ref().ok().and_then(|o| o.runs.first());
            serde_json::json!({
                "workload": c.request.workload,
                "nemesis": suite.columns[c.col].name,
                "seed": c.request.config.seed,
                "verdict": c.verdict(),
                "failed": c.failed(),
                "ops": report.map(|r| r.ops),
                "msgs_per_op": report.map(|r| r.msgs_per_op),
                "latency": report.map(|r| &r.latency),
                "availability": report.map(|r| &r.availability),
                "reproduce": reproduce(&c.request),
            })
        })
        .collect();
    let verdict = if cells.iter().all(|c| c.verdict() == Verdict::Pass) {
        "pass"
    } else {
        "fail"
    };
    serde_json::json!({ "verdict": verdict, "runs": runs })
}

/// The suite as JUnit XML: one test suite per workload, one test case per nemesis and seed.
pub fn junit(suite: &Suite, cells: &[CellRun]) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"converge certify --suite\">\n",
    );
    for (row, workload) in suite.workloads.iter().enumerate() {
        let mine: Vec<&CellRun> = cells.iter().filter(|c| c.row == row).collect();
        let failures = mine
            .iter()
            .filter(|c| matches!(c.verdict(), Verdict::Fail { .. }))
            .count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\">",
            escape(workload),
            mine.len()
        );
        for c in mine {
            let name = format!(
                "{}.seed{}",
                suite.columns[c.col].name, c.request.config.seed
            );
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\"",
                escape(workload),
                escape(&name)
            );
            match c.verdict() {
                Verdict::Pass => out.push_str("/>\n"),
                Verdict::Fail { .. } => {
                    let _ = write!(
                        out,
                        ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                        escape(&c.failed().join(", ")),
                        escape(&reproduce(&c.request))
                    );
                }
                Verdict::Unknown { reason } => {
                    let _ = write!(
                        out,
                        ">\n      <skipped message=\"{}\"/>\n    </testcase>\n",
                        escape(&reason)
                    );
                }
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_none_each_fault_and_all() {
        let names: Vec<String> = columns(&[Fault::Partition, Fault::Kill])
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["none", "partition", "kill", "all"]);
        // One fault alone needs no "all" column: it would repeat the fault's own.
        assert_eq!(columns(&[Fault::Loss]).len(), 2);
    }
}
