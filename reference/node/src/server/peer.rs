//! The peer links: per peer, a dialer/writer, and a reader per accepted connection.
//!
//! The **dialer/writer** of a peer connects with bounded exponential backoff, sends `Hello`,
//! then writes what the peer's [`Outbox`](crate::shared::Outbox) batches. A **reader** (one per
//! accepted connection) checks `Hello`, observes each frame's HLC stamp, records the lag and
//! feeds the driver. Links are one-way: a node sends on the link it dialed and receives on the
//! links it accepted, so two nodes never race to pick one of two crossing connections.
//!
//! # Invariants
//! - A reader feeds the driver only after a `Hello` from a configured peer with this node's
//!   cluster fingerprint; anything else (no `Hello`, a bad one, an unknown sender, another
//!   cluster, a second `Hello`, a bad frame) closes the link and is counted in
//!   `bad_inputs_total`.
//! - With peer TLS ([`crate::tls`]), a link is mutually authenticated before its `Hello` is
//!   read: the dialer checks that the acceptor's certificate chains to the cluster CA and names
//!   the member it dialed; the acceptor requires a client certificate chained to the CA and
//!   admits the link only if that certificate names the member (id and region) the `Hello`
//!   claims. A failed handshake or a mismatch closes the link and is counted in
//!   `bad_inputs_total` (`peer_tls_handshake`, `peer_cert_mismatch`); the handshake counts
//!   inside the `Hello` deadline.
//! - Backpressure, not buffering: a reader awaits room in the driver's bounded inbox, so a slow
//!   driver slows the peer's link down; a writer's batch is at most [`WRITE_BATCH_BYTES`], or a
//!   single larger frame.
//! - What a failed or cut link loses is not re-sent here: the replica's go-back-N retransmission
//!   and anti-entropy repair it once the link is back.
//! - A cut link (`CLUSTER.LINKS CUT`) neither dials nor reads: the writer discards its outbox
//!   until the heal, readers close, and new connections from the peer are refused.
//! - Every wait is bounded: connect, `Hello`, writes and idle inbound links time out, and a
//!   dialer's backoff stays within [`BACKOFF_MIN`]..=[`BACKOFF_MAX`].
//!
//! # Before the `Hello`
//! A connection that has not yet said who it is costs the node as little as possible: at most
//! [`PRE_HELLO_MAX`] of them are held at once (a new one closes the oldest, counted as
//! `peer_pre_hello_evicted`: a real peer sends its `Hello` one round trip after connecting, so
//! only a flood faster than that can evict it, while refusing the newest would let idle
//! connections lock every peer out until their deadline), everything before the `Hello` is verified (reading it, and whatever
//! handshake precedes it) must end within [`HELLO_TIMEOUT`] of the accept, and the only frame
//! read before it is at most a `Hello`'s size ([`frame::HELLO_FRAME_BYTES`]), so a 16 MiB
//! announcement is refused from its header. After the `Hello`, a frame that has started must
//! arrive whole within [`FRAME_GRACE`] plus its length at [`FRAME_BYTES_PER_SEC_MIN`]: a peer
//! dripping bytes cannot hold a link or a buffer for ever.
//!
//! # Identity
//! The acceptor answers every `Hello` it accepts with `Welcome`, after recording (durably, once)
//! the sender's incarnation if it knew none; a `Hello` carrying another incarnation than the
//! recorded one is answered `Refused` and the link closed. A dialer that reads `Refused` stops
//! the node (see `Identity`); one that reads `Welcome` marks its link welcomed, which a node on
//! a new store waits for from every peer before it serves.

