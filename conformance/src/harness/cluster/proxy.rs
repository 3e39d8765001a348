//! The network between a deployed system's nodes, owned by the harness: one listening proxy per
//! directed link and proxied port, and every byte that crosses a link handed to the harness as a
//! peer payload ([`NodeEvent::Peer`]), which routes it through its seeded network like any
//! in-process message and hands it back to [`Proxies::deliver`].
//!
//! So the harness's network decides, for TCP too, and the proxies keep TCP's contract on top of
//! it, as a kernel would over a lossy path:
//! - a chunk the network drops (loss, or a cut link) is retransmitted after a timeout that
//!   doubles from [`RTO_MS`] ([`Proxies::dropped`]): a partition *stalls* a connection, which
//!   resumes when the link heals; after [`RETRIES_MAX`] losses of one chunk the connection is
//!   *reset* (both sides see it close and must reconnect), as when TCP gives up — so a short
//!   partition stalls and a long one resets;
//! - a chunk that arrives early (reordering) waits in a bounded buffer for the ones before it;
//! - a duplicate is dropped by its sequence number;
//! - latency delays chunks.
//!
//! The history records each chunk as a delivery, so the checkers' black-box causality and the
//! replication cadence see real traffic.
//!
//! # Payload
//! `conn (u64 BE) | seq (u64 BE) | tag (u8) | attempt (u8) | data`, with tags `OPEN` (the dialer
//! connected to the proxy: connect to the target; a SYN), `DATA` and `CLOSE` (the writer shut
//! its side; a FIN). Sequence numbers count per connection and direction from 0, `OPEN` being
//! the dialer's 0; `attempt` counts retransmissions.
//!
//! # Invariants
//! - Bytes reach a node in the order they were sent, or the connection is reset: never a gap,
//!   never a repeat.
//! - Every socket and thread of a connection ends once the connection is closed or reset, and
//!   [`Proxies::shutdown`] closes every listener and connection.
//! - Nothing here blocks the harness: writes go through bounded queues to writer threads; a
//!   full queue or reorder buffer resets the connection.

use super::super::backend::NodeEvent;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

const OPEN: u8 = 0;
const DATA: u8 = 1;
const CLOSE: u8 = 2;
const HEADER: usize = 18;
/// The first retransmission timeout, ms (Linux's minimum RTO).
pub const RTO_MS: u64 = 200;
/// Losses of one chunk after which its connection is reset rather than retried: with
/// [`RTO_MS`] doubling, a chunk is retried for about 3 s (200 + 400 + 800 + 1600 ms).
pub const RETRIES_MAX: u8 = 4;
/// Largest chunk read from a socket at once.
const CHUNK: usize = 64 << 10;
/// Chunks queued for one side of one connection before it is reset as congested.
const QUEUE_CHUNKS: usize = 4_096;
/// Bytes queued for one side of one connection (delivered by the harness, not yet written to a
/// node that is slow to read: a paused one), or waiting early for their predecessors in one
/// direction, before the connection is reset as congested. What the proxies hold is at most
/// this per direction of each open connection, [`CONNECTIONS_MAX`] connections at most.
const QUEUE_BYTES: usize = 16 << 20;
/// Connections open at once through all proxies; a dialer beyond it is refused at accept.
const CONNECTIONS_MAX: usize = 4_096;
/// How long the target of an `OPEN` may take to accept.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How often an idle accept loop looks at the stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(20);

/// What a writer thread is told.
enum Write_ {
    Data(Vec<u8>),
    Close,
}

/// One side of a connection: its socket (for a reset) and its writer's queue.
struct Side {
    socket: Option<TcpStream>,
    queue: Option<SyncSender<Write_>>,
    /// Bytes in `queue`, not yet written (the writer subtracts what it wrote).
    queued: Arc<AtomicUsize>,
}

struct Conn {
    /// The dialer (the node that connected to the proxy) and the target.
    dialer: usize,
    target: usize,
    /// The target's real address.
    target_addr: SocketAddr,
    /// The next sequence number expected, per direction: dialer → target, target → dialer.
    expect: [u64; 2],
    /// Chunks that arrived before the one expected, per direction, by sequence number.
    early: [BTreeMap<u64, (u8, Vec<u8>)>; 2],
    /// Their bytes, per direction.
    early_bytes: [usize; 2],
    dialer_side: Side,
    target_side: Side,
}

