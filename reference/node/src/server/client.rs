//! The client port: one task per RESP connection, and the `CLUSTER.LINKS` switch.
//!
//! A connection's task decodes commands ([`crate::resp`]), submits the requests of a pipeline
//! without waiting, then awaits the replies in order (each under `limits.request_timeout_ms`)
//! and writes them with one syscall. The protocol mapping itself (commands to requests, replies
//! to RESP) is the sans-IO [`Session`]; this module only moves bytes and waits.
//!
//! # Invariants
//! - **Replies in request order**: a connection's replies queue in its slots in the order of its
//!   commands and are written in that order, whatever order the replica answers in.
//! - **Bounded**: at most `limits.connections_max` connections are served (more are answered
//!   `-ERR max number of clients reached` and closed); a connection holds at most
//!   `limits.pipeline_max` requests in flight, [`READ_CHUNK`] plus
//!   `limits.resp_command_bytes_max` of unparsed input, and about [`READ_CHUNK`] of replies
//!   (more only for a single large reply).
//! - **Every submitted request is answered**: by the replica, or `-TIMEOUT` after
//!   `limits.request_timeout_ms`; a request the node has no room for is answered `-BUSY` at once.
//! - A barrier command ([`resp::is_barrier`]) runs only once every earlier reply is in hand.
//! - With client-port TLS (`client_tls`), a connection is served only after its TLS handshake,
//!   bounded by [`TLS_HANDSHAKE_TIMEOUT`]; one that fails is counted (`client_tls_handshake`)
//!   and closed, and no plaintext command is ever read.
//! - Malformed RESP is answered `-ERR Protocol error: ...`, counted, and closes the connection
//!   (RESP cannot be resynchronised).
//! - **Every command passes the [`Auth`] gate first**: before `AUTH` (with a client password)
//!   only `AUTH`, `HELLO` and `QUIT` run, and `CLUSTER.LINKS` runs only for the admin.
//! - **No connection holds a slot for free**: one that has not authenticated (with a client
//!   password) or sent a complete command (without) within
//!   `limits.client_first_command_timeout_ms` of its accept is closed, and so is one silent for
//!   `limits.client_idle_timeout_ms`; so idle connections cannot lock new clients out.
//! - **Partial commands share one budget**: the unparsed input of every connection together
//!   stays within `limits.partial_commands_bytes_max` (each connection's share is counted in
//!   `Counters::partial_bytes` while held, and given back when it parses or the connection
//!   ends); the connection whose read would exceed it is answered an error and closed.
//!
//! # Fault injection
//! `CLUSTER.LINKS CUT <id>...` cuts this node's links to those replicas (both directions: the
//! writer stops dialing and discards its outbox, the reader closes and refuses them) until
//! `CLUSTER.LINKS HEAL`. It is a switch for demos and tests (`converge cluster partition`) that
//! can split the cluster, so it runs only on a connection authenticated as `admin`, and not at
//! all without an admin password. Replication resumes after a heal by go-back-N retransmission
//! and anti-entropy.

use super::state::{Input, Node, WRITE_TIMEOUT};
use crate::resp::{self, Auth, Gate, Outcome, Pending, Resp, Session, Step};
use crate::shared::Waiter;
use crate::sync::{Arc, AtomicUsize, Ordering};
use converge_core::replica::{Reply, Request};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

/// Longest a submitter waits for room in the driver's queue before answering `-BUSY`.
const SUBMIT_WAIT: Duration = Duration::from_secs(1);
/// Bytes read from a client socket at once (redis-server's figure). A connection holds at most
/// this plus `limits.resp_command_bytes_max` of unparsed input, and `limits.pipeline_max`
/// requests in flight plus about this many bytes of replies (more only for a single large reply).
const READ_CHUNK: usize = 16 * 1024;

