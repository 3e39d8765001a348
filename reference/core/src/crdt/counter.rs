use crate::{Lattice, ReplicaId, VectorClock};
use serde::{Deserialize, Serialize};

/// An increment would carry one replica's count past `u64::MAX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("counter of replica {replica} would overflow u64")]
pub struct Overflow {
    /// The replica whose count would overflow.
    pub replica: ReplicaId,
}

/// A grow-only counter: one count per replica, value is their sum, join is the pointwise max.
///
/// Invariant: each replica only ever raises its own count, so the pointwise max loses no
/// increment and counts none twice.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GCounter {
    counts: VectorClock,
}

impl GCounter {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counter's value: the sum of every replica's count.
    pub fn value(&self) -> u128 {
        self.counts.total()
    }

    /// The count contributed by `replica`.
    pub fn count_of(&self, replica: ReplicaId) -> u64 {
        self.counts.get(replica)
    }

    /// The per-replica counts.
    pub fn counts(&self) -> &VectorClock {
        &self.counts
    }

    /// The counter whose per-replica counts are `counts`. Any vector clock is a valid counter
    /// state, so this cannot fail; decoders use it.
    pub(crate) fn from_counts(counts: VectorClock) -> Self {
        GCounter { counts }
    }

    /// Adds `by` on behalf of `replica`; returns the delta (the new count of `replica` alone).
    pub fn increment(&mut self, replica: ReplicaId, by: u64) -> Result<GCounter, Overflow> {
        let count = self
            .counts
            .get(replica)
            .checked_add(by)
            .ok_or(Overflow { replica })?;
        self.counts.raise(replica, count);
        Ok(GCounter {
            counts: [(replica, count)].into_iter().collect(),
        })
    }
}

impl Lattice for GCounter {
    fn bottom() -> Self {
        Self::new()
    }

    fn join(&mut self, other: Self) {
        self.counts.merge(&other.counts);
    }

    fn leq(&self, other: &Self) -> bool {
        other.counts.dominates(&self.counts)
    }
}

/// A counter that goes both ways: two grow-only counters, one for increments and one for
/// decrements. Its value is their difference.
///
/// Merging net values instead (one signed count per replica) is the classic bug: the pointwise
/// max of nets forgets decrements. Keeping both halves is what makes the join a join.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PnCounter {
    #[serde(rename = "p")]
    increments: GCounter,
    #[serde(rename = "n")]
    decrements: GCounter,
}

impl PnCounter {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Increments minus decrements.
    pub fn value(&self) -> i128 {
        // Each half is a sum of at most 2^64 u64 counts in practice far less; i128 holds the
        // difference of two u64-count sums over any realistic number of replicas.
        self.increments.value() as i128 - self.decrements.value() as i128
    }

    /// The counter made of an increments half and a decrements half (any pair is valid).
    pub(crate) fn from_halves(increments: GCounter, decrements: GCounter) -> Self {
        PnCounter {
            increments,
            decrements,
        }
    }

    /// Adds `by` on behalf of `replica`; returns the delta.
    pub fn increment(&mut self, replica: ReplicaId, by: u64) -> Result<PnCounter, Overflow> {
        Ok(PnCounter {
            increments: self.increments.increment(replica, by)?,
            decrements: GCounter::new(),
        })
    }

    /// Subtracts `by` on behalf of `replica`; returns the delta.
    pub fn decrement(&mut self, replica: ReplicaId, by: u64) -> Result<PnCounter, Overflow> {
        Ok(PnCounter {
            increments: GCounter::new(),
            decrements: self.decrements.increment(replica, by)?,
        })
    }

    /// The increments half.
    pub fn increments(&self) -> &GCounter {
        &self.increments
    }

    /// The decrements half.
    pub fn decrements(&self) -> &GCounter {
        &self.decrements
    }
}

impl Lattice for PnCounter {
    fn bottom() -> Self {
        Self::new()
    }

    fn join(&mut self, other: Self) {
        self.increments.join(other.increments);
        self.decrements.join(other.decrements);
    }

    fn leq(&self, other: &Self) -> bool {
        self.increments.leq(&other.increments) && self.decrements.leq(&other.decrements)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(pairs: &[(u64, u64)]) -> GCounter {
        let mut c = GCounter::new();
        for &(r, n) in pairs {
            c.increment(ReplicaId(r), n).unwrap();
        }
        c
    }

    #[test]
    fn three_region_counter_conflict_ends_at_18_in_every_merge_order() {
        let states = [
            counter(&[(0, 5), (1, 3), (2, 2)]),
            counter(&[(0, 4), (1, 6), (2, 2)]),
            counter(&[(0, 4), (1, 3), (2, 7)]),
        ];
        let expected = counter(&[(0, 5), (1, 6), (2, 7)]);
        for order in [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ] {
            // Left fold and right fold: every order and both groupings.
            let left = order
                .iter()
                .fold(GCounter::bottom(), |acc, &i| acc.joined(states[i].clone()));
            let right = states[order[0]]
                .clone()
                .joined(states[order[1]].clone().joined(states[order[2]].clone()));
            assert_eq!(left, expected, "order {order:?}");
            assert_eq!(right, expected, "order {order:?}");
            assert_eq!(left.value(), 18);
        }
    }

    #[test]
    fn increment_overflow_is_an_error_and_changes_nothing() {
        let mut c = counter(&[(1, u64::MAX)]);
        assert_eq!(
            c.increment(ReplicaId(1), 1),
            Err(Overflow {
                replica: ReplicaId(1)
            })
        );
        assert_eq!(c.count_of(ReplicaId(1)), u64::MAX);
    }

    #[test]
    fn pn_counter_keeps_decrements_that_a_net_merge_would_forget() {
        let mut a = PnCounter::new();
        a.increment(ReplicaId(1), 10).unwrap();
        let mut b = a.clone();
        b.decrement(ReplicaId(1), 4).unwrap();
        a.join(b);
        assert_eq!(a.value(), 6);
    }
}
