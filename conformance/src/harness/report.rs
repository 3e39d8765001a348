//! What a run produced: [`RunReport`] and its parts ([`Problem`], [`Latency`],
//! [`Availability`], [`FaultSpan`], [`Settle`]), the overall [`RunReport::verdict`], and
//! [`merge_order_independence`], the check that compares the reports of several schedules.
//!
//! Invariants: a report is built once, by the run loop, and only read afterwards; its verdict
//! is derived from its problems and checks alone, so a report read back (or built by hand in a
//! test) judges the same way.

use super::check::{Check, Verdict};
use super::config::RunConfig;
use super::history::History;
use super::net::{NetConfig, NetStats};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Misbehaviour of a node, each a named verdict of its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "problem")]
pub enum Problem {
    /// A node did not answer `init` in time.
    InitTimeout {
        /// Which nodes.
        nodes: Vec<String>,
    },
    /// A node did not accept the workload's setup request (e.g. broadcast's `topology`) in time.
    SetupFailed {
        /// The node.
        node: String,
        /// What happened instead.
        detail: String,
    },
    /// A node's process ended on its own.
    Crash {
        /// The node.
        node: String,
        /// How it ended.
        status: String,
    },
    /// Output that is not a Maelstrom message, or that lies about its sender or receiver.
    MalformedOutput {
        /// The node.
        node: String,
        /// How many such lines.
        count: u64,
        /// The first one, and what is wrong with it.
        first: String,
    },
    /// The backend failed (could not start or write to a node).
    Backend {
        /// The error.
        error: String,
    },
    /// The run was cancelled from outside (Ctrl-C) before it finished: nothing is judged.
    Interrupted,
}

/// Latency of acknowledged operations, in ms.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_ms: u64,
    /// 95th percentile.
    pub p95_ms: u64,
    /// 99th percentile.
    pub p99_ms: u64,
    /// Slowest.
    pub max_ms: u64,
}

/// Availability: the share of main-phase operations acknowledged.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Availability {
    /// Over the whole main phase.
    pub overall: f64,
    /// Over operations sent while a fault (partition, kill, pause) was in force (`None` if
    /// there were none).
    pub during_faults: Option<f64>,
}

/// Everything a run produced.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// The workload.
    pub workload: String,
    /// The configuration.
    pub config: RunConfig,
    /// The network during the main phase (probabilities drawn from the seed).
    pub network: NetConfig,
    /// What the network did during the workload.
    pub net_stats: NetStats,
    /// Faults applied, in order: `partition:KIND`, `kill:nN`, `pause:nN`, `clock:…` (see
    /// [`super::nemesis::ClockPlan::name`]).
    pub faults: Vec<String>,
    /// Operations issued in the main phase.
    pub ops: u64,
    /// Acknowledged, definitely failed and indefinite operations.
    pub ok: u64,
    /// Definite failures.
    pub fail: u64,
    /// Indefinite outcomes.
    pub info: u64,
    /// Node-to-node messages per main-phase operation.
    pub msgs_per_op: f64,
    /// Latency of acknowledged operations.
    pub latency: Latency,
    /// Availability.
    pub availability: Availability,
    /// Wall (or virtual) time the run took, in ms.
    pub elapsed_ms: u64,
    /// How long the main phase lasted, in ms.
    pub main_ms: u64,
    /// Each fault window: what it was, and when it started and ended, in ms from the start of
    /// the main phase.
    pub fault_windows: Vec<FaultSpan>,
    /// How the cluster settled after the heal.
    pub settle: Settle,
    /// The slowest link's typical gap between bursts of node-to-node messages, in ms (`None` if
    /// no link sent often enough to tell): the subject's replication period as seen from outside.
    pub replication_period_ms: Option<u64>,
    /// How long final reads had to stay equal once every node agreed.
    pub stability_window_ms: u64,
    /// Node misbehaviour.
    pub problems: Vec<Problem>,
    /// Each node's last successful final read, as the workload's canonical value.
    pub final_values: BTreeMap<String, Value>,
    /// Requests to Maelstrom's services.
    pub services: BTreeMap<String, super::services::ServiceStats>,
    /// The workload's checks.
    pub checks: Vec<Check>,
    /// What the workload measured without judging it, one line each (see
    /// [`Workload::figures`](super::workload::Workload::figures)).
    pub figures: Vec<String>,
    /// Whether the workload's final state depends only on which operations took effect, so that
    /// runs under different schedules must end equal.
    pub order_independent: bool,
    /// The history.
    #[serde(skip)]
    pub history: History,
}

