//! converge-core against `crdts` 7.3.2, side by side in one run.
//!
//! Every group holds two functions, `converge` and `crdts`, doing the same work on the same
//! element type (`u64` elements, `u64` actors). Inputs are built once, outside the timed loop;
//! each iteration clones both sides in the (untimed) setup and times the merge alone, which
//! consumes the right-hand side on both libraries. The merged state is returned so that its drop
//! is not timed either.
//!
//! Run with `cargo bench -p converge-core --bench vs_crdts`.

use converge_core::{GCounter, Lattice, MvRegister, OrSet, ReplicaId, VectorClock};
use crdts::{CmRDT, CvRDT, MVReg, Orswot, VClock};
use criterion::{BatchSize, Criterion};
use std::cmp::Ordering;
use std::hint::black_box;
use std::time::Duration;

/// Elements added by each side of the OR-Set cases.
const N: u64 = 100_000;
/// Elements each side removes (and adds anew) in the shared-history case: 1% of `N` in all.
const CHURN: u64 = 500;
/// Actors in the G-Counter and vector-clock cases.
const ACTORS: u64 = 100;

/// The two libraries' OR-Sets, built by the same history.
#[derive(Clone)]
struct Sets {
    converge: OrSet<u64>,
    crdts: Orswot<u64, u64>,
}

impl Sets {
    fn new() -> Self {
        Sets {
            converge: OrSet::new(),
            crdts: Orswot::new(),
        }
    }

    /// Adds every element of `elements` on behalf of `actor`, one add (one dot) per element.
    fn add(&mut self, actor: u64, elements: impl IntoIterator<Item = u64>) {
        for e in elements {
            self.converge.add(ReplicaId(actor), e);
            let ctx = self.crdts.read_ctx().derive_add_ctx(actor);
            let op = self.crdts.add(e, ctx);
            self.crdts.apply(op);
        }
    }

    /// Removes every element of `elements` (the adds of it this replica has observed).
    fn remove(&mut self, elements: impl IntoIterator<Item = u64>) {
        for e in elements {
            self.converge.remove(&e);
            let ctx = self.crdts.contains(&e).derive_rm_ctx();
            let op = self.crdts.rm(e, ctx);
            self.crdts.apply(op);
        }
    }
}

/// (a) Two replicas that never met, each with `N` elements of its own.
fn orset_disjoint() -> (Sets, Sets) {
    let mut a = Sets::new();
    a.add(1, 0..N);
    let mut b = Sets::new();
    b.add(2, N..2 * N);
    (a, b)
}

/// (b) A common ancestor with `N / 2` elements, then each replica adds `N / 2` of its own: each
/// side holds `N` elements, half of them shared.
fn orset_half_overlap() -> (Sets, Sets) {
    let mut ancestor = Sets::new();
    ancestor.add(0, 0..N / 2);
    let mut a = ancestor.clone();
    a.add(1, N / 2..N);
    let mut b = ancestor;
    b.add(2, N..N + N / 2);
    (a, b)
}

/// (c) Both replicas start from the same `N`-element state; each then removes `CHURN` elements
/// and adds `CHURN` new ones, different on each side (1% of the set changed in all).
fn orset_shared_1pct() -> (Sets, Sets) {
    let mut base = Sets::new();
    base.add(0, 0..N);
    let mut a = base.clone();
    a.remove(0..CHURN);
    a.add(1, N..N + CHURN);
    let mut b = base;
    b.remove(CHURN..2 * CHURN);
    b.add(2, N + CHURN..N + 2 * CHURN);
    (a, b)
}

