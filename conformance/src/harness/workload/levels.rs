//! Consistency levels checked from outside: `consistency-levels`.
//!
//! A request that names `LOCAL_QUORUM` or `GLOBAL_QUORUM` and is acknowledged promises that a
//! quorum of replicas took part: held the write, or answered the read. The harness cannot see
//! inside a node, but it sees every message between nodes, so it can check a necessary
//! condition: while the request was pending, its node must have *exchanged* messages with
//! enough peers. A peer `p` counts when a chain of deliveries leads from the node, leaving after
//! the request was sent to it, to `p`, and another chain leads from `p`, leaving after the first
//! arrived, back to the node, arriving before the reply was read: a round trip inside the pending
//! interval (`invoke_seq`..`complete_seq` in the harness's total order of observations). A chain
//! is usually one message each way, but relays (other nodes, or a service both sides call)
//! count, so a node that gathers acknowledgements second-hand is not wrongly failed; only nodes
//! count as peers, never a service.
//!
//! Why this is necessary for any correct node, and so never fails one: a peer that held the write
//! or answered the read must have heard of the request, through some chain from its node that
//! began once the node had it; and the node must have heard back, through some chain that
//! ended before it replied. The harness writes and reads every message, one at a time, in the
//! order it numbers them, so a node cannot have read a message before the harness wrote it, nor
//! written one after the harness read it. The converse does not hold (a round trip proves
//! contact, not agreement): this catches a node that acknowledges a quorum level without
//! waiting for its peers, not every way of counting a quorum wrong.
//!
//! How many peers depends on regions, and the protocol tells the harness none. A node may group
//! the nodes into regions of `R` consecutive nodes (`nK` in region `K / R`, as converge's
//! reference node does with `--replicas-per-region R`), where a *local* quorum is a majority of
//! the node's region and a *global* one a majority of all nodes or a majority of the regions, each
//! by a majority of its nodes (the hierarchical quorum, which can be smaller). With the layout
//! known ([`Layout::PerRegion`]) both are checked exactly. Without it ([`Layout::Unknown`], what
//! the `session` workload uses) only what holds under every `R` is: `LOCAL_QUORUM` is not checked
//! (with `R = 1` the node is its own region's majority), and `GLOBAL_QUORUM` passes when the
//! node and the peers it made round trips with form a global quorum under *some* `R`. For two
//! nodes or more that is never the node alone, so acknowledging without hearing from any peer
//! always fails; for 3 or 5 nodes it is exactly a majority.
//!
//! Cost: a first pass looks only at direct round trips, by binary searches in per-link indexes of
//! the deliveries: O(log D) per peer per request. Only a request that fails it is looked at again
//! over the deliveries sent while it was pending, to follow chains.

use crate::harness::body::Level;
use crate::harness::check::{Check, Verdict};
use crate::harness::history::{Body, Delivery, Event, History};
use serde_json::Value;

/// The check's name.
pub(super) const NAME: &str = "consistency-levels";

/// At most this many violations are described in the detail; the count is always given.
const SHOWN: usize = 3;

/// Which nodes share a region, as far as the harness knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Layout {
    /// Regions of some number of consecutive nodes, the harness does not know how many: what it
    /// assumes, since the protocol tells it nothing of regions.
    Unknown,
    /// Regions of this many consecutive nodes: node `k` is in region `k / R` (the last region
    /// may be short). Only the tests build it until the harness can be told the regions (the
    /// simulator knows them).
    #[cfg_attr(not(test), allow(dead_code))]
    PerRegion(usize),
}

