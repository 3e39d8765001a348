//! A space-time (Lamport) diagram of a run's [`History`], as SVG.
//!
//! One vertical lane per node, and one per Maelstrom service that took part; time flows down in
//! the harness's total order of observations (`seq`), one row per observation, so the picture
//! shows exactly the order the harness saw rather than wall-clock spacing (the invocation's
//! millisecond is printed beside each operation). Client operations are boxes on the lane of the
//! node they went to, from invocation to reply, coloured by outcome and labelled with the request
//! and the reply; node-to-node messages are arrows from the row the harness read them to the row
//! it delivered them; fault windows are shaded (partitions across the cluster, kills and pauses
//! on their node's lane); a dashed line marks the start of the final reads.
//!
//! Invariants:
//! - The output is one well-formed, self-contained SVG document. Every piece of text in it that
//!   comes from a run (requests and replies, which the nodes under test control; check messages)
//!   is XML-escaped, with the characters XML 1.0 forbids replaced, so no node output can break it.
//! - Its size is bounded: at most [`Options::max_items`] operations and messages are drawn, and
//!   labels are cut short. When the run is larger, the diagram draws a window (the last items, or
//!   those around [`Options::focus_seq`]) and says so in its header.
//! - Only what the history records is drawn: a message copy the network dropped was never
//!   delivered, so it has no arrow.
//!
//! The SVG is written by hand with `std::fmt::Write` rather than with `plotters`: plotters draws
//! charts over numeric axes, while this is a handful of lanes, arrows and labelled boxes placed
//! by row; by hand it is short, needs no font or rendering dependencies, and its output is
//! deterministic text that a snapshot test can pin.
//!
//! This file lays the diagram out and draws it; `diagram/text.rs` cuts, wraps and escapes its
//! text, and `diagram/xml.rs` holds [`check_well_formed`], the check its tests (and the command
//! line's) apply to the output. Neither depends on this file.

mod text;
mod xml;

pub use xml::check_well_formed;

use super::history::{Body, Delivery, Event, FaultWindow, History, Outcome, Phase};
use super::services::Service;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use text::{cut, esc, wrap};

/// Height of one row (one observation), in px.
const ROW: u64 = 14;
/// Width of one lane, in px: room for an operation's box and its label.
const LANE: u64 = 250;
/// Left gutter, for invocation times.
const GUTTER: u64 = 70;
/// Width of an operation's box, and the horizontal step between concurrent clients' boxes.
const BOX: u64 = 8;
const BOX_STEP: u64 = 10;
/// Longest label, in characters.
const LABEL_MAX: usize = 44;
/// Longest failure message shown, in characters.
const MESSAGE_MAX: usize = 900;
/// Characters per header line, at the header's font size (about 6 px per character).
const CHAR_PX: u64 = 6;

/// What to draw besides the history.
#[derive(Clone, Debug)]
pub struct Options {
    /// The first header line, e.g. the workload, cluster and seed.
    pub title: String,
    /// The failing check (or kind of misbehaviour) and its message.
    pub failure: Option<(String, String)>,
    /// Nodes in the run: parties `0..nodes` are nodes, the rest services.
    pub nodes: usize,
    /// Most operations and messages drawn.
    pub max_items: usize,
    /// Draw the window around this place in the order of observations, rather than the end.
    pub focus_seq: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            title: String::new(),
            failure: None,
            nodes: 1,
            // About 600 rows at most: a tall page, still readable in a browser.
            max_items: 300,
            focus_seq: None,
        }
    }
}

/// One thing drawn, in the order it started.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Item {
    Op(usize),
    Msg(usize),
}

/// Renders `history` as an SVG document.
pub fn render(history: &History, options: &Options) -> String {
    let mut out = String::new();
    draw(&mut out, history, options).expect("writing to a String cannot fail");
    out
}