#[derive(Default)]
struct Table {
    conns: BTreeMap<u64, Conn>,
}

/// Counters of what the proxies did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProxyStats {
    /// Connections accepted from dialers.
    pub accepted: u64,
    /// Connections reset by the harness (a lost or overtaken chunk, a cut link, congestion).
    pub reset: u64,
    /// Bytes delivered.
    pub bytes: u64,
}

/// Every proxy of a run.
pub struct Proxies {
    table: Arc<Mutex<Table>>,
    stop: Arc<AtomicBool>,
    next_conn: Arc<AtomicU64>,
    listeners: Vec<JoinHandle<()>>,
    events: SyncSender<NodeEvent>,
    stats: Arc<Mutex<ProxyStats>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A thread that panicked while holding the table left it consistent (every change is one
    // insert or remove), so a poisoned lock is used as it is.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn payload(conn: u64, seq: u64, tag: u8, data: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(HEADER + data.len());
    p.extend_from_slice(&conn.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.push(tag);
    p.push(0);
    p.extend_from_slice(data);
    p
}

/// A payload's connection, sequence number, tag, attempt and data.
fn parse(p: &[u8]) -> Option<(u64, u64, u8, u8, &[u8])> {
    if p.len() < HEADER {
        return None;
    }
    let conn = u64::from_be_bytes(p[0..8].try_into().ok()?);
    let seq = u64::from_be_bytes(p[8..16].try_into().ok()?);
    Some((conn, seq, p[16], p[17], &p[HEADER..]))
}

impl Proxies {
    /// No proxies yet; events go to `events`.
    pub fn new(events: SyncSender<NodeEvent>) -> Proxies {
        Proxies {
            table: Arc::default(),
            stop: Arc::new(AtomicBool::new(false)),
            next_conn: Arc::new(AtomicU64::new(1)),
            listeners: Vec::new(),
            events,
            stats: Arc::default(),
        }
    }

    /// What the proxies did so far.
    pub fn stats(&self) -> ProxyStats {
        lock(&self.stats).clone()
    }

    /// Opens the proxy for link `dialer → target`, forwarding to `target_addr`; returns the
    /// port it listens on (loopback).
    pub fn listen(
        &mut self,
        dialer: usize,
        target: usize,
        target_addr: SocketAddr,
    ) -> std::io::Result<u16> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let table = Arc::clone(&self.table);
        let stop = Arc::clone(&self.stop);
        let next = Arc::clone(&self.next_conn);
        let events = self.events.clone();
        let stats = Arc::clone(&self.stats);
        let handle = thread::Builder::new()
            .name(format!("proxy-{dialer}-{target}"))
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((socket, _)) => {
                            let _ = socket.set_nonblocking(false);
                            let _ = socket.set_nodelay(true);
                            if lock(&table).conns.len() >= CONNECTIONS_MAX {
                                let _ = socket.shutdown(Shutdown::Both);
                                continue;
                            }
                            let conn = next.fetch_add(1, Ordering::Relaxed);
                            accepted(&table, &events, conn, dialer, target, target_addr, socket);
                            lock(&stats).accepted += 1;
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            thread::sleep(ACCEPT_POLL);
                        }
                        Err(_) => thread::sleep(ACCEPT_POLL),
                    }
                }
            })?;
        self.listeners.push(handle);
        Ok(port)
    }

    /// Hands a payload the harness routed to node `to` to its connection: in order, once.
    pub fn deliver(&self, to: usize, payload: &[u8]) {
        let Some((conn, seq, tag, _, data)) = parse(payload) else {
            return;
        };
        let mut table = lock(&self.table);
        let Some(c) = table.conns.get_mut(&conn) else {
            // A chunk of a connection already closed or reset.
            return;
        };
        let dir = usize::from(to != c.target);
        if seq < c.expect[dir] || c.early[dir].contains_key(&seq) {
            // A duplicate: TCP drops it too.
            return;
        }
        if seq > c.expect[dir] {
            // Early: it waits for the chunks before it, which are in flight or retransmitted.
            if c.early[dir].len() >= QUEUE_CHUNKS || c.early_bytes[dir] + data.len() > QUEUE_BYTES {
                drop(table);
                return self.reset(conn);
            }
            c.early_bytes[dir] += data.len();
            c.early[dir].insert(seq, (tag, data.to_vec()));
            return;
        }
        let mut next = Some((tag, data.to_vec()));
        let mut ok = true;
        while let Some((tag, data)) = next.take() {
            c.expect[dir] += 1;
            ok = self.apply(conn, c, dir, tag, data);
            if !ok {
                break;
            }
            next = c.early[dir].remove(&c.expect[dir]);
            if let Some((_, d)) = &next {
                c.early_bytes[dir] -= d.len();
            }
        }
        drop(table);
        if !ok {
            self.reset(conn);
        }
    }

    /// Applies one in-order chunk of direction `dir` to connection `c`; false if the
    /// connection must be reset.
    fn apply(&self, conn: u64, c: &mut Conn, dir: usize, tag: u8, data: Vec<u8>) -> bool {
        match tag {
            OPEN if dir == 0 => {
                let (tx, rx) = sync_channel(QUEUE_CHUNKS);
                c.target_side.queue = Some(tx);
                spawn_target(
                    Arc::clone(&self.table),
                    self.events.clone(),
                    conn,
                    c.target,
                    c.dialer,
                    c.target_addr,
                    (rx, Arc::clone(&c.target_side.queued)),
                );
                true
            }
            DATA | CLOSE => {
                let side = if dir == 0 {
                    &c.target_side
                } else {
                    &c.dialer_side
                };
                let len = data.len();
                if side.queued.load(Ordering::Relaxed) + len > QUEUE_BYTES {
                    return false;
                }
                let msg = if tag == DATA {
                    lock(&self.stats).bytes += len as u64;
                    side.queued.fetch_add(len, Ordering::Relaxed);
                    Write_::Data(data)
                } else {
                    Write_::Close
                };
                side.queue.as_ref().is_some_and(|q| match q.try_send(msg) {
                    Ok(()) => true,
                    Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
                })
            }
            _ => false,
        }
    }

    /// The harness dropped a payload (a cut link, a lost chunk): what to send again and after
    /// how many ms, as TCP's retransmission would; or `None` when the connection is gone or has
    /// now been reset (its chunk lost [`RETRIES_MAX`] times).
    pub fn dropped(&self, payload: Vec<u8>) -> Option<(u64, Vec<u8>)> {
        let (conn, _, _, attempt, _) = parse(&payload)?;
        if !lock(&self.table).conns.contains_key(&conn) {
            return None;
        }
        if attempt >= RETRIES_MAX {
            self.reset(conn);
            return None;
        }
        let mut payload = payload;
        payload[17] = attempt + 1;
        Some((RTO_MS << attempt, payload))
    }

    fn reset(&self, conn: u64) {
        if reset(&self.table, conn) {
            lock(&self.stats).reset += 1;
        }
    }

    /// Closes every listener and connection, and waits for the listeners' threads.
    pub fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.listeners.drain(..) {
            let _ = h.join();
        }
        let conns: Vec<u64> = lock(&self.table).conns.keys().copied().collect();
        for conn in conns {
            reset(&self.table, conn);
        }
    }
}

