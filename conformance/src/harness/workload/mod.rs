//! Workloads: what clients ask of the nodes, and what the answers must satisfy.
//!
//! A workload generates request bodies, names the read that ends a run, and checks the history.
//! It knows nothing of processes or time sources: both backends drive the same workloads.

mod counter;
mod echo;

use super::check::Check;
use super::history::History;
use super::rng::Dice;
use serde_json::Value;

/// Which checks to apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// Maelstrom's checks only.
    Maelstrom,
    /// Maelstrom's checks plus converge's stricter ones.
    Strict,
}

/// A workload.
pub trait Workload {
    /// Its name on the command line.
    fn name(&self) -> &'static str;
    /// Requests sent to nodes after `init` and before the workload, each answered before the
    /// workload starts (e.g. broadcast's `topology`): `(node, body)` pairs without `msg_id`.
    fn setup(&mut self, node_ids: &[String]) -> Vec<(usize, Value)> {
        let _ = node_ids;
        Vec::new()
    }
    /// The next request body (without `msg_id`).
    fn next_op(&mut self, dice: &mut Dice) -> Value;
    /// The request that reads a node's final state after the cluster healed and went quiet, if
    /// the workload has one.
    fn final_read(&self) -> Option<Value>;
    /// The value a final read shows, for convergence: equal values mean equal states.
    fn final_value(&self, reply: &serde_json::Map<String, Value>) -> Option<Value>;
    /// Checks the history.
    fn check(&self, history: &History, nodes: usize) -> Vec<Check>;
}

/// The workloads this build has, by name.
pub const WORKLOADS: [&str; 3] = ["echo", "g-counter", "pn-counter"];

/// The workload called `name`.
pub fn by_name(name: &str) -> Option<Box<dyn Workload>> {
    match name {
        "echo" => Some(Box::new(echo::Echo::default())),
        "g-counter" => Some(Box::new(counter::Counter::new(false))),
        "pn-counter" => Some(Box::new(counter::Counter::new(true))),
        _ => None,
    }
}