impl Layout {
    /// Whether `node` with the peers marked in `with` makes a quorum of `level` over `nodes`.
    fn met(&self, level: Quorum, node: usize, with: &[bool], nodes: usize) -> bool {
        let has = |n: usize| n == node || with.get(n).copied().unwrap_or(false);
        let majority_of = |range: std::ops::Range<usize>| {
            let size = range.len();
            2 * range.filter(|&n| has(n)).count() > size
        };
        // The quorums of regions of `per` consecutive nodes.
        let local = |per: usize| {
            let start = node / per * per;
            majority_of(start..(start + per).min(nodes))
        };
        let global = |per: usize| {
            let regions = nodes.div_ceil(per);
            let held = (0..regions)
                .filter(|r| majority_of(r * per..((r + 1) * per).min(nodes)))
                .count();
            majority_of(0..nodes) || 2 * held > regions
        };
        match (self, level) {
            // With one node per region, the node alone is its region's majority.
            (Layout::Unknown, Quorum::LocalQuorum) => true,
            (Layout::Unknown, Quorum::GlobalQuorum) => (1..=nodes.max(1)).any(global),
            (&Layout::PerRegion(per), Quorum::LocalQuorum) => local(per.max(1)),
            (&Layout::PerRegion(per), Quorum::GlobalQuorum) => global(per.max(1)),
        }
    }

    /// What `level` needs, for the detail.
    fn needs(&self, level: Quorum, node: usize, nodes: usize) -> String {
        let flat = format!(
            "a majority of the {nodes} nodes, itself included, needs round trips with {} of its {} peers",
            nodes / 2,
            nodes.saturating_sub(1)
        );
        match (self, level) {
            (Layout::Unknown, Quorum::LocalQuorum) => "nothing".to_string(),
            (Layout::Unknown, Quorum::GlobalQuorum) => {
                format!("that is a global quorum under no layout of consecutive regions ({flat})")
            }
            (&Layout::PerRegion(per), Quorum::LocalQuorum) => {
                let per = per.max(1);
                let start = node / per * per;
                let size = (start + per).min(nodes) - start;
                format!(
                    "a majority of its region's {size} nodes, itself included, needs round trips with {} of the others",
                    size / 2
                )
            }
            (&Layout::PerRegion(per), Quorum::GlobalQuorum) => format!(
                "that is neither a majority of the {nodes} nodes nor of the {} regions of {}",
                nodes.div_ceil(per.max(1)),
                per.max(1)
            ),
        }
    }
}

/// A quorum level a request may name: the levels this check has something to say about
/// (`LOCAL_ONE` promises nothing it could check).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Quorum {
    LocalQuorum,
    GlobalQuorum,
}

impl Quorum {
    fn of(e: &Event) -> Option<Quorum> {
        match e.request.consistency? {
            Level::LocalQuorum => Some(Quorum::LocalQuorum),
            Level::GlobalQuorum => Some(Quorum::GlobalQuorum),
            Level::LocalOne => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Quorum::LocalQuorum => Level::LocalQuorum.name(),
            Quorum::GlobalQuorum => Level::GlobalQuorum.name(),
        }
    }
}

/// The deliveries of one link, two ways: by send, with the earliest delivery of any later send
/// (suffix minima), and by delivery, with the latest send of any earlier delivery (prefix
/// maxima).
#[derive(Default)]
struct Link {
    /// `(sent_seq, least delivered_seq of this and every later send)`, by `sent_seq`.
    by_send: Vec<(u64, u64)>,
    /// `(delivered_seq, greatest sent_seq of this and every earlier delivery)`, by
    /// `delivered_seq`.
    by_delivery: Vec<(u64, u64)>,
}

impl Link {
    fn new(mut copies: Vec<(u64, u64)>) -> Self {
        copies.sort_unstable();
        let mut by_send: Vec<(u64, u64)> = copies.clone();
        let mut least = u64::MAX;
        for entry in by_send.iter_mut().rev() {
            least = least.min(entry.1);
            entry.1 = least;
        }
        let mut by_delivery: Vec<(u64, u64)> = copies.iter().map(|&(s, d)| (d, s)).collect();
        by_delivery.sort_unstable();
        let mut greatest = 0;
        for entry in &mut by_delivery {
            greatest = greatest.max(entry.1);
            entry.1 = greatest;
        }
        Link {
            by_send,
            by_delivery,
        }
    }

