//! The history of a run: every client operation with its invocation, completion and outcome.
//! Checkers read nothing else.

use serde::Serialize;
use serde_json::{Map, Value};

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// A reply other than an error: the body.
    Ok {
        /// The reply body.
        reply: Map<String, Value>,
    },
    /// A definite error: the operation did not happen.
    Fail {
        /// Maelstrom error code.
        code: u64,
    },
    /// No reply in time, or an indefinite error: the operation may or may not have happened.
    Info {
        /// Why the outcome is unknown.
        reason: String,
    },
}

/// When in the run an operation was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// The workload, with faults.
    Main,
    /// Reads after the network healed and the cluster went quiet.
    Final,
}

/// One client operation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    /// The client that made it.
    pub client: usize,
    /// The node it was sent to.
    pub node: usize,
    /// The request body.
    pub request: Map<String, Value>,
    /// When it was sent (ms since the run started).
    pub invoke_ms: u64,
    /// When its reply arrived, if one did.
    pub complete_ms: Option<u64>,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Which phase.
    pub phase: Phase,
    /// Whether a fault (partition) was in force when it was sent.
    pub during_fault: bool,
}

impl Event {
    /// The request's `type`.
    pub fn kind(&self) -> &str {
        self.request
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// The reply body, if the operation succeeded.
    pub fn reply(&self) -> Option<&Map<String, Value>> {
        match &self.outcome {
            Outcome::Ok { reply } => Some(reply),
            _ => None,
        }
    }
}

/// Every operation of a run, in invocation order.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct History {
    /// The operations.
    pub events: Vec<Event>,
}

impl History {
    /// Operations of one phase.
    pub fn phase(&self, phase: Phase) -> impl Iterator<Item = &Event> {
        self.events.iter().filter(move |e| e.phase == phase)
    }
}
