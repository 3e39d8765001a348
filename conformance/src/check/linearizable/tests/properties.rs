//! Properties of the checker on random histories, against an oracle that tries every order
//! (`brute_force`) and shares no code with it: verdicts agree, sequential executions pass,
//! violations surface where the report says, and the reported witness fails on its own.

use super::*;
use proptest::prelude::*;
use proptest::test_runner::{
    Config as ProptestConfig, RngAlgorithm, TestCaseError, TestRng, TestRunner,
};
use std::collections::BTreeMap;
use std::fmt::Debug;

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
            (0 | 1, _) => KvOutcome::Unknown,
            (2, _) => KvOutcome::Fail,
            (_, KvOp::Read { .. }) => KvOutcome::Ok(current),
            (_, KvOp::Cas { .. }) if !happens => KvOutcome::Fail,
            _ => KvOutcome::Ok(None),
        };
        let complete_ns = (outcome != KvOutcome::Unknown).then_some(complete);
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
                        (KvOp::Read { .. }, KvOutcome::Ok(_))
                    )
                })
                .collect();
            prop_assume!(!reads.is_empty());
            let mutated = reads[pick.index(reads.len())];
            history[mutated].outcome = KvOutcome::Ok(Some(1_000_000));
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
                (0, _) => KvOutcome::Unknown,
                (1, _) => KvOutcome::Fail,
                (_, KvOp::Read { .. }) => KvOutcome::Ok(read),
                _ => KvOutcome::Ok(None),
            };
            let complete = (outcome != KvOutcome::Unknown).then_some(invoke + length);
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
        .filter(|o| o.invoke_ns <= t && o.outcome != KvOutcome::Fail)
        .filter_map(|o| match o.complete_ns {
            Some(c) if c <= t && o.outcome != KvOutcome::Unknown => Some(o.clone()),
            _ if matches!(o.op, KvOp::Read { .. }) => None,
            _ => Some(Operation {
                complete_ns: None,
                outcome: KvOutcome::Unknown,
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
