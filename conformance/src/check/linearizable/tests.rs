//! The checker's tests: hand-written histories with known verdicts, and properties checked
//! against trying every order on small random histories.
//!
//! They are one file because they are one list of cases over the same few history builders;
//! the builders at the top and the brute-force oracle serve all of them.

use super::*;
use proptest::prelude::*;
use proptest::test_runner::{
    Config as ProptestConfig, RngAlgorithm, TestCaseError, TestRng, TestRunner,
};
use std::collections::BTreeMap;
use std::fmt::Debug;

fn op(p: u64, invoke: u64, complete: Option<u64>, op: KvOp, outcome: Outcome) -> Operation {
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
        Outcome::Ok(value),
    )
}

fn write(p: u64, invoke: u64, complete: u64, value: i64) -> Operation {
    op(
        p,
        invoke,
        Some(complete),
        KvOp::Write { key: 0, value },
        Outcome::Ok(None),
    )
}

fn write_unknown(p: u64, invoke: u64, value: i64) -> Operation {
    op(
        p,
        invoke,
        None,
        KvOp::Write { key: 0, value },
        Outcome::Unknown,
    )
}

fn cas(p: u64, invoke: u64, complete: u64, from: i64, to: i64, ok: bool) -> Operation {
    let outcome = if ok { Outcome::Ok(None) } else { Outcome::Fail };
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
        Outcome::Unknown,
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
        Outcome::Fail,
    );
    assert_linearizable(&[failed_write.clone(), read(1, 20, 30, None)]);
    let h = [failed_write, read(1, 20, 30, Some(1))];
    let explanation = assert_violation(&h, 0, &h[1..]);
    assert!(
        explanation.contains("Nothing invoked by then writes 1"),
        "{explanation}"
    );
    // A failed read is dropped too.
    let failed_read = op(0, 0, Some(1), KvOp::Read { key: 0 }, Outcome::Fail);
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
    let unknown_read = op(1, 0, None, KvOp::Read { key: 0 }, Outcome::Unknown);
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
            Outcome::Ok(None),
        ),
        op(
            0,
            0,
            Some(1),
            KvOp::Write { key: 0, value: 1 },
            Outcome::Ok(Some(1)),
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
    assert_eq!(result.verdict, Verdict::Linearizable);
    assert!(result.steps < 10 * h.len() as u64, "{} steps", result.steps);
}

// ---- The oracle ----

/// Whether `history` is linearizable, by trying every order: the definition, for a handful
/// of operations. It shares no code with the checker.
fn brute_force(history: &[Operation]) -> bool {
    let ops: Vec<&Operation> = history
        .iter()
        .filter(|o| match o.outcome {
            Outcome::Fail => false,
            Outcome::Unknown => !matches!(o.op, KvOp::Read { .. }),
            Outcome::Ok(_) => true,
        })
        .collect();
    fn go(ops: &[&Operation], done: &mut Vec<bool>, state: &mut BTreeMap<u64, i64>) -> bool {
        let pending = |o: &Operation| o.outcome != Outcome::Unknown;
        if ops.iter().zip(done.iter()).all(|(o, &d)| d || !pending(o)) {
            return true;
        }
        for i in 0..ops.len() {
            if done[i] {
                continue;
            }
            let o = ops[i];
            // Nothing left may have completed before this one was invoked.
            let blocked = ops
                .iter()
                .zip(done.iter())
                .any(|(p, &d)| !d && pending(p) && p.complete_ns.is_some_and(|c| c < o.invoke_ns));
            if blocked {
                continue;
            }
            let key = o.op.key();
            let before = state.get(&key).copied();
            let after = match (o.op, o.outcome) {
                (KvOp::Read { .. }, Outcome::Ok(v)) if v == before => before,
                (KvOp::Read { .. }, _) => continue,
                (KvOp::Write { value, .. }, _) => Some(value),
                (KvOp::Cas { from, to, .. }, _) if before == Some(from) => Some(to),
                (KvOp::Cas { .. }, Outcome::Unknown) => before,
                (KvOp::Cas { .. }, _) => continue,
            };
            if let Some(v) = after {
                state.insert(key, v);
            }
            done[i] = true;
            let found = go(ops, done, state);
            done[i] = false;
            match before {
                Some(v) => state.insert(key, v),
                None => state.remove(&key),
            };
            if found {
                return true;
            }
        }
        false
    }
    go(&ops, &mut vec![false; ops.len()], &mut BTreeMap::new())
}

