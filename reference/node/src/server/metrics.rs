//! The metrics port: a minimal HTTP/1.1 responder (`GET /metrics`, Prometheus text format).
//!
//! Every metric the node serves is one row of [`METRICS`]: its name, type, help text and where
//! its samples come from. The exposition is rendered from that table alone, and a unit test
//! checks the table against the list of metrics in `docs/protocol.md`, so the two cannot drift
//! apart: a metric added here without documenting it fails the test.
//!
//! # Invariants
//! - A scrape never waits for the driver: it reads atomics, the shared pieces (cursors, outboxes,
//!   waiters) and the driver's last published [`Stats`] snapshot, cloned so that no lock is held
//!   while rendering; it never touches the replica.
//! - A request is bounded: at most [`HTTP_REQUEST_MAX`] bytes read, [`HTTP_TIMEOUT`] in all, and
//!   the connection closes after one response.
//! - Every name is prefixed `converge_` and appears once, in the table's order. A metric read
//!   from the replica's [`Stats`] is left out (with its `HELP` and `TYPE` lines) until the driver
//!   first publishes them, rather than served as zeros it never measured.

use super::state::{Link, Node};
use crate::shared::CursorSnapshot;
use crate::sync::{Arc, AtomicU64, Ordering, lock};
use converge_core::replica::Stats;
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
                let _ = stream.write_all(respond(&node, &req).as_bytes()).await;
                let _ = stream.shutdown().await;
            })
            .await;
        });
    }
}

/// The HTTP response to a request that starts with `req`: the metrics for `GET /metrics` (or
/// `GET /`), a counted 404 for anything else.
fn respond(node: &Node, req: &[u8]) -> String {
    if req.starts_with(b"GET /metrics ") || req.starts_with(b"GET / ") {
        let body = render(node);
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    } else {
        node.counters.bad_input("http_bad_request");
        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
    }
}

/// A metric's Prometheus type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Type {
    Gauge,
    Counter,
}

impl Type {
    /// Its name on a `# TYPE` line.
    fn name(self) -> &'static str {
        match self {
            Type::Gauge => "gauge",
            Type::Counter => "counter",
        }
    }
}

/// One sample's value: a count, or (for commit time) seconds, printed as Rust prints an `f64`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Value {
    Int(u64),
    Seconds(f64),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Int(v) => write!(f, "{v}"),
            Value::Seconds(v) => write!(f, "{v}"),
        }
    }
}

/// One series of a metric: its labels (`{name="value",...}`, or empty) and its value.
type Sample = (String, Value);

/// What one scrape reads from: the node, and the snapshots taken once per scrape so that the
/// metrics drawn from one snapshot agree with each other.
struct Scrape<'a> {
    node: &'a Node,
    cursors: CursorSnapshot,
}