/// Longest a client connection may take to finish its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Accepts client connections for ever, one task each, refusing those over the limit; with
/// `tls`, each connection speaks TLS.
pub(super) async fn accept_clients(
    listener: TcpListener,
    node: Arc<Node>,
    tls: Option<TlsAcceptor>,
) {
    loop {
        let (mut stream, addr) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Typically EMFILE: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let c = &node.counters;
        if c.connections_open.load(Ordering::Relaxed) >= node.config.limits.connections_max {
            c.connections_refused.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    stream.write_all(b"-ERR max number of clients reached\r\n"),
                )
                .await;
            });
            continue;
        }
        c.connections_open.fetch_add(1, Ordering::Relaxed);
        c.connections_total.fetch_add(1, Ordering::Relaxed);
        let node = node.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            debug!(%addr, "client connected");
            match tls {
                None => {
                    let (rd, wr) = stream.into_split();
                    client(rd, wr, &node).await;
                }
                Some(tls) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                        Ok(Ok(s)) => {
                            let (rd, wr) = tokio::io::split(s);
                            client(rd, wr, &node).await;
                        }
                        failed => {
                            node.counters.bad_input("client_tls_handshake");
                            let why = failed.map_or_else(
                                |_| "timed out".to_string(),
                                |r| r.err().map(|e| e.to_string()).unwrap_or_default(),
                            );
                            debug!(%addr, reason = %why, "client TLS handshake failed");
                        }
                    }
                }
            }
            node.counters
                .connections_open
                .fetch_sub(1, Ordering::Relaxed);
            debug!(%addr, "client gone");
        });
    }
}

/// A reply in the connection's queue: ready, or waiting for the replica.
enum Slot {
    Ready(Resp),
    Wait(Waiter<Reply>, Pending),
}

/// Registers a waiter for `req` and queues it for the driver: the waiter, or the `-BUSY` reply
/// when the waiters are full or the driver's queue stays full for [`SUBMIT_WAIT`].
async fn submit(node: &Node, mut req: Request) -> Result<Waiter<Reply>, Resp> {
    let c = &node.counters;
    c.requests.fetch_add(1, Ordering::Relaxed);
    let Ok(waiter) = node.waiters.register() else {
        c.busy.fetch_add(1, Ordering::Relaxed);
        return Err(Resp::Error("BUSY too many requests waiting".into()));
    };
    req.id = waiter.id();
    match node
        .inbox
        .send_timeout(Input::Request(req), SUBMIT_WAIT)
        .await
    {
        Ok(()) => Ok(waiter),
        Err(_) => {
            c.busy.fetch_add(1, Ordering::Relaxed);
            Err(Resp::Error("BUSY the replica's queue is full".into()))
        }
    }
}

/// Awaits every queued slot in order, encoding the replies into `out`; multi-step commands run
/// to completion here.
async fn flush(node: &Node, session: &mut Session, slots: &mut VecDeque<Slot>, out: &mut Vec<u8>) {
    let timeout = Duration::from_millis(node.config.limits.request_timeout_ms);
    while let Some(slot) = slots.pop_front() {
        let (mut waiter, mut pending) = match slot {
            Slot::Ready(r) => {
                r.encode(out);
                continue;
            }
            Slot::Wait(w, p) => (w, p),
        };
        loop {
            let Ok(reply) = tokio::time::timeout(timeout, &mut waiter).await else {
                node.counters
                    .request_timeouts
                    .fetch_add(1, Ordering::Relaxed);
                Resp::Error(format!(
                    "TIMEOUT no reply from the replica within {} ms",
                    timeout.as_millis()
                ))
                .encode(out);
                break;
            };
            match session.reply(pending, reply) {
                Step::Submit(req, p) => match submit(node, req).await {
                    Ok(w) => {
                        waiter = w;
                        pending = p;
                    }
                    Err(r) => {
                        r.encode(out);
                        break;
                    }
                },
                Step::Reply(r) | Step::Close(r) => {
                    r.encode(out);
                    break;
                }
                Step::Nothing => break,
            }
        }
    }
}