use super::state::{Input, Link, Node, WRITE_TIMEOUT, now_ms};
use crate::frame::HELLO_FRAME_BYTES;
use crate::frame::{self, Frame};
use crate::shared::Stamp;
use crate::sync::{Arc, Ordering, lock};
use crate::tls::{self, PeerTls};
use converge_core::ReplicaId;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// Dial backoff: first retry, cap.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// A link that stayed up this long counts as healthy: its failure resets the dial backoff.
const LINK_STABLE: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A link whose `Hello` is not verified this long after its accept is closed (and a dialer
/// waits this long for the answer to its `Hello`).
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Most accepted connections waiting for their `Hello` at once; a new one closes the oldest.
/// Generous for a cluster's members (each holds one link, redialed after a failure), small
/// enough that idle connections cannot use up the node's file descriptors.
pub(super) const PRE_HELLO_MAX: usize = 64;
/// Once a frame's first byte has arrived, the frame must be whole within this...
const FRAME_GRACE: Duration = Duration::from_secs(5);
/// ...plus its announced length at this rate (a 16 MiB frame: 16 s more).
const FRAME_BYTES_PER_SEC_MIN: u64 = 1 << 20;
/// An inbound link silent this long is closed (anti-entropy keeps healthy links busy every
/// second; the dialer on the other side reconnects).
const PEER_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often an idle writer re-checks its link's cut switch.
const CUT_CHECK: Duration = Duration::from_millis(100);
/// Most bytes a peer writer sends in one syscall.
const WRITE_BATCH_BYTES: usize = 256 * 1024;

/// The dial backoff after one more failure: doubled, capped at [`BACKOFF_MAX`].
fn next_backoff(backoff: Duration) -> Duration {
    (backoff * 2).min(BACKOFF_MAX)
}

/// A dialed link's stream: plain TCP or TLS over it. Boxed: the writer's calls are per batch,
/// so the indirection costs nothing measurable. The dialer reads too: the acceptor's answer to
/// its `Hello`.
type DialedStream = Box<dyn Duplex>;

/// A stream read and written by one task.
trait Duplex: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Duplex for T {}

/// Runs the TLS handshake of a dialed link when peer TLS is on: the acceptor must prove it is
/// the member `link` names. Bounded by [`CONNECT_TIMEOUT`].
async fn secure(
    stream: TcpStream,
    link: &Link,
    tls: Option<&PeerTls>,
) -> Result<DialedStream, String> {
    let Some(tls) = tls else {
        return Ok(Box::new(stream));
    };
    let name = PeerTls::dial_name(link.spec.id, &link.spec.region).map_err(|e| e.to_string())?;
    match tokio::time::timeout(CONNECT_TIMEOUT, tls.connector.connect(name, stream)).await {
        Ok(Ok(s)) => Ok(Box::new(s)),
        Ok(Err(e)) => Err(format!("TLS handshake failed: {e}")),
        Err(_) => Err("TLS handshake timed out".into()),
    }
}

/// The dialer and writer of one peer link: connect (with backoff), authenticate (with peer
/// TLS), send `Hello`, then write the outbox's batches until the link fails or is cut.
pub(super) async fn dial(link: Arc<Link>, node: Arc<Node>, tls: Option<Arc<PeerTls>>) {
    let mut backoff = BACKOFF_MIN;
    let mut batch: Vec<Vec<u8>> = Vec::new();
    loop {
        if link.cut.load(Ordering::Relaxed) {
            // Discard what queued while cut: the replica re-sends it after the heal.
            batch.clear();
            while link.outbox.take_batch(WRITE_BATCH_BYTES, &mut batch) > 0 {
                batch.clear();
            }
            tokio::time::sleep(CUT_CHECK).await;
            continue;
        }
        link.dials.fetch_add(1, Ordering::Relaxed);
        let stream =
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(link.spec.addr)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    debug!(peer = link.spec.id, error = %e, "dial failed");
                    tokio::time::sleep(backoff).await;
                    backoff = next_backoff(backoff);
                    continue;
                }
                Err(_) => {
                    tokio::time::sleep(backoff).await;
                    backoff = next_backoff(backoff);
                    continue;
                }
            };
        let _ = stream.set_nodelay(true);
        let stream = match secure(stream, &link, tls.as_deref()).await {
            Ok(s) => s,
            Err(why) => {
                // Loud: the peer is not the member configured here, or its CA is another one.
                warn!(peer = link.spec.id, region = %link.spec.region, reason = %why, "peer link refused (out)");
                tokio::time::sleep(backoff).await;
                backoff = next_backoff(backoff);
                continue;
            }
        };
        let connected = Instant::now();
        debug!(peer = link.spec.id, region = %link.spec.region, "peer link up (out)");
        link.out_up.store(true, Ordering::Relaxed);
        let why = write_link(stream, &link, &node, &mut batch).await;
        link.out_up.store(false, Ordering::Relaxed);
        if connected.elapsed() >= LINK_STABLE {
            info!(peer = link.spec.id, reason = why, "peer link down (out)");
            backoff = BACKOFF_MIN;
        } else {
            // A link that fails right after connecting (the peer refuses us: another cluster,
            // or its side of the link is cut) is retried with backoff, not in a tight loop.
            debug!(
                peer = link.spec.id,
                reason = why,
                "peer link failed early (out)"
            );
            tokio::time::sleep(backoff).await;
            backoff = next_backoff(backoff);
        }
    }
}