impl RunReport {
    /// The overall verdict: fail if any problem or applicable check failed, unknown if a check
    /// could not be decided, else pass.
    pub fn verdict(&self) -> Verdict {
        // A run cut short says nothing about the implementation, good or bad.
        if self.problems.contains(&Problem::Interrupted) {
            return Verdict::Unknown {
                reason: "interrupted before the run finished".into(),
            };
        }
        if let Some(p) = self.problems.first() {
            return Verdict::Fail {
                detail: format!("{p:?}"),
            };
        }
        let applicable = self.checks.iter();
        if let Some(c) = applicable
            .clone()
            .find(|c| matches!(c.verdict, Verdict::Fail { .. }))
        {
            return c.verdict.clone();
        }
        if let Some(c) = applicable
            .clone()
            .find(|c| matches!(c.verdict, Verdict::Unknown { .. }))
        {
            return c.verdict.clone();
        }
        Verdict::Pass
    }
}

/// One fault window, in ms from the start of the main phase.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FaultSpan {
    /// `partition:KIND`, `kill:nN`, `pause:nN`, ...
    pub fault: String,
    /// When it began.
    pub start_ms: u64,
    /// When it was healed.
    pub end_ms: u64,
}

/// How the cluster settled between the heal and the final reads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Settle {
    /// How long the harness waited, in ms.
    pub waited_ms: u64,
    /// Whether the network went quiet (no node-to-node or service message for `quiet_ms`)
    /// before the bound, `settle_ms`.
    pub quiet: bool,
    /// How long the final reads took, stability window included.
    pub reads_ms: u64,
    /// Rounds of final reads.
    pub read_rounds: u64,
    /// Whether every node agreed and stayed equal for the stability window.
    pub stable: bool,
}

/// Merge-order independence, observed from outside: runs that made the same client operations
/// under different delivery schedules (reordered, duplicated, regrouped messages and different
/// fault windows) must end in equal final states — associativity, commutativity and idempotence
/// of the nodes' merge, seen as a black box. Only decidable when every operation of every run
/// took effect (an indefinite or failed operation legitimately changes the final state) and the
/// workload's state does not depend on operation order.
pub fn merge_order_independence(reports: &[RunReport]) -> Check {
    let name = "merge-order-independence";
    let unknown = |reason: String| Check::new(name, false, Verdict::Unknown { reason });
    if reports.len() < 2 {
        return unknown("needs at least two schedules (--schedules)".into());
    }
    if let Some(r) = reports.iter().find(|r| !r.order_independent) {
        return unknown(format!(
            "the final state of {} depends on operation order",
            r.workload
        ));
    }
    if let Some((i, r)) = reports.iter().enumerate().find(|(_, r)| r.ok != r.ops) {
        return unknown(format!(
            "schedule {i} had {} failed and {} indefinite operations, so runs may differ legitimately",
            r.fail, r.info
        ));
    }
    let finals: Vec<Option<&Value>> = reports
        .iter()
        .map(|r| {
            let mut values = r.final_values.values();
            let first = values.next();
            values.all(|v| Some(v) == first).then_some(first).flatten()
        })
        .collect();
    if let Some(i) = finals.iter().position(Option::is_none) {
        return unknown(format!(
            "schedule {i} did not converge, so it has no single final state"
        ));
    }
    let first = finals[0];
    match finals.iter().position(|f| *f != first) {
        None => Check::new(name, false, Verdict::Pass),
        Some(i) => Check::new(
            name,
            false,
            Verdict::Fail {
                detail: format!(
                    "the same operations ended in {} under schedule 0 but {} under schedule {i}",
                    first
                        .map(Value::to_string)
                        .unwrap_or_default()
                        .chars()
                        .take(200)
                        .collect::<String>(),
                    finals[i]
                        .map(Value::to_string)
                        .unwrap_or_default()
                        .chars()
                        .take(200)
                        .collect::<String>()
                ),
            },
        ),
    }
}
