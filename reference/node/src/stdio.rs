//! `converge node --stdio`: a [`Face`] over stdin and stdout, Maelstrom's transport.
//!
//! One thread reads stdin into a bounded channel; the main thread owns the face and is the only
//! writer of stdout, so lines are never interleaved. Time is the wall clock in ms since the Unix
//! epoch: the hybrid logical clocks of different nodes must share an origin, and a replica
//! clamps a clock that steps backwards. The loop ends when stdin closes.

use crate::maelstrom::{Face, FaceConfig};
use converge_core::replica::DurableDelta;
use std::io::{BufRead as _, Write as _};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Lines read ahead of the face at most: a bound on memory if the face falls behind.
const INBOX_MAX: usize = 4_096;
/// The longest sleep between checks, so a timer the face adds late is never missed by much.
const TICK_MAX: Duration = Duration::from_millis(50);
/// The longest input line accepted (as in `docs/protocol.md`); longer lines are dropped whole.
const LINE_MAX: usize = 1 << 20;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Runs the face until stdin closes. `persist` receives each durable delta before the lines it
/// covers are written; it returns an error to stop the node (a store that cannot write must not
/// acknowledge anything more).
pub fn run(
    config: FaceConfig,
    recovered: Option<converge_core::replica::Durable>,
    persist: &mut dyn FnMut(DurableDelta) -> std::io::Result<()>,
) -> std::io::Result<()> {
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
    let mut face = Face::new(config, recovered);
    let stdout = std::io::stdout();
    loop {
        let now = now_ms();
        let wait = face
            .poll_timeout()
            .map_or(TICK_MAX, |at| Duration::from_millis(at.saturating_sub(now)))
            .min(TICK_MAX);
        match rx.recv_timeout(wait) {
            Ok(line) => {
                face.handle_line(now_ms(), &line);
                // Take whatever else is already queued before writing, so a burst of input
                // costs one flush.
                while let Ok(line) = rx.try_recv() {
                    face.handle_line(now_ms(), &line);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
        }
        let now = now_ms();
        if face.poll_timeout().is_some_and(|at| at <= now) {
            face.handle_timeout(now);
        }
        if let Some(delta) = face.take_durable() {
            persist(delta)?;
        }
        let mut out = stdout.lock();
        while let Some(line) = face.poll_line() {
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        drop(out);
        while let Some(log) = face.poll_log() {
            eprintln!("{log}");
        }
    }
}