    /// The earliest delivery of a copy sent after `t`.
    fn first_delivery_of_send_after(&self, t: u64) -> Option<u64> {
        let k = self.by_send.partition_point(|&(sent, _)| sent <= t);
        self.by_send.get(k).map(|&(_, least)| least)
    }

    /// The latest send of a copy delivered before `t`.
    fn last_send_delivered_before(&self, t: u64) -> Option<u64> {
        let k = self
            .by_delivery
            .partition_point(|&(delivered, _)| delivered < t);
        k.checked_sub(1).map(|i| self.by_delivery[i].1)
    }
}

/// The deliveries of a history, indexed for both passes.
struct Deliveries<'a> {
    nodes: usize,
    /// Node-to-node links, `from * nodes + to`.
    links: Vec<Link>,
    /// Every delivery, services' included, by `(sent_seq, delivered_seq)`: a service reads a
    /// request and answers it in one step, so its reply has the request's `sent_seq` and must
    /// come after it.
    by_send: Vec<&'a Delivery>,
    /// Parties: nodes, then services.
    parties: usize,
}

impl<'a> Deliveries<'a> {
    fn new(history: &'a History, nodes: usize) -> Self {
        let mut copies: Vec<Vec<(u64, u64)>> = vec![Vec::new(); nodes * nodes];
        for d in &history.deliveries {
            if d.from < nodes && d.to < nodes && d.from != d.to {
                copies[d.from * nodes + d.to].push((d.sent_seq, d.delivered_seq));
            }
        }
        let mut by_send: Vec<&Delivery> = history.deliveries.iter().collect();
        by_send.sort_unstable_by_key(|d| (d.sent_seq, d.delivered_seq));
        let parties = history
            .deliveries
            .iter()
            .map(|d| d.from.max(d.to) + 1)
            .max()
            .unwrap_or(0)
            .max(nodes);
        Deliveries {
            nodes,
            links: copies.into_iter().map(Link::new).collect(),
            by_send,
            parties,
        }
    }

    /// The peers `node` made a direct round trip with between `invoke` and `complete`: a copy
    /// `node → p` sent after `invoke`, then a copy `p → node` sent after that one arrived and
    /// delivered before `complete`.
    fn direct(&self, node: usize, invoke: u64, complete: u64) -> Vec<bool> {
        (0..self.nodes)
            .map(|p| {
                if p == node {
                    return false;
                }
                let out = &self.links[node * self.nodes + p];
                let back = &self.links[p * self.nodes + node];
                match (
                    out.first_delivery_of_send_after(invoke),
                    back.last_send_delivered_before(complete),
                ) {
                    (Some(arrived), Some(answered)) => arrived < answered,
                    _ => false,
                }
            })
            .collect()
    }

    /// The peers `node` made a round trip with between `invoke` and `complete` through chains of
    /// deliveries, relays (nodes or services) included: the earliest each party can have heard
    /// from the node after `invoke`, forward over the deliveries in send order; the latest each
    /// can have sent and still reached the node before `complete`, backward in delivery order.
    fn chains(&self, node: usize, invoke: u64, complete: u64) -> Vec<bool> {
        let start = self.by_send.partition_point(|d| d.sent_seq <= invoke);
        let window: Vec<&Delivery> = self.by_send[start..]
            .iter()
            .take_while(|d| d.sent_seq < complete)
            .filter(|d| d.delivered_seq < complete)
            .copied()
            .collect();
        // `heard[x]`: when `x` first could have heard of the request.
        let mut heard: Vec<Option<u64>> = vec![None; self.parties];
        heard[node] = Some(invoke);
        for d in &window {
            // A service's reply leaves at the step its request arrived, hence `<=`; two node
            // events never share a step.
            if heard[d.from].is_some_and(|h| h <= d.sent_seq) {
                let at = &mut heard[d.to];
                *at = Some(at.map_or(d.delivered_seq, |a| a.min(d.delivered_seq)));
            }
        }
        // `answer[x]`: the latest `x` could have sent and still reached the node in time.
        let mut answer: Vec<Option<u64>> = vec![None; self.parties];
        answer[node] = Some(complete);
        let mut backward = window;
        backward.sort_unstable_by_key(|d| std::cmp::Reverse((d.delivered_seq, d.sent_seq)));
        for d in backward {
            if answer[d.to].is_some_and(|a| d.delivered_seq <= a) {
                let at = &mut answer[d.from];
                *at = Some(at.map_or(d.sent_seq, |a| a.max(d.sent_seq)));
            }
        }
        (0..self.nodes)
            .map(|p| p != node && matches!((heard[p], answer[p]), (Some(h), Some(a)) if h < a))
            .collect()
    }
}

