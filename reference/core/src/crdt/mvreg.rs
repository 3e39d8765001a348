use crate::{CausalContext, Dvv, Lattice, ReplicaId};
use serde::{Deserialize, Deserializer, Serialize};
use std::cmp::Ordering;

/// One concurrent value of a multi-value register, with the dotted version vector of the write
/// that made it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Sibling<V> {
    /// The write's identity (its dot) and what it had seen (its past).
    pub dvv: Dvv,
    /// The value written.
    pub value: V,
}

/// A multi-value register: concurrent writes are all kept, as siblings, until a write that has
/// seen them replaces them.
///
/// Each sibling carries a dotted version vector: its own dot plus the version vector the write
/// had seen. The register's causal context records every write it has seen. A sibling whose dot
/// is in the other side's context but not among its siblings was overwritten there, so the join
/// drops it; a write supersedes exactly the siblings it saw, and writes that did not see each
/// other survive side by side — also two writes issued by one replica for clients that had not
/// seen each other's write, which a plain version vector would wrongly order.
///
/// Invariants (checked on decode): siblings sorted by dot, dots unique and in the context.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct MvRegister<V> {
    siblings: Vec<Sibling<V>>,
    ctx: CausalContext,
}

impl<V> Default for MvRegister<V> {
    fn default() -> Self {
        MvRegister {
            siblings: Vec::new(),
            ctx: CausalContext::new(),
        }
    }
}

impl<V: Clone + Eq> MvRegister<V> {
    /// An empty register.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<V> MvRegister<V> {
    /// The register made of `siblings` and `ctx`, validated exactly as decoding validates:
    /// siblings sorted by unique dots, every dot in the context.
    pub(crate) fn from_parts(
        siblings: Vec<Sibling<V>>,
        ctx: CausalContext,
    ) -> Result<Self, &'static str> {
        if !siblings.windows(2).all(|w| w[0].dvv.dot() < w[1].dvv.dot()) {
            return Err("mv-register siblings not sorted by unique dots");
        }
        if !siblings.iter().all(|s| ctx.contains(&s.dvv.dot())) {
            return Err("mv-register sibling missing from its causal context");
        }
        Ok(MvRegister { siblings, ctx })
    }
}

impl<V: Clone + Eq> MvRegister<V> {
    /// The current values: one, or several after concurrent writes, or none before any write.
    pub fn values(&self) -> impl ExactSizeIterator<Item = &V> {
        self.siblings.iter().map(|s| &s.value)
    }

    /// The current siblings with their dotted version vectors.
    pub fn siblings(&self) -> &[Sibling<V>] {
        &self.siblings
    }

    /// The context a reader passes back with a write to replace exactly what it read.
    pub fn read_context(&self) -> CausalContext {
        CausalContext::from_dots(self.siblings.iter().map(|s| s.dvv.dot()))
    }

    /// Every write this register has seen.
    pub fn context(&self) -> &CausalContext {
        &self.ctx
    }

    /// Writes `value` on behalf of `replica`, replacing every current sibling; returns the delta.
    pub fn write(&mut self, replica: ReplicaId, value: V) -> MvRegister<V> {
        let seen = self.read_context();
        self.write_seen(replica, value, &seen)
    }

    /// Writes `value` on behalf of `replica`, replacing exactly the siblings whose dots are in
    /// `seen` (what the client read, possibly at another replica); returns the delta. Siblings the
    /// client did not see stay. A seen sibling that has not reached this replica yet is replaced
    /// too: its dot enters the context now, so it is dropped on arrival.
    pub fn write_seen(
        &mut self,
        replica: ReplicaId,
        value: V,
        seen: &CausalContext,
    ) -> MvRegister<V> {
        // Past everything this replica and the client have seen of `replica`, so the new dot is
        // fresh even if the client's context is ahead of this register.
        let dot = self.ctx.next_dot(replica).max(seen.next_dot(replica));
        // The past recorded in the DVV is the gap-free part of what the writer had seen.
        let mut past = seen.version_vector().clone();
        for d in seen.cloud() {
            if d.counter == past.get(d.replica) + 1 {
                past.raise(d.replica, d.counter);
            }
        }
        // `dot` is beyond every dot of `replica` in `seen`, so `past` cannot cover it.
        let dvv = Dvv::new(dot, past).expect("a fresh dot is not in the past it was chosen after");
        let mut delta_ctx = seen.clone();
        delta_ctx.insert_dot(dot);
        let sibling = Sibling { dvv, value };
        self.siblings.retain(|s| !seen.contains(&s.dvv.dot()));
        let at = self.siblings.partition_point(|s| s.dvv.dot() < dot);
        self.siblings.insert(at, sibling.clone());
        self.ctx.union(&delta_ctx);
        MvRegister {
            siblings: vec![sibling],
            ctx: delta_ctx,
        }
    }
}

