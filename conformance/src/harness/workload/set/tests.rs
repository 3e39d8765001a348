//! The set checks' tests: hand-made histories with known verdicts, and random histories on which
//! the checks must say exactly what the reference implementation in [`old`] says.

use super::*;
use crate::harness::check::Verdict;
use crate::harness::history::{Event, Outcome, Phase};
use crate::harness::message::ErrorCode;
use serde_json::json;
use std::collections::BTreeMap;

/// The set checks as they were before they stopped keeping every read's set (commit
/// d8d14cf), verbatim: the reference for every verdict and message.
pub(in crate::harness::workload) mod old;

/// One operation; `outcome` is `Ok` with `reply` when `complete` is given.
fn op(client: usize, node: usize, request: Value, span: (u64, Option<u64>), reply: Value) -> Event {
    let (invoke_ms, complete_ms) = (span.0, span.1);
    let outcome = match (complete_ms, reply) {
        (Some(_), Value::Object(reply)) => Outcome::Ok {
            reply: reply.into(),
        },
        (Some(_), Value::Number(code)) => Outcome::Fail {
            code: code.as_u64().unwrap(),
        },
        _ => Outcome::Info {
            reason: "no reply".into(),
        },
    };
    Event {
        client,
        node,
        request: request.as_object().unwrap().clone().into(),
        invoke_ms,
        complete_ms,
        // The harness's observation order is finer than milliseconds; these tests keep
        // one event per millisecond, so the two agree.
        invoke_seq: invoke_ms,
        complete_seq: complete_ms,
        outcome,
        phase: Phase::Main,
        during_fault: false,
    }
}

fn add(client: usize, x: i64, at: u64) -> Event {
    op(
        client,
        client % 2,
        json!({"type": "add", "element": x}),
        (at, Some(at + 1)),
        json!({"type": "add_ok"}),
    )
}

fn read(client: usize, node: usize, span: (u64, u64), set: &[i64]) -> Event {
    op(
        client,
        node,
        json!({"type": "read"}),
        (span.0, Some(span.1)),
        json!({"type": "read_ok", "value": set}),
    )
}

fn final_read(node: usize, at: u64, value: Value) -> Event {
    let mut e = op(
        10 + node,
        node,
        json!({"type": "read"}),
        (at, Some(at + 1)),
        json!({"type": "read_ok", "value": value}),
    );
    e.phase = Phase::Final;
    e
}

/// Verdicts of `set-full`, `convergence` and `monotonic-reads-per-node`, in that order.
fn verdicts(events: Vec<Event>) -> Vec<Verdict> {
    let checks = check_sets(
        &G_SET,
        &History {
            events,
            ..History::default()
        },
        2,
    );
    let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["set-full", "convergence", "monotonic-reads-per-node"]
    );
    checks.into_iter().map(|c| c.verdict).collect()
}

