//! `converge cluster`: a local cluster of reference-node processes on loopback, for demos and
//! tests.
//!
//! `up` starts one `converge node` process per region (this same binary), detached in its own
//! process group, with its data and log under `DIR/<region>/`, waits (bounded) until every one
//! answers `PING` and serves (a node on a new store answers `-LOADING` until every peer has
//! accepted its identity), and records the cluster in `DIR/cluster.json`. Every other subcommand reads
//! that file. `partition` and `heal` use the nodes' `CLUSTER.LINKS` admin command (a
//! fault-injection switch on the client port, see `converge_node::server`), which a node runs only
//! for a connection authenticated as `admin`: `up` generates a random admin password into
//! `DIR/admin.password` (mode 0600, so only its owner can split the cluster), gives every node the
//! file, and `status`, `partition` and `heal` send `AUTH admin <password>` before the command.
//!
//! Peer links are mutually authenticated: `up` generates a fresh CA (its key stays in memory and
//! is dropped) and one certificate per node naming its member (`r<id>.<region>.member.converge`,
//! see `converge_node::tls`), writes them under `DIR/tls/` and `DIR/<region>/tls/` (keys mode
//! 0600), and passes them to each node; `--insecure-peers` opts out.
//!
//! Ports: region `i` (in the order given) listens for clients on `base + i`, for peers on
//! `base + 100 + i` and for `/metrics` on `base + 200 + i`. Replica ids are `0..n` in that order.
//!
//! Processes are signalled with the system's `kill` command: the workspace forbids `unsafe`, and
//! a libc binding for two signals does not earn a dependency. A pid in `cluster.json` that the
//! OS reused for another process after the node died would be signalled too; `down` therefore
//! first checks that the pid's command line is a `converge node` (on Linux, through `/proc`).

use converge_core::replica::Consistency;
use serde::{Deserialize, Serialize};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The longest `up` waits for every node to answer PING and serve.
const START_WAIT: Duration = Duration::from_secs(15);
/// The longest `down` waits after SIGTERM before SIGKILL.
const STOP_WAIT: Duration = Duration::from_secs(5);
/// Timeout of one admin command over RESP.
const RESP_TIMEOUT: Duration = Duration::from_secs(2);
const STATE_FILE: &str = "cluster.json";
/// The admin password's file in the cluster directory.
const ADMIN_PASSWORD_FILE: &str = "admin.password";

/// `converge cluster` subcommands.
#[derive(clap::Subcommand)]
pub enum ClusterCommand {
    /// Start one node process per region on loopback and print how to reach each.
    Up(UpArgs),
    /// Stop the cluster's processes (SIGTERM, then SIGKILL after 5 s) and remove its directory.
    Down(DirArgs),
    /// Show each region's process, ports and peer links.
    Status(DirArgs),
    /// Cut the peer links between the named regions and the others (a fault-injection switch).
    Partition(PartitionArgs),
    /// Restore every peer link cut by `partition`.
    Heal(DirArgs),
}

/// `cluster up`.
#[derive(clap::Args)]
pub struct UpArgs {
    /// Region names, comma-separated; one node process each.
    #[arg(long, value_delimiter = ',', required = true)]
    regions: Vec<String>,
    #[command(flatten)]
    dir: DirArgs,
    /// Region i serves RESP on P+i, peers on P+100+i and /metrics on P+200+i.
    #[arg(long, default_value_t = 6380, value_parser = clap::value_parser!(u16).range(1024..=65000))]
    base_port: u16,
    /// Default consistency level of client connections.
    #[arg(long, default_value_t = Consistency::LocalOne, value_parser = super::shared::consistency_arg())]
    consistency: Consistency,
    /// Run the peer links in plaintext, unauthenticated, instead of mutual TLS with generated
    /// certificates (anyone reaching a peer port could then pose as a region).
    #[arg(long)]
    insecure_peers: bool,
    /// Pin the keys starting with PREFIX to the named regions (repeatable): written as a
    /// `[[residency]]` table to DIR/residency.toml, which every node reads with --config.
    #[arg(long, value_name = "PREFIX=REGION[,REGION...]")]
    residency: Vec<String>,
}