/// Writes `Hello`, then the outbox's batches, until the link fails or is cut: why it ended.
async fn write_link(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    link: &Link,
    node: &Node,
    batch: &mut Vec<Vec<u8>>,
) -> &'static str {
    let hello = frame::encode_hello(node.config.id, node.fingerprint, node.identity.incarnation);
    if !matches!(
        tokio::time::timeout(WRITE_TIMEOUT, write_flushed(&mut stream, &hello)).await,
        Ok(Ok(()))
    ) {
        return "hello write failed";
    }
    // The acceptor's answer: whether it accepts this incarnation.
    let mut answer = Vec::new();
    match read_frame(&mut stream, &mut answer, HELLO_FRAME_BYTES, HELLO_TIMEOUT).await {
        Ok(Frame::Welcome) => link.welcomed.store(true, Ordering::Relaxed),
        Ok(Frame::Refused { known }) => {
            refused(node, link, known);
            return "refused: the peer knows another incarnation";
        }
        // A cut link on the other side, or a peer gone, closes without an answer.
        Ok(_) | Err(_) => return "no answer to hello",
    }
    let mut buf = Vec::new();
    loop {
        if link.cut.load(Ordering::Relaxed) {
            return "cut";
        }
        batch.clear();
        if link.outbox.take_batch(WRITE_BATCH_BYTES, batch) == 0 {
            // Wait for a frame, re-checking the cut switch now and then.
            let _ = tokio::time::timeout(CUT_CHECK, link.outbox.ready()).await;
            continue;
        }
        buf.clear();
        for f in batch.iter() {
            buf.extend_from_slice(f);
        }
        link.frames_out
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        match tokio::time::timeout(WRITE_TIMEOUT, write_flushed(&mut stream, &buf)).await {
            Ok(Ok(())) => {}
            // The frames of a failed write are lost; go-back-N re-sends their entries.
            Ok(Err(_)) => return "write failed",
            Err(_) => return "write timed out",
        }
    }
}

/// Stops the node: peer `link` knows incarnation `known` of this replica, not this one.
fn refused(node: &Node, link: &Link, known: u64) {
    let id = &node.identity;
    let me = node.config.id;
    let (peer, region) = (link.spec.id, &link.spec.region);
    let dir = node
        .config
        .data_dir
        .as_ref()
        .map_or_else(|| "(none)".to_string(), |d| d.display().to_string());
    let why = if id.fresh {
        format!(
            "data directory {dir} was created by this start (or by an earlier start no peer \
             accepted), but peer r{peer} ({region}) knows an earlier life of r{me} (incarnation {known:#x}, this one {:#x}): the disk was lost or \
             not mounted, and this region would reuse sequence numbers its peers hold; restore \
             the data directory (or mount its volume), or bring this region back under a replica \
             id the cluster has never used",
            id.incarnation
        )
    } else {
        format!(
            "peer r{peer} ({region}) knows another life of r{me} (incarnation {known:#x}, the \
             store in {dir} is {:#x}): this data directory is not the one this region ran on",
            id.incarnation
        )
    };
    let mut slot = lock(&id.refused);
    if slot.is_none() {
        *slot = Some(why);
        id.refused_signal.notify_one();
    }
}

/// Writes all of `bytes` and flushes: a TLS stream may keep the tail of a write's ciphertext
/// until flushed (a plain socket's flush does nothing).
async fn write_flushed(
    stream: &mut (impl AsyncWrite + Unpin),
    bytes: &[u8],
) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

