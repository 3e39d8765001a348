//! The simulator, one run per seed: what the seed draws (workload, faults, skews), the harness run
//! on [`SimBackend`] ([`backend`]), and the one-line command that replays it. `converge sim` (the
//! binary's `cli::sim`) runs a series of seeds through [`run_seed`].

pub mod backend;
pub mod residency;

use crate::certify::verdict_mark;
use backend::{SimBackend, SimConfig};
use converge_conformance::harness::check::Verdict;
use converge_conformance::harness::nemesis::Fault;
use converge_conformance::harness::rng::SeededDice;
use converge_conformance::harness::run::{RunConfig, RunReport, run};
use converge_conformance::harness::workload;
use converge_core::replica::{Bug, Consistency};
use converge_node::maelstrom::{FaceConfig, Workload};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// What a series of seeds draws from.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Workloads, by harness name.
    pub workloads: Vec<String>,
    /// Faults.
    pub faults: Vec<Fault>,
    /// Inject every fault in every seed instead of a drawn subset.
    pub every_fault: bool,
    /// Regions.
    pub regions: usize,
    /// Replicas per region.
    pub replicas_per_region: usize,
    /// Client operations per seed.
    pub ops: u64,
    /// Largest clock offset either way, in ms.
    pub skew_ms: u64,
    /// A deliberately broken replica.
    pub bug: Option<Bug>,
    /// Pin keys to some regions and check that they never leave them ([`residency`]).
    pub residency: bool,
    /// Stops a run early (Ctrl-C).
    pub cancel: Option<Arc<AtomicBool>>,
}

/// What one seed drew and found.
pub struct SeedReport {
    /// The seed.
    pub seed: u64,
    /// Its workload.
    pub workload: String,
    /// Its faults.
    pub faults: Vec<Fault>,
    /// The replicas' clock offsets, ms.
    pub skews: Vec<i64>,
    /// The oplog cap drawn, if the seed drew a short one.
    pub oplog_cap: Option<usize>,
    /// Client operations run.
    pub ops: u64,
    /// Virtual time the run took, ms.
    pub virtual_ms: u64,
    /// The harness's report.
    pub report: RunReport,
    /// The command that replays this seed.
    pub reproduce: String,
    /// What the replicas counted of the operations CRDTs cannot do.
    pub figures: ReplicaFigures,
    /// What the residency traffic did and found, if the plan asked for it.
    pub residency: Option<residency::ResidencyReport>,
}

/// Replica-side counts of consensus operations and escrow withdrawals: what a black-box check
/// cannot see (was a withdrawal served from rights held, or after a transfer?).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicaFigures {
    /// Consensus-register operations that succeeded.
    pub consensus_ok: u64,
    /// Compare-and-sets that found another value.
    pub consensus_precondition_failed: u64,
    /// Consensus operations with no majority in time.
    pub consensus_unavailable: u64,
    /// Consensus operations whose outcome is unknown.
    pub consensus_indefinite: u64,
    /// Withdrawals applied, from rights held or after a transfer.
    pub withdrawals_applied: u64,
    /// Of those, the ones applied after waiting for a transfer.
    pub withdrawals_covered_by_transfer: u64,
    /// Withdrawals refused for want of rights.
    pub withdrawals_refused: u64,
    /// Transfers of rights granted.
    pub rights_granted: u64,
}

impl std::fmt::Display for ReplicaFigures {
    /// The non-empty parts, e.g. `; consensus 120 ok, 30 precondition failed, 2 unavailable,
    /// 0 indefinite; withdrawals 80 applied (61 from rights held, 19 after a transfer), 12
    /// refused, 20 grants`, or nothing.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let consensus = self.consensus_ok
            + self.consensus_precondition_failed
            + self.consensus_unavailable
            + self.consensus_indefinite;
        if consensus > 0 {
            write!(
                f,
                "; consensus {} ok, {} precondition failed, {} unavailable, {} indefinite",
                self.consensus_ok,
                self.consensus_precondition_failed,
                self.consensus_unavailable,
                self.consensus_indefinite
            )?;
        }
        if self.withdrawals_applied + self.withdrawals_refused > 0 {
            write!(
                f,
                "; withdrawals {} applied ({} from rights held, {} after a transfer), {} refused, {} grants",
                self.withdrawals_applied,
                self.withdrawals_applied
                    .saturating_sub(self.withdrawals_covered_by_transfer),
                self.withdrawals_covered_by_transfer,
                self.withdrawals_refused,
                self.rights_granted
            )?;
        }
        Ok(())
    }
}

