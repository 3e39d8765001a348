use crate::{Lattice, ReplicaId};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// How two events (or two clocks) relate causally.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Causality {
    /// The left side happened before the right side.
    Before,
    /// The left side happened after the right side.
    After,
    /// Both sides have seen exactly the same events.
    Equal,
    /// Neither side has seen all of the other's events.
    Concurrent,
}

/// A vector clock: for each replica, how many of its events have been seen.
///
/// Invariant: entries are sorted by replica id, ids are unique and no counter is zero (an absent
/// replica *is* zero). The sorted vector keeps the clock in one allocation, makes comparison and
/// merge a single linear pass, and makes equal clocks equal as values.
///
/// The entries stay in a plain `Vec`: an inline first entry (`SmallVec`) kept a counter's
/// one-entry delta off the heap (3.84 instead of 6.75 allocations per replicated counter write,
/// `tests/alloc.rs`) but cost more instructions than the allocations it saved (callgrind, the
/// simulator's fault-free g-counter run: +2.3 %), and four inline entries grew every key state,
/// entry and message enough to measure slower from copying. See `docs/perf.md`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct VectorClock {
    entries: Vec<(ReplicaId, u64)>,
}

impl VectorClock {
    /// The clock that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many events of `replica` this clock has seen.
    pub fn get(&self, replica: ReplicaId) -> u64 {
        match self.search(replica) {
            Ok(i) => self.entries[i].1,
            Err(_) => 0,
        }
    }

    /// The (replica, counter) pairs, sorted by replica, without zeros.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (ReplicaId, u64)> + '_ {
        self.entries.iter().copied()
    }

    /// Number of replicas with a non-zero counter.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether this clock has seen nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sum of all counters: the number of events this clock has seen.
    pub fn total(&self) -> u128 {
        self.entries.iter().map(|&(_, n)| u128::from(n)).sum()
    }

    /// Records one more event of `replica` and returns its new counter.
    ///
    /// Saturates at `u64::MAX`; 2^64 events from one replica cannot happen one at a time.
    pub fn increment(&mut self, replica: ReplicaId) -> u64 {
        let counter = self.get(replica).saturating_add(1);
        self.raise(replica, counter);
        counter
    }

    /// Raises the counter of `replica` to at least `counter` (pointwise max for one entry).
    pub fn raise(&mut self, replica: ReplicaId, counter: u64) {
        if counter == 0 {
            return;
        }
        match self.search(replica) {
            Ok(i) => {
                let entry = &mut self.entries[i].1;
                *entry = (*entry).max(counter);
            }
            Err(i) => self.entries.insert(i, (replica, counter)),
        }
    }

    /// Pointwise maximum of the two clocks, in place.
    ///
    /// Never builds a temporary: when `other` names only replicas `self` has (a counter joining
    /// a one-replica delta, a frontier absorbing an ack), the counters are raised where they
    /// are; otherwise `self` grows by the replicas it lacks and the two sorted lists are merged
    /// from the back into that room.
    pub fn merge(&mut self, other: &VectorClock) {
        let (a, b) = (&self.entries, &other.entries);
        // How many of `other`'s replicas `self` lacks.
        let (mut i, mut missing) = (0, 0);
        for &(r, _) in b.iter() {
            while i < a.len() && a[i].0 < r {
                i += 1;
            }
            if i < a.len() && a[i].0 == r {
                i += 1;
            } else {
                missing += 1;
            }
        }
        if missing == 0 {
            let mut i = 0;
            for &(r, n) in other.entries.iter() {
                while self.entries[i].0 < r {
                    i += 1;
                }
                let e = &mut self.entries[i];
                e.1 = e.1.max(n);
                i += 1;
            }
            return;
        }
        let old = self.entries.len();
        // Room at the end, in one copy (the values are placeholders: every slot from `i` up is
        // overwritten by the merge below before it is read). At most one reallocation, and none
        // when the capacity suffices; the old code built a new vector on every such merge.
        self.entries.extend_from_slice(&other.entries[..missing]);
        let (mut i, mut j, mut k) = (old, b.len(), old + missing);
        while j > 0 {
            let theirs = other.entries[j - 1];
            k -= 1;
            if i > 0 && self.entries[i - 1].0 > theirs.0 {
                self.entries[k] = self.entries[i - 1];
                i -= 1;
            } else if i > 0 && self.entries[i - 1].0 == theirs.0 {
                let ours = self.entries[i - 1];
                self.entries[k] = (ours.0, ours.1.max(theirs.1));
                i -= 1;
                j -= 1;
            } else {
                self.entries[k] = theirs;
                j -= 1;
            }
        }
        // What is left of `self` (indices below `i`) is already in place: `k == i` here.
        debug_assert_eq!(k, i);
    }

    /// How `self` relates to `other` in the causal order.
    pub fn compare(&self, other: &VectorClock) -> Causality {
        // Walk both sorted lists once, remembering whether either side was ahead somewhere.
        let (mut self_ahead, mut other_ahead) = (false, false);
        let (mut i, mut j) = (0, 0);
        let (a, b) = (&self.entries, &other.entries);
        while i < a.len() && j < b.len() {
            match a[i].0.cmp(&b[j].0) {
                Ordering::Less => {
                    self_ahead = true;
                    i += 1;
                }
                Ordering::Greater => {
                    other_ahead = true;
                    j += 1;
                }
                Ordering::Equal => {
                    match a[i].1.cmp(&b[j].1) {
                        Ordering::Less => other_ahead = true,
                        Ordering::Greater => self_ahead = true,
                        Ordering::Equal => {}
                    }
                    i += 1;
                    j += 1;
                }
            }
            if self_ahead && other_ahead {
                return Causality::Concurrent;
            }
        }
        self_ahead |= i < a.len();
        other_ahead |= j < b.len();
        match (self_ahead, other_ahead) {
            (false, false) => Causality::Equal,
            (true, false) => Causality::After,
            (false, true) => Causality::Before,
            (true, true) => Causality::Concurrent,
        }
    }

    /// Whether `self` has seen every event `other` has seen (`other ≤ self`).
    pub fn dominates(&self, other: &VectorClock) -> bool {
        matches!(self.compare(other), Causality::After | Causality::Equal)
    }

    /// Whether neither clock has seen all of the other's events.
    pub fn concurrent_with(&self, other: &VectorClock) -> bool {
        self.compare(other) == Causality::Concurrent
    }

    fn search(&self, replica: ReplicaId) -> Result<usize, usize> {
        self.entries.binary_search_by_key(&replica, |&(r, _)| r)
    }
}