fn draw(out: &mut String, history: &History, o: &Options) -> std::fmt::Result {
    let repeated = repeated_final_reads(history);
    // Which items: all of them, or a window of `max_items` consecutive ones in seq order.
    let mut items: Vec<(u64, Item)> = history
        .events
        .iter()
        .enumerate()
        .filter(|(i, _)| !repeated.contains(i))
        .map(|(i, e)| (e.invoke_seq, Item::Op(i)))
        .chain(
            history
                .deliveries
                .iter()
                .enumerate()
                .map(|(i, d)| (d.sent_seq, Item::Msg(i))),
        )
        .collect();
    items.sort();
    let total = items.len();
    let max = o.max_items.max(1);
    let start = if total <= max {
        0
    } else if let Some(focus) = o.focus_seq {
        let at = items.partition_point(|(seq, _)| *seq < focus);
        at.saturating_sub(max / 2).min(total - max)
    } else {
        total - max
    };
    let shown = &items[start..(start + max).min(total)];
    let ops: Vec<&Event> = shown
        .iter()
        .filter_map(|(_, it)| match it {
            Item::Op(i) => Some(&history.events[*i]),
            Item::Msg(_) => None,
        })
        .collect();
    let msgs: Vec<&Delivery> = shown
        .iter()
        .filter_map(|(_, it)| match it {
            Item::Msg(i) => Some(&history.deliveries[*i]),
            Item::Op(_) => None,
        })
        .collect();

    // Lanes: every node, then the services that appear.
    let mut parties: BTreeSet<usize> = (0..o.nodes).collect();
    parties.extend(msgs.iter().flat_map(|d| [d.from, d.to]));
    parties.extend(ops.iter().map(|e| e.node));
    let lanes: BTreeMap<usize, u64> = parties
        .iter()
        .enumerate()
        .map(|(i, &p)| (p, i as u64))
        .collect();
    let lane_x = |party: usize| GUTTER + LANE * lanes[&party] + 20;

    // Rows: one per observation that something drawn starts or ends at.
    let mut seqs: BTreeSet<u64> = BTreeSet::new();
    for e in &ops {
        seqs.insert(e.invoke_seq);
        seqs.extend(e.complete_seq);
    }
    for d in &msgs {
        seqs.insert(d.sent_seq);
        seqs.insert(d.delivered_seq);
    }
    let seqs: Vec<u64> = seqs.into_iter().collect();
    let rank = |seq: u64| seqs.partition_point(|s| *s < seq) as u64;

    // The header.
    let width = (GUTTER + LANE * lanes.len() as u64 + 20).max(760);
    let chars = ((width - 20) / CHAR_PX) as usize;
    // The title's font is larger: about 8.5 px per character.
    let mut header: Vec<(&str, String)> = wrap(&o.title, chars * 6 / 9)
        .into_iter()
        .map(|line| ("title", line))
        .collect();
    if let Some((name, message)) = &o.failure {
        let message = cut(message, MESSAGE_MAX);
        // At 11 px, about 7 px per character.
        for line in wrap(&format!("FAIL {name}: {message}"), chars * 6 / 7) {
            header.push(("failure", line));
        }
    }
    let range = match (seqs.first(), seqs.last()) {
        (Some(a), Some(b)) => format!(" (observations {a}–{b})"),
        _ => String::new(),
    };
    let window = if shown.len() == total {
        format!("showing all {total} operations and delivered messages{range}")
    } else if o.focus_seq.is_some() {
        format!(
            "showing {} of {total} operations and delivered messages, around observation {}{range}",
            shown.len(),
            o.focus_seq.unwrap_or_default()
        )
    } else {
        format!(
            "showing the last {} of {total} operations and delivered messages{range}; earlier \
             ones are left out",
            shown.len()
        )
    };
    header.push(("note", window));
    if !repeated.is_empty() {
        header.push((
            "note",
            format!(
                "{} final reads that repeated the one before on their node are left out (final \
                 reads repeat until the nodes agree)",
                repeated.len()
            ),
        ));
    }
    for line in wrap(
        "time flows down in the harness's order of observations. Boxes: operations on the node \
         they were sent to (green ok, red failed, amber indefinite), from invocation to reply. \
         Arrows: delivered messages (dropped copies have none; dashed: to and from services). \
         Shaded: fault windows.",
        chars,
    ) {
        header.push(("note", line));
    }
    let lanes_top = 16 + 14 * header.len() as u64 + 14;
    let top = lanes_top + 10;
    let y = |seq: u64| top + ROW * (rank(seq) + 1);
    let bottom = top + ROW * (seqs.len() as u64 + 1);
    let height = bottom + ROW;
    // A boundary "after observation s" lies between the rows before and after it.
    let y_after = |s: u64| top + ROW * seqs.partition_point(|x| *x <= s) as u64 + ROW / 2;

    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}">"#
    )?;
    writeln!(out, "<title>{}</title>", esc(&o.title))?;
    out.push_str(concat!(
        "<style>\n",
        "text { font-family: monospace; font-size: 10px; fill: #263238; }\n",
        // A white halo keeps labels legible where arrows cross them.
        ".halo { paint-order: stroke; stroke: #ffffff; stroke-width: 3px; }\n",
        ".end { text-anchor: end; }\n",
        ".title { font-size: 14px; font-weight: bold; }\n",
        ".failure { fill: #b71c1c; font-size: 11px; }\n",
        ".note { fill: #546e7a; }\n",
        ".lane { stroke: #455a64; stroke-width: 1.5; }\n",
        ".party { font-size: 12px; font-weight: bold; text-anchor: middle; }\n",
        ".msg { stroke: #78909c; stroke-width: 0.8; fill: none; }\n",
        ".svc { stroke: #8e24aa; stroke-dasharray: 3 2; }\n",
        ".ok { fill: #c8e6c9; stroke: #2e7d32; }\n",
        ".fail { fill: #ffcdd2; stroke: #c62828; }\n",
        ".info { fill: #ffe0b2; stroke: #ef6c00; stroke-dasharray: 2 2; }\n",
        ".fault { fill: #ef9a9a; fill-opacity: 0.25; }\n",
        ".phase { stroke: #000000; stroke-dasharray: 6 3; }\n",
        ".time { fill: #90a4ae; font-size: 9px; }\n",
        "</style>\n",
        "<defs><marker id=\"arrow\" viewBox=\"0 0 6 6\" refX=\"6\" refY=\"3\" markerWidth=\"6\" ",
        "markerHeight=\"6\" orient=\"auto\"><path d=\"M0,0 L6,3 L0,6 z\" fill=\"#78909c\"/>",
        "</marker></defs>\n",
        "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n",
    ));
    for (i, (class, line)) in header.iter().enumerate() {
        writeln!(
            out,
            r#"<text class="{class}" x="10" y="{}">{}</text>"#,
            20 + 14 * i as u64,
            esc(line)
        )?;
    }

    // Fault windows, behind everything else.
    for f in &history.faults {
        let (y0, y1) = fault_rows(f, &y_after, bottom);
        if y1 <= y0 {
            continue;
        }
        let node = f
            .fault
            .split_once(":n")
            .filter(|(kind, _)| *kind == "kill" || *kind == "pause")
            .and_then(|(_, n)| n.parse::<usize>().ok())
            .filter(|n| lanes.contains_key(n));
        let (x, w) = match node {
            Some(n) => (lane_x(n) - 10, LANE - 20),
            None => (GUTTER, LANE * lanes.len() as u64),
        };
        writeln!(
            out,
            r#"<rect class="fault" x="{x}" y="{y0}" width="{w}" height="{}"/>"#,
            y1 - y0
        )?;
        writeln!(
            out,
            r#"<text class="note end" x="{}" y="{}">{}</text>"#,
            x + w - 4,
            y0 + 10,
            esc(&f.fault)
        )?;
    }

    // Lanes.
    for &party in lanes.keys() {
        let x = lane_x(party);
        let name = if party < o.nodes {
            format!("n{party}")
        } else {
            Service::ALL
                .get(party - o.nodes)
                .map_or_else(|| format!("party {party}"), |s| s.name().to_string())
        };
        writeln!(
            out,
            r#"<text class="party" x="{x}" y="{lanes_top}">{}</text>"#,
            esc(&name)
        )?;
        writeln!(
            out,
            r#"<line class="lane" x1="{x}" y1="{top}" x2="{x}" y2="{bottom}"/>"#
        )?;
    }

    // The start of the final reads.
    if let Some(first) = ops.iter().find(|e| e.phase == Phase::Final) {
        let yy = y(first.invoke_seq) - ROW / 2;
        writeln!(
            out,
            r#"<line class="phase" x1="{GUTTER}" y1="{yy}" x2="{}" y2="{yy}"/>"#,
            width - 10
        )?;
        writeln!(
            out,
            r#"<text class="note end halo" x="{}" y="{}">healed and quiet: final reads</text>"#,
            width - 14,
            yy - 3
        )?;
    }

    // Messages.
    for d in &msgs {
        let service = d.from >= o.nodes || d.to >= o.nodes;
        let class = if service { "msg svc" } else { "msg" };
        let (x1, y1, x2, y2) = (
            lane_x(d.from),
            y(d.sent_seq),
            lane_x(d.to),
            y(d.delivered_seq),
        );
        if d.from == d.to {
            // A message to itself: a loop out to the right and back.
            writeln!(
                out,
                r#"<path class="{class}" d="M{x1},{y1} C{},{y1} {},{y2} {x2},{y2}" marker-end="url(#arrow)"/>"#,
                x1 + 40,
                x2 + 40
            )?;
        } else {
            writeln!(
                out,
                r#"<line class="{class}" x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" marker-end="url(#arrow)"/>"#
            )?;
        }
    }

    // Operations: a box per operation, offset by client so concurrent ones on a node stay apart,
    // then its label and invocation time.
    let mut slots: BTreeMap<(usize, usize), u64> = BTreeMap::new();
    for e in &ops {
        let next = slots.keys().filter(|(n, _)| *n == e.node).count() as u64;
        slots.entry((e.node, e.client)).or_insert(next);
    }
    for e in &ops {
        let per_node = slots.keys().filter(|(n, _)| *n == e.node).count() as u64;
        let x = lane_x(e.node) + 4 + BOX_STEP * slots[&(e.node, e.client)];
        let y0 = y(e.invoke_seq) - 3;
        let y1 = e.complete_seq.map_or(bottom, |c| y(c) + 3);
        let class = match e.outcome {
            Outcome::Ok { .. } => "ok",
            Outcome::Fail { .. } => "fail",
            Outcome::Info { .. } => "info",
        };
        writeln!(
            out,
            r#"<rect class="{class}" x="{x}" y="{y0}" width="{BOX}" height="{}"/>"#,
            y1 - y0
        )?;
        writeln!(
            out,
            r#"<text class="halo" x="{}" y="{}">{}</text>"#,
            lane_x(e.node) + 6 + BOX_STEP * per_node,
            y0 + 9,
            esc(&label(e))
        )?;
        writeln!(
            out,
            r#"<text class="time" x="6" y="{}">{} ms</text>"#,
            y0 + 9,
            e.invoke_ms
        )?;
    }
    writeln!(out, "</svg>")
}

