use crate::{HlcTimestamp, Lattice, ReplicaId};
use serde::{Deserialize, Serialize};

/// One write of a last-writer-wins register.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LwwEntry<V> {
    /// The writer's hybrid logical clock when it wrote.
    pub stamp: HlcTimestamp,
    /// The writer.
    pub replica: ReplicaId,
    /// What it wrote.
    pub value: V,
}

/// A last-writer-wins register ordered by `(HLC timestamp, replica id)`.
///
/// Stamped by a hybrid logical clock, a write that causally follows another always carries a
/// larger stamp, even when the second writer's physical clock runs behind: skew can reorder only
/// concurrent writes, never lose a causally later one.
///
/// The join keeps the greatest `(stamp, replica, value)`. The value takes part only when two
/// writes carry the same stamp and replica — which one correct replica never produces, since its
/// HLC never repeats — so that even then the join is commutative instead of keeping whichever
/// side happened to be on the left.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(bound(deserialize = "V: Deserialize<'de>"))]
pub struct LwwRegister<V> {
    entry: Option<LwwEntry<V>>,
}

impl<V> Default for LwwRegister<V> {
    fn default() -> Self {
        LwwRegister { entry: None }
    }
}

impl<V: Ord + Clone> LwwRegister<V> {
    /// An empty register.
    pub fn new() -> Self {
        Self::default()
    }

    /// The register holding `entry` (any entry, or none, is a valid state).
    pub(crate) fn from_entry(entry: Option<LwwEntry<V>>) -> Self {
        LwwRegister { entry }
    }

    /// The winning value, if any write has been seen.
    pub fn get(&self) -> Option<&V> {
        self.entry.as_ref().map(|e| &e.value)
    }

    /// The winning write.
    pub fn entry(&self) -> Option<&LwwEntry<V>> {
        self.entry.as_ref()
    }

    /// Writes `value` stamped `stamp` by `replica`; returns the delta (the write alone). A write
    /// older than the current winner changes nothing, and joining its delta changes nothing.
    pub fn set(&mut self, replica: ReplicaId, stamp: HlcTimestamp, value: V) -> LwwRegister<V> {
        let delta = LwwRegister {
            entry: Some(LwwEntry {
                stamp,
                replica,
                value,
            }),
        };
        if delta.entry > self.entry {
            self.entry.clone_from(&delta.entry);
        }
        delta
    }
}

impl<V: Ord + Clone + std::fmt::Debug> Lattice for LwwRegister<V> {
    fn bottom() -> Self {
        Self::new()
    }

    fn join(&mut self, other: Self) {
        // `None < Some(_)`, so the empty register is the bottom.
        if other.entry > self.entry {
            self.entry = other.entry;
        }
    }

    fn leq(&self, other: &Self) -> bool {
        self.entry <= other.entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_stamps_are_ordered_by_replica_then_value_in_either_join_order() {
        let t = HlcTimestamp::new(100, 0);
        let mut a = LwwRegister::new();
        a.set(ReplicaId(1), t, "a");
        let mut b = LwwRegister::new();
        b.set(ReplicaId(2), t, "b");
        assert_eq!(a.clone().joined(b.clone()).get(), Some(&"b"));
        assert_eq!(b.clone().joined(a.clone()).get(), Some(&"b"));
        // Same stamp and replica, different values: only a corrupt peer sends this, and the join
        // still gives one answer.
        let mut c = LwwRegister::new();
        c.set(ReplicaId(2), t, "c");
        assert_eq!(b.clone().joined(c.clone()), c.clone().joined(b));
    }
}