// ---- Properties ----

/// Runs a property with a fresh seed, or `LINEARIZABLE_SEED` to replay, and names the seed
/// if it fails.
fn run_property<S>(
    name: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: Debug,
{
    let seed = std::env::var("LINEARIZABLE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            now.map_or(0, |d| d.as_nanos() as u64)
        });
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{name} failed with seed {seed} (replay: LINEARIZABLE_SEED={seed}): {e}");
    }
}

/// One operation of a generated sequential execution.
#[derive(Clone, Debug)]
struct Step {
    client: usize,
    key: u64,
    kind: u8,
    a: i64,
    b: i64,
    /// Time from the previous operation's linearization point to this one's.
    gap: u64,
    /// How long before its linearization point it was invoked.
    pre: u64,
    /// How long after it completed.
    post: u64,
    /// 0: indefinite, took effect; 1: indefinite, did not; 2: failed; otherwise as it ran.
    fate: u8,
}

fn step() -> impl Strategy<Value = Step> {
    (
        0..5usize,
        0..3u64,
        0..3u8,
        0..4i64,
        0..4i64,
        1..6u64,
        0..30u64,
        0..30u64,
        0..16u8,
    )
        .prop_map(|(client, key, kind, a, b, gap, pre, post, fate)| Step {
            client,
            key,
            kind,
            a,
            b,
            gap,
            pre,
            post,
            fate,
        })
}

/// A history of registers run one operation at a time, each at a point inside an interval
/// that overlaps its neighbours': linearizable by construction.
fn sequential(clients: usize, steps: &[Step]) -> Vec<Operation> {
    let mut free = vec![0u64; clients];
    let mut now = 0u64;
    let mut registers: BTreeMap<u64, i64> = BTreeMap::new();
    let mut history = Vec::new();
    for s in steps {
        let c = s.client % clients;
        now = (now + s.gap).max(free[c] + 1);
        let invoke = now.saturating_sub(s.pre).max(free[c] + 1);
        let complete = now + s.post;
        free[c] = complete;
        let key = s.key;
        let kv = match s.kind {
            0 => KvOp::Read { key },
            1 => KvOp::Write { key, value: s.a },
            _ => KvOp::Cas {
                key,
                from: s.a,
                to: s.b,
            },
        };
        let current = registers.get(&key).copied();
        let happens = match s.fate {
            1 | 2 => false,
            _ => match kv {
                KvOp::Read { .. } | KvOp::Write { .. } => true,
                KvOp::Cas { from, .. } => current == Some(from),
            },
        };
        if happens {
            match kv {
                KvOp::Write { value, .. } | KvOp::Cas { to: value, .. } => {
                    registers.insert(key, value);
                }
                KvOp::Read { .. } => {}
            }
        }
        let outcome = match (s.fate, kv) {
            (0 | 1, _) => Outcome::Unknown,
            (2, _) => Outcome::Fail,
            (_, KvOp::Read { .. }) => Outcome::Ok(current),
            (_, KvOp::Cas { .. }) if !happens => Outcome::Fail,
            _ => Outcome::Ok(None),
        };
        let complete_ns = (outcome != Outcome::Unknown).then_some(complete);
        history.push(op(c as u64, invoke, complete_ns, kv, outcome));
    }
    history
}

#[test]
fn sequential_executions_with_overlapping_intervals_are_linearizable() {
    run_property(
        "sequential executions are linearizable",
        256,
        (1..=5usize, prop::collection::vec(step(), 1..120)),
        |(clients, steps)| {
            let history = sequential(clients, &steps);
            let v = verdict(&history);
            prop_assert!(v.is_linearizable(), "{v:#?}\non {history:#?}");
            Ok(())
        },
    );
}