/// `consistency-levels`: every acknowledged request at `LOCAL_QUORUM` or `GLOBAL_QUORUM` made
/// round trips, while it was pending, with enough peers for a quorum of its level under
/// `layout` (see the module documentation).
pub(super) fn check(history: &History, nodes: usize, layout: Layout) -> Check {
    let judged: Vec<(&Event, Quorum, u64)> = history
        .events
        .iter()
        .filter(|e| e.node < nodes && e.reply().is_some())
        .filter_map(|e| Some((e, Quorum::of(e)?, e.complete_seq?)))
        .filter(|&(e, level, _)| !layout.met(level, e.node, &[], nodes))
        .collect();
    if judged.is_empty() {
        return Check::new(NAME, false, Verdict::Pass);
    }
    let deliveries = Deliveries::new(history, nodes);
    let mut shown: Vec<String> = Vec::new();
    let (mut count, total) = (0usize, judged.len());
    for (e, level, complete) in judged {
        let direct = deliveries.direct(e.node, e.invoke_seq, complete);
        if layout.met(level, e.node, &direct, nodes) {
            continue;
        }
        let chained = deliveries.chains(e.node, e.invoke_seq, complete);
        if layout.met(level, e.node, &chained, nodes) {
            continue;
        }
        count += 1;
        if shown.len() < SHOWN {
            shown.push(describe(e, level, complete, &chained, layout, nodes));
        }
    }
    let verdict = if count == 0 {
        Verdict::Pass
    } else {
        Verdict::Fail {
            detail: format!(
                "{count} of {total} acknowledged quorum requests had too few peers take part: {}",
                shown.join("; ")
            ),
        }
    };
    Check::new(NAME, false, verdict)
}

