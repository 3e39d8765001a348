//! End-to-end tests of the TCP reference node through `converge cluster`: real processes on
//! loopback, spoken to in RESP over std `TcpStream`, and once with `redis-cli` (the seat race:
//! an ordinary Redis client must be able to reserve a seat).
//!
//! `redis-cli` comes from the Debian package `redis-tools`, which `scripts/install-deps.sh`
//! installs and CI runs first. Without it the redis-cli step is skipped with a notice, except
//! under CI (`CI` set), where a missing redis-cli fails the test instead of skipping unseen.
//!
//! Each test runs its own cluster in its own directory on its own ports (a slot of 300 ports per
//! cluster, picked from the process id and the test, with a retry on another slot if a port is
//! taken), and a [`Cluster`] guard stops it (`cluster down`, then SIGKILL of anything left) and
//! removes the directory whether the test passed or panicked.

use redb::ReadableTable as _;
use serde_json::Value as Json;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_converge");
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// The kill -9 test's load: connections, adds in flight on each, and kills.
const LOADERS: usize = 4;
const KILLS: usize = 3;
const PIPELINE: usize = 8;
/// The seat race: seats, each raced by two clients in two regions.
const SEATS: usize = 50;

/// A running cluster; dropping it tears it down.
struct Cluster {
    dir: PathBuf,
    state: Json,
    /// Node processes the test (re)started itself.
    children: Vec<Child>,
}

impl Cluster {
    fn up(test: u16, regions: &str) -> Cluster {
        Cluster::up_with(test, regions, &[])
    }