fn bench_orset(c: &mut Criterion, name: &str, (a, b): (Sets, Sets), expected_len: usize) {
    // Check once, untimed, that both libraries merge to the same set.
    let merged = a.converge.clone().joined(b.converge.clone());
    let mut theirs = a.crdts.clone();
    theirs.merge(b.crdts.clone());
    let mut ours_elements: Vec<u64> = merged.iter().copied().collect();
    let mut their_elements: Vec<u64> = theirs.read().val.into_iter().collect();
    ours_elements.sort_unstable();
    their_elements.sort_unstable();
    assert_eq!(ours_elements.len(), expected_len, "{name}: converge merge");
    assert_eq!(ours_elements, their_elements, "{name}: libraries disagree");

    let mut group = c.benchmark_group(name);
    group.bench_function("converge", |bench| {
        bench.iter_batched(
            || (a.converge.clone(), b.converge.clone()),
            |(mut x, y)| {
                x.join(black_box(y));
                black_box(x)
            },
            BatchSize::LargeInput,
        );
    });
    group.bench_function("crdts", |bench| {
        bench.iter_batched(
            || (a.crdts.clone(), b.crdts.clone()),
            |(mut x, y)| {
                x.merge(black_box(y));
                black_box(x)
            },
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

fn orset_merge(c: &mut Criterion) {
    let n = usize::try_from(N).expect("N fits usize");
    bench_orset(c, "orset_merge/disjoint_100k", orset_disjoint(), 2 * n);
    bench_orset(
        c,
        "orset_merge/overlap_50pct_100k",
        orset_half_overlap(),
        n + n / 2,
    );
    bench_orset(
        c,
        "orset_merge/shared_1pct_diff_100k",
        orset_shared_1pct(),
        n,
    );
}

/// Two G-Counters, each incremented by all `ACTORS` actors by different amounts, so that the merge
/// takes the left count for some actors and the right for the others.
fn gcounter_merge(c: &mut Criterion) {
    let left = |r: u64| 3 * r + 1;
    let right = |r: u64| 2 * (ACTORS - r) + 1;
    let mut ours_a = GCounter::new();
    let mut ours_b = GCounter::new();
    let mut theirs_a: crdts::GCounter<u64> = crdts::GCounter::new();
    let mut theirs_b: crdts::GCounter<u64> = crdts::GCounter::new();
    for r in 0..ACTORS {
        ours_a
            .increment(ReplicaId(r), left(r))
            .expect("no overflow");
        ours_b
            .increment(ReplicaId(r), right(r))
            .expect("no overflow");
        theirs_a.apply(theirs_a.inc_many(r, left(r)));
        theirs_b.apply(theirs_b.inc_many(r, right(r)));
    }
    let expected: u128 = (0..ACTORS).map(|r| u128::from(left(r).max(right(r)))).sum();
    assert_eq!(ours_a.clone().joined(ours_b.clone()).value(), expected);
    let mut check = theirs_a.clone();
    check.merge(theirs_b.clone());
    assert_eq!(check.read().to_string(), expected.to_string());

    let mut group = c.benchmark_group("gcounter_merge/100_actors");
    group.bench_function("converge", |bench| {
        bench.iter_batched(
            || (ours_a.clone(), ours_b.clone()),
            |(mut x, y)| {
                x.join(black_box(y));
                black_box(x)
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("crdts", |bench| {
        bench.iter_batched(
            || (theirs_a.clone(), theirs_b.clone()),
            |(mut x, y)| {
                x.merge(black_box(y));
                black_box(x)
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

/// Two registers over a common first write (by actor 0); on each side four replicas then write
/// concurrently over it (actors 1–4 on the left, 5–8 on the right), so each side holds four
/// siblings and the merge keeps all eight.
fn mvreg_merge(c: &mut Criterion) {
    let mut ours_base = MvRegister::new();
    ours_base.write(ReplicaId(0), 0u64);
    let mut theirs_base: MVReg<u64, u64> = MVReg::new();
    theirs_base.apply(theirs_base.write(0, theirs_base.read_ctx().derive_add_ctx(0)));

    let side = |actors: std::ops::RangeInclusive<u64>| {
        let mut ours = ours_base.clone();
        let mut theirs = theirs_base.clone();
        for actor in actors {
            let mut writer = ours_base.clone();
            ours.join(writer.write(ReplicaId(actor), 100 + actor));
            theirs.apply(
                theirs_base.write(100 + actor, theirs_base.read_ctx().derive_add_ctx(actor)),
            );
        }
        (ours, theirs)
    };
    let (ours_a, theirs_a) = side(1..=4);
    let (ours_b, theirs_b) = side(5..=8);
    assert_eq!(ours_a.values().count(), 4);
    assert_eq!(theirs_a.read().val.len(), 4);
    let mut ours_values: Vec<u64> = ours_a
        .clone()
        .joined(ours_b.clone())
        .values()
        .copied()
        .collect();
    let mut check = theirs_a.clone();
    check.merge(theirs_b.clone());
    let mut their_values = check.read().val;
    ours_values.sort_unstable();
    their_values.sort_unstable();
    assert_eq!(ours_values, (101..=108).collect::<Vec<u64>>());
    assert_eq!(ours_values, their_values);

    let mut group = c.benchmark_group("mvreg_merge/4x4_siblings");
    group.bench_function("converge", |bench| {
        bench.iter_batched(
            || (ours_a.clone(), ours_b.clone()),
            |(mut x, y)| {
                x.join(black_box(y));
                black_box(x)
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("crdts", |bench| {
        bench.iter_batched(
            || (theirs_a.clone(), theirs_b.clone()),
            |(mut x, y)| {
                x.merge(black_box(y));
                black_box(x)
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

/// Two concurrent clocks over the same `ACTORS` actors, equal everywhere except the last two
/// actors (left ahead on one, right ahead on the other): both libraries must read both clocks to
/// the end before answering "concurrent", the least favourable case for an early exit.
fn vclock_compare(c: &mut Criterion) {
    let left = |r: u64| {
        if r == ACTORS - 1 {
            1
        } else {
            10 + r + u64::from(r == ACTORS - 2)
        }
    };
    let right = |r: u64| if r == ACTORS - 1 { 2 } else { 10 + r };
    let ours_a: VectorClock = (0..ACTORS).map(|r| (ReplicaId(r), left(r))).collect();
    let ours_b: VectorClock = (0..ACTORS).map(|r| (ReplicaId(r), right(r))).collect();
    let theirs_a: VClock<u64> = (0..ACTORS).map(|r| crdts::Dot::new(r, left(r))).collect();
    let theirs_b: VClock<u64> = (0..ACTORS).map(|r| crdts::Dot::new(r, right(r))).collect();
    assert_eq!(ours_a.partial_cmp(&ours_b), None);
    assert_eq!(theirs_a.partial_cmp(&theirs_b), None);
    assert!(ours_a.concurrent_with(&ours_b));

    let mut group = c.benchmark_group("vclock_compare/concurrent_100_actors");
    group.bench_function("converge", |bench| {
        bench.iter(|| black_box(&ours_a).compare(black_box(&ours_b)));
    });
    group.bench_function("crdts", |bench| {
        bench.iter(|| -> Option<Ordering> {
            black_box(&theirs_a).partial_cmp(black_box(&theirs_b))
        });
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
}

// `criterion_group!` would generate an undocumented `pub fn`, which the workspace's `missing_docs`
// lint refuses; this is what it and `criterion_main!` expand to.
fn main() {
    let mut c = config().configure_from_args();
    orset_merge(&mut c);
    gcounter_merge(&mut c);
    mvreg_merge(&mut c);
    vclock_compare(&mut c);
    c.final_summary();
}
