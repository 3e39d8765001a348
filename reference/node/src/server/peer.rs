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

use super::state::{Input, Link, Node, WRITE_TIMEOUT, now_ms};
use crate::frame::{self, Frame};
use crate::shared::Stamp;
use crate::sync::{Arc, Ordering};
use crate::tls::{self, PeerTls};
use converge_core::ReplicaId;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

/// Dial backoff: first retry, cap.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// A link that stayed up this long counts as healthy: its failure resets the dial backoff.
const LINK_STABLE: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A link whose peer sends no `Hello` this long after connecting is closed.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
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
/// so the indirection costs nothing measurable.
type DialedStream = Box<dyn AsyncWrite + Send + Unpin>;

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
    mut stream: impl AsyncWrite + Unpin,
    link: &Link,
    node: &Node,
    batch: &mut Vec<Vec<u8>>,
) -> &'static str {
    let hello = frame::encode_hello(node.config.id, node.fingerprint);
    if !matches!(
        tokio::time::timeout(WRITE_TIMEOUT, write_flushed(&mut stream, &hello)).await,
        Ok(Ok(()))
    ) {
        return "hello write failed";
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

/// Writes all of `bytes` and flushes: a TLS stream may keep the tail of a write's ciphertext
/// until flushed (a plain socket's flush does nothing).
async fn write_flushed(
    stream: &mut (impl AsyncWrite + Unpin),
    bytes: &[u8],
) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

/// Accepts peer connections for ever, one reader task each.
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
        let node = node.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let result = match tls {
                None => read_link(stream, &node, None, HELLO_TIMEOUT).await,
                Some(tls) => accept_tls(stream, &node, &tls).await,
            };
            if let Err(why) = result {
                warn!(%addr, reason = %why, "peer link closed");
            }
        });
    }
}

/// Reads one frame, with a timeout.
async fn read_frame(
    stream: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
    max: usize,
    timeout: Duration,
) -> Result<Frame, String> {
    loop {
        match frame::decode(buf, max) {
            Ok(Some((f, used))) => {
                buf.drain(..used);
                return Ok(f);
            }
            Ok(None) => {}
            Err(e) => return Err(format!("bad frame ({}): {e}", e.kind())),
        }
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout(timeout, stream.read(&mut chunk)).await {
            Ok(Ok(0)) => return Err("closed by peer".into()),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("timed out".into()),
        }
    }
}