/// Final reads (by index in `events`) that show nothing new: the same request and outcome as the
/// previous final read on their node, and neither that node's last final read nor its last
/// successful one (the one checks judge it by). Final reads repeat every 100 ms until the nodes
/// agree, so a run that never converges has dozens of identical rounds.
fn repeated_final_reads(history: &History) -> BTreeSet<usize> {
    let finals: Vec<(usize, &Event)> = history
        .events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.phase == Phase::Final)
        .collect();
    let mut keep: BTreeSet<usize> = BTreeSet::new();
    let nodes: BTreeSet<usize> = finals.iter().map(|(_, e)| e.node).collect();
    for node in nodes {
        let mine: Vec<&(usize, &Event)> = finals.iter().filter(|(_, e)| e.node == node).collect();
        keep.extend(mine.last().map(|(i, _)| *i));
        keep.extend(
            mine.iter()
                .rev()
                .find(|(_, e)| e.reply().is_some())
                .map(|(i, _)| *i),
        );
        let mut previous: Option<String> = None;
        for (i, e) in mine {
            let shown = label(e);
            if previous.as_ref() != Some(&shown) {
                keep.insert(*i);
            }
            previous = Some(shown);
        }
    }
    finals
        .into_iter()
        .map(|(i, _)| i)
        .filter(|i| !keep.contains(i))
        .collect()
}

