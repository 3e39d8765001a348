//! How a run ends: the final reads, which wait for every node to agree and stay equal for the
//! stability window, and the report built from what the loop saw.
//!
//! Invariants: the report's checks run on the history only when the cluster started; each node
//! is judged by its last successful final read; a value that moves after agreement with no
//! write to explain it fails the stability check.

use super::{Loop, Pending};
use crate::harness::check::Check;
use crate::harness::config::stability_window_ms;
use crate::harness::history::{Body, Event, Outcome, Phase};
use crate::harness::net::NetConfig;
use crate::harness::report::{Availability, Latency, Problem, RunReport};
use crate::harness::workload::Profile;
use serde_json::Value;
use std::collections::BTreeMap;

impl Loop<'_> {
    /// Reads every node until all agree, then keeps reading for the stability window: the run
    /// ends once the values stayed equal for the whole window, or at `final_timeout_ms` plus one
    /// window. A value that moves after agreement restarts the wait (a node still draining a
    /// backlog agrees for a moment and then moves on), and is a violation when the workload says
    /// no write could explain the move.
    pub(super) fn final_reads(&mut self) {
        let Some(read) = self.workload.final_read() else {
            return;
        };
        let window = self.config.stability_ms.unwrap_or_else(|| {
            stability_window_ms(
                self.cadence.period_ms().unwrap_or(0),
                2 * self.config.quiet_ms,
            )
        });
        self.stability_window_ms = window;
        let start = self.backend.now_ms();
        let deadline = start + self.config.final_timeout_ms + window;
        // The agreed value and when agreement began.
        let mut agreed: Option<(Value, u64)> = None;
        loop {
            let round_start = self.history.events.len();
            self.settle.read_rounds += 1;
            for node in 0..self.config.nodes {
                if self.nodes[node].dead {
                    continue;
                }
                let id = self.msg_id();
                let body = read.clone().with_msg_id(id);
                self.history.events.push(Event {
                    client: self.config.clients + node,
                    node,
                    // Filled in with the body once it is sent, so the body is never copied.
                    request: Body::default(),
                    invoke_ms: self.backend.now_ms(),
                    complete_ms: None,
                    invoke_seq: self.seq + 1,
                    complete_seq: None,
                    outcome: Outcome::Info {
                        reason: "no reply".into(),
                    },
                    phase: Phase::Final,
                    during_fault: false,
                });
                let event = self.history.events.len() - 1;
                self.pending
                    .insert(id, (Pending::Final { event }, self.backend.now_ms()));
                let request =
                    self.send_from_client(&format!("c{}", self.config.clients + node), node, body);
                self.history.events[event].request = request;
            }
            while self
                .pending
                .values()
                .any(|(p, _)| matches!(p, Pending::Final { .. }))
                && self.backend.now_ms() < deadline
                && !self.interrupted()
            {
                self.step(deadline, Phase::Final);
            }
            let values: Vec<(usize, Option<Value>)> = self.history.events[round_start..]
                .iter()
                .map(|e| (e.node, e.reply().and_then(|r| self.workload.final_value(r))))
                .collect();
            let now = self.backend.now_ms();
            if let Some((value, since)) = &agreed {
                // Every node that answered must still show the agreed value.
                let moved = values
                    .iter()
                    .find(|(_, v)| v.as_ref().is_some_and(|v| v != value));
                if let Some((node, Some(to))) = moved {
                    if let Some(why) = self.workload.unexplained_change(&self.history, value, to) {
                        let cut = |v: &Value| v.to_string().chars().take(120).collect::<String>();
                        self.unstable.push(format!(
                            "n{node} read {} {} ms after every node agreed on {}: {why}",
                            cut(to),
                            now - since,
                            cut(value)
                        ));
                    }
                    agreed = None;
                } else if now - since >= window {
                    self.settle.stable = true;
                    break;
                }
            }
            if agreed.is_none() {
                let all = values.iter().all(|(_, v)| v.is_some())
                    && values.len() == self.nodes.iter().filter(|n| !n.dead).count();
                if all && !values.is_empty() && values.windows(2).all(|w| w[0].1 == w[1].1) {
                    agreed = values[0].1.clone().map(|v| (v, now));
                }
            }
            // Checkers judge each node by its last successful final read, so a round cut short
            // by the deadline does not hide the rounds before it.
            if now >= deadline
                || self.interrupted()
                || (agreed.is_none() && now >= start + self.config.final_timeout_ms)
            {
                break;
            }
            let pause_until = (now + self.config.read_interval_ms).min(deadline);
            while self.backend.now_ms() < pause_until && !self.interrupted() {
                self.step(pause_until, Phase::Final);
            }
        }
        self.settle.reads_ms = self.backend.now_ms() - start;
    }

    pub(super) fn report(mut self, network: NetConfig, elapsed_ms: u64) -> RunReport {
        for (node, (count, first)) in std::mem::take(&mut self.malformed) {
            self.problems.push(Problem::MalformedOutput {
                node: self.ids[node].clone(),
                count,
                first,
            });
        }
        let main: Vec<&Event> = self
            .history
            .phase(Phase::Main)
            .filter(|e| e.client < self.config.clients)
            .collect();
        let count =
            |f: &dyn Fn(&Outcome) -> bool| main.iter().filter(|e| f(&e.outcome)).count() as u64;
        let ok = count(&|o| matches!(o, Outcome::Ok { .. }));
        let fail = count(&|o| matches!(o, Outcome::Fail { .. }));
        let info = count(&|o| matches!(o, Outcome::Info { .. }));
        let mut latencies: Vec<u64> = main
            .iter()
            .filter(|e| e.reply().is_some())
            .filter_map(|e| e.complete_ms.map(|c| c - e.invoke_ms))
            .collect();
        latencies.sort_unstable();
        let q = |p: f64| {
            latencies
                .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
                .copied()
                .unwrap_or(0)
        };
        let latency = Latency {
            p50_ms: q(0.5),
            p95_ms: q(0.95),
            p99_ms: q(0.99),
            max_ms: latencies.last().copied().unwrap_or(0),
        };
        let share = |events: &[&&Event]| {
            (!events.is_empty()).then(|| {
                events.iter().filter(|e| e.reply().is_some()).count() as f64 / events.len() as f64
            })
        };
        let all: Vec<&&Event> = main.iter().collect();
        let faulted: Vec<&&Event> = main.iter().filter(|e| e.during_fault).collect();
        let availability = Availability {
            overall: share(&all).unwrap_or(0.0),
            during_faults: share(&faulted),
        };
        let order_independent = self.workload.order_independent();
        // A cluster that never started has no history worth checking: its problem is the verdict.
        let started = !self.problems.iter().any(|p| {
            matches!(
                p,
                Problem::InitTimeout { .. }
                    | Problem::SetupFailed { .. }
                    | Problem::Backend { .. }
                    | Problem::Interrupted
            )
        });
        let mut checks: Vec<Check> = if started {
            self.workload.check(&self.history, self.config.nodes)
        } else {
            Vec::new()
        };
        if started && self.workload.final_read().is_some() {
            let mut unstable = std::mem::take(&mut self.unstable);
            unstable.truncate(5);
            checks.push(Check::from_bool(
                "stability",
                false,
                unstable.is_empty(),
                || unstable.join("; "),
            ));
        }
        checks.retain(|c| self.config.profile == Profile::Strict || c.maelstrom);
        let figures = if started {
            self.workload.figures(&self.history)
        } else {
            Vec::new()
        };
        let ops = main.len() as u64;
        let mut final_values = BTreeMap::new();
        for e in self.history.phase(Phase::Final) {
            if let Some(value) = e.reply().and_then(|r| self.workload.final_value(r)) {
                final_values.insert(self.ids[e.node].clone(), value);
            }
        }
        RunReport {
            workload: self.workload.name().to_string(),
            config: self.config.clone(),
            network,
            net_stats: self.main_net_stats.clone(),
            faults: self.faults_applied,
            ops,
            ok,
            fail,
            info,
            msgs_per_op: if ops == 0 {
                0.0
            } else {
                self.main_net_stats.sent as f64 / ops as f64
            },
            latency,
            availability,
            elapsed_ms,
            main_ms: self.main_end_ms.saturating_sub(self.main_start_ms),
            fault_windows: self.fault_spans,
            settle: self.settle,
            replication_period_ms: self.cadence.period_ms(),
            stability_window_ms: self.stability_window_ms,
            problems: self.problems,
            final_values,
            services: self
                .services
                .stats()
                .into_iter()
                .filter(|(_, stats)| stats.requests > 0)
                .map(|(service, stats)| (service.name().to_string(), stats))
                .collect(),
            checks,
            figures,
            order_independent,
            history: self.history,
        }
    }
}