/// Whether `cmd` is `CLUSTER.LINKS` (any case), which the node answers itself: it is about the
/// node's links, not the replica's data, so it never reaches the [`Session`].
fn is_admin(cmd: &[Vec<u8>]) -> bool {
    cmd.first()
        .is_some_and(|n| n.eq_ignore_ascii_case(b"CLUSTER.LINKS"))
}

/// `CLUSTER.LINKS [CUT <id>... | HEAL]`: see the module documentation.
fn admin_links(node: &Node, args: &[Vec<u8>]) -> Resp {
    let sub = args.first().map(|a| a.to_ascii_uppercase());
    match sub.as_deref() {
        None => Resp::Array(
            node.links
                .values()
                .map(|l| {
                    Resp::Bulk(
                        format!(
                            "{} {} {} out={} in={}",
                            l.spec.id,
                            l.spec.region,
                            if l.cut.load(Ordering::Relaxed) {
                                "cut"
                            } else {
                                "open"
                            },
                            if l.out_up.load(Ordering::Relaxed) {
                                "up"
                            } else {
                                "down"
                            },
                            l.in_up.load(Ordering::Relaxed),
                        )
                        .into_bytes(),
                    )
                })
                .collect(),
        ),
        Some(b"HEAL") => {
            for l in node.links.values() {
                l.cut.store(false, Ordering::Relaxed);
            }
            info!("links healed");
            Resp::Simple("OK")
        }
        Some(b"CUT") => {
            let mut ids = Vec::new();
            for a in &args[1..] {
                let id = std::str::from_utf8(a)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok());
                match id.and_then(|id| node.links.get(&id)) {
                    Some(l) => ids.push(l.clone()),
                    None => {
                        return Resp::err(format!(
                            "unknown peer id {:?}",
                            String::from_utf8_lossy(a)
                        ));
                    }
                }
            }
            for l in &ids {
                l.cut.store(true, Ordering::Relaxed);
            }
            info!(peers = ?ids.iter().map(|l| l.spec.id).collect::<Vec<_>>(), "links cut");
            Resp::Simple("OK")
        }
        _ => Resp::err("CLUSTER.LINKS takes no argument, CUT <id>... or HEAL"),
    }
}

/// This connection's share of the partial-command budget: the unparsed bytes it holds, counted
/// in the node's total while held and given back when dropped, however the connection ends.
struct Share<'a> {
    total: &'a AtomicUsize,
    held: usize,
}

impl Share<'_> {
    /// Takes `n` more bytes if the total stays within `max`; `false`, taking nothing, if not.
    fn grow(&mut self, n: usize, max: usize) -> bool {
        let before = self.total.fetch_add(n, Ordering::Relaxed);
        if before.saturating_add(n) > max {
            self.total.fetch_sub(n, Ordering::Relaxed);
            return false;
        }
        self.held += n;
        true
    }

    /// Holds `len` bytes now (at most what it held: parsing only ever gives bytes back).
    fn shrink_to(&mut self, len: usize) {
        let freed = self.held.saturating_sub(len);
        self.total.fetch_sub(freed, Ordering::Relaxed);
        self.held -= freed;
    }
}

impl Drop for Share<'_> {
    fn drop(&mut self) {
        self.total.fetch_sub(self.held, Ordering::Relaxed);
    }
}

