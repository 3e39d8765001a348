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
    say!(
        "converge sim: seeds {first}..{}, {} regions × {} replicas, {} ops per seed",
        first.saturating_add(args.seeds - 1),
        plan.regions,
        plan.replicas_per_region,
        plan.ops
    );
    let bar = ProgressBar::new(args.seeds);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} seeds {elapsed}  {msg}")
            .expect("the template is valid"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let started = std::time::Instant::now();
    let (mut failed, mut ops) = (Vec::new(), 0u64);
    for k in 0..args.seeds {
        if interrupted() {
            break;
        }
        let seed = first.wrapping_add(k);
        let seed_report = simulator::run_seed(&plan, seed);
        ops += seed_report.ops;
        let line = seed_report.summary();
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
    say!(
        "{} seeds, {} failed; {ops} client ops in {secs:.1} s ({:.0} ops/s)",
        args.seeds,
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
