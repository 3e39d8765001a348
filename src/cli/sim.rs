//! `converge sim`: its arguments, and the loop over seeds that runs each on the simulator
//! ([`converge::simulator`]) and prints a line per seed and the failing ones in full.

use super::shared::{
    EXIT_INTERRUPTED, FaultList, clock_seed, interrupt_flag, interrupted, names_arg, parse_faults,
};
use converge_conformance::harness::nemesis::Fault;
use converge_conformance::harness::workload;
use converge_core::replica::Bug;
use indicatif::{ProgressBar, ProgressStyle};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// `converge sim`'s arguments.
#[derive(clap::Args)]
pub(crate) struct SimArgs {
    /// Seeds to run, consecutive from --seed.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    seeds: u64,
    /// First seed. Default: drawn from the clock and printed.
    #[arg(long)]
    seed: Option<u64>,
    /// Workloads to draw from (repeatable) [default: every workload the reference node serves
    /// but echo].
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(workload::WORKLOADS))]
    workload: Vec<String>,
    /// Faults to draw from, comma-separated [default: every fault but clock].
    #[arg(long, value_name = "LIST", value_parser = parse_faults)]
    nemesis: Option<FaultList>,
    /// Regions.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=32))]
    regions: u16,
    /// Replicas per region.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=8))]
    replicas_per_region: u16,
    /// Client operations per seed.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    ops: u64,
    /// Largest clock offset of a replica, either way, in ms.
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    skew_ms: u64,
    /// Run a deliberately broken replica, to see the simulator catch it: apply-without-dedup,
    /// read-ignores-token, ae-skips-subtree, cas-decided-locally (lin-kv) or escrow-local-check
    /// (bounded-counter).
    #[arg(long, value_parser = names_arg(Bug::ALL, Bug::name))]
    bug: Option<Bug>,
    /// Inject every fault of --nemesis in every seed, instead of the subset each seed draws
    /// (swarm testing).
    #[arg(long)]
    every_fault: bool,
    /// Pin keys to the first regions (region 0, and 1 with three regions or more), write them
    /// beside the workload, and fail a seed if one reaches a replica outside those regions: in
    /// any transmit, reply or store.
    #[arg(long)]
    residency: bool,
    /// Run only shard K of N of the seeds (1 ≤ K ≤ N): the seeds whose index from --seed is
    /// K-1 modulo N, each exactly as the unsharded run would. Run every shard (a CI matrix, a
    /// Kubernetes Indexed Job) with --report, then `converge report merge` the reports.
    #[arg(long, value_name = "K/N", value_parser = parse_partition)]
    partition: Option<Partition>,
    /// Write what ran as JSON here: the plan, the shard, and each seed's line and verdict (what
    /// `converge report merge` combines).
    #[arg(long, value_name = "FILE")]
    report: Option<std::path::PathBuf>,
}

/// `--partition K/N`: shard `k` (1-based) of `n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Partition {
    pub(crate) k: u64,
    pub(crate) n: u64,
}

impl Partition {
    /// Whether the seed at `index` (from the first seed) belongs to this shard: striped, so every
    /// shard gets seeds from the whole range.
    pub(crate) fn holds(self, index: u64) -> bool {
        index % self.n == self.k - 1
    }
}

/// Parses `K/N`.
pub(crate) fn parse_partition(s: &str) -> Result<Partition, String> {
    let bad = || format!("'{s}' is not a shard K/N with 1 <= K <= N <= 100000 (like 2/4)");
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let (k, n): (u64, u64) = (
        k.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if k == 0 || k > n || n > 100_000 {
        return Err(bad());
    }
    Ok(Partition { k, n })
}

/// Runs `converge sim`: `--seeds` seeds from `--seed`, one after another.
pub(crate) fn run(args: SimArgs) -> ExitCode {
    use converge::simulator::{self, Plan};
    let first = args.seed.unwrap_or_else(clock_seed);
    // The simulator runs the reference node's face, so it draws only what the reference serves.
    let workloads: Vec<String> = if args.workload.is_empty() {
        workload::WORKLOADS
            .iter()
            .filter(|w| **w != "echo" && converge::reference::serves(w))
            .map(|w| w.to_string())
            .collect()
    } else {
        args.workload
    };
    if let Some(w) = workloads.iter().find(|w| !converge::reference::serves(w)) {
        eprintln!("error: {}", converge::reference::lacks(w));
        return ExitCode::from(2);
    }
    let plan = Plan {
        workloads,
        faults: args
            .nemesis
            .map_or_else(|| Fault::DEFAULT.to_vec(), |f| f.0),
        every_fault: args.every_fault,
        regions: usize::from(args.regions),
        replicas_per_region: usize::from(args.replicas_per_region),
        ops: args.ops,
        skew_ms: args.skew_ms,
        bug: args.bug,
        residency: args.residency,
        cancel: Some(Arc::clone(interrupt_flag())),
    };
    // What identifies the run's plan in a report: every argument that changes what a seed does,
    // so shards of different plans are never merged.
    let plan_json = serde_json::json!({
        "seed": first,
        "seeds": args.seeds,
        "workloads": plan.workloads,
        "nemesis": plan.faults.iter().map(|f| f.name()).collect::<Vec<_>>(),
        "every_fault": plan.every_fault,
        "regions": plan.regions,
        "replicas_per_region": plan.replicas_per_region,
        "ops": plan.ops,
        "skew_ms": plan.skew_ms,
        "bug": plan.bug.map(|b| b.name()),
        "residency": plan.residency,
    });
    let shard = args.partition.unwrap_or(Partition { k: 1, n: 1 });
    let indices: Vec<u64> = (0..args.seeds).filter(|&i| shard.holds(i)).collect();
    say!(
        "converge sim: seeds {first}..{}{}, {} regions × {} replicas, {} ops per seed",
        first.saturating_add(args.seeds - 1),
        args.partition.map_or_else(String::new, |p| format!(
            " (shard {}/{}: {} seeds)",
            p.k,
            p.n,
            indices.len()
        )),
        plan.regions,
        plan.replicas_per_region,
        plan.ops
    );
    let mut seed_lines = Vec::new();
    let bar = ProgressBar::new(indices.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} seeds {elapsed}  {msg}")
            .expect("the template is valid"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let started = std::time::Instant::now();
    let (mut failed, mut ops) = (Vec::new(), 0u64);
    for &k in &indices {
        if interrupted() {
            break;
        }
        let seed = first.wrapping_add(k);
        let seed_report = simulator::run_seed(&plan, seed);
        ops += seed_report.ops;
        let line = seed_report.summary();
        seed_lines.push(serde_json::json!({
            "seed": seed,
            "passed": seed_report.passed(),
            "line": line,
            "details": (!seed_report.passed()).then(|| seed_report.details()),
        }));
        if seed_report.passed() {
            if !bar.is_hidden() {
                bar.set_message(line);
            } else {
                say!("{line}");
            }
        } else {
            bar.suspend(|| say!("{line}\n{}", seed_report.details()));
            failed.push(seed);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    if interrupted() {
        eprintln!("interrupted");
        return ExitCode::from(EXIT_INTERRUPTED);
    }
    if let Some(path) = &args.report
        && let Err(code) =
            super::report::write_sim_report(path, &plan_json, (shard.k, shard.n), &seed_lines, ops)
    {
        return code;
    }
    say!(
        "{} seeds, {} failed; {ops} client ops in {secs:.1} s ({:.0} ops/s)",
        indices.len(),
        failed.len(),
        ops as f64 / secs.max(1e-9)
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        say!("failing seeds: {failed:?}");
        ExitCode::FAILURE
    }
}