fn detail(v: &Verdict) -> &str {
    match v {
        Verdict::Fail { detail } => detail,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn a_converged_history_passes_and_indefinite_adds_may_go_either_way() {
    let mut maybe = add(1, 2, 3);
    maybe.outcome = Outcome::Info {
        reason: "no reply".into(),
    };
    maybe.complete_ms = None;
    let v = verdicts(vec![
        add(0, 0, 0),
        add(1, 1, 1),
        maybe,
        read(0, 0, (5, 6), &[0, 1]),
        final_read(0, 100, json!([1, 0, 2])),
        final_read(1, 100, json!([0, 2, 1, 1])),
    ]);
    assert_eq!(v, [Verdict::Pass, Verdict::Pass, Verdict::Pass]);
}

#[test]
fn an_acknowledged_element_missing_from_a_final_read_is_lost() {
    let v = verdicts(vec![
        add(0, 0, 0),
        add(1, 1, 1),
        final_read(0, 100, json!([0, 1])),
        final_read(1, 100, json!([0])),
    ]);
    assert!(
        detail(&v[0]).contains("lost: n1's final read lacks 1 acknowledged elements: 1"),
        "{v:?}"
    );
    assert!(detail(&v[1]).contains("n1 lacks 1: 1"), "{v:?}");
}

#[test]
fn each_node_is_judged_by_its_last_final_read() {
    let v = verdicts(vec![
        add(0, 0, 0),
        final_read(0, 100, json!([])),
        final_read(1, 100, json!([])),
        final_read(0, 200, json!([0])),
        final_read(1, 200, json!([0])),
    ]);
    assert_eq!(v[..2], [Verdict::Pass, Verdict::Pass]);
}

#[test]
fn elements_never_added_or_definitely_failed_are_unexpected_in_any_read() {
    let mut failed = add(1, 1, 1);
    failed.outcome = Outcome::Fail {
        code: ErrorCode::TemporarilyUnavailable.code(),
    };
    let v = verdicts(vec![
        add(0, 0, 0),
        failed,
        read(0, 0, (5, 6), &[0, 1, 77]),
        final_read(0, 100, json!([0])),
        final_read(1, 100, json!([0])),
    ]);
    let d = detail(&v[0]);
    assert!(d.contains("unexpected: 2 elements"), "{d}");
    assert!(d.contains("1 (its add failed definitely, error 11)"), "{d}");
    assert!(d.contains("77 (never added)"), "{d}");
}

#[test]
fn malformed_or_missing_final_reads_fail_and_none_at_all_is_unknown() {
    let v = verdicts(vec![
        add(0, 0, 0),
        final_read(0, 100, json!([0])),
        final_read(1, 100, json!(["0"])),
    ]);
    assert!(detail(&v[0]).contains("malformed"), "{v:?}");
    assert!(
        detail(&v[1]).contains("no well-formed final read from n1"),
        "{v:?}"
    );
    let v = verdicts(vec![add(0, 0, 0)]);
    assert!(matches!(v[0], Verdict::Unknown { .. }), "{v:?}");
}

#[test]
fn a_read_that_loses_what_an_earlier_read_of_its_node_showed_breaks_monotonic_reads() {
    // c0 and c2 both talk to n0; c2's read begins after c0's completed.
    let v = verdicts(vec![
        add(0, 0, 0),
        read(0, 0, (5, 6), &[0]),
        read(2, 0, (8, 9), &[]),
    ]);
    let d = detail(&v[2]);
    assert!(
        d.contains("n0's read by c2 at 8 ms lacks 1 elements"),
        "{d}"
    );
    assert!(
        d.contains("its earlier read by c0 at 5–6 ms showed: 0"),
        "{d}"
    );
    // Overlapping reads are not ordered: either may have been served first.
    let v = verdicts(vec![
        add(0, 0, 0),
        read(0, 0, (5, 9), &[0]),
        read(2, 0, (6, 8), &[]),
    ]);
    assert_eq!(v[2], Verdict::Pass);
    // Another node's reads are another story.
    let v = verdicts(vec![
        add(0, 0, 0),
        read(0, 0, (5, 6), &[0]),
        read(1, 1, (8, 9), &[]),
    ]);
    assert_eq!(v[2], Verdict::Pass);
    // One client's reads are in order even within one millisecond.
    let v = verdicts(vec![
        add(0, 0, 0),
        read(0, 0, (5, 6), &[0]),
        read(0, 0, (6, 6), &[]),
    ]);
    assert!(detail(&v[2]).contains("by c0 at 6 ms"), "{v:?}");
    // A final read that drops an element shown during the main phase counts too.
    let v = verdicts(vec![
        add(0, 0, 0),
        read(0, 0, (5, 6), &[0]),
        final_read(0, 100, json!([])),
    ]);
    assert!(
        detail(&v[2]).contains("n0's read by c10 at 100 ms"),
        "{v:?}"
    );
}

#[test]
fn the_final_value_is_the_set_in_canonical_form() {
    let a = json!({"type": "read_ok", "value": [3, 1, 2, 1]});
    let b = json!({"type": "read_ok", "value": [1, 2, 3]});
    let w = SetWorkload::new(G_SET);
    let value = |v: &Value| w.final_value(&v.as_object().unwrap().clone().into());
    assert_eq!(value(&a), Some(json!([1, 2, 3])));
    assert_eq!(value(&a), value(&b));
    assert_eq!(value(&json!({"value": 3})), None);
}

#[test]
fn adds_carry_unique_elements_counted_from_zero() {
    let mut w = SetWorkload::new(G_SET);
    let mut dice = SeededDice::new(1);
    let elements: Vec<i64> = (0..100)
        .map(|_| w.next_op(&mut dice))
        .filter_map(|op| op.element())
        .collect();
    assert!(elements.len() > 50);
    assert_eq!(elements, (0..elements.len() as i64).collect::<Vec<_>>());
}

/// A random g-set history: adds of fresh elements (some failing or indefinite), reads at two
/// nodes by three clients that show what was added so far, now and then missing some,
/// showing one never added, overlapping in time or malformed, and final reads.
fn random_history(dice: &mut SeededDice) -> History {
    let loss = [0.0, 0.0, 0.05, 0.3][dice.below(4) as usize];
    let mut events = Vec::new();
    let mut added: Vec<i64> = Vec::new();
    let mut at = 0;
    let ops = dice.below(60);
    for k in 0..ops + 2 {
        let final_phase = k >= ops;
        at += dice.below(3);
        let span = (at, at + dice.below(4));
        let client = if final_phase {
            10 + (k - ops) as usize
        } else {
            dice.below(3) as usize
        };
        let node = if final_phase {
            (k - ops) as usize
        } else {
            dice.below(2) as usize
        };
        let mut e = if !final_phase && dice.chance(0.5) {
            let x = added.len() as i64;
            added.push(x);
            let mut e = add(client, x, at);
            match dice.below(8) {
                0 => {
                    e.outcome = Outcome::Fail {
                        code: ErrorCode::TemporarilyUnavailable.code(),
                    }
                }
                1 => {
                    e.outcome = Outcome::Info {
                        reason: "no reply".into(),
                    }
                }
                _ => {}
            }
            e
        } else {
            let mut set: Vec<i64> = added
                .iter()
                .copied()
                .filter(|_| !dice.chance(loss))
                .collect();
            if dice.chance(0.05) {
                set.push(500);
            }
            if dice.chance(0.3) {
                set.reverse();
            }
            if dice.chance(0.03) {
                op(
                    client,
                    node,
                    json!({"type": "read"}),
                    (span.0, Some(span.1)),
                    json!({"type": "read_ok", "value": ["x"]}),
                )
            } else {
                read(client, node, span, &set)
            }
        };
        if final_phase {
            e.phase = Phase::Final;
        }
        events.push(e);
    }
    History {
        events,
        ..History::default()
    }
}

#[test]
fn the_checks_without_kept_sets_report_what_the_checks_with_them_did() {
    let mut failed: BTreeMap<String, usize> = BTreeMap::new();
    for seed in 0..3000u64 {
        let mut dice = SeededDice::new(seed);
        let history = random_history(&mut dice);
        let got = check_sets(&G_SET, &history, 2);
        let want = old::check_sets(&G_SET, &history, 2);
        assert_eq!(
            got, want,
            "seed {seed}; reproduce: cargo test -p converge-conformance the_checks_without_kept_sets"
        );
        for c in &want {
            if matches!(c.verdict, Verdict::Fail { .. }) {
                *failed.entry(c.name.clone()).or_default() += 1;
            }
        }
    }
    for name in ["set-full", "convergence", "monotonic-reads-per-node"] {
        let n = failed.get(name).copied().unwrap_or(0);
        assert!((20..2980).contains(&n), "{failed:?}");
    }
}
