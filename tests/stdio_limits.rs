//! `converge node --stdio` against input a client should never send: a line that is not UTF-8
//! and a 64 MiB line. Each is refused as a malformed request, the node keeps serving, and the
//! long line is never held whole (the process's peak resident memory stays far below it).

use serde_json::{Value as Json, json};
use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

const REPLY_WAIT: Duration = Duration::from_secs(10);
/// The long line: 64 times the node's line limit.
const LONG_LINE: usize = 64 << 20;
/// The peak resident memory the node may reach: well under the long line, above what the
/// binary and its buffers need.
const PEAK_RSS_MAX_KIB: u64 = 48 << 10;

/// One node process; dropping it kills and reaps it, pass or fail.
struct Node {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    logs: Receiver<String>,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    fn start() -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_converge"))
            .args(["node", "--stdio", "--workload", "g-counter"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start converge node --stdio");
        let stdin = child.stdin.take().expect("stdin is piped");
        let forward = |r: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        };
        let lines = forward(Box::new(child.stdout.take().expect("stdout is piped")));
        let logs = forward(Box::new(child.stderr.take().expect("stderr is piped")));
        Node {
            child,
            stdin,
            lines,
            logs,
        }
    }

    fn send(&mut self, body: Json) -> Json {
        let line = json!({"src": "c1", "dest": "n0", "body": body}).to_string();
        writeln!(self.stdin, "{line}").expect("write to the node");
        let reply = self
            .lines
            .recv_timeout(REPLY_WAIT)
            .unwrap_or_else(|_| panic!("no reply to {line} (the node exited or hung)"));
        let msg: Json = serde_json::from_str(&reply).expect("the node writes JSON");
        msg["body"].clone()
    }

    /// The node's peak resident set size so far, in KiB (`VmHWM`, Linux only).
    fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    }

    /// Waits for a log line containing `text`.
    fn logged(&self, text: &str) -> bool {
        while let Ok(line) = self.logs.recv_timeout(REPLY_WAIT) {
            if line.contains(text) {
                return true;
            }
        }
        false
    }
}

#[test]
fn bad_and_huge_lines_are_refused_and_the_node_keeps_serving() {
    let mut node = Node::start();
    assert_eq!(
        node.send(json!({"type": "init", "msg_id": 1, "node_id": "n0", "node_ids": ["n0"]})),
        json!({"type": "init_ok", "in_reply_to": 1})
    );
    // Not UTF-8: refused like a line that is not JSON, and the node goes on.
    node.stdin
        .write_all(b"{\"src\": \"c1\", \"dest\": \"n0\", \"body\": \"\xff\xfe\"}\n")
        .expect("write");
    assert!(
        node.logged("not UTF-8"),
        "the line was not reported as malformed"
    );
    assert_eq!(
        node.send(json!({"type": "add", "msg_id": 2, "delta": 5})),
        json!({"type": "add_ok", "in_reply_to": 2})
    );
    // A 64 MiB line, written in pieces as a pipe takes it.
    let piece = vec![b'x'; 1 << 20];
    for _ in 0..LONG_LINE / piece.len() {
        node.stdin.write_all(&piece).expect("write the long line");
    }
    node.stdin.write_all(b"\n").expect("end the long line");
    assert!(
        node.logged("over the limit"),
        "the long line was not reported"
    );
    assert_eq!(
        node.send(json!({"type": "read", "msg_id": 3})),
        json!({"type": "read_ok", "in_reply_to": 3, "value": 5})
    );
    if let Some(peak) = node.peak_rss_kib() {
        assert!(
            peak < PEAK_RSS_MAX_KIB,
            "the node reached {peak} KiB resident reading a {LONG_LINE}-byte line"
        );
    }
}