impl Drop for Proxies {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Removes `conn` and shuts both its sockets; its threads then end. Whether it was open.
fn reset(table: &Mutex<Table>, conn: u64) -> bool {
    let Some(c) = lock(table).conns.remove(&conn) else {
        return false;
    };
    for side in [c.dialer_side, c.target_side] {
        if let Some(s) = side.socket {
            let _ = s.shutdown(Shutdown::Both);
        }
        // Dropping the queue ends its writer.
    }
    true
}

/// A dialer connected to the proxy of `dialer → target`: record it, announce it, read it.
fn accepted(
    table: &Arc<Mutex<Table>>,
    events: &SyncSender<NodeEvent>,
    conn: u64,
    dialer: usize,
    target: usize,
    target_addr: SocketAddr,
    socket: TcpStream,
) {
    let (Ok(reader), Ok(writer)) = (socket.try_clone(), socket.try_clone()) else {
        return;
    };
    let (tx, rx) = sync_channel(QUEUE_CHUNKS);
    let queued = Arc::new(AtomicUsize::new(0));
    lock(table).conns.insert(
        conn,
        Conn {
            dialer,
            target,
            target_addr,
            expect: [0, 0],
            early: [BTreeMap::new(), BTreeMap::new()],
            early_bytes: [0, 0],
            dialer_side: Side {
                socket: Some(socket),
                queue: Some(tx),
                queued: Arc::clone(&queued),
            },
            target_side: Side {
                socket: None,
                queue: None,
                queued: Arc::default(),
            },
        },
    );
    let _ = events.send(NodeEvent::Peer {
        node: dialer,
        to: target,
        payload: payload(conn, 0, OPEN, &[]),
    });
    spawn_writer(Arc::clone(table), conn, writer, (rx, queued));
    spawn_reader(
        Arc::clone(table),
        events.clone(),
        conn,
        dialer,
        target,
        reader,
        1,
    );
}

/// The target side: connects, then writes what arrives and reads what the target sends back.
fn spawn_target(
    table: Arc<Mutex<Table>>,
    events: SyncSender<NodeEvent>,
    conn: u64,
    target: usize,
    dialer: usize,
    addr: SocketAddr,
    rx: Queued,
) {
    let _ = thread::Builder::new()
        .name(format!("proxy-conn-{conn}"))
        .spawn(move || {
            let socket = match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(s) => s,
                Err(_) => {
                    // The target is down: the dialer's connection ends, as a refused one would.
                    reset(&table, conn);
                    return;
                }
            };
            let _ = socket.set_nodelay(true);
            let (Ok(reader), Ok(keep)) = (socket.try_clone(), socket.try_clone()) else {
                reset(&table, conn);
                return;
            };
            {
                let mut t = lock(&table);
                match t.conns.get_mut(&conn) {
                    Some(c) => c.target_side.socket = Some(keep),
                    None => {
                        // Reset while connecting.
                        let _ = socket.shutdown(Shutdown::Both);
                        return;
                    }
                }
            }
            spawn_reader(Arc::clone(&table), events, conn, target, dialer, reader, 0);
            write_loop(&table, conn, socket, rx);
        });
}

