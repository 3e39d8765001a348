//! Properties of the clocks, by proptest (shrinking; the failing case is printed and proptest
//! reports the seed to replay it), and the core types' `quickcheck::Arbitrary` impls at work.

use converge_core::{
    BoundedCounter, CausalContext, Causality, Dot, GCounter, Hlc, HlcTimestamp, Lattice,
    MvRegister, OrSet, ReplicaId, VectorClock,
};
use proptest::prelude::*;

fn clock() -> impl Strategy<Value = VectorClock> {
    proptest::collection::vec((0u64..4, 0u64..6), 0..6)
        .prop_map(|pairs| pairs.into_iter().map(|(r, n)| (ReplicaId(r), n)).collect())
}

/// Clocks over up to nine replicas (past the inline capacity), sparse or dense.
fn wide_clock() -> impl Strategy<Value = VectorClock> {
    proptest::collection::vec((0u64..9, 0u64..6), 0..12)
        .prop_map(|pairs| pairs.into_iter().map(|(r, n)| (ReplicaId(r), n)).collect())
}

proptest! {
    /// The in-place merge is the pointwise maximum, keeps the representation canonical (sorted,
    /// no zeros: equal clocks compare equal) and is a join (commutative, idempotent).
    #[test]
    fn merge_is_the_pointwise_maximum(a in wide_clock(), b in wide_clock()) {
        let mut m = a.clone();
        m.merge(&b);
        for r in 0..9 {
            let r = ReplicaId(r);
            prop_assert_eq!(m.get(r), a.get(r).max(b.get(r)));
        }
        let canonical: VectorClock = m.iter().collect();
        prop_assert_eq!(&canonical, &m);
        prop_assert!(m.iter().zip(m.iter().skip(1)).all(|(x, y)| x.0 < y.0));
        let mut n = b.clone();
        n.merge(&a);
        prop_assert_eq!(&m, &n);
        let mut again = m.clone();
        again.merge(&b);
        prop_assert_eq!(&again, &m);
    }

    #[test]
    fn compare_is_antisymmetric_and_agrees_with_merge(a in clock(), b in clock()) {
        let flipped = match a.compare(&b) {
            Causality::Before => Causality::After,
            Causality::After => Causality::Before,
            other => other,
        };
        prop_assert_eq!(b.compare(&a), flipped);
        let mut m = a.clone();
        m.merge(&b);
        prop_assert!(m.dominates(&a) && m.dominates(&b));
        prop_assert_eq!(a.dominates(&b), m == a);
    }

    /// Timestamps issued by one clock strictly increase, whatever physical time does and whatever
    /// (acceptable) remote timestamps arrive, and never fall behind physical time.
    #[test]
    fn hlc_is_monotonic_and_tracks_physical_time(
        events in proptest::collection::vec((0u64..1_000, proptest::option::of((0u64..1_300, 0u32..5))), 1..60)
    ) {
        let mut hlc = Hlc::new(250);
        let mut last = HlcTimestamp::default();
        for (now_ms, remote) in events {
            let stamped = match remote {
                None => hlc.now(now_ms),
                Some((wall_ms, logical)) => hlc.observe(HlcTimestamp::new(wall_ms, logical), now_ms),
            };
            match stamped {
                Ok(ts) => {
                    prop_assert!(ts > last, "{ts:?} after {last:?}");
                    prop_assert!(ts.wall_ms >= now_ms);
                    last = ts;
                }
                Err(_) => prop_assert_eq!(hlc.last(), last, "a refused timestamp moved the clock"),
            }
        }
    }

    /// A causal context is a set of dots: membership after any insertion order equals the set.
    #[test]
    fn causal_context_is_the_set_of_its_dots(dots in proptest::collection::vec((0u64..3, 1u64..8), 0..20)) {
        let ctx = CausalContext::from_dots(dots.iter().map(|&(r, c)| Dot::new(r, c)));
        for r in 0..3 {
            for c in 1..10 {
                prop_assert_eq!(ctx.contains(&Dot::new(r, c)), dots.contains(&(r, c)));
            }
        }
        let reversed = CausalContext::from_dots(dots.iter().rev().map(|&(r, c)| Dot::new(r, c)));
        prop_assert_eq!(reversed, ctx);
    }
}

fn laws_hold<T: Lattice>(a: T, b: T, c: T) -> bool {
    let assoc =
        a.clone().joined(b.clone()).joined(c.clone()) == a.clone().joined(b.clone().joined(c));
    let comm = a.clone().joined(b.clone()) == b.clone().joined(a.clone());
    let idem = a.clone().joined(a.clone()) == a;
    let ab = a.clone().joined(b.clone());
    let infl = a.leq(&ab) && b.leq(&ab);
    assoc && comm && idem && infl
}

#[test]
fn quickcheck_arbitrary_states_satisfy_the_laws() {
    fn gcounter(a: GCounter, b: GCounter, c: GCounter) -> bool {
        laws_hold(a, b, c)
    }
    fn orset(a: OrSet<u8>, b: OrSet<u8>, c: OrSet<u8>) -> bool {
        laws_hold(a, b, c)
    }
    fn mvreg(a: MvRegister<u8>, b: MvRegister<u8>, c: MvRegister<u8>) -> bool {
        laws_hold(a, b, c)
    }
    fn clocks(a: VectorClock, b: VectorClock, c: VectorClock) -> bool {
        laws_hold(a, b, c)
    }
    fn bounded(a: BoundedCounter, b: BoundedCounter, c: BoundedCounter) -> bool {
        // Each generated state comes from one run, so it keeps the bound; joins of states from
        // unrelated runs need not, and are checked for the laws only.
        [&a, &b, &c].iter().all(|s| s.value() >= 0) && laws_hold(a, b, c)
    }
    let mut qc = quickcheck::QuickCheck::new().tests(300);
    qc.quickcheck(gcounter as fn(_, _, _) -> bool);
    qc.quickcheck(orset as fn(_, _, _) -> bool);
    qc.quickcheck(mvreg as fn(_, _, _) -> bool);
    qc.quickcheck(clocks as fn(_, _, _) -> bool);
    qc.quickcheck(bounded as fn(_, _, _) -> bool);
}
