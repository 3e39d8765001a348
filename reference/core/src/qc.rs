//! `quickcheck::Arbitrary` for the core types, for users who test with quickcheck.
//!
//! Every generated CRDT state is *reachable*: it is built by running random operations at a few
//! replicas and joining some of their states, never by filling fields at random, so the states
//! satisfy the types' invariants and the lattice laws apply to them.

use crate::{
    BoundedCounter, CausalContext, Dot, Dvv, GCounter, HlcTimestamp, Lattice, LwwRegister,
    MvRegister, OrSet, PnCounter, ReplicaId, VectorClock,
};
use quickcheck::{Arbitrary, Gen};

/// Replicas come from a small pool so that generated states overlap and conflict.
fn replica(g: &mut Gen) -> ReplicaId {
    ReplicaId(u64::from(u8::arbitrary(g) % 4))
}

fn steps(g: &mut Gen) -> usize {
    usize::arbitrary(g) % g.size().max(1)
}

impl Arbitrary for ReplicaId {
    fn arbitrary(g: &mut Gen) -> Self {
        replica(g)
    }
}

impl Arbitrary for Dot {
    fn arbitrary(g: &mut Gen) -> Self {
        Dot::new(replica(g), 1 + u64::from(u8::arbitrary(g) % 16))
    }
}

impl Arbitrary for HlcTimestamp {
    fn arbitrary(g: &mut Gen) -> Self {
        HlcTimestamp::new(
            u64::from(u16::arbitrary(g)),
            u32::from(u8::arbitrary(g) % 4),
        )
    }
}

impl Arbitrary for VectorClock {
    fn arbitrary(g: &mut Gen) -> Self {
        (0..steps(g))
            .map(|_| (replica(g), u64::from(u8::arbitrary(g) % 16)))
            .collect()
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let pairs: Vec<(ReplicaId, u64)> = self.iter().collect();
        Box::new((0..pairs.len()).map(move |skip| {
            pairs
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != skip)
                .map(|(_, &p)| p)
                .collect()
        }))
    }
}

impl Arbitrary for CausalContext {
    fn arbitrary(g: &mut Gen) -> Self {
        CausalContext::from_dots((0..steps(g)).map(|_| Dot::arbitrary(g)))
    }
}

impl Arbitrary for Dvv {
    fn arbitrary(g: &mut Gen) -> Self {
        let dot = Dot::arbitrary(g);
        let past: VectorClock = VectorClock::arbitrary(g)
            .iter()
            .filter(|&(r, n)| r != dot.replica || n < dot.counter)
            .collect();
        // The filter removed anything that could cover the dot.
        Dvv::new(dot, past).expect("past does not cover the dot")
    }
}

impl Arbitrary for GCounter {
    fn arbitrary(g: &mut Gen) -> Self {
        let mut c = GCounter::new();
        for _ in 0..steps(g) {
            // Small increments cannot overflow a fresh counter.
            c.increment(replica(g), u64::from(u8::arbitrary(g)))
                .expect("small increments");
        }
        c
    }
}

impl Arbitrary for PnCounter {
    fn arbitrary(g: &mut Gen) -> Self {
        let mut c = PnCounter::new();
        for _ in 0..steps(g) {
            let (r, by) = (replica(g), u64::from(u8::arbitrary(g)));
            // Small increments cannot overflow a fresh counter.
            if bool::arbitrary(g) {
                c.increment(r, by).expect("small increments");
            } else {
                c.decrement(r, by).expect("small increments");
            }
        }
        c
    }
}

/// Runs random operations at up to four replicas, sometimes joining one into another, and
/// returns one replica's state: reachable by construction.
fn reachable<S: Lattice>(g: &mut Gen, mut op: impl FnMut(&mut Gen, &mut S, ReplicaId)) -> S {
    let mut states = vec![S::bottom(); 4];
    for _ in 0..steps(g) {
        let i = usize::from(u8::arbitrary(g) % 4);
        if u8::arbitrary(g) % 4 == 0 {
            let j = usize::from(u8::arbitrary(g) % 4);
            let other = states[j].clone();
            states[i].join(other);
        } else {
            // Replica i issues dots as ReplicaId(i): only replica i may mint its own dots.
            op(g, &mut states[i], ReplicaId(i as u64));
        }
    }
    let pick = usize::from(u8::arbitrary(g) % 4);
    states.swap_remove(pick)
}

impl<E: Arbitrary + Ord + std::fmt::Debug> Arbitrary for OrSet<E> {
    fn arbitrary(g: &mut Gen) -> Self {
        reachable(g, |g, s: &mut OrSet<E>, r| {
            let e = E::arbitrary(g);
            if bool::arbitrary(g) {
                s.add(r, e);
            } else {
                s.remove(&e);
            }
        })
    }
}

impl<V: Arbitrary + Ord + std::fmt::Debug> Arbitrary for LwwRegister<V> {
    fn arbitrary(g: &mut Gen) -> Self {
        reachable(g, |g, s: &mut LwwRegister<V>, r| {
            s.set(r, HlcTimestamp::arbitrary(g), V::arbitrary(g));
        })
    }
}

impl<V: Arbitrary + Eq + std::fmt::Debug> Arbitrary for MvRegister<V> {
    fn arbitrary(g: &mut Gen) -> Self {
        reachable(g, |g, s: &mut MvRegister<V>, r| {
            s.write(r, V::arbitrary(g));
        })
    }
}

impl Arbitrary for BoundedCounter {
    /// Increments, decrements and transfers of a few units at up to four replicas; a spend the
    /// replica holds too few rights for is refused and leaves the state as it was, which is
    /// what makes the states reachable.
    fn arbitrary(g: &mut Gen) -> Self {
        reachable(g, |g, s: &mut BoundedCounter, r| {
            let by = u64::from(u8::arbitrary(g) % 8);
            // Refusals (too few rights, a transfer to oneself) are part of the generated runs;
            // the amounts are too small to overflow.
            let _ = match u8::arbitrary(g) % 3 {
                0 => s.increment(r, by),
                1 => s.decrement(r, by),
                _ => s.transfer(r, replica(g), by),
            };
        })
    }
}