/// Counts what the [`Auth`] gate decided.
fn count_auth(node: &Node, outcome: Option<Outcome>) {
    let c = &node.counters;
    let counter = match outcome {
        None => return,
        Some(Outcome::Authenticated) => &c.auth_ok,
        Some(Outcome::Failed) => &c.auth_failed,
        Some(Outcome::Refused) => &c.auth_refused,
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Serves one connection until the client closes it, a write fails or times out, `QUIT`, or
/// malformed input, too many failed `AUTH`s, a deadline (idle or first command), or the
/// partial-command budget.
async fn client(mut rd: impl AsyncRead + Unpin, mut wr: impl AsyncWrite + Unpin, node: &Node) {
    let l = &node.config.limits;
    let limits = l.resp();
    let pipeline_max = l.pipeline_max;
    let idle = Duration::from_millis(l.client_idle_timeout_ms);
    // Measured from the accept, not from the last byte, so dripping bytes does not extend it.
    let first_deadline = Instant::now() + Duration::from_millis(l.client_first_command_timeout_ms);
    let mut started = false;
    let mut auth = Auth::new(&node.config.passwords);
    let mut share = Share {
        total: &node.counters.partial_bytes,
        held: 0,
    };
    let mut session = Session::new(node.config.consistency);
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut out: Vec<u8> = Vec::new();
    let mut slots: VecDeque<Slot> = VecDeque::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        let wait = if started {
            idle
        } else {
            first_deadline
                .saturating_duration_since(Instant::now())
                .min(idle)
        };
        let n = match tokio::time::timeout(wait, rd.read(&mut chunk)).await {
            Ok(Ok(0) | Err(_)) => return,
            Ok(Ok(n)) => n,
            Err(_) => {
                let c = &node.counters;
                if started {
                    c.closed_idle.fetch_add(1, Ordering::Relaxed);
                    debug!("client idle; closing the connection");
                } else {
                    c.closed_first_command.fetch_add(1, Ordering::Relaxed);
                    debug!("client sent no first command in time; closing the connection");
                }
                return;
            }
        };
        if !share.grow(n, l.partial_commands_bytes_max) {
            node.counters.closed_budget.fetch_add(1, Ordering::Relaxed);
            warn!(
                held = share.held,
                "partial client commands over the node's budget; closing the connection"
            );
            let refusal = b"-ERR partial commands over the node's memory budget; closing\r\n";
            let _ = tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(refusal)).await;
            let _ = wr.shutdown().await;
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut pos = 0;
        let mut close = false;
        loop {
            match resp::decode(&buf[pos..], &limits) {
                Ok(Some((cmd, used))) => {
                    pos += used;
                    let barrier = resp::is_barrier(&cmd);
                    if barrier {
                        flush(node, &mut session, &mut slots, &mut out).await;
                    }
                    let (gate, outcome) = auth.gate(&node.config.passwords, &cmd);
                    count_auth(node, outcome);
                    let step = match gate {
                        Gate::Pass if is_admin(&cmd) => Step::Reply(admin_links(node, &cmd[1..])),
                        Gate::Pass => session.command(&cmd),
                        Gate::Reply(r) => Step::Reply(r),
                        Gate::Close(r) => {
                            node.counters.closed_auth.fetch_add(1, Ordering::Relaxed);
                            warn!("too many failed AUTH attempts; closing the connection");
                            Step::Close(r)
                        }
                    };
                    started = auth.is_authenticated();
                    match step {
                        Step::Reply(r) => slots.push_back(Slot::Ready(r)),
                        Step::Submit(req, p) => match submit(node, req).await {
                            Ok(w) => slots.push_back(Slot::Wait(w, p)),
                            Err(r) => slots.push_back(Slot::Ready(r)),
                        },
                        Step::Close(r) => {
                            slots.push_back(Slot::Ready(r));
                            close = true;
                            break;
                        }
                        Step::Nothing => {}
                    }
                    if barrier || slots.len() >= pipeline_max {
                        flush(node, &mut session, &mut slots, &mut out).await;
                    }
                    // A deep pipeline is answered in parts, so the replies held stay bounded.
                    if slots.is_empty() && out.len() >= READ_CHUNK {
                        let w =
                            tokio::time::timeout(WRITE_TIMEOUT, write_flushed(&mut wr, &out)).await;
                        if !matches!(w, Ok(Ok(()))) {
                            return;
                        }
                        out.clear();
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    node.counters.bad_input(e.kind());
                    warn!(error = %e, "malformed RESP; closing the connection");
                    slots.push_back(Slot::Ready(Resp::err(format!("Protocol error: {e}"))));
                    close = true;
                    break;
                }
            }
        }
        buf.drain(..pos);
        share.shrink_to(buf.len());
        // A large command parsed leaves a large allocation behind; give it back, so what a
        // connection holds follows what it has unparsed.
        if buf.capacity() > 4 * READ_CHUNK && buf.len() <= READ_CHUNK {
            buf.shrink_to(READ_CHUNK);
        }
        flush(node, &mut session, &mut slots, &mut out).await;
        if !out.is_empty() {
            let w = tokio::time::timeout(WRITE_TIMEOUT, write_flushed(&mut wr, &out)).await;
            if !matches!(w, Ok(Ok(()))) {
                return;
            }
            out.clear();
        }
        if close {
            let _ = wr.shutdown().await;
            return;
        }
    }
}

/// Writes all of `bytes` and flushes: a TLS stream may keep the tail of a write's ciphertext
/// until flushed (a plain socket's flush does nothing).
async fn write_flushed(wr: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> std::io::Result<()> {
    wr.write_all(bytes).await?;
    wr.flush().await
}

#[cfg(test)]
mod tests {
    use super::super::state::testing;
    use super::*;
    use converge_core::replica::{Consistency, Done, Op, Scalar, SessionToken, Value};
    use tokio::sync::mpsc;

    fn args(a: &[&str]) -> Vec<Vec<u8>> {
        a.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    fn done(id: u64, value: Value) -> Reply {
        Reply {
            id,
            result: Ok(Done {
                value,
                token: SessionToken::new(),
            }),
        }
    }

    /// The lines `CLUSTER.LINKS` lists.
    fn listed(node: &Node) -> Vec<String> {
        match admin_links(node, &[]) {
            Resp::Array(items) => items
                .into_iter()
                .map(|i| match i {
                    Resp::Bulk(b) => String::from_utf8(b).unwrap(),
                    other => panic!("expected a bulk, got {other:?}"),
                })
                .collect(),
            other => panic!("expected an array, got {other:?}"),
        }
    }

    #[test]
    fn only_cluster_links_is_an_admin_command() {
        assert!(is_admin(&args(&["CLUSTER.LINKS"])));
        assert!(is_admin(&args(&["cluster.links", "heal"])));
        assert!(!is_admin(&args(&["CLUSTER"])));
        assert!(!is_admin(&args(&["GET", "CLUSTER.LINKS"])));
        assert!(!is_admin(&[]));
    }

    #[test]
    fn cluster_links_lists_cuts_and_heals() {
        let (node, _rx) = testing::node(testing::config());
        assert_eq!(
            listed(&node),
            ["1 eu-west open out=down in=0", "2 apac open out=down in=0"]
        );
        assert_eq!(admin_links(&node, &args(&["cut", "2"])), Resp::Simple("OK"));
        node.links[&1].out_up.store(true, Ordering::Relaxed);
        node.links[&1].in_up.store(2, Ordering::Relaxed);
        assert_eq!(
            listed(&node),
            ["1 eu-west open out=up in=2", "2 apac cut out=down in=0"]
        );
        // One unknown id refuses the whole command: nothing is cut.
        assert_eq!(
            admin_links(&node, &args(&["CUT", "1", "99"])),
            Resp::Error("ERR unknown peer id \"99\"".into())
        );
        assert!(!node.links[&1].cut.load(Ordering::Relaxed));
        assert_eq!(admin_links(&node, &args(&["HEAL"])), Resp::Simple("OK"));
        assert!(node.links.values().all(|l| !l.cut.load(Ordering::Relaxed)));
        assert_eq!(
            admin_links(&node, &args(&["MEND"])),
            Resp::Error("ERR CLUSTER.LINKS takes no argument, CUT <id>... or HEAL".into())
        );
    }

    fn get(key: &str) -> Request {
        Request {
            id: 0,
            key: key.as_bytes().into(),
            op: Op::Get,
            consistency: Consistency::LocalOne,
            token: None,
        }
    }

    #[tokio::test]
    async fn submit_queues_the_request_under_its_waiters_id() {
        let (node, mut rx) = testing::node(testing::config());
        let waiter = submit(&node, get("k")).await.unwrap();
        let Some(Input::Request(req)) = rx.recv().await else {
            panic!("expected the request in the driver's inbox");
        };
        assert_eq!(req.id, waiter.id());
        assert_eq!(node.counters.requests.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn submit_answers_busy_when_the_waiters_or_the_queue_are_full() {
        let mut config = testing::config();
        config.limits.waiters_max = 1;
        let (node, _rx) = testing::node(config);
        let _held = submit(&node, get("a")).await.unwrap();
        assert_eq!(
            submit(&node, get("b")).await.err(),
            Some(Resp::Error("BUSY too many requests waiting".into()))
        );
        let mut config = testing::config();
        config.limits.inbox_max = 1;
        let (node, _rx) = testing::node(config);
        let _queued = submit(&node, get("a")).await.unwrap();
        // The driver never reads: the second request waits SUBMIT_WAIT for room, then gives up.
        assert_eq!(
            submit(&node, get("b")).await.err(),
            Some(Resp::Error("BUSY the replica's queue is full".into()))
        );
        assert_eq!(node.counters.busy.load(Ordering::Relaxed), 1);
        assert_eq!(node.counters.requests.load(Ordering::Relaxed), 2);
        // A refused request leaves no waiter behind.
        assert_eq!(node.waiters.len(), 1);
    }

    /// A stand-in driver: answers every request with `answer(request)`.
    fn fake_driver(node: Arc<Node>, mut rx: mpsc::Receiver<Input>, answer: fn(&Request) -> Value) {
        tokio::spawn(async move {
            while let Some(input) = rx.recv().await {
                if let Input::Request(req) = input {
                    node.waiters.complete(req.id, done(req.id, answer(&req)));
                }
            }
        });
    }

    /// Runs `commands` through a session the way a connection does (submitting each, flushing
    /// at the end) and returns the bytes it would write.
    async fn run(node: &Node, commands: &[&[&str]]) -> Vec<u8> {
        let mut session = Session::new(Consistency::LocalOne);
        let mut slots = VecDeque::new();
        for cmd in commands {
            match session.command(&args(cmd)) {
                Step::Reply(r) => slots.push_back(Slot::Ready(r)),
                Step::Submit(req, p) => match submit(node, req).await {
                    Ok(w) => slots.push_back(Slot::Wait(w, p)),
                    Err(r) => slots.push_back(Slot::Ready(r)),
                },
                other => panic!("{cmd:?} gave {other:?}"),
            }
        }
        let mut out = Vec::new();
        flush(node, &mut session, &mut slots, &mut out).await;
        assert!(slots.is_empty());
        out
    }

    #[tokio::test]
    async fn flush_writes_the_replies_in_order_and_runs_multi_step_commands() {
        let (node, rx) = testing::node(testing::config());
        let node = Arc::new(node);
        fake_driver(node.clone(), rx, |req| match &req.op {
            Op::Get => Value::Register(Scalar::bytes(&*req.key)),
            Op::SetAdd(_) => Value::Changed(true),
            _ => Value::Written,
        });
        let out = run(
            &node,
            &[&["GET", "k"], &["PING"], &["SADD", "s", "a", "b", "c"]],
        )
        .await;
        assert_eq!(out, b"$1\r\nk\r\n+PONG\r\n:3\r\n");
        // One request per member of SADD.
        assert_eq!(node.counters.requests.load(Ordering::Relaxed), 4);
    }

    #[tokio::test]
    async fn a_request_the_replica_does_not_answer_times_out() {
        let mut config = testing::config();
        config.limits.request_timeout_ms = 20;
        let (node, _rx) = testing::node(config);
        let out = run(&node, &[&["GET", "k"], &["PING"]]).await;
        assert_eq!(
            out,
            b"-TIMEOUT no reply from the replica within 20 ms\r\n+PONG\r\n"
        );
        assert_eq!(node.counters.request_timeouts.load(Ordering::Relaxed), 1);
    }
}
