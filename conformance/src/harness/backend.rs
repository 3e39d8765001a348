//! What the harness needs from the nodes it drives, and nothing more: deliver a line, wait for
//! lines, stop and resume. The process backend runs real programs on real time; the in-process
//! backend (sans-IO nodes on virtual time) implements the same trait, so the scheduler, workloads
//! and checkers are shared.

use std::time::Duration;

/// Something a node did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeEvent {
    /// The node wrote a line to its output.
    Line {
        /// Node index.
        node: usize,
        /// The line, without its newline.
        line: String,
    },
    /// The node's process ended.
    Exited {
        /// Node index.
        node: usize,
        /// Which start of the node ended (0 for the first), so the end of a killed incarnation
        /// is not mistaken for a crash of its successor.
        incarnation: u64,
        /// How it ended, for the report.
        status: String,
    },
}

/// A backend failure the harness cannot work around.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The node program could not be started.
    #[error("cannot start node {node} ({program}): {source}")]
    Spawn {
        /// Node index.
        node: usize,
        /// What was run.
        program: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// Writing to a node failed (it has exited).
    #[error("cannot write to node {node}: {source}")]
    Write {
        /// Node index.
        node: usize,
        /// Why.
        source: std::io::Error,
    },
}

/// The nodes under test.
pub trait Backend {
    /// Milliseconds since the run started: wall time for processes, virtual time in simulation.
    fn now_ms(&self) -> u64;
    /// Starts (or restarts) node `node`.
    fn start(&mut self, node: usize) -> Result<(), BackendError>;
    /// Writes one line to node `node`'s input.
    fn send(&mut self, node: usize, line: &str) -> Result<(), BackendError>;
    /// Returns what nodes did, waiting at most until `deadline_ms` (and at most `max_wait`) for
    /// the first event. An empty result means the deadline passed quietly.
    fn wait(&mut self, deadline_ms: u64, max_wait: Duration) -> Vec<NodeEvent>;
    /// Kills node `node` at once (SIGKILL for a process): it loses everything not on disk. Its
    /// `Exited` event follows; the harness restarts it with [`Backend::start`].
    fn kill(&mut self, node: usize);
    /// Freezes node `node` (SIGSTOP): it neither reads nor writes until resumed.
    fn pause(&mut self, node: usize);
    /// Resumes a paused node (SIGCONT).
    fn resume(&mut self, node: usize);
    /// Stops every node and releases its resources. Idempotent.
    fn shutdown(&mut self);
}
