//! What the harness needs from the nodes it drives, and nothing more: deliver a message, wait for
//! messages, stop and resume. The process backend runs real programs on real time; the in-process
//! backend (sans-IO nodes on virtual time) implements the same trait, so the scheduler, workloads
//! and checkers are shared.
//!
//! # Two ways to speak
//! A process node speaks Maelstrom's JSON lines: the harness writes lines with [`Backend::send`]
//! and reads [`NodeEvent::Line`]. An in-process backend may skip the text altogether:
//! - requests and replies to clients and services travel as the harness's parsed [`Message`]
//!   ([`Backend::send_message`] in, [`NodeEvent::Message`] out), so neither side prints or
//!   parses JSON;
//! - node-to-node messages travel as an opaque [`NodeEvent::Peer`] payload that the harness
//!   routes, delays, drops, duplicates and records without ever reading it, and hands back to
//!   the backend with [`Backend::deliver_peer`].
//!
//! The defaults keep a line-only backend working unchanged: `send_message` prints the message
//! and calls `send`, exactly the line the harness used to write; `deliver_peer` is never called
//! on a backend that produces no `Peer` events.

use super::message::Message;
use std::time::Duration;

/// Something a node did.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeEvent {
    /// The node wrote a line to its output.
    Line {
        /// Node index.
        node: usize,
        /// The line, without its newline.
        line: String,
    },
    /// The node sent a message to a client or a service, already parsed (in-process backends).
    /// The harness checks it exactly as it checks a parsed line: `src` must be the node.
    Message {
        /// Node index.
        node: usize,
        /// The message.
        message: Message,
    },
    /// The node sent a message to node `to`, as bytes only the backend understands
    /// (in-process backends). The harness never looks inside.
    Peer {
        /// Sender's node index.
        node: usize,
        /// Receiver's node index.
        to: usize,
        /// The payload, handed back unchanged to [`Backend::deliver_peer`].
        payload: Vec<u8>,
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
    /// Moving a node's clock failed.
    #[error("cannot set node {node}'s clock: {source}")]
    Clock {
        /// Node index.
        node: usize,
        /// Why.
        source: std::io::Error,
    },
    /// The harness asked a backend for something it cannot do (a peer payload to a backend
    /// that speaks lines only, a clock offset to one that cannot move clocks): a harness bug,
    /// reported rather than panicking.
    #[error("node {node}: {what} is not supported by this backend")]
    Unsupported {
        /// Node index.
        node: usize,
        /// What was attempted.
        what: &'static str,
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
    /// Gives node `node` a message from a client or a service. The default prints it as the
    /// one JSON line a process node reads and calls [`Backend::send`]; in-process backends
    /// override it to skip the text.
    fn send_message(&mut self, node: usize, message: &Message) -> Result<(), BackendError> {
        self.send(node, &message.to_line())
    }
    /// Gives node `node` a payload that node `from` sent it as a [`NodeEvent::Peer`]. Only
    /// called on backends that produce such events; the default refuses.
    fn deliver_peer(
        &mut self,
        node: usize,
        from: usize,
        payload: Vec<u8>,
    ) -> Result<(), BackendError> {
        let _ = (from, payload);
        Err(BackendError::Unsupported {
            node,
            what: "a peer payload",
        })
    }
    /// The harness's network dropped a payload node `node` sent to node `to` as a
    /// [`NodeEvent::Peer`] (a cut link, a lost message). A backend whose payloads are pieces of
    /// a byte stream retransmits it later (a new `Peer` event) or resets the stream, as TCP
    /// would; the default does nothing (a lost message is lost).
    fn peer_dropped(&mut self, node: usize, to: usize, payload: Vec<u8>) {
        let _ = (node, to, payload);
    }
    /// Returns what nodes did, waiting at most until `deadline_ms` (and at most `max_wait`) for
    /// the first event. An empty result means the deadline passed quietly.
    fn wait(&mut self, deadline_ms: u64, max_wait: Duration) -> Vec<NodeEvent>;
    /// [`Backend::wait`], appending to `out`: the harness calls this once per turn with one
    /// buffer it reuses, so a backend that overrides it allocates nothing per turn. The default
    /// calls `wait`.
    fn wait_into(&mut self, deadline_ms: u64, max_wait: Duration, out: &mut Vec<NodeEvent>) {
        out.extend(self.wait(deadline_ms, max_wait));
    }
    /// Kills node `node` at once (SIGKILL for a process): it loses everything not on disk. Its
    /// `Exited` event follows; the harness restarts it with [`Backend::start`].
    fn kill(&mut self, node: usize);
    /// Freezes node `node` (SIGSTOP): it neither reads nor writes until resumed.
    fn pause(&mut self, node: usize);
    /// Resumes a paused node (SIGCONT).
    fn resume(&mut self, node: usize);
    /// Whether [`Backend::set_clock_offset`] works here. The clock nemesis needs it: a run with
    /// [`super::nemesis::Fault::Clock`] on a backend that says no stops before it starts, with a
    /// `backend` problem. The default says no.
    fn supports_clock_offset(&self) -> bool {
        false
    }
    /// Sets node `node`'s wall clock `offset_ms` ahead of the true time (behind if negative; 0
    /// resets it), at once, and for its later restarts too. Monotonic clocks are not moved: a
    /// node's timers keep their pace. The default refuses.
    fn set_clock_offset(&mut self, node: usize, offset_ms: i64) -> Result<(), BackendError> {
        let _ = offset_ms;
        Err(BackendError::Unsupported {
            node,
            what: "a clock offset",
        })
    }
    /// Whether [`Backend::upgrade`] works here: the rolling-upgrade nemesis needs it, and a run
    /// with upgrades on a backend that says no stops before it starts. The default says no.
    fn supports_upgrade(&self) -> bool {
        false
    }
    /// From its next start on, node `node` runs the other build (`--upgrade-bin`, or the cluster
    /// spec's `upgrade_command`) on the same data. The harness then kills and restarts it. The
    /// default refuses.
    fn upgrade(&mut self, node: usize) -> Result<(), BackendError> {
        Err(BackendError::Unsupported {
            node,
            what: "an upgrade",
        })
    }
    /// Stops every node and releases its resources. Idempotent.
    fn shutdown(&mut self);
}
