//! An acknowledged write survives `kill -9`: three `converge node --stdio --data-dir D` processes
//! behind a tiny in-test router, one of them cut off from its peers, loaded, killed with SIGKILL
//! and restarted; every element whose add was acknowledged must be in every node's final read.
//!
//! The victim's outgoing peer messages are dropped from a little before the kill until its
//! restart, so the adds it acknowledged in that window exist nowhere but on its disk: a node
//! that kept them only in memory (or acknowledged before persisting) loses them, and the check
//! fails. After the restart the victim must also issue new writes above the sequence numbers it
//! used before, or its peers would discard them as duplicates.

use serde_json::{Value as Json, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

const NODES: usize = 3;
/// The node that is killed.
const VICTIM: usize = 1;
/// Adds sent in all; the victim is cut off after `CUT`, killed after `KILL` and restarted
/// (with its links healed) after `RESTART`.
const ADDS: i64 = 450;
const CUT: i64 = 120;
const KILL: i64 = 220;
const RESTART: i64 = 240;
/// The pause between two adds: long enough for the nodes to keep up, short enough that the kill
/// lands with writes in flight.
const ADD_EVERY: Duration = Duration::from_millis(4);
/// The longest wait for the nodes to answer `init`, and for their final reads to agree.
const INIT_WAIT: Duration = Duration::from_secs(5);
const CONVERGE_WAIT: Duration = Duration::from_secs(10);

/// A line a node wrote, with the node that wrote it.
type Line = (usize, String);

/// The three node processes. Dropping it kills and reaps every one of them and removes the data
/// directory, whether the test passed or panicked.
struct Cluster {
    dir: PathBuf,
    children: Vec<Option<Child>>,
    stdins: Vec<Option<ChildStdin>>,
    lines_tx: Sender<Line>,
    lines: Receiver<Line>,
}

impl Cluster {
    fn new(dir: PathBuf) -> Cluster {
        let (lines_tx, lines) = mpsc::channel();
        let mut c = Cluster {
            dir,
            children: (0..NODES).map(|_| None).collect(),
            stdins: (0..NODES).map(|_| None).collect(),
            lines_tx,
            lines,
        };
        for node in 0..NODES {
            c.start(node, init_id(node, 0));
        }
        c
    }

    /// Starts node `node` (again), with a reader thread forwarding its stdout lines, and sends
    /// it `init` as request `init_id`.
    fn start(&mut self, node: usize, init_id: u64) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("n{node}.log")))
            .expect("the node's log opens");
        let mut child = Command::new(env!("CARGO_BIN_EXE_converge"))
            .args(["node", "--stdio", "--workload", "g-set", "--data-dir"])
            .arg(self.dir.join("data"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("the converge binary runs");
        let stdout = child.stdout.take().expect("stdout is piped");
        self.stdins[node] = child.stdin.take();
        self.children[node] = Some(child);
        let tx = self.lines_tx.clone();
        // Ends when the node's stdout closes: at its death, or when the guard kills it.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send((node, line)).is_err() {
                    return;
                }
            }
        });
        let ids: Vec<String> = (0..NODES).map(|k| format!("n{k}")).collect();
        self.send(
            node,
            &json!({"src": "c-init", "dest": format!("n{node}"), "body":
                {"type": "init", "msg_id": init_id, "node_id": format!("n{node}"), "node_ids": ids}}),
        );
    }

    /// SIGKILL (what `Child::kill` sends), then reap.
    fn kill(&mut self, node: usize) {
        self.stdins[node] = None;
        if let Some(mut child) = self.children[node].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Writes one line to a node; a dead node's input is lost, as a network would lose it.
    fn send(&mut self, node: usize, msg: &Json) {
        if let Some(stdin) = &mut self.stdins[node] {
            let line = format!("{msg}\n");
            if stdin.write_all(line.as_bytes()).is_err() {
                self.stdins[node] = None;
            }
        }
    }

    fn deliver(&mut self, node: usize, line: &str) {
        if let Some(stdin) = &mut self.stdins[node]
            && stdin.write_all(format!("{line}\n").as_bytes()).is_err()
        {
            self.stdins[node] = None;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in 0..NODES {
            self.kill(node);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The router: peer lines go to their destination (unless the victim's links are cut), client
/// replies are returned by request id.
struct Router {
    cluster: Cluster,
    /// Drop every peer message the victim writes.
    victim_cut: bool,
    replies: BTreeMap<u64, Json>,
}

impl Router {
    /// Routes whatever the nodes have written, waiting at most `wait` for the first line.
    fn pump(&mut self, wait: Duration) {
        let mut next = self.cluster.lines.recv_timeout(wait).ok();
        while let Some((from, line)) = next {
            self.route(from, &line);
            next = self.cluster.lines.try_recv().ok();
        }
    }

    fn route(&mut self, from: usize, line: &str) {
        let Ok(msg) = serde_json::from_str::<Json>(line) else {
            panic!("n{from} wrote a line that is not JSON: {line}");
        };
        let dest = msg["dest"].as_str().unwrap_or_default();
        if let Some(to) = dest.strip_prefix('n').and_then(|k| k.parse::<usize>().ok()) {
            if !(self.victim_cut && from == VICTIM) && to < NODES {
                self.cluster.deliver(to, line);
            }
        } else if let Some(id) = msg["body"]["in_reply_to"].as_u64() {
            self.replies.insert(id, msg["body"].clone());
        }
    }

    /// Waits for a reply to every id in `ids`, up to `limit`; true if they all came.
    fn await_replies(&mut self, ids: &[u64], limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while ids.iter().any(|id| !self.replies.contains_key(id)) {
            if Instant::now() >= deadline {
                return false;
            }
            self.pump(Duration::from_millis(20));
        }
        true
    }
}

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("converge-kill9-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch dir");
    dir
}

/// The request id of `init` for a node's `incarnation`-th start.
fn init_id(node: usize, incarnation: u64) -> u64 {
    100 * incarnation + node as u64
}

fn read_set(body: &Json) -> Option<BTreeSet<i64>> {
    (body["type"] == "read_ok").then(|| {
        body["value"]
            .as_array()
            .map(|a| a.iter().filter_map(Json::as_i64).collect())
            .unwrap_or_default()
    })
}

fn log_tail(dir: &Path, node: usize) -> String {
    std::fs::read_to_string(dir.join(format!("n{node}.log")))
        .map(|s| s.lines().rev().take(20).collect::<Vec<_>>().join("\n"))
        .unwrap_or_default()
}

#[test]
fn acknowledged_adds_survive_kill_9_and_the_restarted_node_catches_up() {
    let started = Instant::now();
    let mut r = Router {
        cluster: Cluster::new(scratch_dir()),
        victim_cut: false,
        replies: BTreeMap::new(),
    };
    let inits: Vec<u64> = (0..NODES).map(|node| init_id(node, 0)).collect();
    assert!(
        r.await_replies(&inits, INIT_WAIT),
        "no init_ok from every node within {INIT_WAIT:?}"
    );

    // Element e is add request 1000 + e, sent to node e % 3.
    for e in 0..ADDS {
        if e == CUT {
            r.victim_cut = true;
        }
        if e == KILL {
            // On a loaded machine the victim may lag; let it answer all but its last request of
            // the window (bounded), so the kill still lands with one in flight but the window
            // holds enough acknowledged adds to prove something.
            let answered: Vec<u64> = (CUT..KILL - NODES as i64)
                .filter(|&e| e as usize % NODES == VICTIM)
                .map(|e| 1000 + e as u64)
                .collect();
            r.await_replies(&answered, Duration::from_secs(3));
            r.cluster.kill(VICTIM);
        }
        if e == RESTART {
            r.victim_cut = false;
            r.cluster.start(VICTIM, init_id(VICTIM, 1));
        }
        let node = (e % NODES as i64) as usize;
        r.cluster.send(
            node,
            &json!({"src": "c1", "dest": format!("n{node}"), "body":
                {"type": "add", "msg_id": 1000 + e, "element": e}}),
        );
        r.pump(ADD_EVERY);
    }
    // Give the last adds their replies. The victim's requests before its restart are left out:
    // those in flight at the kill are never answered, and the rest were answered long ago.
    let ids: Vec<u64> = (0..ADDS)
        .filter(|&e| e >= RESTART || e as usize % NODES != VICTIM)
        .map(|e| 1000 + e as u64)
        .collect();
    let mut waits = vec![init_id(VICTIM, 1)];
    waits.extend(ids);
    assert!(
        r.await_replies(&waits, Duration::from_secs(5)),
        "adds or the restarted victim's init went unanswered; its log ends:\n{}",
        log_tail(&r.cluster.dir, VICTIM)
    );
    assert_eq!(
        r.replies[&init_id(VICTIM, 1)]["type"],
        "init_ok",
        "the victim did not restart from its data directory"
    );
    let acked: BTreeSet<i64> = (0..ADDS)
        .filter(|e| {
            r.replies.get(&(1000 + *e as u64)).map(|b| &b["type"]) == Some(&json!("add_ok"))
        })
        .collect();
    let acked_at_victim_while_cut = (CUT..KILL)
        .filter(|&e| e as usize % NODES == VICTIM && acked.contains(&e))
        .count();
    assert!(
        acked_at_victim_while_cut > 10,
        "the victim acknowledged only {acked_at_victim_while_cut} adds while cut off; the test \
         would prove nothing"
    );
    assert!(
        acked.len() > (ADDS as usize) * 3 / 4,
        "only {} adds acknowledged",
        acked.len()
    );

    // Read from every node until all agree and hold every acknowledged element.
    let deadline = Instant::now() + CONVERGE_WAIT;
    let mut read_id = 10_000;
    let finals = loop {
        let ids: Vec<u64> = (0..NODES)
            .map(|node| {
                read_id += 1;
                r.cluster.send(
                    node,
                    &json!({"src": "c2", "dest": format!("n{node}"), "body":
                        {"type": "read", "msg_id": read_id}}),
                );
                read_id
            })
            .collect();
        r.await_replies(&ids, Duration::from_secs(1));
        let sets: Vec<Option<BTreeSet<i64>>> = ids
            .iter()
            .map(|id| r.replies.get(id).and_then(read_set))
            .collect();
        let done = sets
            .iter()
            .all(|s| s.as_ref().is_some_and(|s| s.is_superset(&acked)))
            && sets.windows(2).all(|w| w[0] == w[1]);
        if done || Instant::now() >= deadline {
            break sets;
        }
        r.pump(Duration::from_millis(200));
    };
    for (node, set) in finals.iter().enumerate() {
        let Some(set) = set else {
            panic!(
                "n{node} gave no final read within {CONVERGE_WAIT:?}; its log ends:\n{}",
                log_tail(&r.cluster.dir, node)
            );
        };
        let lost: Vec<&i64> = acked.difference(set).collect();
        assert!(
            lost.is_empty(),
            "n{node} lost {} acknowledged adds: {lost:?}; its log ends:\n{}",
            lost.len(),
            log_tail(&r.cluster.dir, node)
        );
    }
    assert!(
        finals.windows(2).all(|w| w[0] == w[1]),
        "the nodes' final reads disagree"
    );
    eprintln!(
        "{} adds acknowledged ({acked_at_victim_while_cut} at the victim while cut off), all \
         in every final read; {:?}",
        acked.len(),
        started.elapsed()
    );
}
