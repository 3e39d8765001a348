//! The client port hardened, over real sockets against a one-region node run in process: `AUTH`
//! and the admin-only `CLUSTER.LINKS`, the idle and first-command deadlines, the budget of
//! partial commands shared by every connection, and an `INCRBY` past `i64::MAX` refused with no
//! effect. Deadlines are configured short, so each test runs in about a second.

use converge_node::config::{Flags, Limits, NodeConfig};
use converge_node::resp::{Passwords, Secret};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A free loopback port (bound, read, released: the node binds it right after).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Ports of a node started in the background: RESP and /metrics.
struct Ports {
    client: u16,
    metrics: u16,
}

/// Starts a one-region node with `limits` and `passwords`, waits until it accepts connections.
/// Its thread lives until the test process ends.
fn start(limits: Limits, passwords: Passwords) -> Ports {
    let (client, peer, metrics) = (free_port(), free_port(), free_port());
    let mut config = NodeConfig::resolve(Flags {
        id: Some(0),
        region: Some("us-east".into()),
        client_listen: Some(([127, 0, 0, 1], client).into()),
        peer_listen: Some(([127, 0, 0, 1], peer).into()),
        metrics_listen: Some(([127, 0, 0, 1], metrics).into()),
        // One region: no peer links to secure.
        insecure_peers: true,
        ..Flags::default()
    })
    .expect("valid flags");
    config.limits = limits;
    config.passwords = passwords;
    std::thread::spawn(move || converge_node::server::run_blocking(config));
    let deadline = Instant::now() + IO_TIMEOUT;
    while TcpStream::connect(("127.0.0.1", metrics)).is_err() {
        assert!(Instant::now() < deadline, "the node did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ports { client, metrics }
}

fn passwords(client: Option<&str>, admin: Option<&str>) -> Passwords {
    Passwords {
        client: client.and_then(Secret::new),
        admin: admin.and_then(Secret::new),
    }
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

    fn send(&mut self, args: &[&str]) {
        let mut req = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            req.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        self.w.write_all(&req).expect("send");
    }

    /// One reply, as its first line with the type marker (a bulk as `$` and its text, an
    /// array as `*` and its items joined by `|`).
    fn read(&mut self) -> String {
        let mut line = String::new();
        let n = self.r.read_line(&mut line).expect("read a reply");
        assert!(n > 0, "the node closed the connection");
        let line = line.trim_end().to_string();
        match line.split_at(1) {
            ("$", n) if n.starts_with('-') => "$nil".into(),
            ("$", n) => {
                let mut b = vec![0; n.parse::<usize>().expect("a length") + 2];
                self.r.read_exact(&mut b).expect("bulk");
                b.truncate(b.len() - 2);
                format!("${}", String::from_utf8_lossy(&b))
            }
            ("*", n) => {
                let items: Vec<String> = (0..n.parse::<usize>().expect("a count"))
                    .map(|_| self.read())
                    .collect();
                format!("*{}", items.join("|"))
            }
            _ => line,
        }
    }

    fn cmd(&mut self, args: &[&str]) -> String {
        self.send(args);
        self.read()
    }

    /// Whether the node closed the connection (EOF or reset) within [`IO_TIMEOUT`].
    fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        match self.r.read_to_end(&mut rest) {
            Ok(_) => true,
            Err(e) => {
                e.kind() != std::io::ErrorKind::WouldBlock
                    && e.kind() != std::io::ErrorKind::TimedOut
            }
        }
    }
}

/// The value of the series `series` (name and labels, exactly) on `/metrics`.
fn metric(port: u16, series: &str) -> u64 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("metrics");
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("response");
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

#[test]
fn before_auth_nothing_runs_and_cluster_links_needs_the_admin() {
    let ports = start(Limits::default(), passwords(Some("pw"), Some("root")));
    let mut c = Conn::open(ports.client);
    assert_eq!(
        c.cmd(&["SET", "k", "v"]),
        "-NOAUTH Authentication required."
    );
    assert_eq!(
        c.cmd(&["CLUSTER.LINKS", "HEAL"]),
        "-NOAUTH Authentication required."
    );
    assert_eq!(c.cmd(&["PING"]), "-NOAUTH Authentication required.");
    assert_eq!(
        c.cmd(&["AUTH", "guess"]),
        "-WRONGPASS invalid username-password pair or user is disabled."
    );
    assert_eq!(c.cmd(&["AUTH", "pw"]), "+OK");
    // The SET refused before AUTH had no effect.
    assert_eq!(c.cmd(&["GET", "k"]), "$nil");
    assert_eq!(c.cmd(&["SET", "k", "v"]), "+OK");
    assert!(c.cmd(&["CLUSTER.LINKS", "HEAL"]).starts_with("-NOPERM"));
    assert_eq!(c.cmd(&["AUTH", "admin", "root"]), "+OK");
    assert_eq!(c.cmd(&["CLUSTER.LINKS", "HEAL"]), "+OK");
    assert_eq!(c.cmd(&["GET", "k"]), "$v");

    // Guessing costs the connection after a few attempts.
    let mut g = Conn::open(ports.client);
    for _ in 1..converge_node::resp::AUTH_FAILURES_MAX {
        assert!(g.cmd(&["AUTH", "admin", "guess"]).starts_with("-WRONGPASS"));
    }
    assert!(g.cmd(&["AUTH", "admin", "guess"]).starts_with("-WRONGPASS"));
    assert!(
        g.closed(),
        "the connection stays open after too many failed AUTHs"
    );
    assert_eq!(
        metric(
            ports.metrics,
            "converge_client_closed_total{reason=\"auth_failures\"}"
        ),
        1
    );
    assert_eq!(
        metric(
            ports.metrics,
            "converge_client_auth_total{result=\"failed\"}"
        ),
        6
    );
    assert_eq!(
        metric(
            ports.metrics,
            "converge_client_auth_total{result=\"refused\"}"
        ),
        4
    );
}

#[test]
fn without_an_admin_password_cluster_links_is_disabled() {
    let ports = start(Limits::default(), Passwords::default());
    let mut c = Conn::open(ports.client);
    // No client password: data commands run at once.
    assert_eq!(c.cmd(&["PING"]), "+PONG");
    assert_eq!(
        c.cmd(&["CLUSTER.LINKS", "CUT", "1"]),
        "-ERR CLUSTER.LINKS is disabled: the node has no admin password configured"
    );
    assert_eq!(c.cmd(&["CLUSTER.LINKS"]).chars().next(), Some('-'));
    assert!(
        c.cmd(&["AUTH", "admin", "anything"])
            .starts_with("-WRONGPASS")
    );
}

#[test]
fn idle_and_silent_connections_do_not_lock_new_clients_out() {
    let limits = Limits {
        connections_max: 4,
        client_idle_timeout_ms: 400,
        client_first_command_timeout_ms: 300,
        ..Limits::default()
    };
    let ports = start(limits, Passwords::default());
    // Every slot taken: two connections that say nothing, one that drips a partial command a
    // byte at a time (which must not extend its first-command deadline), one that goes idle
    // after a command.
    let silent: Vec<Conn> = (0..2).map(|_| Conn::open(ports.client)).collect();
    let mut drip = Conn::open(ports.client);
    let mut idle = Conn::open(ports.client);
    assert_eq!(idle.cmd(&["PING"]), "+PONG");
    let dripping = std::thread::spawn(move || {
        let partial = b"*1\r\n$100\r\n".iter().chain(std::iter::repeat(&b'x'));
        for b in partial.take(40) {
            if drip.w.write_all(&[*b]).is_err() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        drip.closed()
    });
    // While they hold the slots, a new client is refused.
    let mut refused = Conn::open(ports.client);
    assert_eq!(refused.read(), "-ERR max number of clients reached");
    std::thread::sleep(Duration::from_millis(700));
    let mut fresh = Conn::open(ports.client);
    assert_eq!(fresh.cmd(&["PING"]), "+PONG");
    assert!(
        dripping.join().expect("drip"),
        "the dripping connection was never closed"
    );
    for mut c in silent {
        assert!(c.closed());
    }
    assert!(idle.closed());
    assert_eq!(
        metric(
            ports.metrics,
            "converge_client_closed_total{reason=\"first_command\"}"
        ),
        3
    );
    assert_eq!(
        metric(
            ports.metrics,
            "converge_client_closed_total{reason=\"idle\"}"
        ),
        1
    );
}

#[test]
fn partial_commands_share_one_memory_budget() {
    let limits = Limits {
        resp_bulk_bytes_max: 1 << 20,
        resp_command_bytes_max: 1 << 20,
        partial_commands_bytes_max: 1 << 20,
        ..Limits::default()
    };
    let ports = start(limits, Passwords::default());
    let value = vec![b'x'; 1_000_000];
    let header = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n", value.len());
    let held = 600_000;
    // The first client's partial command fits the budget and is held.
    let mut first = Conn::open(ports.client);
    first.w.write_all(header.as_bytes()).expect("header");
    first.w.write_all(&value[..held]).expect("part");
    let deadline = Instant::now() + IO_TIMEOUT;
    while metric(ports.metrics, "converge_partial_command_bytes") < held as u64 {
        assert!(
            Instant::now() < deadline,
            "the node never held the partial command"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The second one's would take the total beyond it: that connection is closed, counted.
    let mut second = Conn::open(ports.client);
    second.w.write_all(header.as_bytes()).expect("header");
    let _ = second.w.write_all(&value[..held]);
    assert!(second.closed(), "the connection over the budget stays open");
    assert_eq!(
        metric(
            ports.metrics,
            "converge_client_closed_total{reason=\"partial_budget\"}"
        ),
        1
    );
    // New clients still get in, and the first client's command completes.
    assert_eq!(Conn::open(ports.client).cmd(&["PING"]), "+PONG");
    first.w.write_all(&value[held..]).expect("rest");
    first.w.write_all(b"\r\n").expect("end");
    assert_eq!(first.read(), "+OK");
    // What was held is given back once parsed, and by the closed connection.
    assert_eq!(metric(ports.metrics, "converge_partial_command_bytes"), 0);
}

#[test]
fn an_increment_past_the_64_bit_range_is_refused_and_changes_nothing() {
    let ports = start(Limits::default(), Passwords::default());
    let mut c = Conn::open(ports.client);
    let max = i64::MAX.to_string();
    assert_eq!(c.cmd(&["INCRBY", "n", &max]), format!(":{max}"));
    assert_eq!(
        c.cmd(&["INCRBY", "n", "1"]),
        "-ERR increment or decrement would overflow"
    );
    assert_eq!(
        c.cmd(&["INCR", "n"]),
        "-ERR increment or decrement would overflow"
    );
    // A retry is refused the same way and nothing was applied.
    assert_eq!(
        c.cmd(&["INCRBY", "n", "1"]),
        "-ERR increment or decrement would overflow"
    );
    assert_eq!(c.cmd(&["GET", "n"]), format!("${max}"));
    assert_eq!(c.cmd(&["DECRBY", "n", "1"]), format!(":{}", i64::MAX - 1));
}