#[test]
fn a_read_of_a_value_never_written_is_found() {
    run_property(
        "a read of a value never written is found",
        256,
        (
            1..=5usize,
            prop::collection::vec(step(), 1..120),
            any::<prop::sample::Index>(),
        ),
        |(clients, steps, pick)| {
            let mut history = sequential(clients, &steps);
            let reads: Vec<usize> = (0..history.len())
                .filter(|&i| {
                    matches!(
                        (history[i].op, history[i].outcome),
                        (KvOp::Read { .. }, Outcome::Ok(_))
                    )
                })
                .collect();
            prop_assume!(!reads.is_empty());
            let mutated = reads[pick.index(reads.len())];
            history[mutated].outcome = Outcome::Ok(Some(1_000_000));
            match verdict(&history) {
                Linearizability::NotLinearizable {
                    key,
                    minimal,
                    explanation,
                } => {
                    prop_assert_eq!(key, history[mutated].op.key(), "{}", explanation);
                    prop_assert!(minimal.contains(&history[mutated]), "{}", explanation);
                    prop_assert!(
                        !verdict(&minimal).is_linearizable(),
                        "the minimal history passes: {}",
                        explanation
                    );
                }
                other => prop_assert!(false, "expected a violation, got {other:#?}"),
            }
            Ok(())
        },
    );
}

fn arbitrary_op() -> impl Strategy<Value = Operation> {
    (
        0..2u64,
        0..3u8,
        0..3i64,
        0..3i64,
        0..16u64,
        0..8u64,
        0..6u8,
        prop::option::of(0..3i64),
    )
        .prop_map(|(key, kind, a, b, invoke, length, fate, read)| {
            let kv = match kind {
                0 => KvOp::Read { key },
                1 => KvOp::Write { key, value: a },
                _ => KvOp::Cas {
                    key,
                    from: a,
                    to: b,
                },
            };
            let outcome = match (fate, kv) {
                (0, _) => Outcome::Unknown,
                (1, _) => Outcome::Fail,
                (_, KvOp::Read { .. }) => Outcome::Ok(read),
                _ => Outcome::Ok(None),
            };
            let complete = (outcome != Outcome::Unknown).then_some(invoke + length);
            op(u64::from(kind), invoke, complete, kv, outcome)
        })
}

/// The history cut just after `t`, as the module documentation defines it.
fn cut_history(history: &[Operation], t: Option<u64>) -> Vec<Operation> {
    let Some(t) = t else {
        return Vec::new();
    };
    history
        .iter()
        .filter(|o| o.invoke_ns <= t && o.outcome != Outcome::Fail)
        .filter_map(|o| match o.complete_ns {
            Some(c) if c <= t && o.outcome != Outcome::Unknown => Some(o.clone()),
            _ if matches!(o.op, KvOp::Read { .. }) => None,
            _ => Some(Operation {
                complete_ns: None,
                outcome: Outcome::Unknown,
                ..o.clone()
            }),
        })
        .collect()
}

#[test]
fn violations_surface_where_the_report_says() {
    run_property(
        "violations surface where the report says",
        2_000,
        prop::collection::vec(arbitrary_op(), 0..8),
        |history| {
            for key in 0..2 {
                let on_key: Vec<Operation> = history
                    .iter()
                    .filter(|o| o.op.key() == key)
                    .cloned()
                    .collect();
                let mut ops: Vec<KOp> = on_key
                    .iter()
                    .enumerate()
                    .filter_map(|(i, o)| KOp::from_operation(i, o).unwrap())
                    .collect();
                ops.sort_by_key(|op| (op.invoke, op.orig));
                if let Some(found) = blatant(&ops) {
                    prop_assert!(
                        !brute_force(&cut_history(&on_key, Some(found.at))),
                        "{found:?}"
                    );
                }
                // With no first search, blatant violations are looked for straight away.
                let verdict = check_key(&ops, u64::MAX);
                prop_assert_eq!(verdict, check_key_with(&ops, u64::MAX, 0));
                match verdict {
                    KeyVerdict::Violation { cut, earliest } => {
                        prop_assert!(earliest);
                        prop_assert!(!brute_force(&cut_history(&on_key, Some(cut))));
                        prop_assert!(brute_force(&cut_history(&on_key, cut.checked_sub(1))));
                    }
                    v => prop_assert!(brute_force(&on_key), "{v:?}"),
                }
            }
            Ok(())
        },
    );
}

#[test]
fn the_checker_agrees_with_trying_every_order() {
    run_property(
        "the checker agrees with the oracle",
        2_000,
        prop::collection::vec(arbitrary_op(), 0..8),
        |history| {
            let v = verdict(&history);
            prop_assert_eq!(v.is_linearizable(), brute_force(&history), "{:#?}", v);
            if let Linearizability::NotLinearizable {
                minimal,
                explanation,
                ..
            } = v
            {
                prop_assert!(!minimal.is_empty());
                prop_assert!(!brute_force(&minimal), "{}", explanation);
            }
            Ok(())
        },
    );
}