/// A writer's queue and the count of its bytes.
type Queued = (std::sync::mpsc::Receiver<Write_>, Arc<AtomicUsize>);

fn spawn_writer(table: Arc<Mutex<Table>>, conn: u64, socket: TcpStream, rx: Queued) {
    let _ = thread::Builder::new()
        .name(format!("proxy-w-{conn}"))
        .spawn(move || write_loop(&table, conn, socket, rx));
}

fn write_loop(table: &Mutex<Table>, conn: u64, mut socket: TcpStream, (rx, queued): Queued) {
    for msg in rx {
        match msg {
            Write_::Data(d) => {
                let written = socket.write_all(&d);
                queued.fetch_sub(d.len(), Ordering::Relaxed);
                if written.is_err() {
                    reset(table, conn);
                    return;
                }
            }
            Write_::Close => {
                let _ = socket.shutdown(Shutdown::Write);
            }
        }
    }
}

/// Reads what `from` writes on this connection and hands it to the harness as payloads for `to`;
/// sequence numbers start at `first_seq` (the dialer's 0 was its `OPEN`).
fn spawn_reader(
    table: Arc<Mutex<Table>>,
    events: SyncSender<NodeEvent>,
    conn: u64,
    from: usize,
    to: usize,
    mut socket: TcpStream,
    first_seq: u64,
) {
    let _ = thread::Builder::new()
        .name(format!("proxy-r-{conn}"))
        .spawn(move || {
            let mut seq = first_seq;
            let mut buf = vec![0u8; CHUNK];
            loop {
                match socket.read(&mut buf) {
                    Ok(0) => {
                        let _ = events.send(NodeEvent::Peer {
                            node: from,
                            to,
                            payload: payload(conn, seq, CLOSE, &[]),
                        });
                        return;
                    }
                    Ok(n) => {
                        let sent = events.send(NodeEvent::Peer {
                            node: from,
                            to,
                            payload: payload(conn, seq, DATA, &buf[..n]),
                        });
                        if sent.is_err() {
                            reset(&table, conn);
                            return;
                        }
                        seq += 1;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        reset(&table, conn);
                        return;
                    }
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::Receiver;

    /// Carries every payload straight back, as a healthy network would, except those `drop`
    /// says to lose; returns what the target's echo server sent back to the dialer.
    fn pump(proxies: &Proxies, rx: &Receiver<NodeEvent>, drop_at: Option<usize>, until: usize) {
        let mut n = 0;
        while let Ok(ev) = rx.recv_timeout(Duration::from_secs(2)) {
            if let NodeEvent::Peer { to, payload, .. } = ev {
                n += 1;
                if Some(n) == drop_at {
                    // Lost for good: every retransmission is lost too.
                    let mut again = proxies.dropped(payload);
                    while let Some((_, p)) = again {
                        again = proxies.dropped(p);
                    }
                } else {
                    proxies.deliver(to, &payload);
                }
                if n >= until {
                    return;
                }
            }
        }
    }

    fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        thread::spawn(move || {
            for s in l.incoming().flatten() {
                thread::spawn(move || {
                    let mut s = s;
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    /// Proxies with one link, 0 → 1, to an echo server, and a dialer connected through it.
    fn linked() -> (Proxies, Receiver<NodeEvent>, u16, TcpStream) {
        let (tx, rx) = sync_channel(64);
        let mut proxies = Proxies::new(tx);
        let port = proxies.listen(0, 1, echo_server()).unwrap();
        let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        (proxies, rx, port, c)
    }

    #[test]
    fn bytes_cross_a_link_only_through_the_harness() {
        let (mut proxies, rx, port, mut c) = linked();
        c.write_all(b"hello").unwrap();
        // OPEN, the data to the target, the echo back.
        pump(&proxies, &rx, None, 3);
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        assert_eq!(proxies.stats().bytes, 10);
        proxies.shutdown();
        assert!(
            TcpStream::connect(("127.0.0.1", port)).is_err(),
            "the listener is closed"
        );
    }

    #[test]
    fn a_lost_chunk_is_sent_again_later_and_early_ones_wait_for_it() {
        let (proxies, rx, _, mut c) = linked();
        let next = |rx: &Receiver<NodeEvent>| match rx.recv_timeout(Duration::from_secs(2)) {
            Ok(NodeEvent::Peer { to, payload, .. }) => (to, payload),
            other => panic!("expected a payload, got {other:?}"),
        };
        let (to, open) = next(&rx);
        proxies.deliver(to, &open);
        c.write_all(b"ab").unwrap();
        let (to, first) = next(&rx);
        thread::sleep(Duration::from_millis(50));
        c.write_all(b"cd").unwrap();
        let (_, second) = next(&rx);
        // The first chunk is lost once; the second arrives before its retransmission.
        let (delay, again) = proxies.dropped(first).expect("retransmitted");
        assert_eq!(delay, RTO_MS);
        proxies.deliver(to, &second);
        proxies.deliver(to, &again);
        // The echo of both, in order.
        let mut got = Vec::new();
        while got.len() < 4 {
            let (to, p) = next(&rx);
            proxies.deliver(to, &p);
            let mut buf = [0u8; 4];
            if let Ok(n) = c.read(&mut buf[..4 - got.len()]) {
                got.extend_from_slice(&buf[..n]);
            }
        }
        assert_eq!(got, b"abcd");
        assert_eq!(proxies.stats().reset, 0);
    }

    #[test]
    fn a_chunk_lost_every_time_resets_its_connection() {
        let (proxies, rx, _, mut c) = linked();
        c.write_all(b"hello").unwrap();
        // The OPEN goes through, the data is lost: the dialer sees its connection end.
        pump(&proxies, &rx, Some(2), 2);
        let mut buf = [0u8; 5];
        let n = c.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "the connection was reset, not left hanging");
        assert_eq!(proxies.stats().reset, 1);
    }

    #[test]
    fn payloads_parse_and_short_ones_are_refused() {
        let p = payload(7, 3, DATA, b"x");
        assert_eq!(parse(&p), Some((7, 3, DATA, 0, &b"x"[..])));
        assert_eq!(parse(&p[..5]), None);
    }
}
