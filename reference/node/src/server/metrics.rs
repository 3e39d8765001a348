//! The metrics port: a minimal HTTP/1.1 responder (`GET /metrics`, Prometheus text format).
//!
//! # Invariants
//! - Reading metrics never blocks the node: a request reads atomics, the log cursors and the
//!   driver's last published [`Stats`](converge_core::replica::Stats) snapshot, never the replica.
//! - A request is bounded: at most [`HTTP_REQUEST_MAX`] bytes read, [`HTTP_TIMEOUT`] in all, and
//!   the connection closes after one response.
//! - Every name is prefixed `converge_`, and `docs/protocol.md`'s list of metrics names exactly
//!   what this module serves.

use super::state::{Link, Node};
use crate::sync::{Arc, AtomicU64, Ordering, lock};
use std::fmt::Write as _;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// `/metrics` requests: the most bytes read, the longest wait.
const HTTP_REQUEST_MAX: usize = 8 * 1024;
const HTTP_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves `/metrics` for ever, one task per connection.
pub(super) async fn serve_metrics(listener: TcpListener, node: Arc<Node>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let node = node.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(HTTP_TIMEOUT, async {
                let mut req = Vec::new();
                let mut chunk = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < HTTP_REQUEST_MAX {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&chunk[..n]),
                    }
                }
                let response = if req.starts_with(b"GET /metrics ") || req.starts_with(b"GET / ") {
                    let body = render_metrics(&node);
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    node.counters.bad_input("http_bad_request");
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_string()
                };
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            })
            .await;
        });
    }
}