/// Runs the TLS handshake of an accepted link (the client certificate chained to the CA is
/// required), within the `Hello` deadline, then reads the link with what the certificate names.
async fn accept_tls(stream: TcpStream, node: &Node, tls: &PeerTls) -> Result<(), String> {
    let started = Instant::now();
    let stream = match tokio::time::timeout(HELLO_TIMEOUT, tls.acceptor.accept(stream)).await {
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
    let left = HELLO_TIMEOUT.saturating_sub(started.elapsed());
    read_link(stream, node, Some(&cert), left).await
}

/// Reads one accepted link: its `Hello` (within `hello_timeout`), then its data frames until it
/// fails or is cut. With peer TLS, `cert` is the client certificate (DER) the link presented.
async fn read_link(
    mut stream: impl AsyncRead + Unpin,
    node: &Node,
    cert: Option<&[u8]>,
    hello_timeout: Duration,
) -> Result<(), String> {
    let max = node.config.limits.frame_bytes_max;
    let mut buf = Vec::new();
    let hello = read_frame(&mut stream, &mut buf, max, hello_timeout).await;
    let link = admit(node, hello)?;
    if let Some(cert) = cert {
        check_certificate(node, link, cert)?;
    }
    info!(peer = link.spec.id, "peer link up (in)");
    link.in_up.fetch_add(1, Ordering::Relaxed);
    let result = read_data(&mut stream, &mut buf, link, node).await;
    link.in_up.fetch_sub(1, Ordering::Relaxed);
    result
}

/// Checks a link's first frame (or why there was none): the link of the configured, uncut
/// peer whose `Hello` it is with this node's fingerprint, or why the link must close. Every
/// refusal but a cut link is a bad input and counted.
fn admit(node: &Node, hello: Result<Frame, String>) -> Result<&Arc<Link>, String> {
    let (sender, fingerprint) = match hello {
        Ok(Frame::Hello {
            sender,
            fingerprint,
        }) => (sender, fingerprint),
        Ok(Frame::Data { .. }) => {
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
    Ok(link)
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
mod tests {
    use super::super::state::testing;
    use super::*;
    use crate::sync::lock;
    use rustls::pki_types::pem::PemObject as _;

    fn bad_inputs(node: &Node) -> Vec<(&'static str, u64)> {
        lock(&node.counters.bad_inputs)
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect()
    }

    #[test]
    fn the_backoff_doubles_up_to_its_cap() {
        let mut b = BACKOFF_MIN;
        let mut seen = vec![b];
        while b < BACKOFF_MAX {
            b = next_backoff(b);
            seen.push(b);
        }
        assert_eq!(
            seen.iter().map(Duration::as_millis).collect::<Vec<_>>(),
            [50, 100, 200, 400, 800, 1600, 2000]
        );
        assert_eq!(next_backoff(BACKOFF_MAX), BACKOFF_MAX);
    }

    #[test]
    fn admit_takes_a_hello_from_a_configured_peer_of_this_cluster() {
        let (node, _rx) = testing::node(testing::config());
        let hello = |sender, fingerprint| {
            Ok(Frame::Hello {
                sender,
                fingerprint,
            })
        };
        let fp = node.fingerprint;
        assert_eq!(admit(&node, hello(2, fp)).map(|l| l.spec.id), Ok(2));
        assert!(bad_inputs(&node).is_empty());
        let refused = [
            (hello(1, fp ^ 1), "peer_fingerprint"),
            (hello(7, fp), "peer_unknown"),
            (
                Ok(Frame::Data {
                    stamp: 0,
                    payload: vec![],
                }),
                "peer_no_hello",
            ),
            (Err("timed out".to_string()), "peer_bad_hello"),
        ];
        for (frame, kind) in refused {
            let (node, _rx) = testing::node(testing::config());
            assert!(admit(&node, frame).is_err(), "{kind}");
            assert_eq!(bad_inputs(&node), [(kind, 1)]);
        }
        // A cut link is refused without counting a bad input: the peer did nothing wrong.
        node.links[&1].cut.store(true, Ordering::Relaxed);
        assert_eq!(
            admit(&node, hello(1, fp)).map(|l| l.spec.id),
            Err("link to 1 is cut".to_string())
        );
        assert!(bad_inputs(&node).is_empty());
    }

    #[test]
    fn a_certificate_must_name_the_member_the_hello_claims() {
        let (node, _rx) = testing::node(testing::config());
        let ca = crate::tls::Ca::generate("test").unwrap();
        let pem = ca.issue_member(1, "eu-west", &[]).unwrap().cert_pem;
        let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        assert_eq!(check_certificate(&node, &node.links[&1], &der), Ok(()));
        assert!(bad_inputs(&node).is_empty());
        // Member 1's certificate on a link whose Hello claims member 2.
        assert!(check_certificate(&node, &node.links[&2], &der).is_err());
        assert_eq!(bad_inputs(&node), [("peer_cert_mismatch", 1)]);
    }

    #[tokio::test]
    async fn read_frame_reads_frames_across_reads_until_the_peer_closes() {
        let mut wire = frame::encode_hello(3, 4);
        wire.extend(frame::encode_data(5, b"payload").unwrap());
        let mut stream: &[u8] = &wire;
        let mut buf = Vec::new();
        let second = Duration::from_secs(1);
        assert_eq!(
            read_frame(&mut stream, &mut buf, 1024, second).await,
            Ok(Frame::Hello {
                sender: 3,
                fingerprint: 4
            })
        );
        assert_eq!(
            read_frame(&mut stream, &mut buf, 1024, second).await,
            Ok(Frame::Data {
                stamp: 5,
                payload: b"payload".to_vec()
            })
        );
        assert_eq!(
            read_frame(&mut stream, &mut buf, 1024, second).await,
            Err("closed by peer".to_string())
        );
        // A frame over the maximum is refused from its header alone.
        let mut stream: &[u8] = &[0, 0, 4, 0];
        let got = read_frame(&mut stream, &mut Vec::new(), 1023, second).await;
        assert!(
            got.as_ref()
                .is_err_and(|e| e.starts_with("bad frame (frame_too_long)")),
            "{got:?}"
        );
    }

    #[test]
    fn a_data_stamp_gives_the_lag_and_moves_the_clock() {
        let (node, _rx) = testing::node(testing::config());
        let link = &node.links[&1];
        let now = 1_000_000;
        observe_stamp(&node, link, Stamp::new(now - 30, 2), now);
        assert_eq!(link.lag_ms.load(Ordering::Relaxed), 30);
        assert_eq!(node.clock.last(), Stamp::new(now - 30, 2));
        // A stamp from beyond the drift bound: counted, lag zero, the clock untouched.
        let ahead = Stamp::new(now + node.max_drift_ms + 1, 0);
        observe_stamp(&node, link, ahead, now);
        assert_eq!(link.lag_ms.load(Ordering::Relaxed), 0);
        assert_eq!(node.clock.last(), Stamp::new(now - 30, 2));
        assert_eq!(link.frames_in.load(Ordering::Relaxed), 2);
        assert_eq!(node.counters.clock_drift.load(Ordering::Relaxed), 1);
    }
}
