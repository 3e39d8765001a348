//! Workloads: what clients ask of the nodes, and what the answers must satisfy.
//!
//! A workload generates request bodies, names the read that ends a run, and checks the history.
//! It knows nothing of processes or time sources: both backends drive the same workloads.

mod broadcast;
mod counter;
mod echo;
mod lin_kv;
mod orset;
mod register;
mod session;
mod set;

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
    /// The next request body for `client` (without `msg_id`). Workloads whose clients carry
    /// state between requests (session tokens) override this; the default ignores the client.
    fn next_op_for(&mut self, client: usize, dice: &mut Dice) -> Value {
        let _ = client;
        self.next_op(dice)
    }
    /// The node `client`'s next request goes to. By default a client always talks to one node.
    fn node_for(&mut self, client: usize, nodes: usize, dice: &mut Dice) -> usize {
        let _ = dice;
        client % nodes
    }
    /// Sees every successful reply to `client`, e.g. to keep its session token.
    fn observe(&mut self, client: usize, reply: &serde_json::Map<String, Value>) {
        let _ = (client, reply);
    }
    /// The request that reads a node's final state after the cluster healed and went quiet, if
    /// the workload has one.
    fn final_read(&self) -> Option<Value>;
    /// The value a final read shows, for convergence: equal values mean equal states.
    fn final_value(&self, reply: &serde_json::Map<String, Value>) -> Option<Value>;
    /// Whether the final state depends only on which operations took effect, not on their
    /// order: then runs of the same operations under different schedules must end equal.
    fn order_independent(&self) -> bool {
        false
    }
    /// Checks the history.
    fn check(&self, history: &History, nodes: usize) -> Vec<Check>;
}

/// The workloads this build has, by name.
pub const WORKLOADS: &[&str] = &[
    "echo",
    "g-counter",
    "pn-counter",
    "g-set",
    "broadcast",
    "lin-kv",
    "or-set",
    "session",
    "lww-register",
    "mv-register",
];

/// The workload called `name`.
pub fn by_name(name: &str) -> Option<Box<dyn Workload>> {
    match name {
        "echo" => Some(Box::new(echo::Echo::default())),
        "g-counter" => Some(Box::new(counter::Counter::new(false))),
        "pn-counter" => Some(Box::new(counter::Counter::new(true))),
        "g-set" => Some(Box::new(set::SetWorkload::new(set::G_SET))),
        "broadcast" => Some(Box::new(broadcast::Broadcast::default())),
        "session" => Some(Box::new(session::Session::default())),
        "lin-kv" => Some(Box::new(lin_kv::LinKv)),
        "or-set" => Some(Box::new(orset::OrSet::default())),
        "lww-register" => Some(Box::new(register::Register::new(register::Flavor::Lww))),
        "mv-register" => Some(Box::new(register::Register::new(register::Flavor::Mv))),
        _ => None,
    }
}