/// Where a metric's samples come from.
#[derive(Clone, Copy)]
enum Source {
    /// The shell's own state (counters, links, cursors, waiters): always served.
    Shell(fn(&Scrape<'_>) -> Vec<Sample>),
    /// The replica's [`Stats`] as the driver last published them: served once there are some.
    Replica(fn(&Stats) -> Vec<Sample>),
}

/// One metric the node serves.
struct Metric {
    /// The name without the `converge_` prefix.
    name: &'static str,
    kind: Type,
    help: &'static str,
    source: Source,
}

/// The prefix of every metric name.
const PREFIX: &str = "converge_";

/// Every metric `/metrics` serves, in the order it serves them; see the module documentation.
const METRICS: &[Metric] = &[
    Metric {
        name: "replication_lag_ms",
        kind: Type::Gauge,
        help: "Milliseconds between a peer stamping its last frame and this node reading it.",
        source: Source::Shell(|s| per_peer(s, |_, l| ld(&l.lag_ms))),
    },
    Metric {
        name: "replication_lag_entries",
        kind: Type::Gauge,
        help: "Local oplog entries the peer has not acknowledged.",
        source: Source::Shell(|s| {
            per_peer(s, |s, l| s.node.cursors.lag_entries(l.spec.id).unwrap_or(0))
        }),
    },
    Metric {
        name: "peer_link_up",
        kind: Type::Gauge,
        help: "Whether the outgoing link to the peer is connected.",
        source: Source::Shell(|s| per_peer(s, |_, l| u64::from(l.out_up.load(Ordering::Relaxed)))),
    },
    Metric {
        name: "peer_link_cut",
        kind: Type::Gauge,
        help: "Whether the link to the peer is cut by CLUSTER.LINKS CUT.",
        source: Source::Shell(|s| per_peer(s, |_, l| u64::from(l.cut.load(Ordering::Relaxed)))),
    },
    Metric {
        name: "peer_frames_total",
        kind: Type::Counter,
        help: "Peer frames sent and received.",
        source: Source::Shell(|s| {
            s.node
                .links
                .values()
                .flat_map(|l| {
                    let p = format!("peer=\"{}\"", l.spec.id);
                    [
                        (format!("{{{p},direction=\"out\"}}"), int(ld(&l.frames_out))),
                        (format!("{{{p},direction=\"in\"}}"), int(ld(&l.frames_in))),
                    ]
                })
                .collect()
        }),
    },
    Metric {
        name: "outbox_frames",
        kind: Type::Gauge,
        help: "Frames queued for the peer.",
        source: Source::Shell(|s| per_peer(s, |_, l| l.outbox.stats().queued_frames as u64)),
    },
    Metric {
        name: "outbox_rejected_total",
        kind: Type::Counter,
        help: "Frames refused by a full outbox (re-sent by go-back-N).",
        source: Source::Shell(|s| per_peer(s, |_, l| l.outbox.stats().rejected_full)),
    },
    Metric {
        name: "oplog_appended_seq",
        kind: Type::Gauge,
        help: "Last local oplog sequence number handed to the store.",
        source: Source::Shell(|s| one(s.cursors.appended)),
    },
    Metric {
        name: "oplog_durable_seq",
        kind: Type::Gauge,
        help: "Last local oplog sequence number committed.",
        source: Source::Shell(|s| one(s.cursors.durable)),
    },
    Metric {
        name: "group_commits_total",
        kind: Type::Counter,
        help: "Store commits (one per batch of inputs).",
        source: Source::Shell(|s| one(ld(&s.node.counters.group_commits))),
    },
    Metric {
        name: "group_commit_inputs_total",
        kind: Type::Counter,
        help: "Inputs covered by those commits.",
        source: Source::Shell(|s| one(ld(&s.node.counters.group_commit_inputs))),
    },
    Metric {
        name: "group_commit_seconds_total",
        kind: Type::Counter,
        help: "Time spent in commits (microsecond resolution).",
        source: Source::Shell(|s| {
            let micros = ld(&s.node.counters.commit_micros);
            vec![(String::new(), Value::Seconds(micros as f64 / 1e6))]
        }),
    },
    Metric {
        name: "connections",
        kind: Type::Gauge,
        help: "Client connections open now.",
        source: Source::Shell(|s| {
            one(s.node.counters.connections_open.load(Ordering::Relaxed) as u64)
        }),
    },
    Metric {
        name: "connections_total",
        kind: Type::Counter,
        help: "Client connections accepted (and refused over the limit).",
        source: Source::Shell(|s| {
            let c = &s.node.counters;
            labelled(
                "result",
                [
                    ("accepted", ld(&c.connections_total)),
                    ("refused", ld(&c.connections_refused)),
                ],
            )
        }),
    },
    Metric {
        name: "requests_total",
        kind: Type::Counter,
        help: "Requests submitted to the replica.",
        source: Source::Shell(|s| one(ld(&s.node.counters.requests))),
    },
    Metric {
        name: "request_timeouts_total",
        kind: Type::Counter,
        help: "Requests answered -TIMEOUT by the shell.",
        source: Source::Shell(|s| one(ld(&s.node.counters.request_timeouts))),
    },
    Metric {
        name: "busy_total",
        kind: Type::Counter,
        help: "Requests refused -BUSY (waiters or queue full).",
        source: Source::Shell(|s| one(ld(&s.node.counters.busy))),
    },
    Metric {
        name: "client_auth_total",
        kind: Type::Counter,
        help: "AUTHs that succeeded or failed, and commands refused without authentication or the admin role.",
        source: Source::Shell(|s| {
            let c = &s.node.counters;
            labelled(
                "result",
                [
                    ("ok", ld(&c.auth_ok)),
                    ("failed", ld(&c.auth_failed)),
                    ("refused", ld(&c.auth_refused)),
                ],
            )
        }),
    },
    Metric {
        name: "client_closed_total",
        kind: Type::Counter,
        help: "Client connections the node closed, by reason.",
        source: Source::Shell(|s| {
            let c = &s.node.counters;
            labelled(
                "reason",
                [
                    ("idle", ld(&c.closed_idle)),
                    ("first_command", ld(&c.closed_first_command)),
                    ("auth_failures", ld(&c.closed_auth)),
                    ("partial_budget", ld(&c.closed_budget)),
                ],
            )
        }),
    },
    Metric {
        name: "partial_command_bytes",
        kind: Type::Gauge,
        help: "Unparsed client input held now, over all connections.",
        source: Source::Shell(
            |s| one(s.node.counters.partial_bytes.load(Ordering::Relaxed) as u64),
        ),
    },
    Metric {
        name: "waiters",
        kind: Type::Gauge,
        help: "Requests waiting for the replica now.",
        source: Source::Shell(|s| one(s.node.waiters.len() as u64)),
    },
    Metric {
        name: "transmits_dropped_total",
        kind: Type::Counter,
        help: "Replica messages dropped (full outbox or cut link).",
        source: Source::Shell(|s| one(ld(&s.node.counters.transmits_dropped))),
    },
    Metric {
        name: "clock_drift_total",
        kind: Type::Counter,
        help: "Peer frames stamped beyond the drift bound.",
        source: Source::Shell(|s| one(ld(&s.node.counters.clock_drift))),
    },
    Metric {
        name: "bad_inputs_total",
        kind: Type::Counter,
        help: "Malformed inputs by kind (RESP, peer frames, HTTP).",
        source: Source::Shell(|s| {
            lock(&s.node.counters.bad_inputs)
                .iter()
                .map(|(k, v)| (format!("{{kind=\"{k}\"}}"), int(*v)))
                .collect()
        }),
    },
    Metric {
        name: "oplog_entries",
        kind: Type::Gauge,
        help: "Entries retained in the oplog.",
        source: Source::Replica(|st| one(st.oplog_len as u64)),
    },
    Metric {
        name: "keys",
        kind: Type::Gauge,
        help: "Keys in the keyspace.",
        source: Source::Replica(|st| one(st.keys as u64)),
    },
    Metric {
        name: "pending",
        kind: Type::Gauge,
        help: "Requests waiting for a quorum or a session token.",
        source: Source::Replica(|st| one(st.pending as u64)),
    },
    Metric {
        name: "batches_sent_total",
        kind: Type::Counter,
        help: "Replication batches sent, and how many compressed.",
        source: Source::Replica(|st| {
            let k = &st.counters;
            labelled(
                "compressed",
                [("any", k.batches_sent), ("yes", k.batches_compressed)],
            )
        }),
    },
    Metric {
        name: "batch_bytes_total",
        kind: Type::Counter,
        help: "Batch bytes before compression (raw) and as sent (wire).",
        source: Source::Replica(|st| {
            let k = &st.counters;
            labelled("encoding", [("raw", k.bytes_raw), ("wire", k.bytes_sent)])
        }),
    },
    Metric {
        name: "acks_sent_total",
        kind: Type::Counter,
        help: "Replication acks sent: all of them, and those that rode on a batch.",
        source: Source::Replica(|st| {
            let k = &st.counters;
            labelled(
                "carried",
                [("any", k.acks_sent), ("batch", k.acks_piggybacked)],
            )
        }),
    },
    Metric {
        name: "entries_applied_total",
        kind: Type::Counter,
        help: "Remote entries applied.",
        source: Source::Replica(|st| one(st.counters.entries_applied)),
    },
    Metric {
        name: "retransmits_total",
        kind: Type::Counter,
        help: "Go-back-N retransmissions.",
        source: Source::Replica(|st| one(st.counters.retransmits)),
    },
    Metric {
        name: "anti_entropy_rounds_total",
        kind: Type::Counter,
        help: "Anti-entropy rounds by outcome.",
        source: Source::Replica(|st| {
            let k = &st.counters;
            labelled(
                "outcome",
                [
                    ("started", k.ae_rounds),
                    ("completed", k.ae_rounds_completed),
                    ("abandoned", k.ae_rounds_abandoned),
                ],
            )
        }),
    },
    Metric {
        name: "anti_entropy_repairs_total",
        kind: Type::Counter,
        help: "Keys whose state anti-entropy changed.",
        source: Source::Replica(|st| one(st.counters.ae_keys_repaired)),
    },
    Metric {
        name: "session_waits_total",
        kind: Type::Counter,
        help: "Requests that waited for their session token.",
        source: Source::Replica(|st| one(st.counters.session_waits)),
    },
    Metric {
        name: "session_timeouts_total",
        kind: Type::Counter,
        help: "Requests that gave up waiting for their session token.",
        source: Source::Replica(|st| one(st.counters.session_timeouts)),
    },
    Metric {
        name: "quorum_total",
        kind: Type::Counter,
        help: "Quorum operations by outcome.",
        source: Source::Replica(|st| {
            let k = &st.counters;
            labelled(
                "outcome",
                [("ok", k.quorum_ok), ("timeout", k.quorum_timeouts)],
            )
        }),
    },
    Metric {
        name: "consensus_total",
        kind: Type::Counter,
        help: "Consensus-register operations by outcome.",
        source: Source::Replica(|st| {
            let k = &st.counters;
            labelled(
                "outcome",
                [
                    ("ok", k.consensus_ok),
                    ("precondition_failed", k.consensus_precondition_failed),
                    ("unavailable", k.consensus_unavailable),
                    ("indefinite", k.consensus_indefinite),
                ],
            )
        }),
    },
    Metric {
        name: "withdrawals_total",
        kind: Type::Counter,
        help: "Bounded-counter withdrawals: applied, waited for rights, covered by a transfer, refused.",
        source: Source::Replica(|st| {
            let k = &st.counters;
            labelled(
                "event",
                [
                    ("applied", k.withdrawals_applied),
                    ("waited", k.withdrawals_waited),
                    ("covered_by_transfer", k.withdrawals_covered_by_transfer),
                    ("refused", k.withdrawals_refused),
                ],
            )
        }),
    },
    Metric {
        name: "rights_granted_total",
        kind: Type::Counter,
        help: "Transfers of bounded-counter rights granted to peers that asked.",
        source: Source::Replica(|st| one(st.counters.rights_granted)),
    },
    Metric {
        name: "replica_bad_messages_total",
        kind: Type::Counter,
        help: "Peer payloads the replica refused.",
        source: Source::Replica(|st| {
            let k = &st.counters;
            labelled(
                "reason",
                [("decode", k.decode_errors), ("invalid", k.invalid_messages)],
            )
        }),
    },
    Metric {
        name: "residency_redacted_total",
        kind: Type::Counter,
        help: "Oplog entries sent without key and value to a neighbour a residency pin keeps them from.",
        source: Source::Replica(|st| one(st.counters.entries_redacted)),
    },
    Metric {
        name: "anti_entropy_claims_withheld_total",
        kind: Type::Counter,
        help: "Anti-entropy rounds that repaired but claimed no frontier: it would cover pinned writes this replica lacks.",
        source: Source::Replica(|st| one(st.counters.ae_claims_withheld)),
    },
];

fn ld(v: &AtomicU64) -> u64 {
    v.load(Ordering::Relaxed)
}

fn int(v: u64) -> Value {
    Value::Int(v)
}

/// The one unlabelled sample of a metric.
fn one(v: u64) -> Vec<Sample> {
    vec![(String::new(), int(v))]
}

/// One sample per value of the label `label`.
fn labelled<const N: usize>(label: &str, values: [(&str, u64); N]) -> Vec<Sample> {
    values
        .into_iter()
        .map(|(value, v)| (format!("{{{label}=\"{value}\"}}"), int(v)))
        .collect()
}

/// One sample per peer link, labelled with the peer's id and region, in replica id order.
fn per_peer(s: &Scrape<'_>, value: fn(&Scrape<'_>, &Link) -> u64) -> Vec<Sample> {
    s.node
        .links
        .values()
        .map(|l| {
            let labels = format!("{{peer=\"{}\",region=\"{}\"}}", l.spec.id, l.spec.region);
            (labels, int(value(s, l)))
        })
        .collect()
}

/// The text exposition of every metric in [`METRICS`].
fn render(node: &Node) -> String {
    let scrape = Scrape {
        node,
        cursors: node.cursors.snapshot(),
    };
    // Cloned so the lock is not held while rendering.
    let stats = lock(&node.counters.stats).clone();
    let mut s = String::new();
    for m in METRICS {
        let samples = match (m.source, &stats) {
            (Source::Shell(f), _) => f(&scrape),
            (Source::Replica(f), Some(st)) => f(st),
            (Source::Replica(_), None) => continue,
        };
        let (name, kind) = (m.name, m.kind.name());
        let _ = writeln!(
            s,
            "# HELP {PREFIX}{name} {}\n# TYPE {PREFIX}{name} {kind}",
            m.help
        );
        for (labels, v) in samples {
            let _ = writeln!(s, "{PREFIX}{name}{labels} {v}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::super::state::testing;
    use super::*;
    use converge_core::replica::{Counters as ReplicaCounters, Stats};

    /// A node of two peers with every figure `/metrics` shows set to a distinct value.
    fn busy_node() -> Node {
        let (node, _rx) = testing::node(testing::config());
        for (i, l) in node.links.values().enumerate() {
            let i = i as u64 * 100;
            l.lag_ms.store(i + 1, Ordering::Relaxed);
            l.frames_in.store(i + 2, Ordering::Relaxed);
            l.frames_out.store(i + 3, Ordering::Relaxed);
            l.out_up.store(i == 0, Ordering::Relaxed);
            l.cut.store(i != 0, Ordering::Relaxed);
        }
        node.links[&1].outbox.push(vec![0; 8]).unwrap();
        node.cursors.append(40);
        node.cursors.durable(38);
        node.cursors.ack(1, 35);
        node.cursors.ack(2, 20);
        let c = &node.counters;
        for (counter, v) in [
            (&c.connections_total, 5),
            (&c.connections_refused, 6),
            (&c.requests, 7),
            (&c.request_timeouts, 8),
            (&c.busy, 9),
            (&c.group_commits, 10),
            (&c.group_commit_inputs, 11),
            (&c.commit_micros, 1_234_567),
            (&c.transmits_dropped, 12),
            (&c.clock_drift, 13),
            (&c.auth_ok, 14),
            (&c.auth_failed, 15),
            (&c.auth_refused, 16),
            (&c.closed_idle, 17),
            (&c.closed_first_command, 18),
            (&c.closed_auth, 19),
            (&c.closed_budget, 20),
        ] {
            counter.store(v, Ordering::Relaxed);
        }
        c.connections_open.store(3, Ordering::Relaxed);
        c.partial_bytes.store(4_096, Ordering::Relaxed);
        c.bad_input("resp_bad_length");
        c.bad_input("peer_unknown");
        c.bad_input("peer_unknown");
        node
    }

    /// Replica stats with every figure `/metrics` shows set to a distinct value.
    fn replica_stats() -> Stats {
        Stats {
            counters: ReplicaCounters {
                batches_sent: 21,
                batches_compressed: 22,
                bytes_raw: 23,
                bytes_sent: 24,
                acks_sent: 25,
                acks_piggybacked: 26,
                entries_applied: 27,
                retransmits: 28,
                ae_rounds: 29,
                ae_rounds_completed: 30,
                ae_rounds_abandoned: 31,
                ae_keys_repaired: 32,
                session_waits: 33,
                session_timeouts: 34,
                quorum_ok: 35,
                quorum_timeouts: 36,
                decode_errors: 37,
                invalid_messages: 38,
                consensus_ok: 42,
                consensus_precondition_failed: 43,
                consensus_unavailable: 44,
                consensus_indefinite: 45,
                withdrawals_applied: 46,
                withdrawals_waited: 47,
                withdrawals_covered_by_transfer: 48,
                withdrawals_refused: 49,
                rights_granted: 50,
                entries_redacted: 51,
                ae_claims_withheld: 52,
                ..ReplicaCounters::default()
            },
            oplog_len: 39,
            keys: 40,
            pending: 41,
            ..Stats::default()
        }
    }

    /// The exposition `busy_node` with `replica_stats` rendered before the renderer was
    /// table-driven: names, order, help, types, labels and values are part of the node's
    /// interface (dashboards and `tests/cluster.rs` read them). Metrics are only ever added to
    /// it (the consensus and escrow ones were, in issue 14; the residency ones in issue 15), never
    /// renamed or reordered.
    const GOLDEN: &str = include_str!("metrics_golden.txt");

    #[test]
    fn the_exposition_is_byte_for_byte_what_the_node_served_before() {
        let node = busy_node();
        // Before the driver's first stats, the replica's metrics are left out entirely.
        let shell_only = &GOLDEN[..GOLDEN.find("# HELP converge_oplog_entries").unwrap()];
        assert_eq!(render(&node), shell_only);
        *lock(&node.counters.stats) = Some(replica_stats());
        assert_eq!(render(&node), GOLDEN);
    }

    /// The metric names in the order their `# HELP` lines appear.
    fn served(text: &str) -> Vec<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix("# HELP "))
            .map(|l| l.split(' ').next().unwrap().to_string())
            .collect()
    }

    #[test]
    fn every_metric_of_the_table_is_served_once_in_table_order() {
        let node = busy_node();
        *lock(&node.counters.stats) = Some(replica_stats());
        let text = render(&node);
        let table: Vec<String> = METRICS
            .iter()
            .map(|m| format!("{PREFIX}{}", m.name))
            .collect();
        assert_eq!(served(&text), table);
        for m in METRICS {
            assert!(
                !m.name.starts_with(PREFIX),
                "{}: the prefix is added",
                m.name
            );
            assert!(
                !m.help.is_empty() && !m.help.contains('\n'),
                "{}: one line of help",
                m.name
            );
            let samples = text
                .lines()
                .filter(|l| {
                    l.strip_prefix(PREFIX)
                        .and_then(|l| l.strip_prefix(m.name))
                        .is_some_and(|rest| rest.starts_with([' ', '{']))
                })
                .count();
            assert!(samples > 0, "{}: no sample", m.name);
        }
    }

    /// The names in `docs/protocol.md`'s list of metrics: the backquoted names in the sentence
    /// after "prefixed `converge_`:" in its `## Metrics` section, labels (`{...}`) cut off.
    fn documented() -> Vec<String> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/protocol.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let section = doc
            .split("\n## Metrics\n")
            .nth(1)
            .expect("docs/protocol.md has a `## Metrics` section");
        let section = section.split("\n#").next().unwrap();
        let marker = "prefixed `converge_`:";
        let list = &section[section
            .find(marker)
            .expect("the list starts after the prefix")
            + marker.len()..];
        // The list is one sentence: it ends at the first full stop.
        let list = &list[..list.find(". ").expect("the list ends with a full stop")];
        list.split('`')
            .skip(1)
            .step_by(2)
            .map(|quoted| quoted.split('{').next().unwrap().to_string())
            .collect()
    }

    #[test]
    fn the_protocol_doc_lists_exactly_the_served_metrics() {
        let mut doc = documented();
        let listed = doc.len();
        doc.sort();
        doc.dedup();
        assert_eq!(doc.len(), listed, "docs/protocol.md lists a metric twice");
        let mut table: Vec<String> = METRICS.iter().map(|m| m.name.to_string()).collect();
        table.sort();
        let missing: Vec<&String> = table.iter().filter(|n| !doc.contains(n)).collect();
        let extra: Vec<&String> = doc.iter().filter(|n| !table.contains(n)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "docs/protocol.md's metric list is out of sync with /metrics: \
             undocumented {missing:?}, documented but not served {extra:?}"
        );
    }

    #[test]
    fn only_get_metrics_is_answered_and_anything_else_is_a_counted_404() {
        let node = busy_node();
        for req in [
            &b"GET /metrics HTTP/1.1\r\n\r\n"[..],
            b"GET / HTTP/1.0\r\n\r\n",
        ] {
            let response = respond(&node, req);
            let (head, body) = response.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
            assert!(
                head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())),
                "{head}"
            );
            assert_eq!(body, render(&node));
        }
        let before = lock(&node.counters.bad_inputs)
            .get("http_bad_request")
            .copied();
        assert_eq!(before, None);
        assert_eq!(
            respond(&node, b"GET /metricsx HTTP/1.1\r\n\r\n"),
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        respond(&node, b"POST /metrics HTTP/1.1\r\n\r\n");
        assert_eq!(
            lock(&node.counters.bad_inputs).get("http_bad_request"),
            Some(&2)
        );
    }
}
