//! `converge node --stdio`: a [`Face`] over stdin and stdout, Maelstrom's transport.
//!
//! One thread reads stdin into a bounded channel; the main thread owns the face and is the only
//! writer of stdout, so lines are never interleaved. Time is the wall clock in ms since the Unix
//! epoch: the hybrid logical clocks of different nodes must share an origin, and a replica
//! clamps a clock that steps backwards. The loop ends when stdin closes.
//!
//! # Bad lines
//! Lines are bounded **while read** ([`read_line_bounded`]): the reader keeps at most
//! [`LINE_MAX`] bytes of a line plus one buffer of stdin, and discards the rest of a longer one
//! as it arrives, so a 300 MB line costs no more memory than a 1 MiB one. A line that is too
//! long or not UTF-8 is a malformed request like a line that is not JSON: the face counts and
//! logs it ([`Face::refuse_line`]), and the node goes on with the next line.
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
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Lines read ahead of the face at most: a bound on memory if the face falls behind.
const INBOX_MAX: usize = 4_096;
/// The longest sleep between checks, so a timer the face adds late is never missed by much.
const TICK_MAX: Duration = Duration::from_millis(50);
/// The longest input line accepted (as in `docs/protocol.md`); longer lines are dropped whole.
pub const LINE_MAX: usize = 1 << 20;

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

/// What the reader thread hands the loop.
enum Input {
    /// A line, without its line break.
    Line(String),
    /// A line the face cannot read, and why.
    Malformed(String),
}

/// What [`read_line_bounded`] read.
#[derive(Debug, PartialEq, Eq)]
pub enum LineRead {
    /// The input ended before another byte.
    Eof,
    /// A line (in the caller's buffer, without its `\n`).
    Line,
    /// A line longer than the limit, of this many bytes (without its `\n`); nothing of it is
    /// kept.
    TooLong(usize),
}

/// Reads one line into `line` (cleared first), keeping at most `max` bytes: the rest of a longer
/// line is read and discarded as it arrives, so memory stays within `max` plus `reader`'s own
/// buffer whatever the input. The last line may end without `\n`.
pub fn read_line_bounded(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<LineRead> {
    line.clear();
    let mut len = 0usize;
    let mut over = false;
    loop {
        let buf = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(match (len, over) {
                (0, _) => LineRead::Eof,
                (_, false) => LineRead::Line,
                (len, true) => LineRead::TooLong(len),
            });
        }
        let (part, used, ends) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], i + 1, true),
            None => (buf, buf.len(), false),
        };
        len = len.saturating_add(part.len());
        if !over && line.len() + part.len() > max {
            over = true;
            // What the line grew to so far is given back at once, not when the line ends.
            *line = Vec::new();
        }
        if !over {
            line.extend_from_slice(part);
        }
        reader.consume(used);
        if ends {
            return Ok(if over {
                LineRead::TooLong(len)
            } else {
                LineRead::Line
            });
        }
    }
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

    /// Hands one input to the face: a line, or a line it cannot read, refused as malformed.
    fn handle_input(&mut self, input: Input) -> Result<(), NodeError> {
        match input {
            Input::Line(line) => self.handle_line(now_ms(), &line),
            Input::Malformed(why) => {
                self.face.refuse_line(why);
                Ok(())
            }
        }
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
    let (tx, rx) = mpsc::sync_channel::<Input>(INBOX_MAX);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut reader = stdin.lock();
        let mut line = Vec::new();
        loop {
            let input = match read_line_bounded(&mut reader, &mut line, LINE_MAX) {
                Ok(LineRead::Eof) => return,
                Err(e) => {
                    // Ending the input ends the node, as when stdin closes; say why first.
                    eprintln!("cannot read stdin: {e}");
                    return;
                }
                Ok(LineRead::TooLong(len)) => Input::Malformed(format!(
                    "a line of {len} bytes, over the limit of {LINE_MAX}"
                )),
                Ok(LineRead::Line) => match std::str::from_utf8(&line) {
                    Ok(text) => Input::Line(text.trim_end().to_string()),
                    Err(e) => Input::Malformed(format!("a line that is not UTF-8 ({e})")),
                },
            };
            if tx.send(input).is_err() {
                return;
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
fn serve(shell: &mut Shell, rx: &mpsc::Receiver<Input>) -> Result<(), NodeError> {
    let stdout = std::io::stdout();
    loop {
        let now = now_ms();
        let wait = shell
            .face
            .poll_timeout()
            .map_or(TICK_MAX, |at| Duration::from_millis(at.saturating_sub(now)))
            .min(TICK_MAX);
        match rx.recv_timeout(wait) {
            Ok(input) => {
                shell.handle_input(input)?;
                // Take whatever else is already queued before persisting and writing, so a
                // burst of input costs one commit and one flush.
                while let Ok(input) = rx.try_recv() {
                    shell.handle_input(input)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    /// Every line `input` holds, read with `max` through a buffer of `buffer` bytes.
    fn lines(input: &[u8], max: usize, buffer: usize) -> Vec<(LineRead, Vec<u8>)> {
        let mut reader = BufReader::with_capacity(buffer, input);
        let mut line = Vec::new();
        let mut out = Vec::new();
        loop {
            let r = read_line_bounded(&mut reader, &mut line, max).unwrap();
            if r == LineRead::Eof {
                return out;
            }
            assert!(
                line.len() <= max,
                "kept {} bytes over a limit of {max}",
                line.len()
            );
            out.push((r, line.clone()));
        }
    }

    #[test]
    fn lines_over_the_limit_are_skipped_whole_and_the_next_one_is_read() {
        let input = b"short\nexactly10\nthis one is too long\n\nlast without newline";
        for buffer in [1, 3, 8, 64] {
            assert_eq!(
                lines(input, 10, buffer),
                vec![
                    (LineRead::Line, b"short".to_vec()),
                    (LineRead::Line, b"exactly10".to_vec()),
                    (LineRead::TooLong(20), vec![]),
                    (LineRead::Line, vec![]),
                    (LineRead::TooLong(20), vec![]),
                ],
                "buffer {buffer}"
            );
        }
        assert_eq!(lines(b"", 10, 8), vec![]);
        // Not UTF-8 is the caller's business: the bytes come back as they are.
        assert_eq!(
            lines(b"\xff\xfe\n", 10, 8),
            vec![(LineRead::Line, b"\xff\xfe".to_vec())]
        );
    }
}