impl<V: Clone + Eq + std::fmt::Debug> Lattice for MvRegister<V> {
    fn bottom() -> Self {
        Self::new()
    }

    fn join(&mut self, other: Self) {
        let ours = std::mem::take(&mut self.siblings);
        let mut merged = Vec::with_capacity(ours.len() + other.siblings.len());
        let mut a = ours.into_iter().peekable();
        let mut b = other.siblings.into_iter().peekable();
        loop {
            let order = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => x.dvv.dot().cmp(&y.dvv.dot()),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => break,
            };
            // The `expect`s cannot fire: `order` was computed from the peeked items.
            match order {
                Ordering::Less => {
                    let s = a.next().expect("peeked");
                    if !other.ctx.contains(&s.dvv.dot()) {
                        merged.push(s);
                    }
                }
                Ordering::Greater => {
                    let s = b.next().expect("peeked");
                    if !self.ctx.contains(&s.dvv.dot()) {
                        merged.push(s);
                    }
                }
                Ordering::Equal => {
                    let (x, y) = (a.next().expect("peeked"), b.next().expect("peeked"));
                    // One dot is one write, so both sides hold the same sibling. Two different
                    // siblings under one dot only come from a corrupt peer: each side has seen the
                    // dot without the other's sibling, so neither survives. Dropping both keeps the
                    // join commutative and associative without ordering values.
                    if x == y {
                        merged.push(x);
                    }
                }
            }
        }
        self.siblings = merged;
        self.ctx.union(&other.ctx);
    }

    fn leq(&self, other: &Self) -> bool {
        // `other` has seen everything `self` has, and each sibling of `other` that `self` has seen
        // is one of `self`'s siblings.
        self.ctx.leq(&other.ctx)
            && other.siblings.iter().all(|s| {
                !self.ctx.contains(&s.dvv.dot())
                    || self
                        .siblings
                        .binary_search_by_key(&s.dvv.dot(), |x| x.dvv.dot())
                        .is_ok_and(|i| self.siblings[i] == *s)
            })
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for MvRegister<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        struct Raw<V> {
            siblings: Vec<Sibling<V>>,
            ctx: CausalContext,
        }
        let raw = Raw::<V>::deserialize(deserializer)?;
        MvRegister::from_parts(raw.siblings, raw.ctx).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ReplicaId = ReplicaId(1);
    const B: ReplicaId = ReplicaId(2);

    fn values<V: Clone + Eq + Ord>(r: &MvRegister<V>) -> Vec<V> {
        let mut v: Vec<V> = r.values().cloned().collect();
        v.sort();
        v
    }

    #[test]
    fn concurrent_writes_stay_siblings_until_a_write_that_saw_both() {
        let mut a = MvRegister::new();
        let mut b = MvRegister::new();
        a.write(A, 1);
        b.write(B, 2);
        let mut ab = a.clone().joined(b.clone());
        assert_eq!(values(&ab), vec![1, 2]);
        let [x, y] = ab.siblings() else {
            panic!("two siblings expected")
        };
        assert_eq!(x.dvv.compare(&y.dvv), crate::Causality::Concurrent);
        let delta = ab.write(A, 3);
        assert_eq!(values(&ab), vec![3]);
        // The delta alone replaces both siblings wherever it lands.
        assert_eq!(values(&a.clone().joined(b.clone()).joined(delta)), vec![3]);
    }

    #[test]
    fn a_write_supersedes_exactly_the_siblings_its_client_read() {
        let mut r = MvRegister::new();
        r.write(A, 1);
        let read = r.read_context();
        // Another client writes at B concurrently; the first client's write only saw value 1.
        let mut other = MvRegister::new();
        other.write(B, 2);
        r.join(other);
        r.write_seen(A, 3, &read);
        assert_eq!(values(&r), vec![2, 3]);
    }

    #[test]
    fn a_sibling_read_elsewhere_is_replaced_even_before_it_arrives() {
        // The client reads value 2 at B, then writes at A, which has not received 2 yet.
        let mut b = MvRegister::new();
        b.write(B, 2);
        let read_at_b = b.read_context();
        let mut a = MvRegister::new();
        a.write_seen(A, 3, &read_at_b);
        a.join(b.clone());
        assert_eq!(values(&a), vec![3]);
        assert_eq!(values(&b.joined(a)), vec![3]);
    }
}