/// The rows a fault window spans, clipped to the drawing.
fn fault_rows(f: &FaultWindow, y_after: &dyn Fn(u64) -> u64, bottom: u64) -> (u64, u64) {
    let y0 = y_after(f.after_seq);
    let y1 = f.healed_after_seq.map_or(bottom, y_after).min(bottom);
    (y0, y1)
}

/// `c0 add delta=3 → ok`, `final read → ok value=[1,2]`, `c1 read → info: no reply`.
fn label(e: &Event) -> String {
    let who = match e.phase {
        Phase::Main => format!("c{}", e.client),
        Phase::Final => "final".to_string(),
    };
    let args = fields(&e.request, &["type", "msg_id"]);
    let result = match &e.outcome {
        Outcome::Ok { reply } => {
            let r = fields(reply, &["type", "in_reply_to", "msg_id"]);
            if r.is_empty() {
                "ok".to_string()
            } else {
                format!("ok {r}")
            }
        }
        Outcome::Fail { code } => format!("fail {code}"),
        Outcome::Info { reason } => format!("info: {reason}"),
    };
    let mut s = format!("{who} {}", e.kind());
    if !args.is_empty() {
        s.push(' ');
        s.push_str(&args);
    }
    cut(&format!("{s} → {result}"), LABEL_MAX)
}