impl SeedReport {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.report.verdict() == Verdict::Pass
            && self
                .residency
                .as_ref()
                .is_none_or(|r| r.violation_count == 0)
    }

    /// One line: seed, draws, verdict.
    pub fn summary(&self) -> String {
        let faults: Vec<&str> = self.faults.iter().map(|f| f.name()).collect();
        let v = self.report.verdict();
        let verdict = match &v {
            Verdict::Unknown { reason } => format!("{} ({reason})", verdict_mark(&v)),
            _ => verdict_mark(&v).to_string(),
        };
        let cap = self
            .oplog_cap
            .map_or(String::new(), |c| format!(" oplog {c}"));
        let residency = self.residency.as_ref().map_or(String::new(), |r| {
            format!(
                "; residency {} pinned writes ({} refused outside), {} transmits checked, {} violations",
                r.writes, r.refused, r.transmits, r.violation_count
            )
        });
        format!(
            "seed {} {} faults [{}] skews {:?} ms{cap}: {} ops in {:.1} virtual s, {verdict}{}{residency}",
            self.seed,
            self.workload,
            faults.join(","),
            self.skews,
            self.ops,
            self.virtual_ms as f64 / 1000.0,
            self.figures
        )
    }

    /// What failed, and how to replay it.
    pub fn details(&self) -> String {
        let mut out = String::new();
        for p in &self.report.problems {
            let _ = writeln!(out, "  problem: {p:?}");
        }
        for c in &self.report.checks {
            if let Verdict::Fail { detail } | Verdict::Unknown { reason: detail } = &c.verdict {
                let _ = writeln!(out, "  {}: {detail}", c.name);
            }
        }
        for v in self.residency.iter().flat_map(|r| &r.violations) {
            let _ = writeln!(out, "  residency: {v}");
        }
        let _ = write!(out, "  reproduce: {}", self.reproduce);
        out
    }
}

/// Runs seed `seed` of `plan`.
pub fn run_seed(plan: &Plan, seed: u64) -> SeedReport {
    // Each draw has its own stream, apart from the harness's, so that narrowing the choices
    // (as the replay command does with --workload and --every-fault) leaves every other draw
    // of the seed unchanged.
    let workload = plan.workloads
        [SeededDice::fork(seed, 0x5151).below(plan.workloads.len() as u64) as usize]
        .clone();
    let mut fault_dice = SeededDice::fork(seed, 0x5152);
    let drawn: Vec<Fault> = Fault::ALL
        .into_iter()
        .filter(|_| fault_dice.chance(0.5))
        .collect();
    let faults: Vec<Fault> = plan
        .faults
        .iter()
        .copied()
        .filter(|f| plan.every_fault || drawn.contains(f))
        .collect();
    // Half the seeds keep a short oplog, so that a replica cut off for a fault window falls
    // behind the truncation point and only anti-entropy can repair it.
    let mut cap_dice = SeededDice::fork(seed, 0x5153);
    let oplog_cap = cap_dice
        .chance(0.5)
        .then(|| 16 + cap_dice.below(240) as usize);
    let nodes = plan.regions * plan.replicas_per_region;
    let mut face = FaceConfig::new(Workload::from_name(&workload).unwrap_or(Workload::GSet));
    face.replicas_per_region = u32::try_from(plan.replicas_per_region).unwrap_or(1);
    // The disk matters only to a replica that restarts, and only the kill fault restarts one.
    // Without it, recording every change for a disk nobody reads would cost a seventh of the
    // run; the replica behaves the same either way (the journal only records).
    face.track_durable = faults.contains(&Fault::Kill);
    face.bug = plan.bug;
    face.seed = seed;
    face.default_consistency = Consistency::LocalOne;
    face.oplog_entries_max = oplog_cap;
    if plan.residency {
        face.residency = residency::pins(plan.regions);
    }
    let mut backend = SimBackend::new(SimConfig {
        face,
        nodes,
        skew_ms: plan.skew_ms,
        reply_ms: 1,
        seed,
    });
    let skews = backend.skews();
    let config = RunConfig {
        nodes,
        clients: nodes,
        ops: plan.ops,
        // The virtual time cap grows with the operations asked for (30 ms each, the 30 s it
        // always was at the default 1,000), so a long run is not cut short by it.
        time_limit_ms: plan.ops.saturating_mul(30).max(30_000),
        seed,
        faults: faults.clone(),
        cancel: plan.cancel.clone(),
        ..RunConfig::default()
    };
    let mut w = workload::by_name(&workload).expect("plans name built-in workloads");
    let report = run(w.as_mut(), &mut backend, &config, &mut |_| {});
    let figures = backend.figures();
    let residency = backend.residency().cloned();
    let mut reproduce = format!(
        "converge sim --seeds 1 --seed {seed} --workload {workload} --regions {} --replicas-per-region {} --ops {} --skew-ms {} --every-fault",
        plan.regions, plan.replicas_per_region, plan.ops, plan.skew_ms
    );
    if !faults.is_empty() {
        let names: Vec<&str> = faults.iter().map(|f| f.name()).collect();
        let _ = write!(reproduce, " --nemesis {}", names.join(","));
    } else {
        reproduce.push_str(" --nemesis ''");
    }
    if let Some(bug) = plan.bug {
        let _ = write!(reproduce, " --bug {bug}");
    }
    if plan.residency {
        reproduce.push_str(" --residency");
    }
    SeedReport {
        seed,
        workload,
        faults,
        skews,
        oplog_cap,
        ops: report.ops,
        virtual_ms: report.elapsed_ms,
        report,
        reproduce,
        figures,
        residency,
    }
}