/// Accepts peer connections for ever, one reader task each, closing the oldest of those
/// waiting for their `Hello` (in their TLS handshake included) when [`PRE_HELLO_MAX`] already
/// wait.
pub(super) async fn accept_peers(
    listener: TcpListener,
    node: Arc<Node>,
    tls: Option<Arc<PeerTls>>,
) {
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "peer accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let accepted = Instant::now();
        let pending = PreHello::enter(&node);
        let node = node.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let result = match tls {
                None => read_link(stream, &node, None, accepted, pending).await,
                Some(tls) => accept_tls(stream, &node, &tls, accepted, pending).await,
            };
            if let Err(why) = result {
                warn!(%addr, reason = %why, "peer link closed");
            }
        });
    }
}

/// One of the at most [`PRE_HELLO_MAX`] connections waiting for their `Hello`; leaving that
/// state (or the task ending) frees the place.
struct PreHello {
    node: Arc<Node>,
    id: u64,
    /// Notified when a newer connection takes this one's place.
    evicted: Arc<tokio::sync::Notify>,
}

impl PreHello {
    /// Takes a place, closing the oldest waiting connection if all are taken.
    fn enter(node: &Arc<Node>) -> PreHello {
        let id = node.pre_hello_next.fetch_add(1, Ordering::Relaxed);
        let evicted = Arc::new(tokio::sync::Notify::new());
        let oldest = {
            let mut waiting = lock(&node.pre_hello);
            let oldest = if waiting.len() >= PRE_HELLO_MAX {
                waiting.pop_front()
            } else {
                None
            };
            waiting.push_back((id, evicted.clone()));
            oldest
        };
        if let Some((_, signal)) = oldest {
            node.counters.bad_input("peer_pre_hello_evicted");
            // Stored as a permit if its task is not waiting yet, so it cannot be missed.
            signal.notify_one();
        }
        PreHello {
            node: node.clone(),
            id,
            evicted,
        }
    }
}

impl Drop for PreHello {
    fn drop(&mut self) {
        lock(&self.node.pre_hello).retain(|(id, _)| *id != self.id);
    }
}

/// Reads one frame of at most `max` bytes. `idle` bounds the wait for its first byte; once it
/// has started, the whole frame must arrive within [`FRAME_GRACE`] plus its length at
/// [`FRAME_BYTES_PER_SEC_MIN`] (and no read may take longer than `idle`).
async fn read_frame(
    stream: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
    max: usize,
    idle: Duration,
) -> Result<Frame, String> {
    // Bytes already buffered belong to the frame now starting.
    let mut started = (!buf.is_empty()).then(Instant::now);
    loop {
        match frame::decode(buf, max) {
            Ok(Some((f, used))) => {
                buf.drain(..used);
                return Ok(f);
            }
            Ok(None) => {}
            Err(e) => return Err(format!("bad frame ({}): {e}", e.kind())),
        }
        let wait = match started {
            None => idle,
            Some(t) => {
                let left = frame_budget(buf)
                    .checked_sub(t.elapsed())
                    .ok_or("frame arrived too slowly")?;
                left.min(idle)
            }
        };
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout(wait, stream.read(&mut chunk)).await {
            Ok(Ok(0)) => return Err("closed by peer".into()),
            Ok(Ok(n)) => {
                started.get_or_insert_with(Instant::now);
                buf.extend_from_slice(&chunk[..n]);
            }
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) if started.is_some() => return Err("frame arrived too slowly".into()),
            Err(_) => return Err("timed out".into()),
        }
    }
}

/// How long the frame whose first bytes are in `buf` may take to arrive whole (see
/// [`read_frame`]); only the grace until its length header is in.
fn frame_budget(buf: &[u8]) -> Duration {
    let announced = buf
        .get(..4)
        .and_then(|h| <[u8; 4]>::try_from(h).ok())
        .map_or(0, |h| u64::from(u32::from_be_bytes(h)));
    FRAME_GRACE + Duration::from_millis(announced.saturating_mul(1000) / FRAME_BYTES_PER_SEC_MIN)
}