impl PartialOrd for VectorClock {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match self.compare(other) {
            Causality::Before => Some(Ordering::Less),
            Causality::After => Some(Ordering::Greater),
            Causality::Equal => Some(Ordering::Equal),
            Causality::Concurrent => None,
        }
    }
}

impl Lattice for VectorClock {
    fn bottom() -> Self {
        Self::new()
    }

    fn join(&mut self, other: Self) {
        self.merge(&other);
    }

    fn leq(&self, other: &Self) -> bool {
        other.dominates(self)
    }
}

impl FromIterator<(ReplicaId, u64)> for VectorClock {
    /// Builds a clock from pairs; repeated replicas keep their largest counter, zeros are dropped.
    fn from_iter<I: IntoIterator<Item = (ReplicaId, u64)>>(iter: I) -> Self {
        let mut clock = VectorClock::new();
        for (replica, counter) in iter {
            clock.raise(replica, counter);
        }
        clock
    }
}

impl Serialize for VectorClock {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.entries.iter().map(|(r, n)| (r, n)))
    }
}

impl<'de> Deserialize<'de> for VectorClock {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<ReplicaId, u64>::deserialize(deserializer)?;
        if map.values().any(|&n| n == 0) {
            return Err(serde::de::Error::custom(
                "vector clock entry with counter 0 (absent replicas are omitted)",
            ));
        }
        Ok(VectorClock {
            entries: map.into_iter().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vc(pairs: &[(u64, u64)]) -> VectorClock {
        pairs.iter().map(|&(r, n)| (ReplicaId(r), n)).collect()
    }

    #[test]
    fn compare_covers_the_four_relations() {
        let a = vc(&[(1, 2), (2, 1)]);
        assert_eq!(a.compare(&a.clone()), Causality::Equal);
        assert_eq!(a.compare(&vc(&[(1, 2), (2, 2)])), Causality::Before);
        assert_eq!(a.compare(&vc(&[(1, 2)])), Causality::After);
        assert_eq!(
            a.compare(&vc(&[(1, 1), (2, 1), (3, 1)])),
            Causality::Concurrent
        );
        assert_eq!(VectorClock::new().compare(&a), Causality::Before);
    }

    #[test]
    fn the_three_region_example_merges_to_eighteen_events() {
        // Three regions that each wrote concurrently: no clock dominates another, and the merge is
        // the pointwise maximum whatever the order.
        let a = vc(&[(0, 5), (1, 3), (2, 2)]);
        let b = vc(&[(0, 4), (1, 6), (2, 2)]);
        let c = vc(&[(0, 4), (1, 3), (2, 7)]);
        for (x, y) in [(&a, &b), (&b, &c), (&a, &c)] {
            assert!(x.concurrent_with(y));
        }
        let mut ab = a.clone();
        ab.merge(&b);
        ab.merge(&c);
        assert_eq!(ab, vc(&[(0, 5), (1, 6), (2, 7)]));
        assert_eq!(ab.total(), 18);
    }

    #[test]
    fn zero_counters_are_refused_on_decode() {
        let err = serde_json::from_str::<VectorClock>(r#"{"1":0}"#).unwrap_err();
        assert!(err.to_string().contains("counter 0"), "{err}");
    }
}
