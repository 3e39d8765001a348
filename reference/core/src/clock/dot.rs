use crate::{Lattice, ReplicaId, VectorClock};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeSet;
use std::fmt;

/// One event: the `counter`-th event issued by `replica`. Counters start at 1.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dot {
    /// The replica that issued the event.
    pub replica: ReplicaId,
    /// Its sequence number at that replica, from 1.
    pub counter: u64,
}

impl Dot {
    /// The `counter`-th event of `replica`.
    pub fn new(replica: impl Into<ReplicaId>, counter: u64) -> Self {
        Dot {
            replica: replica.into(),
            counter,
        }
    }
}

impl fmt::Debug for Dot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.replica, self.counter)
    }
}

impl Serialize for Dot {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (self.replica, self.counter).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Dot {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (replica, counter) = <(ReplicaId, u64)>::deserialize(deserializer)?;
        if counter == 0 {
            return Err(serde::de::Error::custom(
                "dot with counter 0 (counters start at 1)",
            ));
        }
        Ok(Dot { replica, counter })
    }
}

/// A set of dots, kept compact: a version vector for the gap-free prefix of each replica's events,
/// plus a "dot cloud" for the events that arrived ahead of a gap.
///
/// Invariant (checked on decode, kept by every method): every cloud dot `(r, n)` has
/// `n > vv[r] + 1`. A dot at `vv[r] + 1` would have been absorbed into the vector and one at or
/// below `vv[r]` is already covered, so the representation of a set of dots is unique and two
/// equal sets are equal values. The cloud holds only dots delivered out of order, so it empties
/// as the gaps fill: this is what lets the add-wins set work without tombstones.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct CausalContext {
    vv: VectorClock,
    cloud: BTreeSet<Dot>,
}

impl CausalContext {
    /// The empty set of dots.
    pub fn new() -> Self {
        Self::default()
    }

    /// The context that contains exactly `dots`.
    pub fn from_dots(dots: impl IntoIterator<Item = Dot>) -> Self {
        let mut ctx = CausalContext::new();
        for dot in dots {
            ctx.insert_dot(dot);
        }
        ctx
    }

    /// The context made of a version vector and a cloud, if they are in compact form (every
    /// cloud dot beyond a gap); `None` otherwise. Decoders use it so that a decoded context is one
    /// the methods could have built.
    pub(crate) fn from_parts(vv: VectorClock, cloud: BTreeSet<Dot>) -> Option<Self> {
        let ctx = CausalContext { vv, cloud };
        (ctx.is_compact() && ctx.cloud.iter().all(|d| d.counter > 0)).then_some(ctx)
    }

    /// Whether this context has seen `dot`.
    pub fn contains(&self, dot: &Dot) -> bool {
        dot.counter <= self.vv.get(dot.replica) || self.cloud.contains(dot)
    }

    /// The gap-free prefix as a version vector.
    pub fn version_vector(&self) -> &VectorClock {
        &self.vv
    }

    /// Dots seen beyond a gap, in order.
    pub fn cloud(&self) -> impl ExactSizeIterator<Item = &Dot> {
        self.cloud.iter()
    }

    /// Whether the context is empty.
    pub fn is_empty(&self) -> bool {
        self.vv.is_empty() && self.cloud.is_empty()
    }

    /// The next dot `replica` would issue: one past the largest counter of it in this context.
    pub fn next_dot(&self, replica: ReplicaId) -> Dot {
        let in_cloud = self
            .cloud
            .range(Dot::new(replica, 0)..=Dot::new(replica, u64::MAX))
            .next_back()
            .map_or(0, |d| d.counter);
        Dot::new(
            replica,
            self.vv.get(replica).max(in_cloud).saturating_add(1),
        )
    }

    /// Adds one dot and restores the compact form.
    pub fn insert_dot(&mut self, dot: Dot) {
        if self.contains(&dot) || dot.counter == 0 {
            return;
        }
        if dot.counter == self.vv.get(dot.replica) + 1 {
            self.vv.raise(dot.replica, dot.counter);
            self.absorb(dot.replica);
        } else {
            self.cloud.insert(dot);
        }
    }

