//! Ctrl-C during `converge certify` stops the run, kills and reaps every node process (even one
//! that ignores SIGINT), and exits with status 130 without judging the implementation; and a run
//! that ends normally leaves nothing a node forked running, whether in the node's process group,
//! in a session of its own (`setsid`), or double-forked away from its parent.

mod common;
use common::{interrupt, processes_mentioning};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The echo loop both test nodes end in, after their own prelude.
const ECHO_LOOP: &str = r#"
node_id = None
for line in sys.stdin:
    msg = json.loads(line)
    body = msg["body"]
    if body["type"] == "init":
        node_id = body["node_id"]
        reply = {"type": "init_ok"}
    elif body["type"] == "echo":
        reply = {"type": "echo_ok", "echo": body["echo"]}
    else:
        continue
    reply["in_reply_to"] = body["msg_id"]
    print(json.dumps({"src": node_id, "dest": msg["src"], "body": reply}), flush=True)
"#;

/// An echo node that ignores SIGINT and SIGTERM, so only the harness's own clean-up can stop it.
const STUBBORN_NODE: &str = r#"#!/usr/bin/env python3
import json, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
"#;

fn write_node(dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir).expect("temp dir");
    let node = dir.join("stubborn-node.py");
    std::fs::write(&node, format!("{STUBBORN_NODE}{ECHO_LOOP}")).expect("write node");
    std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    node
}

#[test]
fn ctrl_c_stops_the_run_and_reaps_every_node() {
    let dir = std::env::temp_dir().join(format!("converge-interrupt-{}", std::process::id()));
    let node = write_node(&dir);
    let needle = node.to_string_lossy().into_owned();
    let mut converge = Command::new(env!("CARGO_BIN_EXE_converge"))
        .args(["certify", "--workload", "echo", "--seed", "7"])
        .args(["--ops", "100000000", "--time-limit", "600"])
        .arg("--bin")
        .arg(&node)
        .arg("--log-dir")
        .arg(dir.join("logs"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the converge binary runs");

    // Wait until all three nodes run, so the interruption lands mid-workload.
    let started = Instant::now();
    while processes_mentioning(&needle).len() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the nodes never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let status = interrupt(&mut converge);
    let mut stderr = String::new();
    if let Some(mut e) = converge.stderr.take() {
        use std::io::Read as _;
        let _ = e.read_to_string(&mut stderr);
    }
    assert_eq!(status.code(), Some(130), "stderr: {stderr}");
    assert!(stderr.contains("interrupted"), "stderr: {stderr}");
    // converge has exited, so every child must already be gone: reaped, not orphaned.
    let left = processes_mentioning(&needle);
    assert!(left.is_empty(), "node processes survived: {left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// An echo node that first starts three helpers the way real nodes do — a child in its own
/// process group, a child in a new session, and a double-forked daemon in a new session whose
/// parent exits at once — each a sleeper whose command line names this script.
const FORKING_NODE: &str = r#"#!/usr/bin/env python3
import json, os, subprocess, sys
me = os.path.abspath(__file__)
sleeper = [sys.executable, "-c", "import time; time.sleep(600)", me]
subprocess.Popen(sleeper, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
subprocess.Popen(sleeper, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True)
if os.fork() == 0:
    os.setsid()
    subprocess.Popen(sleeper, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    os._exit(0)
"#;

#[test]
fn a_finished_run_leaves_nothing_a_node_forked_running() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!("converge-forking-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let node = dir.join("forking-node.py");
    std::fs::write(&node, format!("{FORKING_NODE}{ECHO_LOOP}")).expect("write node");
    std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let needle = node.to_string_lossy().into_owned();
    let output = Command::new(env!("CARGO_BIN_EXE_converge"))
        .args([
            "certify",
            "--workload",
            "echo",
            "--seed",
            "3",
            "--ops",
            "60",
        ])
        .arg("--bin")
        .arg(&node)
        .arg("--log-dir")
        .arg(dir.join("logs"))
        .output()
        .expect("the converge binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "the echo run passes: {stdout}");
    let left = processes_mentioning(&needle);
    // Whatever the outcome, nothing is left for the next test.
    for p in &left {
        if let Some(pid) = p.split(':').next() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
    }
    assert!(
        left.is_empty(),
        "processes the nodes forked survived the run: {left:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