    /// `cluster up` with `extra` arguments.
    fn up_with(test: u16, regions: &str, extra: &[&str]) -> Cluster {
        let dir = std::env::temp_dir().join(format!(
            "converge-cluster-test-{}-{test}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let mut last = String::new();
        for attempt in 0..6u32 {
            let slot = (std::process::id() * 7 + u32::from(test) * 13 + attempt * 29) % 120;
            let base = 20_000 + slot * 300;
            let out = Command::new(BIN)
                .args(["cluster", "up", "--regions", regions, "--base-port"])
                .arg(base.to_string())
                .arg("--dir")
                .arg(&dir)
                .args(extra)
                .output()
                .expect("run converge cluster up");
            if out.status.success() {
                let text = std::fs::read_to_string(dir.join("cluster.json")).expect("cluster.json");
                let state = serde_json::from_str(&text).expect("cluster.json is JSON");
                return Cluster {
                    dir,
                    state,
                    children: Vec::new(),
                };
            }
            last = String::from_utf8_lossy(&out.stderr).into_owned();
            let _ = Command::new(BIN)
                .args(["cluster", "down", "--dir"])
                .arg(&dir)
                .output();
            let _ = std::fs::remove_dir_all(&dir);
        }
        panic!("cluster up failed: {last}");
    }

    fn node(&self, region: &str) -> &Json {
        self.state["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|n| n["region"] == region)
            .expect("region in cluster.json")
    }

    fn port(&self, region: &str) -> u16 {
        self.node(region)["client_port"].as_u64().expect("port") as u16
    }

    /// The admin password `cluster up` generated, which `CLUSTER.LINKS` needs.
    fn admin_password(&self) -> String {
        let text =
            std::fs::read_to_string(self.dir.join("admin.password")).expect("admin.password");
        text.trim_end().to_string()
    }

    fn converge(&self, args: &[&str]) {
        let out = Command::new(BIN)
            .args(args)
            .arg("--dir")
            .arg(&self.dir)
            .output()
            .expect("run converge");
        assert!(
            out.status.success(),
            "converge {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(BIN)
            .args(["cluster", "down", "--dir"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A RESP reply.
#[derive(Clone, Debug, PartialEq, Eq)]
enum R {
    Simple(String),
    Err(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<R>),
}

fn bulk(s: &str) -> R {
    R::Bulk(Some(s.as_bytes().to_vec()))
}

struct Conn {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Conn {
    fn open(port: u16) -> Conn {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        s.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
        Conn {
            r: BufReader::new(s.try_clone().expect("clone")),
            w: s,
        }
    }

    fn try_open(port: u16) -> Option<Conn> {
        let s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(IO_TIMEOUT)).ok()?;
        Some(Conn {
            r: BufReader::new(s.try_clone().ok()?),
            w: s,
        })
    }

    fn send(&mut self, args: &[&str]) -> std::io::Result<()> {
        let mut req = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            req.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        self.w.write_all(&req)
    }

    fn read(&mut self) -> std::io::Result<R> {
        let mut line = String::new();
        if self.r.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end().to_string();
        let bad = || std::io::Error::other(format!("bad reply {line:?}"));
        let (tag, rest) = line.split_at_checked(1).ok_or_else(bad)?;
        let num = || rest.parse::<i64>().map_err(|_| bad());
        Ok(match tag {
            "+" => R::Simple(rest.into()),
            "-" => R::Err(rest.into()),
            ":" => R::Int(num()?),
            "$" if num()? < 0 => R::Bulk(None),
            "$" => {
                let mut b = vec![0; num()? as usize + 2];
                self.r.read_exact(&mut b)?;
                b.truncate(b.len() - 2);
                R::Bulk(Some(b))
            }
            "*" => R::Array((0..num()?).map(|_| self.read()).collect::<Result<_, _>>()?),
            _ => return Err(bad()),
        })
    }

    fn cmd(&mut self, args: &[&str]) -> std::io::Result<R> {
        self.send(args)?;
        self.read()
    }

    fn ok(&mut self, args: &[&str]) -> R {
        self.cmd(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }
}

/// Polls `f` until it returns true or `limit` passes; returns how long it took.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if f() {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn members(c: &mut Conn, key: &str) -> Vec<Vec<u8>> {
    match c.ok(&["SMEMBERS", key]) {
        R::Array(items) => items
            .into_iter()
            .map(|r| match r {
                R::Bulk(Some(b)) => b,
                other => panic!("member {other:?}"),
            })
            .collect(),
        other => panic!("SMEMBERS gave {other:?}"),
    }
}

#[test]
fn an_increment_on_one_region_is_read_on_another_within_a_second() {
    let cluster = Cluster::up(1, "us-east,eu-west,apac");
    let mut east = Conn::open(cluster.port("us-east"));
    let mut apac = Conn::open(cluster.port("apac"));
    assert_eq!(east.ok(&["PING"]), R::Simple("PONG".into()));
    assert_eq!(east.ok(&["INCRBY", "k", "5"]), R::Int(5));
    let took = eventually(Duration::from_secs(1), || {
        apac.ok(&["GET", "k"]) == bulk("5")
    });
    assert!(took.is_some(), "apac did not read 5 within a second");
    // apac owes us-east an ack for that batch and has nothing of its own to carry it: its flush
    // sends it alone, within the batch delay.
    let apac_metrics = cluster.node("apac")["metrics_port"].as_u64().expect("port") as u16;
    let acked = eventually(Duration::from_secs(1), || {
        metric(apac_metrics, "converge_acks_sent_total{carried=\"any\"}").is_some_and(|n| n >= 1)
    });
    assert!(acked.is_some(), "apac never acknowledged us-east's batch");
    // The token carries the write to another region: a read there with it waits until covered.
    let R::Bulk(Some(token)) = east.ok(&["TOKEN"]) else {
        panic!("TOKEN")
    };
    let token = String::from_utf8(token).expect("hex token");
    let mut eu = Conn::open(cluster.port("eu-west"));
    assert_eq!(eu.ok(&["TOKEN", "SET", &token]), R::Simple("OK".into()));
    assert_eq!(eu.ok(&["GET", "k"]), bulk("5"));
    // Types and errors are Redis's.
    assert_eq!(east.ok(&["SET", "r", "v"]), R::Simple("OK".into()));
    assert!(matches!(east.ok(&["SADD", "r", "x"]), R::Err(e) if e.starts_with("WRONGTYPE")));
    assert_eq!(east.ok(&["WITH", "LOCAL_QUORUM", "GET", "r"]), bulk("v"));
}

#[test]
fn sets_written_on_both_sides_of_a_cut_converge_after_heal() {
    let cluster = Cluster::up(2, "us-east,eu-west,apac");
    let mut east = Conn::open(cluster.port("us-east"));
    let mut apac = Conn::open(cluster.port("apac"));
    cluster.converge(&["cluster", "partition", "apac"]);
    assert_eq!(east.ok(&["SADD", "s", "from-east"]), R::Int(1));
    assert_eq!(apac.ok(&["SADD", "s", "from-apac"]), R::Int(1));
    assert_eq!(east.ok(&["MVSET", "mv", "east"]), R::Simple("OK".into()));
    assert_eq!(apac.ok(&["MVSET", "mv", "apac"]), R::Simple("OK".into()));
    // A cut-off region cannot reach a majority of regions: the level is refused, not downgraded.
    assert!(
        matches!(apac.ok(&["WITH", "GLOBAL_QUORUM", "GET", "s"]), R::Err(e) if e.starts_with("UNAVAILABLE")),
        "GLOBAL_QUORUM answered from a minority"
    );
    // While cut, apac does not see the east's add (anti-entropy runs every second; wait longer).
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(members(&mut apac, "s"), vec![b"from-apac".to_vec()]);
    cluster.converge(&["cluster", "heal"]);
    let union = vec![b"from-apac".to_vec(), b"from-east".to_vec()];
    let took = eventually(Duration::from_secs(10), || {
        members(&mut east, "s") == union && members(&mut apac, "s") == union
    });
    assert!(
        took.is_some(),
        "no convergence to the union within 10 s after heal"
    );
    // The concurrent MV writes are both kept (sorted by their dots: replica 0, us-east, first);
    // a write after reading both replaces both.
    let both = R::Array(vec![bulk("east"), bulk("apac")]);
    let took = eventually(Duration::from_secs(10), || {
        east.ok(&["MVGET", "mv"]) == both
    });
    assert!(
        took.is_some(),
        "the MV register did not show both siblings: us-east {:?}, apac {:?}",
        east.ok(&["MVGET", "mv"]),
        apac.ok(&["MVGET", "mv"])
    );
    assert_eq!(east.ok(&["MVSET", "mv", "merged"]), R::Simple("OK".into()));
    assert_eq!(east.ok(&["MVGET", "mv"]), R::Array(vec![bulk("merged")]));
    let took = eventually(Duration::from_secs(10), || {
        apac.ok(&["MVGET", "mv"]) == R::Array(vec![bulk("merged")])
    });
    assert!(took.is_some(), "apac did not see the merged MV register");
}

#[test]
fn every_acknowledged_write_survives_kill_9() {
    let mut cluster = Cluster::up(3, "us-east,eu-west,apac");
    let victim = "eu-west";
    let port = cluster.port(victim);
    let metrics = cluster.node(victim)["metrics_port"].as_u64().expect("port") as u16;
    let args: Vec<String> = cluster.node(victim)["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("arg").to_string())
        .collect();
    // Cut the victim off first, so what it acknowledges exists nowhere but on its disk.
    cluster.converge(&["cluster", "partition", victim]);
    let mut pid = cluster.node(victim)["pid"].as_u64().expect("pid") as u32;
    let mut acked: Vec<String> = Vec::new();
    // A kill loses only what was not yet written to the file (the page cache survives a process
    // kill), so one kill may land between commits; several make a lost acknowledgement likely
    // to show if the node answered before its commits ended.
    for cycle in 0..KILLS {
        let before = durable_seq(metrics).unwrap_or(0);
        // Several connections, each keeping a pipeline of adds in flight, so that at any moment
        // some acknowledged adds belong to the commit running.
        let replies = Arc::new(AtomicUsize::new(0));
        let loaders: Vec<_> = (0..LOADERS)
            .map(|l| {
                let replies = replies.clone();
                std::thread::spawn(move || load(port, &format!("m{cycle}-{l}"), &replies))
            })
            .collect();
        // Wait for acknowledgements the loaders hold, not only for commits: a reply leaves
        // after its commit, so a kill right after the 300th durable entry may still take the
        // replies of the last commit with it.
        let loaded = eventually(Duration::from_secs(20), || {
            replies.load(Ordering::Relaxed) >= 300
                && durable_seq(metrics).is_some_and(|seq| seq >= before + 300)
        });
        assert!(
            loaded.is_some(),
            "the victim did not take and acknowledge 300 writes"
        );
        let killed = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(killed.success());
        let this: Vec<String> = loaders
            .into_iter()
            .flat_map(|l| l.join().expect("loader"))
            .collect();
        assert!(this.len() >= 300, "only {} acked", this.len());
        acked.extend(this);
        // Reap what this test started before, then restart on the same data directory.
        for mut c in cluster.children.drain(..) {
            let _ = c.wait();
        }
        let log =
            std::fs::File::create(cluster.dir.join(format!("restart-{cycle}.log"))).expect("log");
        let child = Command::new(BIN)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("restart");
        pid = child.id();
        cluster.children.push(child);
        let up = eventually(Duration::from_secs(10), || {
            Conn::try_open(port).is_some_and(|mut c| c.cmd(&["PING"]).is_ok())
        });
        assert!(up.is_some(), "the restarted node did not answer");
        let have = members(&mut Conn::open(port), "k");
        let missing: Vec<&String> = acked
            .iter()
            .filter(|m| !have.contains(&m.as_bytes().to_vec()))
            .collect();
        assert!(
            missing.is_empty(),
            "kill {cycle}: {} of {} acknowledged adds lost by kill -9, e.g. {:?}",
            missing.len(),
            acked.len(),
            &missing[..missing.len().min(5)]
        );
    }
    // And after the heal the other regions catch up on them.
    cluster.converge(&["cluster", "heal"]);
    let mut east = Conn::open(cluster.port("us-east"));
    let caught_up = eventually(Duration::from_secs(15), || {
        members(&mut east, "k").len() >= acked.len()
    });
    assert!(
        caught_up.is_some(),
        "us-east did not catch up after the restarts"
    );
}

/// Adds `PREFIX-round-i` members to `k` in pipelines of `PIPELINE` until the connection fails;
/// returns the acknowledged ones.
fn load(port: u16, prefix: &str, replies: &AtomicUsize) -> Vec<String> {
    let mut c = Conn::open(port);
    let mut acked = Vec::new();
    for round in 0..100_000 {
        let batch: Vec<String> = (0..PIPELINE)
            .map(|i| format!("{prefix}-{round}-{i}"))
            .collect();
        for m in &batch {
            if c.send(&["SADD", "k", m]).is_err() {
                return acked;
            }
        }
        for m in batch {
            match c.read() {
                Ok(R::Int(1)) => {
                    acked.push(m);
                    replies.fetch_add(1, Ordering::Relaxed);
                }
                Ok(other) => panic!("SADD {m}: {other:?}"),
                // The kill.
                Err(_) => return acked,
            }
        }
    }
    acked
}

fn durable_seq(metrics_port: u16) -> Option<u64> {
    metric(metrics_port, "converge_oplog_durable_seq")
}

/// The value of one series (`name` with its labels, as the node prints it) of a node's metrics.
fn metric(metrics_port: u16, series: &str) -> Option<u64> {
    http_get(metrics_port, "/metrics")
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn malformed_input_gets_an_error_and_the_node_still_serves() {
    let cluster = Cluster::up(4, "us-east,eu-west");
    let port = cluster.port("us-east");
    for junk in [
        &b"*1\r\n$abc\r\n"[..],
        b"*1\r\n$999999999999\r\n",
        b"*99999999\r\n",
        b"*1\r\n:1\r\n",
        b"\"unbalanced\r\n",
    ] {
        let mut c = Conn::open(port);
        c.w.write_all(junk).expect("write");
        match c.read() {
            Ok(R::Err(e)) => assert!(e.starts_with("ERR Protocol error"), "{e}"),
            other => panic!("{junk:?} gave {other:?}"),
        }
        // Then the node closes the connection.
        assert!(c.read().is_err(), "connection left open after {junk:?}");
    }
    // Garbage on the peer port closes that link only.
    let peer = cluster.node("us-east")["peer_port"].as_u64().expect("port") as u16;
    let mut p = TcpStream::connect(("127.0.0.1", peer)).expect("peer port");
    let _ = p.write_all(&[0xff; 64]);
    let mut c = Conn::open(port);
    assert_eq!(c.ok(&["PING"]), R::Simple("PONG".into()));
    assert_eq!(c.ok(&["INCR", "n"]), R::Int(1));
    // Pipelined commands answer in order.
    c.w.write_all(b"INCR n\r\nGET n\r\nECHO hi\r\nINCRBY n 10\r\n")
        .expect("write");
    let replies: Vec<R> = (0..4).map(|_| c.read().expect("reply")).collect();
    assert_eq!(replies, vec![R::Int(2), bulk("2"), bulk("hi"), R::Int(12)]);
    // A pipeline far deeper than the node's in-flight limit is answered whole, in order.
    let deep = 5_000;
    c.w.write_all(&b"INCR deep\r\n".repeat(deep))
        .expect("write");
    for i in 1..=deep {
        assert_eq!(c.read().expect("reply"), R::Int(i as i64), "reply {i}");
    }
    let metrics_port = cluster.node("us-east")["metrics_port"]
        .as_u64()
        .expect("port") as u16;
    let m = http_get(metrics_port, "/metrics");
    assert!(
        m.contains("converge_bad_inputs_total{kind=\"resp_bad_length\"}"),
        "{m}"
    );
}

fn http_get(port: u16, path: &str) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(IO_TIMEOUT));
    let _ = write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Runs `redis-cli -p PORT args...` and returns its output (one line per reply, no type
/// decoration when not on a terminal), or `None` if redis-cli is not installed (a notice, or a
/// failure under CI). Bounded: redis-cli has no reply timeout of its own, so one that has not
/// exited within 10 s is killed and the test fails.
fn redis_cli(port: u16, args: &[&str]) -> Option<String> {
    let spawned = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var_os("CI").is_none(),
                "redis-cli is missing under CI, where scripts/install-deps.sh should have \
                 installed redis-tools"
            );
            eprintln!("redis-cli is not installed (Debian package redis-tools): step skipped");
            return None;
        }
        Err(e) => panic!("redis-cli: {e}"),
    };
    let exited = eventually(Duration::from_secs(10), || {
        child.try_wait().ok().flatten().is_some()
    });
    if exited.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("redis-cli {args:?} did not exit within 10 s");
    }
    let out = child.wait_with_output().expect("redis-cli output");
    assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// One of two racers' side of a rendezvous: both leave [`Starter::together`] at about the same
/// moment. Unlike a `Barrier`, the wait is bounded and ends at once if the other racer died (its
/// side is dropped), so a failing racer cannot leave the other, and the test, waiting forever.
struct Starter {
    tx: Sender<usize>,
    rx: Receiver<usize>,
}

impl Starter {
    fn pair() -> (Starter, Starter) {
        let (a_tx, b_rx) = channel();
        let (b_tx, a_rx) = channel();
        (
            Starter { tx: a_tx, rx: a_rx },
            Starter { tx: b_tx, rx: b_rx },
        )
    }

    /// Waits until the other racer reached round `round` too.
    fn together(&self, round: usize) {
        // The other side may be gone already; its absence is reported by the receive below.
        let _ = self.tx.send(round);
        match self.rx.recv_timeout(Duration::from_secs(30)) {
            Ok(r) => assert_eq!(r, round, "the racers fell out of step"),
            Err(e) => panic!("the other racer did not reach round {round}: {e}"),
        }
    }
}

/// The ids of every region's replica but `region`'s, as `CLUSTER.LINKS CUT` takes them.
fn other_ids(cluster: &Cluster, region: &str) -> Vec<String> {
    cluster.state["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|n| n["region"] != region)
        .map(|n| n["id"].as_u64().expect("id").to_string())
        .collect()
}

/// Two clients in two regions race `CAS.SETNX` for each of [`SEATS`] seats at the same moment;
/// consensus gives every seat to exactly one of them, and the third region reads the winner.
/// Then one region is cut off: its reservation fails definitely (`UNAVAILABLE`), while the two
/// regions that still form a majority keep reserving.
#[test]
fn two_regions_racing_for_a_seat_never_both_get_it() {
    let cluster = Cluster::up(5, "us-east,eu-west,apac");
    let (east_port, eu_port, apac_port) = (
        cluster.port("us-east"),
        cluster.port("eu-west"),
        cluster.port("apac"),
    );

    // An ordinary Redis client reserves a seat at GLOBAL_QUORUM, and a second reservation from
    // another region is refused.
    if let Some(got) = redis_cli(
        east_port,
        &["WITH", "GLOBAL_QUORUM", "CAS.SETNX", "seat:cli", "alice"],
    ) {
        assert_eq!(got, "1", "redis-cli's reservation");
        let again = redis_cli(eu_port, &["CAS.SETNX", "seat:cli", "bob"]);
        assert_eq!(
            again.as_deref(),
            Some("0"),
            "a second reservation of seat:cli"
        );
        let read = redis_cli(apac_port, &["WITH", "GLOBAL_QUORUM", "CAS.GET", "seat:cli"]);
        assert_eq!(read.as_deref(), Some("alice"));
    }

    // The race: one thread per region, released together for every seat.
    let (a, b) = Starter::pair();
    let racers: Vec<_> = [("east", east_port, a), ("eu", eu_port, b)]
        .into_iter()
        .map(|(name, port, start)| {
            std::thread::spawn(move || {
                let mut c = Conn::open(port);
                assert_eq!(
                    c.ok(&["CONSISTENCY", "GLOBAL_QUORUM"]),
                    R::Simple("OK".into())
                );
                (0..SEATS)
                    .map(|seat| {
                        start.together(seat);
                        c.ok(&["CAS.SETNX", &format!("seat:{seat}"), name])
                    })
                    .collect::<Vec<R>>()
            })
        })
        .collect();
    let results: Vec<Vec<R>> = racers
        .into_iter()
        .map(|r| r.join().expect("racer"))
        .collect();
    let mut apac = Conn::open(apac_port);
    for (seat, (east, eu)) in results[0].iter().zip(&results[1]).enumerate() {
        let winner = match (east, eu) {
            (R::Int(1), R::Int(0)) => "east",
            (R::Int(0), R::Int(1)) => "eu",
            _ => panic!("seat:{seat}: us-east got {east:?}, eu-west got {eu:?}: not exactly one"),
        };
        let read = apac.ok(&["WITH", "GLOBAL_QUORUM", "CAS.GET", &format!("seat:{seat}")]);
        assert_eq!(read, bulk(winner), "seat:{seat} read from apac");
    }
    // The decisions reach the third region's own replica too (the commit leaves with the
    // reply), so a LOCAL_ONE read there soon shows the winner without asking anyone.
    let last = format!("seat:{}", SEATS - 1);
    let winner = apac.ok(&["WITH", "GLOBAL_QUORUM", "CAS.GET", &last]);
    let learned = eventually(Duration::from_secs(5), || {
        apac.ok(&["WITH", "LOCAL_ONE", "CAS.GET", &last]) == winner
    });
    assert!(
        learned.is_some(),
        "apac never learned the decision of {last}"
    );
    // A consensus register is not a CRDT key: a CRDT write of it is refused where the replica
    // knows the register, and a CRDT read finds nothing in the CRDT keyspace.
    assert!(matches!(
        apac.ok(&["SET", &last, "x"]),
        R::Err(e) if e.starts_with("WRONGTYPE")
    ));
    assert_eq!(apac.ok(&["GET", &last]), R::Bulk(None));

    // A fault: apac is cut off from both other regions (both directions, by its own switch,
    // which only the admin may use).
    let password = cluster.admin_password();
    assert_eq!(
        apac.ok(&["AUTH", "admin", &password]),
        R::Simple("OK".into())
    );
    let mut cut = vec!["CLUSTER.LINKS", "CUT"];
    let ids = other_ids(&cluster, "apac");
    cut.extend(ids.iter().map(String::as_str));
    assert_eq!(apac.ok(&cut), R::Simple("OK".into()));
    let (a, b) = Starter::pair();
    let racers: Vec<_> = [("apac", apac_port, a), ("east", east_port, b)]
        .into_iter()
        .map(|(name, port, start)| {
            std::thread::spawn(move || {
                let mut c = Conn::open(port);
                start.together(0);
                c.ok(&["CAS.SETNX", "seat:cut", name])
            })
        })
        .collect();
    let results: Vec<R> = racers
        .into_iter()
        .map(|r| r.join().expect("racer"))
        .collect();
    // The minority cannot reach a majority of acceptors: its prepares go unanswered, so no
    // proposal of its reservation reached the accept phase and the refusal is definite.
    assert!(
        matches!(&results[0], R::Err(e) if e.starts_with("UNAVAILABLE")),
        "the cut-off region's reservation: {:?}",
        results[0]
    );
    assert_eq!(results[1], R::Int(1), "the majority side's reservation");
    let mut eu = Conn::open(eu_port);
    assert_eq!(
        eu.ok(&["WITH", "GLOBAL_QUORUM", "CAS.GET", "seat:cut"]),
        bulk("east")
    );
    // The minority cannot read linearizably either, but it may read what it learned locally.
    assert!(matches!(
        apac.ok(&["WITH", "GLOBAL_QUORUM", "CAS.GET", "seat:cut"]),
        R::Err(e) if e.starts_with("UNAVAILABLE")
    ));
    assert_eq!(
        apac.ok(&["WITH", "LOCAL_ONE", "CAS.GET", "seat:cut"]),
        R::Bulk(None)
    );
    // After the heal the cut-off region takes part again: its reservation finds the seat taken.
    assert_eq!(apac.ok(&["CLUSTER.LINKS", "HEAL"]), R::Simple("OK".into()));
    let healed = eventually(Duration::from_secs(15), || {
        apac.cmd(&["CAS.SETNX", "seat:cut", "apac"])
            .is_ok_and(|r| r == R::Int(0))
    });
    assert!(
        healed.is_some(),
        "apac did not rejoin the majority after the heal"
    );
    assert_eq!(
        apac.ok(&["WITH", "GLOBAL_QUORUM", "CAS.GET", "seat:cut"]),
        bulk("east")
    );
}

#[test]
fn only_the_admin_that_cluster_up_made_can_cut_links() {
    let cluster = Cluster::up(12, "us-east,eu-west");
    let path = cluster.dir.join("admin.password");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path)
            .expect("admin.password")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the admin password is readable by others"
        );
    }
    let mut c = Conn::open(cluster.port("us-east"));
    let ids = other_ids(&cluster, "us-east");
    // Anyone on the client port may read and write data, but not split the cluster.
    assert_eq!(c.ok(&["SET", "k", "v"]), R::Simple("OK".into()));
    assert!(
        matches!(c.ok(&["CLUSTER.LINKS", "CUT", &ids[0]]), R::Err(e) if e.starts_with("NOPERM")),
        "CLUSTER.LINKS ran without the admin password"
    );
    assert!(matches!(
        c.ok(&["AUTH", "admin", "guess"]),
        R::Err(e) if e.starts_with("WRONGPASS")
    ));
    // The CLI authenticates with the generated password.
    cluster.converge(&["cluster", "partition", "eu-west"]);
    assert_eq!(
        c.ok(&["AUTH", "admin", &cluster.admin_password()]),
        R::Simple("OK".into())
    );
    let R::Array(links) = c.ok(&["CLUSTER.LINKS"]) else {
        panic!("CLUSTER.LINKS lists the links");
    };
    assert!(
        links
            .iter()
            .all(|l| matches!(l, R::Bulk(Some(b)) if String::from_utf8_lossy(b).contains(" cut "))),
        "{links:?}"
    );
    cluster.converge(&["cluster", "heal"]);
    cluster.converge(&["cluster", "status"]);
}

/// A region's command line, as `cluster up` started it.
fn node_args(cluster: &Cluster, region: &str) -> Vec<String> {
    cluster.node(region)["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("arg").to_string())
        .collect()
}

/// The value following `flag` in a region's command line.
fn node_flag(cluster: &Cluster, region: &str, flag: &str) -> String {
    let args = node_args(cluster, region);
    let at = args.iter().position(|a| a == flag).expect("flag given");
    args[at + 1].clone()
}

/// SIGKILLs `region`'s node as `cluster up` started it, and waits until it is gone.
fn kill_9(cluster: &Cluster, region: &str) {
    let pid = cluster.node(region)["pid"].as_u64().expect("pid");
    let killed = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let port = cluster.port(region);
    let gone = eventually(Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", port)).is_err()
    });
    assert!(gone.is_some(), "{region} still answers after kill -9");
}

/// Starts `region`'s node again with its command line, prefixed by `wrap` (a shell snippet run
/// before `exec`, e.g. a `ulimit`), logging to `name`.log in the cluster's directory.
fn restart(cluster: &mut Cluster, region: &str, name: &str, wrap: &str) -> PathBuf {
    let log_path = cluster.dir.join(format!("{name}.log"));
    let log = std::fs::File::create(&log_path).expect("log");
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!("{wrap} exec \"$0\" \"$@\""))
        .arg(BIN)
        .args(node_args(cluster, region))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("restart");
    cluster.children.push(child);
    log_path
}

/// Waits up to `limit` for the last child the test started to exit: its status.
fn exit_status(cluster: &mut Cluster, limit: Duration) -> Option<std::process::ExitStatus> {
    let child = cluster.children.last_mut().expect("a child");
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// An acknowledged increment on `region`, replicated to `other`.
fn replicated_increment(cluster: &Cluster, region: &str, other: &str, key: &str, by: i64) {
    let mut c = Conn::open(cluster.port(region));
    assert_eq!(c.ok(&["INCRBY", key, &by.to_string()]), R::Int(by));
    let mut o = Conn::open(cluster.port(other));
    let seen = eventually(Duration::from_secs(10), || {
        o.ok(&["GET", key]) == bulk(&by.to_string())
    });
    assert!(seen.is_some(), "{other} did not see the increment");
}

#[test]
fn a_region_restarted_on_a_lost_data_directory_refuses_to_start() {
    let mut cluster = Cluster::up(8, "us-east,eu-west,apac");
    let victim = "eu-west";
    let data = PathBuf::from(node_flag(&cluster, victim, "--data-dir"));
    replicated_increment(&cluster, victim, "us-east", "n", 5);
    // The disk is lost, or the volume not mounted: the data directory is empty.
    kill_9(&cluster, victim);
    std::fs::remove_dir_all(&data).expect("empty the data directory");
    std::fs::create_dir_all(&data).expect("an empty data directory");
    let log = restart(&mut cluster, victim, "empty-dir", "");
    let status = exit_status(&mut cluster, Duration::from_secs(20));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        status.is_some_and(|s| !s.success()),
        "a region on an empty data directory kept running ({status:?}): {text}"
    );
    assert!(
        text.contains("was created by this start") && text.contains("knows an earlier life"),
        "{text}"
    );
    // It never served: the other regions hold the increment, and no write of the new life.
    for region in ["us-east", "apac"] {
        assert_eq!(
            Conn::open(cluster.port(region)).ok(&["GET", "n"]),
            bulk("5"),
            "{region}"
        );
    }

    // Started again (as a supervisor would), on the store the refused start created: still new,
    // still refused.
    let log = restart(&mut cluster, victim, "empty-dir-again", "");
    let status = exit_status(&mut cluster, Duration::from_secs(20));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.is_some_and(|s| !s.success()), "{status:?}: {text}");
    assert!(text.contains("knows an earlier life"), "{text}");

    // A zero-length durable.redb (a disk that lost the file) is refused at once.
    std::fs::write(data.join("durable.redb"), b"").expect("a zero-length store");
    let log = restart(&mut cluster, victim, "zero-length", "");
    let status = exit_status(&mut cluster, Duration::from_secs(10));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.is_some_and(|s| !s.success()), "{status:?}: {text}");
    assert!(text.contains("empty file"), "{text}");
}

/// Where a stored counter's component 1000 has its low byte: as a LEB128 varint (`e8 07`) or a
/// big-endian integer (`03 e8`), searched from the end.
fn component_byte(v: &[u8]) -> usize {
    v.windows(2)
        .rposition(|w| w == [0xe8, 0x07])
        .or_else(|| v.windows(2).rposition(|w| w == [0x03, 0xe8]).map(|i| i + 1))
        .unwrap_or_else(|| panic!("no component 1000 in the stored counter {v:02x?}"))
}

/// Opens a stopped region's store and lets `f` change its `keys` table.
fn tamper_keys(data: &std::path::Path, f: impl FnOnce(&mut redb::Table<&[u8], &[u8]>)) {
    let keys: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("keys");
    let db = redb::Database::create(data.join("durable.redb")).expect("the store opens");
    let tx = db.begin_write().expect("a write transaction");
    {
        let mut t = tx.open_table(keys).expect("the keys table");
        f(&mut t);
    }
    tx.commit().expect("commits");
}

#[test]
fn a_flipped_bit_in_a_stored_counter_or_key_refuses_the_restart() {
    let mut cluster = Cluster::up(9, "us-east,eu-west");
    let victim = "eu-west";
    let data = PathBuf::from(node_flag(&cluster, victim, "--data-dir"));
    replicated_increment(&cluster, victim, "us-east", "c", 1_000);
    kill_9(&cluster, victim);
    // One bit of the counter's stored component: 1000 becomes 1001, a value that still decodes
    // (and that a node without checksums would serve and merge into every region).
    let mut at = None;
    tamper_keys(&data, |t| {
        let mut v = t
            .get(b"c".as_slice())
            .expect("get")
            .expect("the counter is stored")
            .value()
            .to_vec();
        let i = component_byte(&v);
        v[i] ^= 1;
        at = Some(i);
        t.insert(b"c".as_slice(), v.as_slice()).expect("insert");
    });
    let at = at.expect("tampered");
    let log = restart(&mut cluster, victim, "flipped-value", "");
    let status = exit_status(&mut cluster, Duration::from_secs(10));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.is_some_and(|s| !s.success()), "{status:?}: {text}");
    assert!(
        text.contains("checksum") && text.contains("`keys`") && text.contains("\"c\""),
        "{text}"
    );
    // Undo it, and flip a byte of the key instead: the value now sits under "b".
    tamper_keys(&data, |t| {
        let mut v = t
            .remove(b"c".as_slice())
            .expect("remove")
            .expect("stored")
            .value()
            .to_vec();
        v[at] ^= 1;
        t.insert(b"b".as_slice(), v.as_slice()).expect("insert");
    });
    let log = restart(&mut cluster, victim, "flipped-key", "");
    let status = exit_status(&mut cluster, Duration::from_secs(10));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.is_some_and(|s| !s.success()), "{status:?}: {text}");
    assert!(
        text.contains("checksum") && text.contains("`keys`") && text.contains("\"b\""),
        "{text}"
    );
    // The other region still reads the true value.
    assert_eq!(
        Conn::open(cluster.port("us-east")).ok(&["GET", "c"]),
        bulk("1000")
    );
}