/// One violation: the operation, its node, its values, and the peers it did reach.
fn describe(
    e: &Event,
    level: Quorum,
    complete: u64,
    with: &[bool],
    layout: Layout,
    nodes: usize,
) -> String {
    let operation = match (e.kind(), e.request.element()) {
        ("add", Some(x)) => format!("add of {x}"),
        ("read", _) => {
            let value = e.reply().and_then(Body::read_value);
            match value.and_then(Value::as_array) {
                Some(items) => {
                    let first: Vec<String> = items.iter().take(5).map(Value::to_string).collect();
                    let more = if items.len() > 5 {
                        format!(", … ({} elements)", items.len())
                    } else {
                        String::new()
                    };
                    format!("read of [{}{more}]", first.join(", "))
                }
                None => "read".to_string(),
            }
        }
        (kind, _) => kind.to_string(),
    };
    let peers: Vec<String> = with
        .iter()
        .enumerate()
        .filter(|&(_, &w)| w)
        .map(|(p, _)| format!("n{p}"))
        .collect();
    let reached = if peers.is_empty() {
        "no peer".to_string()
    } else {
        format!("only {}", peers.join(", "))
    };
    format!(
        "n{} acknowledged c{}'s {} {operation} (sent at {} ms, step {}; answered at {} ms, step {complete}) after round trips with {reached}, but {}",
        e.node,
        e.client,
        level.name(),
        e.invoke_ms,
        e.invoke_seq,
        e.complete_ms.unwrap_or(e.invoke_ms),
        layout.needs(level, e.node, nodes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::history::{Outcome, Phase};
    use crate::harness::message::ErrorCode;
    use crate::harness::rng::SeededDice;
    use serde_json::json;

    /// A request of client 0 at `node` with `level` (or none), sent at step `seq.0` and answered
    /// ok at `seq.1` (ms are the same numbers).
    fn request(node: usize, body: Value, level: Option<&str>, seq: (u64, u64)) -> Event {
        let mut body = body;
        if let Some(level) = level {
            body["consistency"] = json!(level);
        }
        let reply = if body["type"] == "add" {
            json!({"type": "add_ok", "token": 1})
        } else {
            json!({"type": "read_ok", "value": [1, 2], "token": 1})
        };
        Event {
            client: 0,
            node,
            request: body.as_object().cloned().unwrap_or_default().into(),
            invoke_ms: seq.0,
            complete_ms: Some(seq.1),
            invoke_seq: seq.0,
            complete_seq: Some(seq.1),
            outcome: Outcome::Ok {
                reply: reply.as_object().cloned().unwrap_or_default().into(),
            },
            phase: Phase::Main,
            during_fault: false,
        }
    }

    fn add(node: usize, level: &str, seq: (u64, u64)) -> Event {
        request(
            node,
            json!({"type": "add", "element": 17}),
            Some(level),
            seq,
        )
    }

    /// A message `from → to`, read from `from` at step `sent` and written to `to` at `delivered`.
    fn msg(from: usize, to: usize, sent: u64, delivered: u64) -> Delivery {
        Delivery {
            from,
            to,
            sent_seq: sent,
            delivered_seq: delivered,
        }
    }

    fn verdict(
        events: Vec<Event>,
        deliveries: Vec<Delivery>,
        nodes: usize,
        layout: Layout,
    ) -> Verdict {
        let history = History {
            events,
            deliveries,
            ..History::default()
        };
        let c = check(&history, nodes, layout);
        assert_eq!(c.name, NAME);
        assert!(!c.maelstrom);
        c.verdict
    }

    fn detail(v: Verdict) -> String {
        match v {
            Verdict::Fail { detail } => detail,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    /// What the `session` workload checks with.
    const UNKNOWN: Layout = Layout::Unknown;

    #[test]
    fn a_global_quorum_acknowledged_before_any_peer_answered_fails() {
        // n0 sends the add on to n1 and n2 and acknowledges it at once (step 12); the acks come
        // back after. n1's earlier message (sent at 5, before the request) is no answer either.
        let d = detail(verdict(
            vec![add(0, "GLOBAL_QUORUM", (10, 12))],
            vec![
                msg(1, 0, 5, 9),
                msg(0, 1, 11, 13),
                msg(0, 2, 11, 14),
                msg(1, 0, 15, 16),
                msg(2, 0, 17, 18),
            ],
            3,
            UNKNOWN,
        ));
        assert!(
            d.starts_with("1 of 1 acknowledged quorum requests had too few peers take part: n0 acknowledged c0's GLOBAL_QUORUM add of 17 (sent at 10 ms, step 10; answered at 12 ms, step 12) after round trips with no peer, but that is a global quorum under no layout of consecutive regions (a majority of the 3 nodes, itself included, needs round trips with 1 of its 2 peers)"),
            "{d}"
        );
    }

    #[test]
    fn a_slow_global_quorum_that_waited_for_a_majority_passes_and_a_minority_fails() {
        // Five nodes: n0 hears back from n1 and n3 (a majority with itself), slowly, with a
        // lost message to n2 and a late answer from n4.
        let deliveries = vec![
            msg(0, 1, 101, 150),
            msg(0, 3, 102, 300),
            msg(0, 4, 103, 104),
            msg(1, 0, 160, 170),
            msg(3, 0, 310, 400),
            msg(4, 0, 600, 601),
        ];
        let read = request(
            0,
            json!({"type": "read"}),
            Some("GLOBAL_QUORUM"),
            (100, 500),
        );
        let events = vec![add(0, "GLOBAL_QUORUM", (100, 500)), read.clone()];
        assert_eq!(
            verdict(events, deliveries.clone(), 5, UNKNOWN),
            Verdict::Pass
        );
        // Answered before n3's answer arrived: only n1.
        let mut early = read;
        early.complete_seq = Some(350);
        early.complete_ms = Some(350);
        let d = detail(verdict(vec![early], deliveries, 5, UNKNOWN));
        assert!(
            d.contains("c0's GLOBAL_QUORUM read of [1, 2] (sent at 100 ms, step 100; answered at 350 ms, step 350) after round trips with only n1, but that is a global quorum under no layout of consecutive regions (a majority of the 5 nodes, itself included, needs round trips with 2 of its 4 peers)"),
            "{d}"
        );
    }

    #[test]
    fn acknowledgements_relayed_by_other_nodes_count() {
        // No direct round trip at all: n0 → n1 → n2 → n0, as a ring or a relay of ack tables
        // would. n1 and n2 both heard of the request and were heard back from.
        let deliveries = vec![msg(0, 1, 11, 12), msg(1, 2, 13, 14), msg(2, 0, 15, 16)];
        let events = vec![add(0, "GLOBAL_QUORUM", (10, 20))];
        assert_eq!(
            verdict(events, deliveries.clone(), 5, UNKNOWN),
            Verdict::Pass
        );
        // The same messages in the wrong order carry nothing: n2 spoke before n1 told it.
        let late = vec![msg(0, 1, 11, 12), msg(1, 2, 15, 16), msg(2, 0, 13, 14)];
        let events = vec![add(0, "GLOBAL_QUORUM", (10, 20))];
        assert!(matches!(
            verdict(events, late, 5, UNKNOWN),
            Verdict::Fail { .. }
        ));
    }

    #[test]
    fn a_service_is_no_peer_but_may_relay_between_peers() {
        // Three nodes, so the service's index is 3. n0 only talks to the service: no peer. A
        // service answers in the step it reads a request, so its reply has the request's step.
        let alone = vec![msg(0, 3, 11, 11), msg(3, 0, 11, 13)];
        let d = detail(verdict(
            vec![add(0, "GLOBAL_QUORUM", (10, 20))],
            alone,
            3,
            UNKNOWN,
        ));
        assert!(d.contains("after round trips with no peer"), "{d}");
        // n0 writes to the service, n1 reads it and writes back, n0 reads that: n1 took part.
        let relayed = vec![
            msg(0, 3, 11, 11),
            msg(3, 0, 11, 12),
            msg(1, 3, 13, 13),
            msg(3, 1, 13, 14),
            msg(1, 3, 15, 15),
            msg(3, 1, 15, 16),
            msg(0, 3, 17, 17),
            msg(3, 0, 17, 18),
        ];
        let events = vec![add(0, "GLOBAL_QUORUM", (10, 20))];
        assert_eq!(verdict(events, relayed, 3, UNKNOWN), Verdict::Pass);
    }

    #[test]
    fn only_acknowledged_quorum_requests_are_judged() {
        let mut failed = add(0, "GLOBAL_QUORUM", (10, 12));
        failed.outcome = Outcome::Fail {
            code: ErrorCode::TemporarilyUnavailable.code(),
        };
        let mut unanswered = add(0, "GLOBAL_QUORUM", (13, 14));
        unanswered.outcome = Outcome::Info {
            reason: "indefinite error 0".into(),
        };
        unanswered.complete_seq = None;
        let events = vec![
            failed,
            unanswered,
            add(0, "LOCAL_ONE", (15, 16)),
            request(0, json!({"type": "read"}), None, (17, 18)),
            // With every node its own region, a local quorum is the node itself.
            add(0, "LOCAL_QUORUM", (19, 20)),
            // On one node, so is a global one.
        ];
        assert_eq!(verdict(events, Vec::new(), 3, UNKNOWN), Verdict::Pass);
        let events = vec![add(0, "GLOBAL_QUORUM", (1, 2))];
        assert_eq!(verdict(events, Vec::new(), 1, UNKNOWN), Verdict::Pass);
    }

    #[test]
    fn with_regions_known_local_quorum_needs_the_region_and_global_quorum_may_be_hierarchical() {
        let three = Layout::PerRegion(3);
        // Nine nodes in regions {0,1,2} {3,4,5} {6,7,8}. n0 hears back from n1 (its region's
        // majority) and from n3 and n4 (the next region's): two regions of three, four nodes.
        let deliveries = vec![
            msg(0, 1, 11, 12),
            msg(0, 3, 11, 13),
            msg(0, 4, 11, 14),
            msg(1, 0, 15, 16),
            msg(3, 0, 15, 17),
            msg(4, 0, 15, 18),
        ];
        for level in ["LOCAL_QUORUM", "GLOBAL_QUORUM"] {
            let events = vec![add(0, level, (10, 20))];
            assert_eq!(
                verdict(events, deliveries.clone(), 9, three),
                Verdict::Pass,
                "{level}"
            );
        }
        // Not a majority of nine: with one node per region, that is no global quorum.
        let events = vec![add(0, "GLOBAL_QUORUM", (10, 20))];
        let d = detail(verdict(events, deliveries.clone(), 9, Layout::PerRegion(1)));
        assert!(d.contains("only n1, n3, n4"), "{d}");
        // Without n1, region 0 has no majority: the local quorum fails, and the global one has
        // only one region.
        let without_n1: Vec<Delivery> = deliveries.into_iter().filter(|d| d.from != 1).collect();
        let events = vec![add(0, "LOCAL_QUORUM", (10, 20))];
        let d = detail(verdict(events, without_n1.clone(), 9, three));
        assert!(
            d.contains("a majority of its region's 3 nodes, itself included, needs round trips with 1 of the others"),
            "{d}"
        );
        let events = vec![add(0, "GLOBAL_QUORUM", (10, 20))];
        let d = detail(verdict(events, without_n1, 9, three));
        assert!(
            d.contains("neither a majority of the 9 nodes nor of the 3 regions of 3"),
            "{d}"
        );
    }

    #[test]
    fn with_regions_unknown_a_global_quorum_under_any_layout_passes_and_none_at_all_fails() {
        // n0 and n1, n3, n4 of nine nodes: the hierarchical quorum of regions of three (as the
        // reference node with --replicas-per-region 3 counts it) though no majority of nine.
        let round_trips = |peers: &[usize]| -> Vec<Delivery> {
            peers
                .iter()
                .flat_map(|&p| [msg(0, p, 11, 12 + p as u64), msg(p, 0, 30 + p as u64, 40)])
                .collect()
        };
        let events = vec![add(0, "GLOBAL_QUORUM", (10, 50))];
        assert_eq!(
            verdict(events.clone(), round_trips(&[1, 3, 4]), 9, UNKNOWN),
            Verdict::Pass
        );
        // Three nodes of nine form a quorum under no layout.
        let d = detail(verdict(events.clone(), round_trips(&[1, 3]), 9, UNKNOWN));
        assert!(
            d.contains("after round trips with only n1, n3, but that is a global quorum under no layout of consecutive regions (a majority of the 9 nodes, itself included, needs round trips with 4 of its 8 peers)"),
            "{d}"
        );
        // On two nodes or more, never the node alone, whatever the layout.
        for nodes in 2..12 {
            let d = detail(verdict(events.clone(), Vec::new(), nodes, UNKNOWN));
            assert!(d.contains("after round trips with no peer"), "{nodes}: {d}");
        }
        // A local quorum is not judged without regions, and is once they are known.
        let local = vec![add(0, "LOCAL_QUORUM", (10, 50))];
        assert_eq!(
            verdict(local.clone(), Vec::new(), 9, UNKNOWN),
            Verdict::Pass
        );
        let d = detail(verdict(local, Vec::new(), 9, Layout::PerRegion(2)));
        assert!(d.contains("of its region's 2 nodes"), "{d}");
    }

    /// The peers a brute-force fixed point finds: relax every delivery until nothing changes,
    /// in no particular order.
    fn reference(
        deliveries: &[Delivery],
        parties: usize,
        node: usize,
        invoke: u64,
        complete: u64,
    ) -> Vec<bool> {
        let usable = |d: &Delivery| d.sent_seq > invoke && d.delivered_seq < complete;
        let mut heard: Vec<Option<u64>> = vec![None; parties];
        heard[node] = Some(invoke);
        let mut answer: Vec<Option<u64>> = vec![None; parties];
        answer[node] = Some(complete);
        loop {
            let mut changed = false;
            for d in deliveries.iter().filter(|d| usable(d)) {
                if heard[d.from].is_some_and(|h| h <= d.sent_seq)
                    && heard[d.to].is_none_or(|h| d.delivered_seq < h)
                {
                    heard[d.to] = Some(d.delivered_seq);
                    changed = true;
                }
                if answer[d.to].is_some_and(|a| d.delivered_seq <= a)
                    && answer[d.from].is_none_or(|a| d.sent_seq > a)
                {
                    answer[d.from] = Some(d.sent_seq);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        (0..parties)
            .map(|p| p != node && matches!((heard[p], answer[p]), (Some(h), Some(a)) if h < a))
            .collect()
    }

    #[test]
    fn the_sweeps_find_what_a_fixed_point_finds_and_direct_round_trips_are_among_them() {
        let (mut some, mut none) = (0, 0);
        for seed in 0..400u64 {
            let mut dice = SeededDice::new(seed);
            let nodes = 2 + dice.below(4) as usize;
            let service = nodes;
            // Steps: each sends a message, delivers one in flight, or calls the service.
            let mut deliveries = Vec::new();
            let mut flight: Vec<(usize, usize, u64)> = Vec::new();
            for step in 1..=80u64 {
                match dice.below(5) {
                    0 | 1 => {
                        let from = dice.below(nodes as u64) as usize;
                        let to = dice.below(nodes as u64) as usize;
                        if from != to {
                            flight.push((from, to, step));
                        }
                    }
                    2 | 3 if !flight.is_empty() => {
                        let (from, to, sent) =
                            flight.swap_remove(dice.below(flight.len() as u64) as usize);
                        deliveries.push(msg(from, to, sent, step));
                    }
                    _ => {
                        let from = dice.below(nodes as u64) as usize;
                        deliveries.push(msg(from, service, step, step));
                        flight.push((service, from, step));
                    }
                }
            }
            let history = History {
                deliveries: deliveries.clone(),
                ..History::default()
            };
            let index = Deliveries::new(&history, nodes);
            for _ in 0..10 {
                let node = dice.below(nodes as u64) as usize;
                let invoke = dice.below(80);
                let complete = invoke + 1 + dice.below(40);
                let chains = index.chains(node, invoke, complete);
                let want = reference(&deliveries, nodes + 1, node, invoke, complete);
                assert_eq!(chains, want[..nodes], "seed {seed}: chains");
                let direct = index.direct(node, invoke, complete);
                assert!(
                    direct.iter().zip(&chains).all(|(d, c)| !d || *c),
                    "seed {seed}: direct {direct:?} not within chains {chains:?}"
                );
                if chains.iter().any(|&c| c) {
                    some += 1;
                } else {
                    none += 1;
                }
            }
        }
        assert!(
            some > 200 && none > 200,
            "{some} with peers, {none} without"
        );
    }
}
