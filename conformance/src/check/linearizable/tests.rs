//! The checker's tests: hand-written histories with known verdicts, over the history builders
//! at the top, each verdict also asked of the brute-force `oracle`; `properties` checks the
//! checker against the oracle on small random histories, with the same builders.

mod oracle;
mod properties;

use super::*;
use oracle::brute_force;

fn op(p: u64, invoke: u64, complete: Option<u64>, op: KvOp, outcome: KvOutcome) -> Operation {
    Operation {
        process: p,
        invoke_ns: invoke,
        complete_ns: complete,
        op,
        outcome,
    }
}

/// A read of key 0 returning `value`.
fn read(p: u64, invoke: u64, complete: u64, value: Option<i64>) -> Operation {
    op(
        p,
        invoke,
        Some(complete),
        KvOp::Read { key: 0 },
        KvOutcome::Ok(value),
    )
}

fn write(p: u64, invoke: u64, complete: u64, value: i64) -> Operation {
    op(
        p,
        invoke,
        Some(complete),
        KvOp::Write { key: 0, value },
        KvOutcome::Ok(None),
    )
}

fn write_unknown(p: u64, invoke: u64, value: i64) -> Operation {
    op(
        p,
        invoke,
        None,
        KvOp::Write { key: 0, value },
        KvOutcome::Unknown,
    )
}

fn cas(p: u64, invoke: u64, complete: u64, from: i64, to: i64, ok: bool) -> Operation {
    let outcome = if ok {
        KvOutcome::Ok(None)
    } else {
        KvOutcome::Fail
    };
    op(
        p,
        invoke,
        Some(complete),
        KvOp::Cas { key: 0, from, to },
        outcome,
    )
}

fn cas_unknown(p: u64, invoke: u64, from: i64, to: i64) -> Operation {
    op(
        p,
        invoke,
        None,
        KvOp::Cas { key: 0, from, to },
        KvOutcome::Unknown,
    )
}

fn on_key(mut o: Operation, key: u64) -> Operation {
    o.op = match o.op {
        KvOp::Read { .. } => KvOp::Read { key },
        KvOp::Write { value, .. } => KvOp::Write { key, value },
        KvOp::Cas { from, to, .. } => KvOp::Cas { key, from, to },
    };
    o
}

fn verdict(history: &[Operation]) -> Linearizability {
    check(history, Budget::default())
}

fn assert_linearizable(history: &[Operation]) {
    let v = verdict(history);
    assert!(v.is_linearizable(), "expected linearizable, got {v:#?}");
    assert!(brute_force(history), "the oracle disagrees");
}

/// Asserts a violation on `key` whose minimal sub-history is `expected` (in any order), and
/// that the minimal sub-history fails on its own. Returns the explanation.
fn assert_violation(history: &[Operation], key: u64, expected: &[Operation]) -> String {
    assert!(
        !brute_force(history),
        "the oracle finds the history linearizable"
    );
    match verdict(history) {
        Linearizability::NotLinearizable {
            key: k,
            minimal,
            explanation,
        } => {
            assert_eq!(k, key, "{explanation}");
            let mut got = minimal.clone();
            let mut want = expected.to_vec();
            got.sort_by_key(|o| (o.invoke_ns, o.complete_ns, format!("{o}")));
            want.sort_by_key(|o| (o.invoke_ns, o.complete_ns, format!("{o}")));
            assert_eq!(got, want, "{explanation}");
            assert!(
                !verdict(&minimal).is_linearizable(),
                "the minimal history passes on its own: {explanation}"
            );
            explanation
        }
        other => panic!("expected a violation, got {other:#?}"),
    }
}

#[test]
fn the_empty_history_is_linearizable() {
    assert_linearizable(&[]);
}

#[test]
fn a_sequential_history_that_follows_the_register_is_linearizable() {
    assert_linearizable(&[
        read(0, 0, 1, None),
        write(0, 2, 3, 1),
        read(1, 4, 5, Some(1)),
        cas(0, 6, 7, 1, 2, true),
        cas(1, 8, 9, 1, 3, false),
        read(0, 10, 11, Some(2)),
    ]);
}

#[test]
fn a_stale_read_after_a_completed_write_is_a_violation() {
    let h = [write(0, 0, 10, 1), read(1, 20, 30, None)];
    let explanation = assert_violation(&h, 0, &h);
    assert!(explanation.contains("read as absent"), "{explanation}");
    assert!(explanation.contains("surfaces here"), "{explanation}");
}

#[test]
fn a_read_of_an_overwritten_value_is_a_violation() {
    let h = [
        write(0, 0, 10, 1),
        write(0, 20, 30, 2),
        read(1, 40, 50, Some(1)),
    ];
    let explanation = assert_violation(&h, 0, &h);
    assert!(
        explanation.contains("1 was read after every write of it had been overwritten"),
        "{explanation}"
    );
}