/// Runs the TLS handshake of an accepted link (the client certificate chained to the CA is
/// required) inside the link's pre-`Hello` deadline and eviction, then reads the link with what
/// the certificate names.
async fn accept_tls(
    stream: TcpStream,
    node: &Node,
    tls: &PeerTls,
    accepted: Instant,
    pending: PreHello,
) -> Result<(), String> {
    let evicted = pending.evicted.clone();
    let handshake = tokio::select! {
        done = tokio::time::timeout_at(accepted + HELLO_TIMEOUT, tls.acceptor.accept(stream)) => done,
        () = evicted.notified() => {
            return Err("closed for a newer connection: too many waiting for their hello".into());
        }
    };
    let stream = match handshake {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            node.counters.bad_input("peer_tls_handshake");
            return Err(format!("TLS handshake failed: {e}"));
        }
        Err(_) => {
            node.counters.bad_input("peer_tls_handshake");
            return Err("TLS handshake timed out".into());
        }
    };
    // The verifier required a certificate, so a finished handshake has one.
    let cert = tls::client_certificate(stream.get_ref().1).unwrap_or_default();
    read_link(stream, node, Some(&cert), accepted, pending).await
}

/// Reads one accepted link: its `Hello` (verified, checked against the link's certificate with
/// peer TLS, and answered within [`HELLO_TIMEOUT`] of `accepted`), then its data frames until it
/// fails or is cut. With peer TLS, `cert` is the client certificate (DER) the link presented.
async fn read_link(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    node: &Node,
    cert: Option<&[u8]>,
    accepted: Instant,
    pending: PreHello,
) -> Result<(), String> {
    let mut buf = Vec::new();
    let deadline = accepted + HELLO_TIMEOUT;
    let before_hello = async {
        let hello = read_frame(&mut stream, &mut buf, HELLO_FRAME_BYTES, HELLO_TIMEOUT).await;
        let (link, answer) = admit(node, hello, cert).await?;
        let _ = write_flushed(&mut stream, &answer).await;
        link.ok_or_else(|| "refused: another incarnation".to_string())
    };
    let evicted = pending.evicted.clone();
    let link = tokio::select! {
        admitted = tokio::time::timeout_at(deadline, before_hello) => match admitted {
            Ok(admitted) => admitted?,
            Err(_) => {
                node.counters.bad_input("peer_bad_hello");
                return Err("no hello within the deadline".into());
            }
        },
        () = evicted.notified() => {
            return Err("closed for a newer connection: too many waiting for their hello".into());
        }
    };
    drop(pending);
    info!(peer = link.spec.id, "peer link up (in)");
    link.in_up.fetch_add(1, Ordering::Relaxed);
    let result = read_data(&mut stream, &mut buf, link, node).await;
    link.in_up.fetch_sub(1, Ordering::Relaxed);
    result
}

/// Checks a link's first frame (or why there was none): the link of the configured, uncut
/// peer whose `Hello` it is with this node's fingerprint (and, with peer TLS, whom the link's
/// certificate `cert` names), with the answer to write back
/// (`Welcome`; or `Refused` and no link, for another incarnation than the one recorded), or why
/// the link must close without an answer. Every refusal but a cut link is a bad input and
/// counted.
async fn admit<'n>(
    node: &'n Node,
    hello: Result<Frame, String>,
    cert: Option<&[u8]>,
) -> Result<(Option<&'n Arc<Link>>, Vec<u8>), String> {
    let (sender, fingerprint, incarnation) = match hello {
        // Extensions are ignored: this build reads none (docs/protocol.md § Peer frames).
        Ok(Frame::Hello {
            sender,
            fingerprint,
            incarnation,
            ..
        }) => (sender, fingerprint, incarnation),
        Ok(_) => {
            node.counters.bad_input("peer_no_hello");
            return Err("data before hello".into());
        }
        Err(e) => {
            node.counters.bad_input("peer_bad_hello");
            return Err(e);
        }
    };
    if fingerprint != node.fingerprint {
        node.counters.bad_input("peer_fingerprint");
        return Err(format!(
            "replica {sender} runs another cluster configuration (fingerprint {fingerprint:#x}, ours {:#x})",
            node.fingerprint
        ));
    }
    let Some(link) = node.links.get(&sender) else {
        node.counters.bad_input("peer_unknown");
        return Err(format!("replica {sender} is not a peer"));
    };
    if link.cut.load(Ordering::Relaxed) {
        return Err(format!("link to {sender} is cut"));
    }
    // Before the incarnation is recorded: a member's certificate claiming another member must
    // not get to record a life for it.
    if let Some(cert) = cert {
        check_certificate(node, link, cert)?;
    }
    match check_incarnation(node, sender, incarnation).await? {
        None => Ok((Some(link), frame::encode_welcome())),
        Some(known) => {
            node.counters.bad_input("peer_incarnation");
            warn!(
                peer = sender,
                incarnation = format_args!("{incarnation:#x}"),
                known = format_args!("{known:#x}"),
                "refused a peer that lost its data directory: it restarted as another incarnation"
            );
            Ok((None, frame::encode_refused(known)))
        }
    }
}