/// `k=v` pairs of a body's fields, compact JSON values, leaving out `skip`.
fn fields(body: &Body, skip: &[&str]) -> String {
    body.to_map()
        .iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::message::ErrorCode;
    use serde_json::{Value, json};

    fn body(v: Value) -> Body {
        v.as_object().cloned().unwrap_or_default().into()
    }

    fn event(
        client: usize,
        node: usize,
        request: Value,
        seqs: (u64, Option<u64>),
        outcome: Outcome,
        phase: Phase,
    ) -> Event {
        Event {
            client,
            node,
            request: body(request),
            invoke_ms: seqs.0 * 3,
            complete_ms: seqs.1.map(|s| s * 3),
            invoke_seq: seqs.0,
            complete_seq: seqs.1,
            outcome,
            phase,
            during_fault: false,
        }
    }

    /// Two nodes and the `lin-kv` service: an add, a failed and an indefinite request (whose
    /// text needs escaping), gossip both ways, a service round trip, a partition, final reads.
    fn history() -> History {
        let ok = |v: Value| Outcome::Ok { reply: body(v) };
        History {
            events: vec![
                event(
                    0,
                    0,
                    json!({"type": "add", "delta": 3, "msg_id": 2}),
                    (3, Some(5)),
                    ok(json!({"type": "add_ok", "in_reply_to": 2})),
                    Phase::Main,
                ),
                event(
                    1,
                    1,
                    json!({"type": "echo", "echo": "<&>\"'", "msg_id": 3}),
                    (4, Some(8)),
                    Outcome::Fail {
                        code: ErrorCode::TemporarilyUnavailable.code(),
                    },
                    Phase::Main,
                ),
                event(
                    0,
                    0,
                    json!({"type": "read", "msg_id": 4}),
                    (9, None),
                    Outcome::Info {
                        reason: "no reply within 1000 ms".into(),
                    },
                    Phase::Main,
                ),
                event(
                    2,
                    0,
                    json!({"type": "read", "msg_id": 5}),
                    (14, Some(15)),
                    ok(json!({"type": "read_ok", "value": 3, "in_reply_to": 5})),
                    Phase::Final,
                ),
                event(
                    3,
                    1,
                    json!({"type": "read", "msg_id": 6}),
                    (16, Some(17)),
                    ok(json!({"type": "read_ok", "value": 0, "in_reply_to": 6})),
                    Phase::Final,
                ),
            ],
            deliveries: vec![
                Delivery {
                    from: 0,
                    to: 1,
                    sent_seq: 6,
                    delivered_seq: 10,
                },
                Delivery {
                    from: 1,
                    to: 3,
                    sent_seq: 7,
                    delivered_seq: 7,
                },
                Delivery {
                    from: 3,
                    to: 1,
                    sent_seq: 7,
                    delivered_seq: 11,
                },
                Delivery {
                    from: 1,
                    to: 0,
                    sent_seq: 12,
                    delivered_seq: 13,
                },
            ],
            faults: vec![FaultWindow {
                fault: "partition:halves".into(),
                after_seq: 5,
                healed_after_seq: Some(9),
            }],
        }
    }

    fn options() -> Options {
        Options {
            title: "g-counter on 2 nodes, seed 7".into(),
            failure: Some((
                "counter-bounds".into(),
                "n1 read 0; acknowledged adds sum to 3, so a final read must lie in [3, 3] \
                 <lost & found>"
                    .into(),
            )),
            nodes: 2,
            ..Options::default()
        }
    }

    #[test]
    fn a_small_history_draws_as_pinned() {
        let svg = render(&history(), &options());
        insta::assert_snapshot!(svg);
    }

    #[test]
    fn the_diagram_is_well_formed_and_escapes_what_nodes_wrote() {
        let mut h = history();
        // A reply full of markup and control characters, as a broken node might send.
        h.events[0].outcome = Outcome::Ok {
            reply: body(json!({"type": "add_ok", "note": "</svg><x a=\"1\">&amp\u{1}\u{0}"})),
        };
        let svg = render(&h, &options());
        check_well_formed(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        assert!(
            svg.contains("echo=&quot;&lt;&amp;&gt;\\&quot;&apos;&quot;"),
            "{svg}"
        );
        assert!(svg.contains("&lt;lost &amp; found&gt;"), "{svg}");
        assert!(!svg.contains('\u{1}') && !svg.contains('\u{0}'));
        assert_eq!(svg.matches("<svg").count(), 1);
    }

    #[test]
    fn a_large_history_is_drawn_as_a_window_that_says_so() {
        let mut h = History::default();
        for i in 0..1000u64 {
            h.events.push(event(
                0,
                (i % 3) as usize,
                json!({"type": "read", "msg_id": i}),
                (2 * i + 1, Some(2 * i + 2)),
                Outcome::Ok {
                    reply: body(json!({"type": "read_ok", "value": i})),
                },
                Phase::Main,
            ));
        }
        let o = Options {
            nodes: 3,
            max_items: 50,
            ..options()
        };
        let svg = render(&h, &o);
        check_well_formed(&svg).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(svg.matches(r#"<rect class="ok""#).count(), 50);
        assert!(
            svg.contains("showing the last 50 of 1000 operations and delivered messages (observations 1901–2000)"),
            "{svg}"
        );
        let around = render(
            &h,
            &Options {
                focus_seq: Some(1001),
                ..o
            },
        );
        assert_eq!(around.matches(r#"<rect class="ok""#).count(), 50);
        assert!(around.contains("value=500"), "{around}");
        assert!(around.contains("around observation 1001"), "{around}");
    }

    #[test]
    fn repeated_rounds_of_final_reads_are_left_out_but_the_judged_ones_stay() {
        let mut h = history();
        let ok = |v: i64| Outcome::Ok {
            reply: body(json!({"type": "read_ok", "value": v})),
        };
        // Five more rounds on both nodes: n1 changes its mind once, and its last read times out.
        for round in 0..5u64 {
            for node in 0..2usize {
                let at = 20 + 4 * round + 2 * node as u64;
                let outcome = match (node, round) {
                    (1, 4) => Outcome::Info {
                        reason: "no reply".into(),
                    },
                    (1, r) if r >= 2 => ok(3),
                    (1, _) => ok(0),
                    _ => ok(3),
                };
                let done = matches!(outcome, Outcome::Ok { .. }).then_some(at + 1);
                h.events.push(event(
                    2 + node,
                    node,
                    json!({"type": "read"}),
                    (at, done),
                    outcome,
                    Phase::Final,
                ));
            }
        }
        let svg = render(&h, &options());
        check_well_formed(&svg).unwrap_or_else(|e| panic!("{e}"));
        // n0: its first and last reads, of six; n1: its first read of 0 (two repeats left out),
        // its first read of 3 and its last successful one, and the read that timed out.
        assert_eq!(svg.matches("final read → ok value=3").count(), 4, "{svg}");
        assert_eq!(svg.matches("final read → ok value=0").count(), 1, "{svg}");
        assert_eq!(svg.matches("final read → info").count(), 1, "{svg}");
        assert!(
            svg.contains("6 final reads that repeated the one before on their node are left out"),
            "{svg}"
        );
    }

    #[test]
    fn the_well_formedness_check_rejects_broken_documents() {
        assert!(check_well_formed("<a><b/></a>").is_ok());
        assert!(check_well_formed(r#"<?xml version="1.0"?><a x="1 &amp; 2">t&lt;</a>"#).is_ok());
        for bad in [
            "<a><b></a>",
            "<a>",
            "<a></a><b/>",
            "<a>x & y</a>",
            "<a x=1/>",
            r#"<a x="<"/>"#,
            r#"<a x="1" x="2"/>"#,
            "text<a/>",
            "<a>\u{1}</a>",
            "",
        ] {
            assert!(check_well_formed(bad).is_err(), "{bad:?}");
        }
    }
}