/// The cluster directory.
#[derive(clap::Args)]
pub struct DirArgs {
    /// Where the cluster keeps its state, data and logs.
    #[arg(long, default_value = ".converge-cluster")]
    dir: PathBuf,
}

/// `cluster partition`.
#[derive(clap::Args)]
pub struct PartitionArgs {
    /// The regions to cut off from the others.
    #[arg(required = true)]
    regions: Vec<String>,
    #[command(flatten)]
    dir: DirArgs,
}

/// One region's node, as recorded in `cluster.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RegionNode {
    /// The region's name.
    pub region: String,
    /// Its replica id.
    pub id: u64,
    /// The process id.
    pub pid: u32,
    /// RESP port.
    pub client_port: u16,
    /// Peer port.
    pub peer_port: u16,
    /// `/metrics` port.
    pub metrics_port: u16,
    /// The node's data directory.
    pub data_dir: PathBuf,
    /// The node's log file.
    pub log: PathBuf,
    /// The arguments it was started with (after the program), to restart it by hand.
    pub args: Vec<String>,
}

/// `cluster.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterState {
    /// The program every node runs.
    pub program: PathBuf,
    /// The nodes, in region order.
    pub nodes: Vec<RegionNode>,
}

/// Runs a subcommand; `Err` carries the message to print (exit status 1).
pub fn run(cmd: ClusterCommand) -> Result<(), String> {
    match cmd {
        ClusterCommand::Up(a) => up(&a),
        ClusterCommand::Down(a) => down(&a.dir),
        ClusterCommand::Status(a) => status(&a.dir),
        ClusterCommand::Partition(a) => partition(&a.dir.dir, &a.regions),
        ClusterCommand::Heal(a) => heal(&a.dir),
    }
}

