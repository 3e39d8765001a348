//! A scripted Maelstrom g-counter session against the real binary: two `converge node --stdio
//! --workload g-counter` processes, the test as Maelstrom (it writes the clients' requests and
//! routes every node-to-node message), and exact expectations for every reply.
//!
//! The script is what Maelstrom itself sends: `init` to each node, `add`s on both, reads on
//! both until they agree, and a malformed line and a bad request in the middle, which must be
//! answered (or skipped) without disturbing the counter.

use serde_json::{Value as Json, json};
use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// The longest the test waits for any one reply, and for the two nodes to agree.
const REPLY_WAIT: Duration = Duration::from_secs(5);
const CONVERGE_WAIT: Duration = Duration::from_secs(10);

/// Both node processes; dropping it kills and reaps them, pass or fail.
struct Nodes {
    children: Vec<Child>,
    stdins: Vec<ChildStdin>,
    lines: Receiver<(usize, String)>,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Nodes {
    fn start(n: usize) -> Nodes {
        let (tx, lines) = mpsc::channel();
        let mut children = Vec::new();
        let mut stdins = Vec::new();
        for i in 0..n {
            let mut child = Command::new(env!("CARGO_BIN_EXE_converge"))
                .args(["node", "--stdio", "--workload", "g-counter"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("start converge node --stdio");
            stdins.push(child.stdin.take().expect("stdin is piped"));
            let stdout = child.stdout.take().expect("stdout is piped");
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send((i, line)).is_err() {
                        break;
                    }
                }
            });
            children.push(child);
        }
        Nodes {
            children,
            stdins,
            lines,
        }
    }

    fn send_raw(&mut self, node: usize, line: &str) {
        writeln!(self.stdins[node], "{line}").expect("write to a node");
    }

    fn send(&mut self, node: usize, src: &str, body: Json) {
        let line = json!({"src": src, "dest": format!("n{node}"), "body": body}).to_string();
        self.send_raw(node, &line);
    }

    /// Routes node-to-node messages until a message for client `client` arrives, and returns its
    /// body. Fails the test after `REPLY_WAIT`.
    fn reply(&mut self, client: &str) -> Json {
        let deadline = Instant::now() + REPLY_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (from, line) = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no reply for {client} within {REPLY_WAIT:?}"));
            let msg: Json = serde_json::from_str(&line).unwrap_or_else(|e| {
                panic!("node n{from} wrote a line that is not JSON ({e}): {line}")
            });
            assert_eq!(
                msg["src"],
                format!("n{from}"),
                "a node signs its messages: {line}"
            );
            let dest = msg["dest"].as_str().expect("every message has a dest");
            if dest == client {
                return msg["body"].clone();
            }
            match dest.strip_prefix('n').and_then(|d| d.parse::<usize>().ok()) {
                Some(to) if to < self.stdins.len() => self.send_raw(to, &line),
                _ => panic!("message to an unknown destination: {line}"),
            }
        }
    }
}

#[test]
fn a_scripted_g_counter_session_is_answered_exactly() {
    let mut nodes = Nodes::start(2);
    for node in 0..2 {
        nodes.send(
            node,
            "c0",
            json!({"type": "init", "msg_id": 1, "node_id": format!("n{node}"), "node_ids": ["n0", "n1"]}),
        );
        assert_eq!(
            nodes.reply("c0"),
            json!({"type": "init_ok", "in_reply_to": 1})
        );
    }

    nodes.send(0, "c1", json!({"type": "add", "msg_id": 2, "delta": 3}));
    assert_eq!(
        nodes.reply("c1"),
        json!({"type": "add_ok", "in_reply_to": 2})
    );
    nodes.send(1, "c2", json!({"type": "add", "msg_id": 3, "delta": 4}));
    assert_eq!(
        nodes.reply("c2"),
        json!({"type": "add_ok", "in_reply_to": 3})
    );

    // Garbage and a bad request between good ones: the first is skipped (there is no one to
    // answer), the second gets Maelstrom's malformed-request error, and neither changes the
    // counter.
    nodes.send_raw(0, "this is not JSON");
    nodes.send(0, "c1", json!({"type": "add", "msg_id": 4, "delta": -2}));
    let error = nodes.reply("c1");
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["code"], 12, "{error}");
    assert_eq!(error["in_reply_to"], 4, "{error}");

    nodes.send(0, "c1", json!({"type": "add", "msg_id": 5, "delta": 1}));
    assert_eq!(
        nodes.reply("c1"),
        json!({"type": "add_ok", "in_reply_to": 5})
    );

    // Each node answers its own writes at once; replication brings both to 3 + 4 + 1 = 8.
    let deadline = Instant::now() + CONVERGE_WAIT;
    let mut msg_id = 100;
    loop {
        let mut values = Vec::new();
        for node in 0..2 {
            msg_id += 1;
            nodes.send(node, "c3", json!({"type": "read", "msg_id": msg_id}));
            let body = nodes.reply("c3");
            assert_eq!(body["type"], "read_ok", "{body}");
            assert_eq!(body["in_reply_to"], msg_id, "{body}");
            let value = body["value"].as_i64().expect("a read's value is a number");
            assert!(
                (0..=8).contains(&value),
                "a g-counter never reads outside what was added: {body}"
            );
            values.push(value);
        }
        if values == [8, 8] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the nodes still read {values:?} after {CONVERGE_WAIT:?}, expected [8, 8]"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