    /// Union with another context.
    pub fn union(&mut self, other: &CausalContext) {
        self.vv.merge(&other.vv);
        if self.cloud.is_empty() && other.cloud.is_empty() {
            return;
        }
        let cloud = std::mem::take(&mut self.cloud);
        // Re-inserting drops dots the merged vector now covers and absorbs those that close a gap
        // (`insert_dot` compacts as it goes).
        for dot in cloud.into_iter().chain(other.cloud.iter().copied()) {
            self.insert_dot(dot);
        }
    }

    /// Moves cloud dots of `replica` that are now covered or contiguous into the vector.
    fn absorb(&mut self, replica: ReplicaId) {
        loop {
            let top = self.vv.get(replica);
            let Some(&first) = self
                .cloud
                .range(Dot::new(replica, 0)..=Dot::new(replica, u64::MAX))
                .next()
            else {
                return;
            };
            if first.counter <= top + 1 {
                self.cloud.remove(&first);
                self.vv.raise(replica, first.counter);
            } else {
                return;
            }
        }
    }

    fn is_compact(&self) -> bool {
        self.cloud
            .iter()
            .all(|d| d.counter > self.vv.get(d.replica).saturating_add(1))
    }
}

impl Lattice for CausalContext {
    fn bottom() -> Self {
        Self::new()
    }

    fn join(&mut self, other: Self) {
        self.union(&other);
    }

    fn leq(&self, other: &Self) -> bool {
        // Every dot of `self` is in `other`: the vector prefix and the cloud alike.
        self.vv.iter().all(|(r, n)| {
            n <= other.vv.get(r)
                || (other.vv.get(r) + 1..=n).all(|c| other.cloud.contains(&Dot::new(r, c)))
        }) && self.cloud.iter().all(|d| other.contains(d))
    }
}

impl<'de> Deserialize<'de> for CausalContext {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            vv: VectorClock,
            cloud: BTreeSet<Dot>,
        }
        let raw = Raw::deserialize(deserializer)?;
        CausalContext::from_parts(raw.vv, raw.cloud).ok_or_else(|| {
            serde::de::Error::custom(
                "causal context not compact: a cloud dot is covered by or adjacent to the vector",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_dots_wait_in_the_cloud_and_compact_when_the_gap_fills() {
        let mut ctx = CausalContext::new();
        ctx.insert_dot(Dot::new(1, 3));
        ctx.insert_dot(Dot::new(1, 2));
        assert_eq!(ctx.cloud().count(), 2);
        assert!(!ctx.contains(&Dot::new(1, 1)));
        ctx.insert_dot(Dot::new(1, 1));
        assert_eq!(ctx.cloud().count(), 0);
        assert_eq!(ctx.version_vector().get(ReplicaId(1)), 3);
        assert_eq!(ctx.next_dot(ReplicaId(1)), Dot::new(1, 4));
    }

    #[test]
    fn union_compacts_cloud_dots_covered_by_the_other_vector() {
        let a = CausalContext::from_dots([Dot::new(1, 5)]);
        let b = CausalContext::from_dots((1..=4).map(|c| Dot::new(1, c)));
        let mut ab = a.clone();
        ab.union(&b);
        assert_eq!(
            ab,
            CausalContext::from_dots((1..=5).map(|c| Dot::new(1, c)))
        );
        assert!(ab.is_compact());
        assert!(a.leq(&ab) && b.leq(&ab) && !ab.leq(&a));
    }

    #[test]
    fn a_non_compact_context_is_refused_on_decode() {
        let json = r#"{"vv":{"1":2},"cloud":[[1,3]]}"#;
        assert!(serde_json::from_str::<CausalContext>(json).is_err());
        let json = r#"{"vv":{"1":2},"cloud":[[1,4]]}"#;
        assert!(serde_json::from_str::<CausalContext>(json).is_ok());
    }
}