fn load(dir: &Path) -> Result<ClusterState, String> {
    let path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("no cluster in {} ({e})", dir.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Writes the `--residency` pins as the nodes' shared `[[residency]]` file in `dir`, and returns
/// its path (`None` without pins). Each pin is `PREFIX=REGION[,REGION...]` over the cluster's
/// `regions`; the nodes check the rest (overlaps) when they start.
fn residency_file(
    dir: &Path,
    regions: &[String],
    pins: &[String],
) -> Result<Option<PathBuf>, String> {
    if pins.is_empty() {
        return Ok(None);
    }
    let mut text = String::from("# Written by `converge cluster up --residency`.\n");
    for pin in pins {
        let (prefix, names) = pin
            .split_once('=')
            .ok_or_else(|| format!("--residency {pin:?}: expected PREFIX=REGION[,REGION...]"))?;
        let names: Vec<&str> = names.split(',').filter(|n| !n.is_empty()).collect();
        if prefix.is_empty() || names.is_empty() {
            return Err(format!(
                "--residency {pin:?}: give a non-empty prefix and at least one region"
            ));
        }
        if let Some(n) = names.iter().find(|n| !regions.iter().any(|r| r == *n)) {
            return Err(format!("--residency {pin:?}: {n} is not one of --regions"));
        }
        // JSON string escapes are TOML basic-string escapes.
        let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
        let names: Vec<String> = names.iter().map(|n| quote(n)).collect();
        text.push_str(&format!(
            "\n[[residency]]\nprefix = {}\nregions = [{}]\n",
            quote(prefix),
            names.join(", ")
        ));
    }
    let path = dir.join("residency.toml");
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Some(path))
}

fn up(a: &UpArgs) -> Result<(), String> {
    let regions = &a.regions;
    if regions.is_empty() || regions.len() > 64 {
        return Err("give 1 to 64 regions".into());
    }
    for (i, r) in regions.iter().enumerate() {
        if r.is_empty()
            || !r
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "region name {r:?}: use letters, digits, '-' and '_'"
            ));
        }
        if regions[..i].contains(r) {
            return Err(format!("region {r} is listed twice"));
        }
    }
    std::fs::create_dir_all(&a.dir.dir).map_err(|e| format!("{}: {e}", a.dir.dir.display()))?;
    // Absolute, so the nodes' arguments and `cluster.json` work from any directory.
    let dir =
        &std::fs::canonicalize(&a.dir.dir).map_err(|e| format!("{}: {e}", a.dir.dir.display()))?;
    // A stale state file of a cluster that died is overwritten: the new one starts on its data.
    if let Ok(old) = load(dir)
        && old.nodes.iter().any(|n| is_our_node(n.pid))
    {
        return Err(format!(
            "a cluster is already running in {} (run `converge cluster down --dir {}` first)",
            dir.display(),
            dir.display()
        ));
    }
    let admin_password = dir.join(ADMIN_PASSWORD_FILE);
    write_admin_password(&admin_password)?;
    let port = |offset: u16, i: u16| {
        a.base_port
            .checked_add(offset + i)
            .ok_or_else(|| "base port too high".to_string())
    };
    let mut nodes = Vec::new();
    for (i, region) in regions.iter().enumerate() {
        let i16 = i as u16;
        let (cp, pp, mp) = (port(0, i16)?, port(100, i16)?, port(200, i16)?);
        for p in [cp, pp, mp] {
            // Refuse early and clearly rather than start a node that cannot bind.
            std::net::TcpListener::bind(loopback(p))
                .map_err(|e| format!("port {p} is not free ({e}); try --base-port"))?;
        }
        let rdir = dir.join(region);
        nodes.push(RegionNode {
            region: region.clone(),
            id: i as u64,
            pid: 0,
            client_port: cp,
            peer_port: pp,
            metrics_port: mp,
            data_dir: rdir.join("data"),
            log: rdir.join("node.log"),
            args: Vec::new(),
        });
    }
    let residency = residency_file(dir, regions, &a.residency)?;
    let program = std::env::current_exe().map_err(|e| format!("cannot find converge: {e}"))?;
    let peers: Vec<String> = nodes
        .iter()
        .map(|n| format!("{}={}@{}", n.id, n.region, loopback(n.peer_port)))
        .collect();
    let security = if a.insecure_peers {
        vec![vec!["--insecure-peers".to_string()]; nodes.len()]
    } else {
        write_certificates(dir, &nodes)?
    };
    for i in 0..nodes.len() {
        let node = &nodes[i];
        let mut args = vec![
            "node".to_string(),
            "--id".into(),
            node.id.to_string(),
            "--region".into(),
            node.region.clone(),
            "--listen".into(),
            loopback(node.client_port).to_string(),
            "--peer-listen".into(),
            loopback(node.peer_port).to_string(),
            "--metrics-listen".into(),
            loopback(node.metrics_port).to_string(),
            "--data-dir".into(),
            node.data_dir.display().to_string(),
            "--consistency".into(),
            a.consistency.to_string(),
            "--admin-password-file".into(),
            admin_password.display().to_string(),
        ];
        args.extend(security[i].iter().cloned());
        if let Some(path) = &residency {
            args.push("--config".into());
            args.push(path.display().to_string());
        }
        for (j, p) in peers.iter().enumerate() {
            if j != i {
                args.push("--peer".into());
                args.push(p.clone());
            }
        }
        let pid = match spawn(&program, &args, &node.log) {
            Ok(pid) => pid,
            Err(e) => {
                stop_all(&nodes[..i]);
                return Err(e);
            }
        };
        nodes[i].pid = pid;
        nodes[i].args = args;
    }
    let state = ClusterState { program, nodes };
    // Recorded before the wait, so `down` can stop a cluster whose start failed half-way.
    save(dir, &state)?;
    let deadline = Instant::now() + START_WAIT;
    for node in &state.nodes {
        loop {
            if ping(node.client_port).is_ok() && serving(node.client_port) {
                break;
            }
            let exited = !is_our_node(node.pid);
            if exited || Instant::now() >= deadline {
                stop_all(&state.nodes);
                let _ = std::fs::remove_file(dir.join(STATE_FILE));
                let what = if exited {
                    "exited".to_string()
                } else {
                    format!("did not serve within {} s", START_WAIT.as_secs())
                };
                return Err(format!(
                    "region {} {what}; see {}",
                    node.region,
                    node.log.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    println!(
        "cluster of {} regions up (state in {}):",
        state.nodes.len(),
        dir.display()
    );
    for node in &state.nodes {
        println!(
            "  redis-cli -p {:<5}  # {} (replica {}, pid {}, metrics http://127.0.0.1:{}/metrics)",
            node.client_port, node.region, node.id, node.pid, node.metrics_port
        );
    }
    println!(
        "stop it with: converge cluster down --dir {}",
        dir.display()
    );
    Ok(())
}

/// Writes a fresh random admin password (128 bits, hex) to `path`, readable by its owner only.
fn write_admin_password(path: &Path) -> Result<(), String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("cannot generate the admin password from /dev/urandom: {e}"))?;
    let password: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(path, &password, true)
}

/// The cluster's admin password, as `up` wrote it.
fn admin_password(dir: &Path) -> Result<String, String> {
    let path = dir.join(ADMIN_PASSWORD_FILE);
    std::fs::read_to_string(&path)
        .map(|p| p.trim_end().to_string())
        .map_err(|e| format!("cannot read the admin password {}: {e}", path.display()))
}

/// Generates the cluster's CA and one certificate and key per node, writes them (the CA's
/// certificate to `DIR/tls/ca.pem`, each node's to `DIR/<region>/tls/`, keys readable by their
/// owner only), and returns each node's TLS flags. The CA's key is never written: a new `up`
/// makes a new CA, so a certificate of an older cluster is worthless against this one.
fn write_certificates(dir: &Path, nodes: &[RegionNode]) -> Result<Vec<Vec<String>>, String> {
    use converge_node::tls::Ca;
    let ca = Ca::generate("converge cluster CA").map_err(|e| e.to_string())?;
    let ca_path = dir.join("tls").join("ca.pem");
    write_private(&ca_path, ca.cert_pem(), false)?;
    let mut flags = Vec::new();
    for n in nodes {
        // The client port's names too, so the same pair could serve it (`--client-tls-*`).
        let issued = ca
            .issue_member(n.id, &n.region, &["localhost", "127.0.0.1"])
            .map_err(|e| format!("region {}: {e}", n.region))?;
        let tls = dir.join(&n.region).join("tls");
        let (cert, key) = (tls.join("node.pem"), tls.join("node.key"));
        write_private(&cert, &issued.cert_pem, false)?;
        write_private(&key, &issued.key_pem, true)?;
        flags.push(vec![
            "--tls-ca".to_string(),
            ca_path.display().to_string(),
            "--tls-cert".into(),
            cert.display().to_string(),
            "--tls-key".into(),
            key.display().to_string(),
        ]);
    }
    Ok(flags)
}

/// Writes `text` to `path` (creating its directory); a `secret` is created mode 0600, so the
/// key is never readable by others, not even for an instant.
fn write_private(path: &Path, text: &str, secret: bool) -> Result<(), String> {
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    // A key left by an earlier `up` may have other permissions: start from a new file.
    let _ = std::fs::remove_file(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(path).map_err(err)?;
    file.write_all(text.as_bytes()).map_err(err)
}

fn save(dir: &Path, state: &ClusterState) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let json = serde_json::to_string_pretty(state).map_err(|e| e.to_string())?;
    let path = dir.join(STATE_FILE);
    let tmp = dir.join(format!("{STATE_FILE}.tmp"));
    std::fs::write(&tmp, json)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn spawn(program: &Path, args: &[String], log: &Path) -> Result<u32, String> {
    if let Some(parent) = log.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null()).stdout(file).stderr(err);
    #[cfg(unix)]
    {
        // Its own process group: a Ctrl-C in the terminal that ran `cluster up` does not reach
        // the nodes, which outlive it by design.
        use std::os::unix::process::CommandExt as _;
        cmd.process_group(0);
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    // Not waited for: the node outlives this process and is reaped by init.
    Ok(child.id())
}

/// Whether `pid` is alive and runs `converge node` (never signal a reused pid).
///
/// On Linux, from `/proc`: a zombie (`Z`) or a vanished pid is dead; a live process is ours if its
/// command line is `converge node ...`, or empty, which is how a process looks while it exits
/// (its memory is released before its sockets and files are closed, and a thread finishing a
/// disk write can hold it there for a while): `down` must keep waiting for such a process, or a
/// new cluster could start before the old one's ports and database are released.
fn is_our_node(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    let proc_dir = Path::new("/proc").join(pid.to_string());
    let Ok(stat) = std::fs::read_to_string(proc_dir.join("stat")) else {
        // No /proc (not Linux): fall back on `kill -0`.
        return !Path::new("/proc/self").exists() && signal(pid, "0");
    };
    // `pid (comm) S ...`: the state follows the last ')' (comm may hold anything).
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    if matches!(state, None | Some('Z' | 'X' | 'x')) {
        return false;
    }
    match std::fs::read(proc_dir.join("cmdline")) {
        Ok(bytes) if bytes.is_empty() => true,
        Ok(bytes) => bytes.split(|&b| b == 0).nth(1) == Some(&b"node"[..]),
        Err(_) => false,
    }
}

fn signal(pid: u32, sig: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// SIGTERM every live node, wait (bounded), SIGKILL the survivors. Returns the regions that
/// needed SIGKILL.
fn stop_all(nodes: &[RegionNode]) -> Vec<String> {
    for n in nodes {
        if is_our_node(n.pid) {
            signal(n.pid, "TERM");
        }
    }
    let deadline = Instant::now() + STOP_WAIT;
    while Instant::now() < deadline && nodes.iter().any(|n| is_our_node(n.pid)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut killed = Vec::new();
    for n in nodes {
        if is_our_node(n.pid) {
            signal(n.pid, "KILL");
            killed.push(n.region.clone());
        }
    }
    killed
}

fn down(dir: &Path) -> Result<(), String> {
    let state = load(dir)?;
    let killed = stop_all(&state.nodes);
    if !killed.is_empty() {
        eprintln!(
            "killed with SIGKILL after {} s: {}",
            STOP_WAIT.as_secs(),
            killed.join(", ")
        );
    }
    std::fs::remove_dir_all(dir).map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
    println!("cluster in {} stopped and removed", dir.display());
    Ok(())
}

fn status(dir: &Path) -> Result<(), String> {
    let state = load(dir)?;
    let password = admin_password(dir)?;
    println!(
        "{:<12} {:>3} {:>8} {:>6} {:>6} {:>6}  state",
        "region", "id", "pid", "resp", "peer", "metric"
    );
    let mut all_up = true;
    for n in &state.nodes {
        let alive = is_our_node(n.pid);
        let st = match (alive, ping(n.client_port)) {
            (true, Ok(())) => "up".to_string(),
            (true, Err(e)) => format!("not answering ({e})"),
            (false, _) => "stopped".to_string(),
        };
        all_up &= st == "up";
        println!(
            "{:<12} {:>3} {:>8} {:>6} {:>6} {:>6}  {st}",
            n.region, n.id, n.pid, n.client_port, n.peer_port, n.metrics_port
        );
        if st == "up"
            && let Ok(Reply::Array(links)) =
                command(n.client_port, Some(&password), &["CLUSTER.LINKS"])
        {
            for l in links {
                println!("{:<12}   link {l}", "");
            }
        }
    }
    if all_up {
        Ok(())
    } else {
        Err("some regions are not up".into())
    }
}

fn partition(dir: &Path, cut: &[String]) -> Result<(), String> {
    let state = load(dir)?;
    let password = admin_password(dir)?;
    for r in cut {
        if !state.nodes.iter().any(|n| &n.region == r) {
            return Err(format!("no region {r} in this cluster"));
        }
    }
    let (inside, outside): (Vec<&RegionNode>, Vec<&RegionNode>) =
        state.nodes.iter().partition(|n| cut.contains(&n.region));
    if outside.is_empty() {
        return Err("a partition needs at least one region on each side".into());
    }
    for (side, other) in [(&inside, &outside), (&outside, &inside)] {
        let ids: Vec<String> = other.iter().map(|n| n.id.to_string()).collect();
        for n in side.iter() {
            let mut args = vec!["CLUSTER.LINKS", "CUT"];
            args.extend(ids.iter().map(String::as_str));
            expect_ok(n, &password, &args)?;
        }
    }
    println!(
        "cut: {} | {}",
        inside
            .iter()
            .map(|n| n.region.as_str())
            .collect::<Vec<_>>()
            .join(","),
        outside
            .iter()
            .map(|n| n.region.as_str())
            .collect::<Vec<_>>()
            .join(",")
    );
    Ok(())
}

fn heal(dir: &Path) -> Result<(), String> {
    let state = load(dir)?;
    let password = admin_password(dir)?;
    for n in &state.nodes {
        expect_ok(n, &password, &["CLUSTER.LINKS", "HEAL"])?;
    }
    println!("healed: every peer link is open again");
    Ok(())
}

/// Runs the admin command `args` on `n` and expects `+OK`.
fn expect_ok(n: &RegionNode, password: &str, args: &[&str]) -> Result<(), String> {
    match command(n.client_port, Some(password), args) {
        Ok(Reply::Simple(s)) if s == "OK" => Ok(()),
        Ok(other) => Err(format!("{}: unexpected reply {other}", n.region)),
        Err(e) => Err(format!("{}: {e}", n.region)),
    }
}

fn ping(port: u16) -> Result<(), String> {
    match command(port, None, &["PING"])? {
        Reply::Simple(s) if s == "PONG" => Ok(()),
        other => Err(format!("unexpected reply {other}")),
    }
}

/// Whether the node serves requests: a read that reaches its replica is not answered
/// `-LOADING` (see the module documentation).
fn serving(port: u16) -> bool {
    match command(port, None, &["GET", "converge:cluster-up"]) {
        Ok(Reply::Error(e)) => !e.starts_with("LOADING"),
        Ok(_) => true,
        Err(_) => false,
    }
}

/// A RESP reply, as far as the admin commands need.
#[derive(Debug)]
enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<String>),
    Array(Vec<Reply>),
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Simple(s) => write!(f, "{s}"),
            Reply::Error(s) => write!(f, "(error) {s}"),
            Reply::Int(i) => write!(f, "{i}"),
            Reply::Bulk(Some(s)) => write!(f, "{s}"),
            Reply::Bulk(None) => write!(f, "(nil)"),
            Reply::Array(a) => {
                let items: Vec<String> = a.iter().map(|r| r.to_string()).collect();
                write!(f, "[{}]", items.join(", "))
            }
        }
    }
}

/// Sends one command to the node on `port` and reads its reply (bounded by [`RESP_TIMEOUT`]);
/// with `admin`, first authenticates as `admin` with that password on the same connection.
fn command(port: u16, admin: Option<&str>, args: &[&str]) -> Result<Reply, String> {
    let mut s = TcpStream::connect_timeout(&loopback(port), RESP_TIMEOUT)
        .map_err(|e| format!("cannot connect to port {port}: {e}"))?;
    s.set_read_timeout(Some(RESP_TIMEOUT))
        .and_then(|()| s.set_write_timeout(Some(RESP_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    let mut req = String::new();
    let mut encode = |args: &[&str]| {
        req.push_str(&format!("*{}\r\n", args.len()));
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
    };
    if let Some(password) = admin {
        encode(&["AUTH", "admin", password]);
    }
    encode(args);
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s);
    if admin.is_some() {
        match read_reply(&mut r, 0)? {
            Reply::Simple(ok) if ok == "OK" => {}
            other => return Err(format!("AUTH admin refused: {other}")),
        }
    }
    read_reply(&mut r, 0)
}

fn read_reply(r: &mut BufReader<TcpStream>, depth: usize) -> Result<Reply, String> {
    if depth > 4 {
        return Err("reply nested too deep".into());
    }
    let mut line = String::new();
    r.by_ref()
        .take(64 * 1024)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let line = line.trim_end();
    let (tag, rest) = line.split_at_checked(1).ok_or("empty reply")?;
    let num = || {
        rest.parse::<i64>()
            .map_err(|_| format!("bad reply line {line:?}"))
    };
    Ok(match tag {
        "+" => Reply::Simple(rest.into()),
        "-" => Reply::Error(rest.into()),
        ":" => Reply::Int(num()?),
        "$" => {
            let n = num()?;
            if n < 0 {
                Reply::Bulk(None)
            } else {
                let n = usize::try_from(n).map_err(|e| e.to_string())?.min(1 << 20);
                let mut b = vec![0; n + 2];
                r.read_exact(&mut b).map_err(|e| e.to_string())?;
                b.truncate(n);
                Reply::Bulk(Some(String::from_utf8_lossy(&b).into_owned()))
            }
        }
        "*" => {
            let n = num()?.clamp(0, 4096);
            let items = (0..n)
                .map(|_| read_reply(r, depth + 1))
                .collect::<Result<_, _>>()?;
            Reply::Array(items)
        }
        _ => return Err(format!("bad reply line {line:?}")),
    })
}