/// Whether `incarnation` is the life of `sender` this node accepts: `None` if so (recording it,
/// durably, if it is the first one seen), or the incarnation it knows instead. Incarnation 0
/// (a node without a store) is neither checked nor recorded.
async fn check_incarnation(
    node: &Node,
    sender: u64,
    incarnation: u64,
) -> Result<Option<u64>, String> {
    if incarnation == 0 {
        return Ok(None);
    }
    let id = &node.identity;
    {
        let mut known = lock(&id.known);
        match known.get(&sender) {
            Some(&k) if k == incarnation => return Ok(None),
            Some(&k) => return Ok(Some(k)),
            // Claimed before it is on disk, so two links racing in cannot record two lives.
            None => known.insert(sender, incarnation),
        };
    }
    let Some(store) = id.store.clone() else {
        return Ok(None);
    };
    let recorded =
        tokio::task::spawn_blocking(move || store.record_peer(sender, incarnation)).await;
    let why = match recorded {
        Ok(Ok(())) => return Ok(None),
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    lock(&id.known).remove(&sender);
    Err(format!("cannot record the incarnation of {sender}: {why}"))
}

/// Accepts an admitted link's certificate only if it names the member the `Hello` claimed, by
/// id and by the region this node's configuration gives it; otherwise counted and refused.
fn check_certificate(node: &Node, link: &Link, cert: &[u8]) -> Result<(), String> {
    if tls::cert_names_member(cert, link.spec.id, &link.spec.region) {
        return Ok(());
    }
    node.counters.bad_input("peer_cert_mismatch");
    Err(format!(
        "the certificate does not name replica {} of region {}, which the hello claims",
        link.spec.id, link.spec.region
    ))
}

/// Reads data frames from an admitted link and feeds their payloads to the driver.
async fn read_data(
    stream: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
    link: &Link,
    node: &Node,
) -> Result<(), String> {
    let max = node.config.limits.frame_bytes_max;
    loop {
        let f = read_frame(stream, buf, max, PEER_IDLE_TIMEOUT)
            .await
            .inspect_err(|e| {
                if e.starts_with("bad frame") {
                    node.counters.bad_input("peer_bad_frame");
                }
            })?;
        if link.cut.load(Ordering::Relaxed) {
            return Err("cut".into());
        }
        let Frame::Data { stamp, payload } = f else {
            node.counters.bad_input("peer_second_hello");
            return Err("second hello".into());
        };
        observe_stamp(node, link, Stamp(stamp), now_ms());
        let input = Input::Peer {
            from: ReplicaId(link.spec.id),
            payload,
        };
        // Backpressure: a slow driver slows the peer's link down rather than growing a queue.
        if node.inbox.send(input).await.is_err() {
            return Err("node shutting down".into());
        }
    }
}

/// Takes in a data frame's HLC `stamp`, read at local time `now`: the link's lag and frame count,
/// and the node's clock.
fn observe_stamp(node: &Node, link: &Link, stamp: Stamp, now: u64) {
    link.lag_ms
        .store(now.saturating_sub(stamp.physical_ms()), Ordering::Relaxed);
    link.frames_in.fetch_add(1, Ordering::Relaxed);
    if node.clock.observe(stamp, now, node.max_drift_ms).is_err() {
        // The replica applies its own drift rule to the payload; here it only means the lag
        // figure of this frame is meaningless.
        node.counters.clock_drift.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