fn render_metrics(node: &Node) -> String {
    let mut s = String::new();
    let mut m = |name: &str, help: &str, kind: &str, rows: Vec<(String, u64)>| {
        let _ = writeln!(
            s,
            "# HELP converge_{name} {help}\n# TYPE converge_{name} {kind}"
        );
        for (labels, v) in rows {
            let _ = writeln!(s, "converge_{name}{labels} {v}");
        }
    };
    let one = |v: u64| vec![(String::new(), v)];
    let c = &node.counters;
    let ld = |v: &AtomicU64| v.load(Ordering::Relaxed);
    let peer = |l: &Link| format!("{{peer=\"{}\",region=\"{}\"}}", l.spec.id, l.spec.region);
    let links: Vec<&Arc<Link>> = node.links.values().collect();
    m(
        "replication_lag_ms",
        "Milliseconds between a peer stamping its last frame and this node reading it.",
        "gauge",
        links.iter().map(|l| (peer(l), ld(&l.lag_ms))).collect(),
    );
    m(
        "replication_lag_entries",
        "Local oplog entries the peer has not acknowledged.",
        "gauge",
        links
            .iter()
            .map(|l| (peer(l), node.cursors.lag_entries(l.spec.id).unwrap_or(0)))
            .collect(),
    );
    m(
        "peer_link_up",
        "Whether the outgoing link to the peer is connected.",
        "gauge",
        links
            .iter()
            .map(|l| (peer(l), u64::from(l.out_up.load(Ordering::Relaxed))))
            .collect(),
    );
    m(
        "peer_link_cut",
        "Whether the link to the peer is cut by CLUSTER.LINKS CUT.",
        "gauge",
        links
            .iter()
            .map(|l| (peer(l), u64::from(l.cut.load(Ordering::Relaxed))))
            .collect(),
    );
    m(
        "peer_frames_total",
        "Peer frames sent and received.",
        "counter",
        links
            .iter()
            .flat_map(|l| {
                let p = format!("peer=\"{}\"", l.spec.id);
                [
                    (format!("{{{p},direction=\"out\"}}"), ld(&l.frames_out)),
                    (format!("{{{p},direction=\"in\"}}"), ld(&l.frames_in)),
                ]
            })
            .collect(),
    );
    m(
        "outbox_frames",
        "Frames queued for the peer.",
        "gauge",
        links
            .iter()
            .map(|l| (peer(l), l.outbox.stats().queued_frames as u64))
            .collect(),
    );
    m(
        "outbox_rejected_total",
        "Frames refused by a full outbox (re-sent by go-back-N).",
        "counter",
        links
            .iter()
            .map(|l| (peer(l), l.outbox.stats().rejected_full))
            .collect(),
    );
    let cur = node.cursors.snapshot();
    m(
        "oplog_appended_seq",
        "Last local oplog sequence number handed to the store.",
        "gauge",
        one(cur.appended),
    );
    m(
        "oplog_durable_seq",
        "Last local oplog sequence number committed.",
        "gauge",
        one(cur.durable),
    );
    m(
        "group_commits_total",
        "Store commits (one per batch of inputs).",
        "counter",
        one(ld(&c.group_commits)),
    );
    m(
        "group_commit_inputs_total",
        "Inputs covered by those commits.",
        "counter",
        one(ld(&c.group_commit_inputs)),
    );
    m(
        "group_commit_seconds_total",
        "Time spent in commits (microsecond resolution).",
        "counter",
        vec![],
    );
    let _ = writeln!(
        s,
        "converge_group_commit_seconds_total {}",
        ld(&c.commit_micros) as f64 / 1e6
    );
    let mut m = |name: &str, help: &str, kind: &str, rows: Vec<(String, u64)>| {
        let _ = writeln!(
            s,
            "# HELP converge_{name} {help}\n# TYPE converge_{name} {kind}"
        );
        for (labels, v) in rows {
            let _ = writeln!(s, "converge_{name}{labels} {v}");
        }
    };
    let one = |v: u64| vec![(String::new(), v)];
    m(
        "connections",
        "Client connections open now.",
        "gauge",
        one(c.connections_open.load(Ordering::Relaxed) as u64),
    );
    m(
        "connections_total",
        "Client connections accepted (and refused over the limit).",
        "counter",
        vec![
            ("{result=\"accepted\"}".into(), ld(&c.connections_total)),
            ("{result=\"refused\"}".into(), ld(&c.connections_refused)),
        ],
    );
    m(
        "requests_total",
        "Requests submitted to the replica.",
        "counter",
        one(ld(&c.requests)),
    );
    m(
        "request_timeouts_total",
        "Requests answered -TIMEOUT by the shell.",
        "counter",
        one(ld(&c.request_timeouts)),
    );
    m(
        "busy_total",
        "Requests refused -BUSY (waiters or queue full).",
        "counter",
        one(ld(&c.busy)),
    );
    m(
        "waiters",
        "Requests waiting for the replica now.",
        "gauge",
        one(node.waiters.len() as u64),
    );
    m(
        "transmits_dropped_total",
        "Replica messages dropped (full outbox or cut link).",
        "counter",
        one(ld(&c.transmits_dropped)),
    );
    m(
        "clock_drift_total",
        "Peer frames stamped beyond the drift bound.",
        "counter",
        one(ld(&c.clock_drift)),
    );
    m(
        "bad_inputs_total",
        "Malformed inputs by kind (RESP, peer frames, HTTP).",
        "counter",
        lock(&c.bad_inputs)
            .iter()
            .map(|(k, v)| (format!("{{kind=\"{k}\"}}"), *v))
            .collect(),
    );
    if let Some(st) = lock(&c.stats).clone() {
        let k = &st.counters;
        m(
            "oplog_entries",
            "Entries retained in the oplog.",
            "gauge",
            one(st.oplog_len as u64),
        );
        m(
            "keys",
            "Keys in the keyspace.",
            "gauge",
            one(st.keys as u64),
        );
        m(
            "pending",
            "Requests waiting for a quorum or a session token.",
            "gauge",
            one(st.pending as u64),
        );
        m(
            "batches_sent_total",
            "Replication batches sent, and how many compressed.",
            "counter",
            vec![
                ("{compressed=\"any\"}".into(), k.batches_sent),
                ("{compressed=\"yes\"}".into(), k.batches_compressed),
            ],
        );
        m(
            "batch_bytes_total",
            "Batch bytes before compression (raw) and as sent (wire).",
            "counter",
            vec![
                ("{encoding=\"raw\"}".into(), k.bytes_raw),
                ("{encoding=\"wire\"}".into(), k.bytes_sent),
            ],
        );
        m(
            "acks_sent_total",
            "Replication acks sent: all of them, and those that rode on a batch.",
            "counter",
            vec![
                ("{carried=\"any\"}".into(), k.acks_sent),
                ("{carried=\"batch\"}".into(), k.acks_piggybacked),
            ],
        );
        m(
            "entries_applied_total",
            "Remote entries applied.",
            "counter",
            one(k.entries_applied),
        );
        m(
            "retransmits_total",
            "Go-back-N retransmissions.",
            "counter",
            one(k.retransmits),
        );
        m(
            "anti_entropy_rounds_total",
            "Anti-entropy rounds by outcome.",
            "counter",
            vec![
                ("{outcome=\"started\"}".into(), k.ae_rounds),
                ("{outcome=\"completed\"}".into(), k.ae_rounds_completed),
                ("{outcome=\"abandoned\"}".into(), k.ae_rounds_abandoned),
            ],
        );
        m(
            "anti_entropy_repairs_total",
            "Keys whose state anti-entropy changed.",
            "counter",
            one(k.ae_keys_repaired),
        );
        m(
            "session_waits_total",
            "Requests that waited for their session token.",
            "counter",
            one(k.session_waits),
        );
        m(
            "session_timeouts_total",
            "Requests that gave up waiting for their session token.",
            "counter",
            one(k.session_timeouts),
        );
        m(
            "quorum_total",
            "Quorum operations by outcome.",
            "counter",
            vec![
                ("{outcome=\"ok\"}".into(), k.quorum_ok),
                ("{outcome=\"timeout\"}".into(), k.quorum_timeouts),
            ],
        );
        m(
            "replica_bad_messages_total",
            "Peer payloads the replica refused.",
            "counter",
            vec![
                ("{reason=\"decode\"}".into(), k.decode_errors),
                ("{reason=\"invalid\"}".into(), k.invalid_messages),
            ],
        );
    }
    s
}
