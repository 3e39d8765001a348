//! `converge certify --cluster`: the reference TCP node certified as a deployed system, through
//! the cluster backend's per-link proxies and its RESP client — a correct build passes under
//! partitions, kills and pauses, a build with a known bug (`--bug apply-without-dedup`) is
//! caught; an adapter subject runs through the adapter protocol; and nothing the backend
//! started (node processes, adapters, proxies, ports) outlives a run, a failure or Ctrl-C.

use std::net::TcpStream;
mod common;
use common::{interrupt, processes_mentioning};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn converge() -> Command {
    Command::new(env!("CARGO_BIN_EXE_converge"))
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("converge-cc-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/converge-tcp.toml")
}

/// Runs certify with `args`, short timing, logs under `dir`.
fn certify(dir: &Path, args: &[&str]) -> Output {
    converge()
        .args([
            "certify",
            "--time-limit",
            "4",
            "--settle",
            "2",
            "--no-shrink",
        ])
        .arg("--log-dir")
        .arg(dir.join("logs"))
        .args(args)
        .output()
        .expect("converge runs")
}

/// Certifies the cluster `spec` on `workload` under `nemesis` ("" for none) with `seed`, then
/// `extra` arguments.
fn certify_cluster(
    dir: &Path,
    spec: &Path,
    workload: &str,
    nemesis: &str,
    seed: &str,
    extra: &[&str],
) -> Output {
    let spec = spec.to_str().expect("a UTF-8 path");
    let mut args = vec!["--cluster", spec, "--workload", workload, "--seed", seed];
    if !nemesis.is_empty() {
        args.extend(["--nemesis", nemesis]);
    }
    args.extend(extra);
    certify(dir, &args)
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every port a run's `ports.json` names (nodes' and proxies'), found under `logs`.
fn ports_of_runs(logs: &Path) -> Vec<u16> {
    let mut ports = Vec::new();
    let mut stack = vec![logs.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() && !path.is_symlink() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == "ports.json") {
                let text = std::fs::read_to_string(&path).expect("ports.json reads");
                let json: serde_json::Value =
                    serde_json::from_str(&text).expect("ports.json is JSON");
                for group in ["nodes", "proxies"] {
                    for named in json[group]
                        .as_object()
                        .expect("a map of nodes or links")
                        .values()
                    {
                        for port in named.as_object().expect("a map of ports").values() {
                            ports.push(port.as_u64().expect("a port number") as u16);
                        }
                    }
                }
            }
        }
    }
    ports
}

/// Asserts nothing of the runs under `dir` is left: no process naming `dir`, no port open.
fn assert_all_gone(dir: &Path) {
    let needle = dir.to_string_lossy().into_owned();
    let left = processes_mentioning(&needle);
    assert!(left.is_empty(), "processes survived: {left:?}");
    let ports = ports_of_runs(dir);
    assert!(!ports.is_empty(), "no ports.json was written");
    let open: Vec<u16> = ports
        .into_iter()
        .filter(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok())
        .collect();
    assert!(open.is_empty(), "ports still accept connections: {open:?}");
}