/// Whether the peer closed `s` (a read gives end of file or a reset) within `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let _ = s.set_read_timeout(Some(limit));
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// The victim's `CLUSTER.LINKS` line for replica `id` (asked as the cluster's admin).
fn link_line(cluster: &Cluster, port: u16, id: u64) -> String {
    let mut c = Conn::open(port);
    assert_eq!(
        c.ok(&["AUTH", "admin", &cluster.admin_password()]),
        R::Simple("OK".into())
    );
    match c.ok(&["CLUSTER.LINKS"]) {
        R::Array(lines) => lines
            .into_iter()
            .find_map(|l| match l {
                R::Bulk(Some(b)) if b.starts_with(format!("{id} ").as_bytes()) => {
                    Some(String::from_utf8_lossy(&b).into_owned())
                }
                R::Simple(s) if s.starts_with(&format!("{id} ")) => Some(s),
                _ => None,
            })
            .unwrap_or_default(),
        other => panic!("CLUSTER.LINKS gave {other:?}"),
    }
}

#[test]
fn the_peer_port_bounds_what_comes_before_a_hello() {
    // Plaintext peer links, so the frames before the Hello are the node's own to bound; with
    // peer TLS the handshake runs first, inside the same deadline and the same cap.
    let mut cluster = Cluster::up_with(10, "us-east,eu-west", &["--insecure-peers"]);
    let victim = "eu-west";
    let port = cluster.port(victim);
    let peer = cluster.node(victim)["peer_port"].as_u64().expect("port") as u16;
    let east_id = cluster.node("us-east")["id"].as_u64().expect("id");
    let east = cluster.port("us-east");
    // The victim again, with few file descriptors, as a node under an fd limit would run.
    kill_9(&cluster, victim);
    restart(&mut cluster, victim, "fd-limited", "ulimit -n 256 &&");
    let up = eventually(Duration::from_secs(10), || {
        Conn::try_open(port).is_some_and(|mut c| c.cmd(&["PING"]).is_ok())
    });
    assert!(up.is_some(), "the victim did not restart");

    // Many connections that never send a Hello, held open.
    let idle: Vec<TcpStream> = (0..400)
        .map(|_| TcpStream::connect(("127.0.0.1", peer)).expect("peer port"))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // They do not use up the node's descriptors (64 wait for their Hello at most; where /proc
    // exists, the count is checked: without the bound it reaches the limit of 256).
    let pid = cluster.children.last().expect("the victim").id();
    if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        let fds = fds.count();
        assert!(fds <= 160, "the victim holds {fds} descriptors of 256");
    }
    // Well inside the Hello deadline, clients still connect...
    let mut c = Conn::open(port);
    c.r.get_ref()
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    assert_eq!(
        c.cmd(&["PING"]).ok(),
        Some(R::Simple("PONG".into())),
        "a client was locked out"
    );
    // ...and a real peer links: us-east drops its link and dials again.
    let mut e = Conn::open(east);
    assert_eq!(
        e.ok(&["AUTH", "admin", &cluster.admin_password()]),
        R::Simple("OK".into())
    );
    let victim_id = cluster.node(victim)["id"].as_u64().expect("id");
    assert_eq!(
        e.ok(&["CLUSTER.LINKS", "CUT", &victim_id.to_string()]),
        R::Simple("OK".into())
    );
    let down = eventually(Duration::from_secs(3), || {
        link_line(&cluster, port, east_id).contains("in=0")
    });
    assert!(down.is_some(), "{}", link_line(&cluster, port, east_id));
    assert_eq!(e.ok(&["CLUSTER.LINKS", "HEAL"]), R::Simple("OK".into()));
    let relinked = eventually(Duration::from_secs(3), || {
        link_line(&cluster, port, east_id).contains("in=1")
    });
    assert!(
        relinked.is_some(),
        "us-east could not link past the idle connections: {}",
        link_line(&cluster, port, east_id)
    );
    drop(idle);

    // A 16 MiB announcement before the Hello is refused from its header.
    let mut s = TcpStream::connect(("127.0.0.1", peer)).expect("peer port");
    s.write_all(&[1, 0, 0, 0]).expect("write");
    assert!(
        closed_within(&mut s, Duration::from_secs(1)),
        "a 16 MiB announcement was not refused at once"
    );

    // A Hello dripped one byte per 1.5 s is cut off by the Hello deadline (5 s from accept).
    let mut s = TcpStream::connect(("127.0.0.1", peer)).expect("peer port");
    let start = Instant::now();
    let mut closed = false;
    while start.elapsed() < Duration::from_secs(12) {
        if s.write_all(&[0]).is_err() || closed_within(&mut s, Duration::from_millis(1_500)) {
            closed = true;
            break;
        }
    }
    assert!(closed, "a dripping connection was held for 12 s");
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
}