#[test]
fn two_sequential_writes_read_in_the_wrong_order_are_a_violation() {
    // The reads run while nothing else does; the second one goes back in time. The write
    // of 2 had completed before it began, which is all the witness needs.
    let h = [
        write(0, 0, 10, 1),
        write(0, 20, 30, 2),
        read(1, 35, 40, Some(2)),
        read(1, 45, 50, Some(1)),
        read(2, 60, 70, Some(2)),
    ];
    assert_violation(&h, 0, &[h[0].clone(), h[1].clone(), h[3].clone()]);
}

#[test]
fn concurrent_writes_are_linearizable_in_the_order_the_reads_show() {
    let h = [
        write(0, 0, 100, 1),
        write(1, 0, 100, 2),
        read(2, 110, 120, Some(2)),
    ];
    assert_linearizable(&h);
    let mut later = h.to_vec();
    later.push(read(2, 130, 140, Some(1)));
    assert_violation(&later, 0, &later);
}

#[test]
fn concurrent_operations_linearizable_in_only_one_order() {
    // Both reads overlap the cas; only read 1, cas, read 2 works.
    let h = [
        write(0, 0, 10, 1),
        cas(1, 20, 60, 1, 2, true),
        read(2, 20, 40, Some(1)),
        read(3, 25, 70, Some(2)),
        read(2, 45, 50, Some(2)),
    ];
    assert_linearizable(&h);
    // If the read of 1 starts after a read of 2 completed, no order works.
    let h = [
        write(0, 0, 10, 1),
        cas(1, 20, 60, 1, 2, true),
        read(2, 20, 30, Some(2)),
        read(3, 35, 70, Some(1)),
    ];
    assert_violation(&h, 0, &h);
}

#[test]
fn cas_succeeds_only_on_the_value_it_expects() {
    assert_linearizable(&[
        write(0, 0, 10, 1),
        cas(1, 20, 30, 1, 2, true),
        read(0, 40, 50, Some(2)),
    ]);
    let h = [write(0, 0, 10, 1), cas(1, 20, 30, 5, 6, true)];
    let explanation = assert_violation(&h, 0, &h[1..]);
    assert!(
        explanation.contains("a cas from 5 succeeded"),
        "{explanation}"
    );
    // Two successful cas from the same value cannot both have seen it.
    let h = [
        write(0, 0, 10, 1),
        cas(1, 20, 30, 1, 2, true),
        cas(2, 20, 30, 1, 3, true),
    ];
    assert_violation(&h, 0, &h);
}

#[test]
fn definite_failures_did_not_happen() {
    // The failed cas's precondition held, but a failure is not a claim about the value.
    assert_linearizable(&[
        write(0, 0, 10, 1),
        cas(1, 20, 30, 1, 2, false),
        read(0, 40, 50, Some(1)),
    ]);
    let failed_write = op(
        0,
        0,
        Some(10),
        KvOp::Write { key: 0, value: 1 },
        KvOutcome::Fail,
    );
    assert_linearizable(&[failed_write.clone(), read(1, 20, 30, None)]);
    let h = [failed_write, read(1, 20, 30, Some(1))];
    let explanation = assert_violation(&h, 0, &h[1..]);
    assert!(
        explanation.contains("Nothing invoked by then writes 1"),
        "{explanation}"
    );
    // A failed read is dropped too.
    let failed_read = op(0, 0, Some(1), KvOp::Read { key: 0 }, KvOutcome::Fail);
    assert_linearizable(&[write(0, 2, 3, 1), failed_read]);
}

#[test]
fn an_unknown_write_may_or_may_not_have_happened() {
    let h = [write(0, 0, 10, 1), write_unknown(1, 20, 2)];
    assert_linearizable(&[h[0].clone(), h[1].clone(), read(2, 30, 40, Some(2))]);
    assert_linearizable(&[h[0].clone(), h[1].clone(), read(2, 30, 40, Some(1))]);
    // It may take effect long after it was invoked...
    assert_linearizable(&[
        h[0].clone(),
        h[1].clone(),
        read(2, 30, 40, Some(1)),
        read(2, 1_000, 1_010, Some(2)),
    ]);
    // ...but only once.
    let back = [
        h[0].clone(),
        h[1].clone(),
        read(2, 30, 40, Some(2)),
        read(2, 50, 60, Some(1)),
    ];
    assert_violation(&back, 0, &back);
    // And not before it was invoked.
    let early = [read(2, 0, 10, Some(2)), write_unknown(1, 20, 2)];
    let explanation = assert_violation(&early, 0, &early[..1]);
    assert!(
        explanation.contains("Nothing invoked by then writes 2"),
        "{explanation}"
    );
}

#[test]
fn an_unknown_write_is_used_at_most_once() {
    let h = [
        write_unknown(0, 0, 1),
        write(1, 1, 2, 2),
        read(1, 3, 4, Some(1)),
        write(1, 5, 6, 3),
        read(1, 7, 8, Some(1)),
    ];
    // The first read is what uses up the unknown write; the write of 2 is not needed.
    let witness = [h[0].clone(), h[2].clone(), h[3].clone(), h[4].clone()];
    assert_violation(&h, 0, &witness);
    // A second unknown write of the same value lets both reads happen.
    let mut two = h.to_vec();
    two.push(write_unknown(2, 0, 1));
    assert_linearizable(&two);
}