#[test]
fn the_reference_cluster_passes_under_faults_and_a_broken_build_is_caught() {
    let dir = temp("verdicts");
    let spec = example();
    let ok = certify_cluster(&dir, &spec, "or-set", "partition,kill,pause", "2", &[]);
    let out = text(&ok);
    assert!(ok.status.success(), "{out}");
    assert!(out.contains("pass    add-wins"), "{out}");
    assert!(out.contains("fault windows"), "faults were dealt: {out}");
    assert_all_gone(&dir);

    // The same cluster with every node applying redelivered entries twice: the harness's
    // network loses and reorders chunks, the nodes retransmit, and the counter overcounts.
    let bad = certify_cluster(
        &dir,
        &spec,
        "g-counter",
        "partition,loss",
        "1",
        &["--", "--bug", "apply-without-dedup"],
    );
    let out = text(&bad);
    assert_eq!(bad.status.code(), Some(1), "{out}");
    assert!(out.contains("FAIL    counter-bounds"), "{out}");
    assert!(
        out.contains("reproduce: converge certify --cluster")
            && out.contains("-- --bug apply-without-dedup"),
        "the reproduce line names the cluster and the node arguments: {out}"
    );
    assert_all_gone(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}

/// An adapter that answers `echo` itself and `init` once its node's port accepts: the adapter
/// protocol end to end, with a "database" that is a plain TCP listener.
const ECHO_ADAPTER: &str = r#"
import json, socket, sys, time
addr = sys.argv[1]
host, port = addr.rsplit(":", 1)
for line in sys.stdin:
    msg = json.loads(line)
    body = msg["body"]
    if body["type"] == "init":
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection((host, int(port)), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        reply = {"type": "init_ok"}
    elif body["type"] == "echo":
        reply = {"type": "echo_ok", "echo": body["echo"]}
    else:
        reply = {"type": "error", "code": 10}
    reply["in_reply_to"] = body["msg_id"]
    print(json.dumps({"src": msg["dest"], "dest": msg["src"], "body": reply}), flush=True)
"#;

const LISTENER: &str = r#"
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
time.sleep(600)
"#;

#[test]
fn an_adapter_subject_runs_and_ctrl_c_leaves_nothing_behind() {
    let dir = temp("adapter");
    std::fs::write(dir.join("adapter.py"), ECHO_ADAPTER).unwrap();
    std::fs::write(dir.join("listener.py"), LISTENER).unwrap();
    std::fs::write(
        dir.join("spec.toml"),
        r#"
nodes = 3
ready_timeout_ms = 10000
[client]
protocol = "adapter"
adapter = ["python3", "{spec_dir}/adapter.py", "{addr.client}"]
[node]
ports = ["client", "peer"]
proxied = ["peer"]
command = ["python3", "{spec_dir}/listener.py", "{port.client}", "{peers...}"]
peer_args = ["{peer.via.peer}"]
"#,
    )
    .unwrap();
    let spec = dir.join("spec.toml");
    let ok = certify_cluster(&dir, &spec, "echo", "kill,pause", "3", &[]);
    let out = text(&ok);
    assert!(ok.status.success(), "{out}");
    assert!(out.contains("pass    echo"), "{out}");
    assert_all_gone(&dir);

    // Ctrl-C in the middle of a long run: status 130, every node, adapter, proxy and port gone.
    let mut run = converge()
        .args([
            "certify",
            "--cluster",
            spec.to_str().unwrap(),
            "--workload",
            "echo",
        ])
        .args(["--time-limit", "600", "--seed", "4", "--log-dir"])
        .arg(dir.join("logs-interrupted"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("converge runs");
    let needle = dir.to_string_lossy().into_owned();
    let started = Instant::now();
    // Three listeners and three adapters.
    while processes_mentioning(&needle).len() < 6 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the nodes never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let status = interrupt(&mut run);
    assert_eq!(status.code(), Some(130));
    assert_all_gone(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_spec_is_refused_with_its_place_and_nothing_runs() {
    let dir = temp("bad-spec");
    let spec = dir.join("bad.toml");
    std::fs::write(
        &spec,
        "nodes = 3\n[client]\nprotocol = \"resp\"\n[node]\nports = [\"client\"]\ncommand = [\"x\", \"{prot.client}\"]\n",
    )
    .unwrap();
    let out = certify(
        &dir,
        &["--cluster", spec.to_str().unwrap(), "--workload", "g-set"],
    );
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(msg.contains("unknown variable {prot.client}"), "{msg}");
    let lin = certify(
        &dir,
        &[
            "--cluster",
            example().to_str().unwrap(),
            "--workload",
            "bounded-counter",
        ],
    );
    let msg = text(&lin);
    assert_eq!(lin.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains("no mapping for the bounded-counter workload"),
        "{msg}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_rolling_upgrade_keeps_the_checks_and_an_incompatible_one_is_caught() {
    let dir = temp("upgrade");
    let spec = example();
    // Upgrading to the same build (the mechanics: nodes replaced one at a time on their data,
    // mid-run, under partitions) must pass.
    let ok = certify_cluster(
        &dir,
        &spec,
        "g-set",
        "partition",
        "5",
        &["--upgrade-bin", env!("CARGO_BIN_EXE_converge")],
    );
    let out = text(&ok);
    assert!(ok.status.success(), "{out}");
    assert!(
        out.matches("upgrade:n").count() >= 2,
        "two upgrades dealt: {out}"
    );
    assert_all_gone(&dir);

    // An "upgrade" whose nodes no longer agree with the old ones on the cluster's description
    // (another member list: a different fingerprint in every Hello) cannot link to them: the
    // mixed cluster never converges, and the harness says so.
    let text_spec = std::fs::read_to_string(&spec).expect("the example reads");
    let incompatible = text_spec.replace(
        "peer_args = [",
        "upgrade_command = [\"{converge}\", \"node\", \"--id\", \"{id}\", \"--region\", \"region-{id}\", \"--listen\", \"{addr.client}\", \"--peer-listen\", \"{addr.peer}\", \"--data-dir\", \"{data}\", \"--insecure-peers\", \"{peers...}\", \"--peer\", \"9=elsewhere@127.0.0.1:9\"]\npeer_args = [",
    );
    let bad_spec = dir.join("incompatible.toml");
    std::fs::write(&bad_spec, incompatible).expect("writes");
    let bad = certify_cluster(&dir, &bad_spec, "g-set", "", "5", &[]);
    let out = text(&bad);
    assert_eq!(bad.status.code(), Some(1), "{out}");
    assert!(out.contains("FAIL    convergence"), "{out}");
    assert!(
        out.contains("--upgrades 2"),
        "the reproduce line keeps the upgrades: {out}"
    );
    assert_all_gone(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_stdio_node_program_is_rolled_to_another_build_too() {
    // The process backend takes --upgrade-bin as well: here the reference's stdio node, upgraded
    // to the same build (the mechanics: two of three nodes replaced mid-run, then the checks).
    let dir = temp("stdio-upgrade");
    let out = certify(
        &dir,
        &[
            "--workload",
            "g-set",
            "--nemesis",
            "partition",
            "--seed",
            "6",
            "--upgrade-bin",
            env!("CARGO_BIN_EXE_converge"),
        ],
    );
    let msg = text(&out);
    assert!(out.status.success(), "{msg}");
    assert_eq!(
        msg.matches("upgrade:n").count(),
        2 * 2,
        "two upgrades, in the faults and the windows lines: {msg}"
    );
    let none = certify(&dir, &["--workload", "g-set", "--upgrades", "1"]);
    assert_eq!(
        none.status.code(),
        Some(2),
        "--upgrades without a second build is refused"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
