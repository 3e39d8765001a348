//! The process backend: each node is a child process speaking JSON lines on stdin/stdout, with
//! stderr going to a per-node log file, exactly as under Maelstrom.
//!
//! Invariants: every child is killed and reaped when the backend is shut down or dropped; reader
//! threads end when their child's stdout closes; all node output reaches the harness through one
//! bounded channel, so a flooding node blocks its own reader rather than exhausting memory; and
//! the harness never writes to a pipe itself — each node's input goes through a bounded queue
//! and a writer thread, so a node that stops reading (paused, stuck) can never block the harness.

use super::backend::{Backend, BackendError, NodeEvent};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread;
use std::time::{Duration, Instant};

/// Lines buffered between node readers and the harness before readers block.
const CHANNEL_LINES_MAX: usize = 65_536;
/// Lines buffered for one node's input; beyond this the node is not reading and further lines
/// are dropped (as a network drops what a dead link cannot carry).
const INPUT_LINES_MAX: usize = 65_536;
/// Longest line a node may write; a longer one is cut and reported malformed.
pub const LINE_BYTES_MAX: usize = 1 << 20;

/// How to run the node program.
#[derive(Clone, Debug)]
pub struct ProcessConfig {
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Where per-node stderr logs go (`n0.log`, …).
    pub log_dir: PathBuf,
}

struct Node {
    child: Child,
    /// Lines for the node's input, written by a thread of their own: a node that does not read
    /// (paused, or just slow) blocks that thread, never the harness.
    input: SyncSender<String>,
}

impl Node {
    fn signal(&self, signal: nix::sys::signal::Signal) {
        // A pid from `Child::id` always fits an i32 on Unix. The child may have exited; a failed
        // signal then changes nothing.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
        }
    }
}

/// Child processes under test.
pub struct ProcessBackend {
    config: ProcessConfig,
    started: Instant,
    nodes: Vec<Option<Node>>,
    incarnations: Vec<u64>,
    events_tx: SyncSender<NodeEvent>,
    events_rx: Receiver<NodeEvent>,
}

impl ProcessBackend {
    /// A backend for `nodes` nodes; none is started yet.
    pub fn new(config: ProcessConfig, nodes: usize) -> Self {
        let (events_tx, events_rx) = sync_channel(CHANNEL_LINES_MAX);
        ProcessBackend {
            config,
            started: Instant::now(),
            nodes: (0..nodes).map(|_| None).collect(),
            incarnations: vec![0; nodes],
            events_tx,
            events_rx,
        }
    }

    fn stop(&mut self, node: usize) {
        if let Some(mut n) = self.nodes[node].take() {
            // SIGKILL ends a stopped process too. Killing an already-exited child fails
            // harmlessly; wait() reaps it either way.
            let _ = n.child.kill();
            let _ = n.child.wait();
        }
    }
}

impl Backend for ProcessBackend {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn start(&mut self, node: usize) -> Result<(), BackendError> {
        self.stop(node);
        let spawn_error = |source| BackendError::Spawn {
            node,
            program: self.config.program.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&self.config.log_dir).map_err(spawn_error)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.config.log_dir.join(format!("n{node}.log")))
            .map_err(spawn_error)?;
        let mut child = Command::new(&self.config.program)
            .args(&self.config.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(spawn_error)?;
        // Both pipes were requested just above.
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let (input, lines) = sync_channel::<String>(INPUT_LINES_MAX);
        thread::spawn(move || {
            // Ends when the node stops reading (its pipe breaks) or the backend drops the sender.
            for line in lines {
                // The line arrives with its newline: one write(2) per line, not two.
                if stdin.write_all(line.as_bytes()).is_err() {
                    return;
                }
            }
        });
        let stdout = child.stdout.take().expect("stdout is piped");
        let tx = self.events_tx.clone();
        let incarnation = self.incarnations[node];
        self.incarnations[node] += 1;
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                // Read at most one line plus one byte, so an endless line cannot exhaust memory.
                match std::io::Read::take(&mut reader, LINE_BYTES_MAX as u64 + 1)
                    .read_until(b'\n', &mut buf)
                {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if buf.last() == Some(&b'\n') {
                            buf.pop();
                        }
                        let line = String::from_utf8_lossy(&buf).into_owned();
                        if line.trim().is_empty() {
                            continue;
                        }
                        if tx.send(NodeEvent::Line { node, line }).is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = tx.send(NodeEvent::Exited {
                node,
                incarnation,
                status: "closed its output".into(),
            });
        });
        self.nodes[node] = Some(Node { child, input });
        Ok(())
    }

    fn send(&mut self, node: usize, line: &str) -> Result<(), BackendError> {
        let Some(n) = self.nodes[node].as_mut() else {
            return Ok(());
        };
        match n.input.try_send(format!("{line}\n")) {
            Ok(()) => Ok(()),
            // The node has not read its last INPUT_LINES_MAX lines: it is paused or stuck, and
            // this line is lost like a message on a congested link.
            Err(TrySendError::Full(_)) => Ok(()),
            Err(TrySendError::Disconnected(_)) => Err(BackendError::Write {
                node,
                source: std::io::Error::new(
                    std::io::ErrorKind::BrokenPipe,
                    "the node stopped reading its input",
                ),
            }),
        }
    }

    fn wait(&mut self, deadline_ms: u64, max_wait: Duration) -> Vec<NodeEvent> {
        let now = self.now_ms();
        let timeout = Duration::from_millis(deadline_ms.saturating_sub(now)).min(max_wait);
        let mut events = Vec::new();
        match self.events_rx.recv_timeout(timeout) {
            Ok(event) => events.push(event),
            Err(RecvTimeoutError::Timeout) => return events,
            // The backend holds a sender itself, so the channel cannot disconnect.
            Err(RecvTimeoutError::Disconnected) => return events,
        }
        // Drain what else is ready, boundedly, so one busy node cannot starve the timers.
        while events.len() < 1024 {
            match self.events_rx.try_recv() {
                Ok(event) => events.push(event),
                Err(_) => break,
            }
        }
        events
    }

    fn kill(&mut self, node: usize) {
        self.stop(node);
    }

    fn pause(&mut self, node: usize) {
        if let Some(n) = &self.nodes[node] {
            n.signal(nix::sys::signal::Signal::SIGSTOP);
        }
    }

    fn resume(&mut self, node: usize) {
        if let Some(n) = &self.nodes[node] {
            n.signal(nix::sys::signal::Signal::SIGCONT);
        }
    }

    fn shutdown(&mut self) {
        for node in 0..self.nodes.len() {
            self.stop(node);
        }
    }
}

impl Drop for ProcessBackend {
    fn drop(&mut self) {
        self.shutdown();
    }
}