#[test]
fn unknown_cas_steps_chain() {
    let base = [
        write(0, 0, 1, 1),
        cas_unknown(1, 2, 1, 2),
        cas_unknown(2, 2, 2, 3),
    ];
    let with = |reads: &[Operation]| [&base[..], reads].concat();
    assert_linearizable(&with(&[read(3, 10, 11, Some(3))]));
    assert_linearizable(&with(&[read(3, 10, 11, Some(2)), read(3, 12, 13, Some(3))]));
    let h = with(&[read(3, 10, 11, Some(3)), read(3, 12, 13, Some(2))]);
    assert_violation(&h, 0, &h);
    // An unknown write then an unknown cas.
    assert_linearizable(&[
        write_unknown(0, 0, 5),
        cas_unknown(1, 0, 5, 6),
        read(2, 1, 2, Some(6)),
    ]);
    // A cas that succeeded needs the value an unknown write produced.
    assert_linearizable(&[write_unknown(0, 0, 5), cas(1, 1, 2, 5, 6, true)]);
}

#[test]
fn unknown_reads_constrain_nothing() {
    let unknown_read = op(1, 0, None, KvOp::Read { key: 0 }, KvOutcome::Unknown);
    assert_linearizable(&[write(0, 0, 10, 1), unknown_read]);
}

#[test]
fn operations_that_touch_in_time_are_concurrent() {
    assert_linearizable(&[write(0, 0, 10, 1), read(1, 10, 20, None)]);
}

#[test]
fn keys_are_independent_and_the_violating_key_is_named() {
    let h = [
        on_key(write(0, 0, 10, 1), 7),
        on_key(read(1, 20, 30, None), 8),
        on_key(read(1, 40, 50, Some(1)), 7),
        on_key(write(0, 0, 10, 1), 9),
        on_key(read(1, 20, 30, Some(2)), 9),
    ];
    assert_violation(&h, 9, &h[4..]);
    assert_linearizable(&h[..3]);
}

#[test]
fn an_exhausted_budget_is_unknown_never_a_pass() {
    let h = [write(0, 0, 10, 1), read(1, 20, 30, Some(1))];
    match check(
        &h,
        Budget {
            max_steps_per_key: 1,
        },
    ) {
        Linearizability::Unknown { reason } => assert!(reason.contains("budget"), "{reason}"),
        other => panic!("expected unknown, got {other:#?}"),
    }
}

#[test]
fn a_blatant_violation_is_reported_even_when_the_budget_runs_out() {
    let h = [
        write(0, 0, 10, 1),
        read(1, 20, 30, Some(1)),
        read(1, 40, 50, Some(1)),
        write(0, 60, 70, 2),
        read(1, 80, 90, Some(9)),
    ];
    let tiny = Budget {
        max_steps_per_key: 3,
    };
    match check(&h, tiny) {
        Linearizability::NotLinearizable {
            key,
            minimal,
            explanation,
        } => {
            assert_eq!(key, 0);
            assert_eq!(minimal, [h[4].clone()], "{explanation}");
            assert!(
                explanation.contains("could not be decided"),
                "{explanation}"
            );
        }
        other => panic!("expected a violation, got {other:#?}"),
    }
}

#[test]
fn malformed_operations_are_reported() {
    for bad in [
        write(0, 10, 5, 1),
        op(
            0,
            0,
            None,
            KvOp::Write { key: 0, value: 1 },
            KvOutcome::Ok(None),
        ),
        op(
            0,
            0,
            Some(1),
            KvOp::Write { key: 0, value: 1 },
            KvOutcome::Ok(Some(1)),
        ),
    ] {
        match verdict(&[bad]) {
            Linearizability::Unknown { reason } => {
                assert!(reason.contains("malformed"), "{reason}");
            }
            other => panic!("expected unknown, got {other:#?}"),
        }
    }
}

#[test]
fn a_long_overlapping_history_takes_linear_steps() {
    let mut h = Vec::new();
    for k in 0..10_000u64 {
        let t = 10 * k;
        let v = i64::try_from(k).unwrap();
        h.push(write(k % 5, t, t + 15, v));
        h.push(read(5 + k % 5, t + 16, t + 18, Some(v)));
    }
    let mut ops: Vec<KOp> = h
        .iter()
        .enumerate()
        .filter_map(|(i, o)| KOp::from_operation(i, o).unwrap())
        .collect();
    ops.sort_by_key(|op| (op.invoke, op.orig));
    let result = search(&ops, u64::MAX);
    assert_eq!(result.verdict, SearchVerdict::Linearizable);
    assert!(result.steps < 10 * h.len() as u64, "{} steps", result.steps);
}
