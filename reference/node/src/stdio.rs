//! `converge node --stdio`: a [`Face`] over stdin and stdout, Maelstrom's transport.
//!
//! One thread reads stdin into a bounded channel; the main thread owns the face and is the only
//! writer of stdout, so lines are never interleaved. Time is the wall clock in ms since the Unix
//! epoch: the hybrid logical clocks of different nodes must share an origin, and a replica
//! clamps a clock that steps backwards. The loop ends when stdin closes.
//!
//! # Durability (`--data-dir`)
//! With a data directory the node keeps its replica's durable state in a [`Store`] at
//! `<data-dir>/<node_id>/`, so several nodes can share one directory (the harness passes every
//! node the same arguments). The node learns its id only from `init`, so the loop opens and loads
//! the store when the `init` line arrives, builds the face with what it loaded (a restarted node
//! recovers and catches up from its peers), and only then hands it the line.
//!
//! After every batch of input the loop persists [`Face::take_durable`] through the store
//! **before** it writes any line the batch produced: the ordering rule, so an acknowledged write
//! is on disk before the client hears of it, and a peer's quorum never counts an `Ack` for an
//! entry the acker could lose. The batch is every line already queued when the first one is
//! handled, so a burst of requests costs one commit (the group commit). A store that cannot load
//! or write stops the node with a non-zero exit: it must never run on state it could not read,
//! nor acknowledge what it could not persist.

use crate::maelstrom::{Face, FaceConfig, parse_node};
use crate::store::{Store, StoreError};
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Lines read ahead of the face at most: a bound on memory if the face falls behind.
const INBOX_MAX: usize = 4_096;
/// The longest sleep between checks, so a timer the face adds late is never missed by much.
const TICK_MAX: Duration = Duration::from_millis(50);
/// The longest input line accepted (as in `docs/protocol.md`); longer lines are dropped whole.
const LINE_MAX: usize = 1 << 20;

/// Why the node stopped before stdin closed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Writing stdout failed.
    #[error("cannot write stdout: {0}")]
    Io(#[from] std::io::Error),
    /// The store could not open, load or persist.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store loaded, but the replica refused to recover from it (its reason is logged just
    /// before this error).
    #[error("the replica refused the state stored in {0}; not starting on it")]
    Refused(PathBuf),
    /// The replica produced durable changes with no store to take them; a bug in this loop.
    #[error("durable changes arrived before the store was open")]
    NoStore,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The face and, with a data directory, the store it persists to.
struct Shell {
    config: FaceConfig,
    data_dir: Option<PathBuf>,
    face: Face,
    store: Option<Store>,
}

impl Shell {
    /// Hands one line to the face, opening and loading the store first if it is the `init` that
    /// names this node.
    fn handle_line(&mut self, now: u64, line: &str) -> Result<(), NodeError> {
        let name = match &self.data_dir {
            Some(_) if self.store.is_none() && self.face.replica().is_none() => init_node_id(line),
            _ => None,
        };
        let (Some(name), Some(data_dir)) = (name, &self.data_dir) else {
            self.face.handle_line(now, line);
            return Ok(());
        };
        let store = Store::open(&data_dir.join(&name))?;
        let recovered = store.load()?;
        let had_state = recovered.is_some();
        if let Some(d) = &recovered {
            eprintln!(
                "{name}: recovering {} keys and {} oplog entries from {}",
                d.keys.len(),
                d.oplog.len(),
                store.path().display()
            );
        }
        // The face built at start has seen nothing but input before `init`, which it dropped;
        // its diagnostics go out before it is replaced by one that recovers the stored state.
        self.drain_logs();
        self.face = Face::new(self.config.clone(), recovered);
        self.face.handle_line(now, line);
        if self.face.replica().is_some() {
            self.store = Some(store);
        } else if had_state {
            return Err(NodeError::Refused(store.path().to_path_buf()));
        }
        // Otherwise `init` was refused for its own fields and nothing was stored: the store is
        // closed again, so a corrected `init` (perhaps naming another node) opens its own.
        Ok(())
    }

    /// Persists what changed, then writes the lines: the ordering rule.
    fn flush(&mut self, out: &mut impl std::io::Write) -> Result<(), NodeError> {
        if let Some(delta) = self.face.take_durable() {
            match &self.store {
                Some(store) => store.apply(&delta)?,
                None if self.data_dir.is_some() => return Err(NodeError::NoStore),
                // Without a data directory the node is in memory only, by choice.
                None => {}
            }
        }
        while let Some(line) = self.face.poll_line() {
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        Ok(())
    }

    fn drain_logs(&mut self) {
        while let Some(log) = self.face.poll_log() {
            eprintln!("{log}");
        }
    }
}

/// The node id an `init` line names, if it is one and the id is a valid `nK` (which also keeps
/// the store's directory name free of path separators).
fn init_node_id(line: &str) -> Option<String> {
    let msg: serde_json::Value = serde_json::from_str(line).ok()?;
    let body = &msg["body"];
    if body["type"].as_str() != Some("init") {
        return None;
    }
    let name = body["node_id"].as_str()?;
    parse_node(name).map(|_| name.to_string())
}

/// Runs the face until stdin closes; with `data_dir`, durably (see the module documentation).
/// An error stops the node: the caller reports it and exits non-zero.
pub fn run(mut config: FaceConfig, data_dir: Option<&Path>) -> Result<(), NodeError> {
    if data_dir.is_some() {
        // The replica records what changed only when asked to; without the journal there would
        // be nothing to persist.
        config.track_durable = true;
    }
    let (tx, rx) = mpsc::sync_channel::<String>(INBOX_MAX);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut reader = stdin.lock();
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line.len() > LINE_MAX => {
                    eprintln!("dropped an input line of {} bytes", line.len());
                }
                Ok(_) => {
                    if tx.send(line.trim_end().to_string()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let mut shell = Shell {
        face: Face::new(config.clone(), None),
        config,
        data_dir: data_dir.map(Path::to_path_buf),
        store: None,
    };
    let result = serve(&mut shell, &rx);
    // The face's last diagnostics (a refused recovery says why here) precede the error.
    shell.drain_logs();
    result
}

/// The loop itself: input, timers, persist, write.
fn serve(shell: &mut Shell, rx: &mpsc::Receiver<String>) -> Result<(), NodeError> {
    let stdout = std::io::stdout();
    loop {
        let now = now_ms();
        let wait = shell
            .face
            .poll_timeout()
            .map_or(TICK_MAX, |at| Duration::from_millis(at.saturating_sub(now)))
            .min(TICK_MAX);
        match rx.recv_timeout(wait) {
            Ok(line) => {
                shell.handle_line(now_ms(), &line)?;
                // Take whatever else is already queued before persisting and writing, so a
                // burst of input costs one commit and one flush.
                while let Ok(line) = rx.try_recv() {
                    shell.handle_line(now_ms(), &line)?;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
        }
        let now = now_ms();
        if shell.face.poll_timeout().is_some_and(|at| at <= now) {
            shell.face.handle_timeout(now);
        }
        shell.flush(&mut stdout.lock())?;
        shell.drain_logs();
    }
}
