use std::fmt::Debug;

/// A join-semilattice with a least element: the algebra every converge CRDT is built on.
///
/// Replicas that exchange states and join them converge, whatever the order, grouping or
/// repetition of the exchanges, exactly because `join` is:
/// - associative: `(a ⊔ b) ⊔ c == a ⊔ (b ⊔ c)`,
/// - commutative: `a ⊔ b == b ⊔ a`,
/// - idempotent: `a ⊔ a == a`,
///
/// and `bottom()` is its identity. `leq` is the partial order the join induces, written out
/// independently for each type so that checking `a.leq(&(a ⊔ b))` (the join is an inflation) tests
/// something rather than restating the definition.
pub trait Lattice: Clone + Eq + Debug {
    /// The state of a replica that has observed nothing.
    fn bottom() -> Self;

    /// Replaces `self` with the least upper bound of `self` and `other`.
    fn join(&mut self, other: Self);

    /// Whether `self` is at or below `other` in the lattice order (`self ⊔ other == other`).
    fn leq(&self, other: &Self) -> bool;

    /// The least upper bound of `self` and `other`, by value.
    #[must_use]
    fn joined(mut self, other: Self) -> Self {
        self.join(other);
        self
    }
}