/// The lines of `region`'s log.
fn log_of(cluster: &Cluster, region: &str) -> String {
    let path = cluster.node(region)["log"].as_str().expect("log path");
    std::fs::read_to_string(path).expect("node log")
}

#[test]
fn cluster_up_links_regions_over_mutual_tls_and_refuses_a_plaintext_impersonator() {
    let cluster = Cluster::up(6, "us-east,eu-west");
    // The CA's certificate and each node's certificate and key, the key private to its owner.
    assert!(cluster.dir.join("tls/ca.pem").is_file());
    for region in ["us-east", "eu-west"] {
        let key = cluster.dir.join(region).join("tls/node.key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&key)
                .expect("node key")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{}", key.display());
        }
        assert!(
            log_of(&cluster, region).contains("peer_tls=true"),
            "{region}"
        );
    }
    // The links come up over TLS and replicate.
    let mut east = Conn::open(cluster.port("us-east"));
    let mut eu = Conn::open(cluster.port("eu-west"));
    for c in [&mut east, &mut eu] {
        // CLUSTER.LINKS, read below, is the admin's.
        assert_eq!(
            c.ok(&["AUTH", "admin", &cluster.admin_password()]),
            R::Simple("OK".into())
        );
    }
    assert_eq!(east.ok(&["INCRBY", "k", "7"]), R::Int(7));
    let took = eventually(Duration::from_secs(5), || eu.ok(&["GET", "k"]) == bulk("7"));
    assert!(took.is_some(), "eu-west did not read 7 over the TLS links");
    let up = |c: &mut Conn| {
        match c.ok(&["CLUSTER.LINKS"]) {
        R::Array(links) => links
            .iter()
            .all(|l| matches!(l, R::Bulk(Some(b)) if String::from_utf8_lossy(b).ends_with("out=up in=1"))),
        other => panic!("CLUSTER.LINKS gave {other:?}"),
    }
    };
    assert!(eventually(Duration::from_secs(5), || up(&mut east) && up(&mut eu)).is_some());
    // A process posing as us-east in plaintext (any Hello: it never gets that far) is refused.
    let peer_port = cluster.node("eu-west")["peer_port"].as_u64().expect("port") as u16;
    let mut s = TcpStream::connect(("127.0.0.1", peer_port)).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let _ = s.write_all(&[
        0, 0, 0, 17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let eu_metrics = cluster.node("eu-west")["metrics_port"]
        .as_u64()
        .expect("port") as u16;
    let refused = eventually(Duration::from_secs(5), || {
        metric(
            eu_metrics,
            "converge_bad_inputs_total{kind=\"peer_tls_handshake\"}",
        )
        .is_some_and(|n| n >= 1)
    });
    assert!(
        refused.is_some(),
        "the plaintext impersonator was not refused"
    );
}

#[test]
fn cluster_up_insecure_peers_replicates_in_plaintext_and_says_so() {
    let cluster = Cluster::up_with(7, "us-east,eu-west", &["--insecure-peers"]);
    assert!(!cluster.dir.join("tls").exists());
    assert!(log_of(&cluster, "us-east").contains("INSECURE"));
    let mut east = Conn::open(cluster.port("us-east"));
    let mut eu = Conn::open(cluster.port("eu-west"));
    assert_eq!(east.ok(&["INCRBY", "k", "3"]), R::Int(3));
    let took = eventually(Duration::from_secs(5), || eu.ok(&["GET", "k"]) == bulk("3"));
    assert!(took.is_some(), "eu-west did not read 3");
}

/// The keys of a stopped node's store (`data_dir` in cluster.json) that start with `prefix`:
/// in its keyspace, or in a complete (not redacted) oplog entry.
fn stored_keys(cluster: &Cluster, region: &str, prefix: &str) -> Vec<String> {
    let dir = cluster.node(region)["data_dir"]
        .as_str()
        .expect("data_dir in cluster.json");
    let store = converge_node::store::Store::open(std::path::Path::new(dir)).expect("open store");
    let durable = store
        .load()
        .expect("load store")
        .expect("the node wrote its store");
    let keys = durable.keys.keys();
    let logged = durable.oplog.iter().filter(|e| !e.redacted).map(|e| &e.key);
    keys.chain(logged)
        .filter(|k| k.starts_with(prefix.as_bytes()))
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect()
}

#[test]
fn a_pinned_key_never_reaches_the_store_of_a_region_outside_its_pin() {
    // `eu:` keys may live in eu-west and apac only; us-east must never hold one, through
    // replication, anti-entropy after a cut, or a request.
    let cluster = Cluster::up_with(
        11,
        "us-east,eu-west,apac",
        &["--residency", "eu:=eu-west,apac"],
    );
    let mut east = Conn::open(cluster.port("us-east"));
    let mut eu = Conn::open(cluster.port("eu-west"));
    let mut apac = Conn::open(cluster.port("apac"));
    assert_eq!(eu.ok(&["SET", "eu:anna", "alice"]), R::Simple("OK".into()));
    assert_eq!(eu.ok(&["INCRBY", "eu:visits", "3"]), R::Int(3));
    assert_eq!(eu.ok(&["SADD", "eu:tags", "a", "b"]), R::Int(2));
    assert_eq!(eu.ok(&["SET", "plain", "1"]), R::Simple("OK".into()));
    // Refused, definitely, where the key may not live, and where it may if the level would take
    // it to every region.
    for args in [
        &["GET", "eu:anna"][..],
        &["SET", "eu:anna", "mallory"],
        &["INCRBY", "eu:visits", "1"],
    ] {
        assert!(
            matches!(east.ok(args), R::Err(e) if e.starts_with("RESIDENCY")),
            "{args:?} at us-east"
        );
    }
    assert!(matches!(
        eu.ok(&["WITH", "GLOBAL_QUORUM", "GET", "eu:anna"]),
        R::Err(e) if e.starts_with("RESIDENCY")
    ));
    // The pin's other region gets the data; the region outside gets the plain key.
    let took = eventually(Duration::from_secs(5), || {
        apac.ok(&["GET", "eu:anna"]) == bulk("alice") && east.ok(&["GET", "plain"]) == bulk("1")
    });
    assert!(took.is_some(), "replication did not reach apac and us-east");
    // A cut and a heal: anti-entropy repairs us-east, and must not ship it a pinned key.
    cluster.converge(&["cluster", "partition", "us-east"]);
    assert_eq!(apac.ok(&["SET", "eu:bob", "bob"]), R::Simple("OK".into()));
    assert_eq!(apac.ok(&["SADD", "eu:tags", "c"]), R::Int(1));
    assert_eq!(apac.ok(&["SET", "plain2", "2"]), R::Simple("OK".into()));
    std::thread::sleep(Duration::from_millis(500));
    cluster.converge(&["cluster", "heal"]);
    let took = eventually(Duration::from_secs(10), || {
        east.ok(&["GET", "plain2"]) == bulk("2") && eu.ok(&["GET", "eu:bob"]) == bulk("bob")
    });
    assert!(took.is_some(), "no convergence after the heal");
    // Let a few anti-entropy rounds (every second) run between every pair.
    std::thread::sleep(Duration::from_millis(2_500));
    assert!(matches!(east.ok(&["GET", "eu:bob"]), R::Err(e) if e.starts_with("RESIDENCY")));
    // Stop the nodes (not `cluster down`, which removes their data) so their stores can be
    // opened: SIGTERM, then wait for each process to be gone.
    for region in ["us-east", "eu-west", "apac"] {
        let pid = cluster.node(region)["pid"]
            .as_u64()
            .expect("pid")
            .to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let gone = eventually(Duration::from_secs(10), || {
            !Command::new("kill")
                .args(["-0", &pid])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        assert!(gone.is_some(), "{region} did not stop");
    }
    // The stores themselves, read from disk with the nodes stopped.
    assert_eq!(
        stored_keys(&cluster, "us-east", "eu:"),
        Vec::<String>::new(),
        "us-east stored pinned keys"
    );
    assert_eq!(stored_keys(&cluster, "us-east", "plain").len(), 2);
    for region in ["eu-west", "apac"] {
        let mut keys = stored_keys(&cluster, region, "eu:");
        keys.sort();
        keys.dedup();
        assert_eq!(
            keys,
            ["eu:anna", "eu:bob", "eu:tags", "eu:visits"],
            "{region} lacks pinned keys"
        );
    }
}
