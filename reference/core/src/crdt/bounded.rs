//! The bounded counter (escrow counter) of Balegas et al., "Extending Eventually Consistent Cloud
//! Databases for Enforcing Numeric Invariants" (SRDS 2015), as AntidoteDB's
//! `antidote_crdt_counter_b`: a PN-counter whose value never goes below zero at any replica,
//! although every replica decrements without asking anyone.
//!
//! # State
//! Per replica `i`: its increments `P[i]`, its decrements `N[i]`, and the rights it has
//! transferred to each other replica `j`, `T[i][j]`. Every component is a running total written
//! only by its own replica (`P[i]`, `N[i]` and `T[i][·]` by `i`), so each only grows and the join
//! is the pointwise maximum of every component, as in the G-counter.
//!
//! - **value** `= Σ P − Σ N`;
//! - **rights of `i`** `= P[i] − N[i] + Σ_j T[j][i] − Σ_j T[i][j]`: what `i` created, minus what
//!   it spent, plus what it was given, minus what it gave away.
//!
//! # Operations
//! - `increment(i, n)`: `P[i] += n`. Always allowed; it creates `n` rights at `i`.
//! - `decrement(i, n)`: `N[i] += n`, only if `rights(i) ≥ n`; otherwise
//!   [`BoundedError::InsufficientRights`] and nothing changes.
//! - `transfer(i, j, n)`: `T[i][j] += n`, only if `rights(i) ≥ n` and `i ≠ j`: moves `n` rights
//!   from `i` to `j`, which is how a replica that ran dry gets rights from one that has them.
//!
//! # The invariant: the value never reads below the bound
//! The bound is zero. In every reachable state, at every replica, `rights(i) ≥ 0` for every `i`,
//! and therefore `value ≥ 0`, because the transfers cancel in the sum: `Σ_i rights(i) = value`.
//!
//! Why `rights(i) ≥ 0` holds: only `i` lowers its own rights (by `N[i]` or `T[i][·]`), and it does
//! so only when its own state shows enough; a merge never creates rights, because every component
//! it raises is one that some replica wrote under that same rule. That argument needs one more
//! condition when deltas travel without causal delivery: whatever holds a debit of `i` (an `N[i]`
//! or a `T[i][·]`) must also hold the credit (`P[i]` and every `T[·][i]`) that `i` had when it
//! wrote that debit. Otherwise a replica that receives `i`'s decrement before the increment that
//! backed it computes `rights(i) < 0` and a value below zero.
//!
//! So a delta that spends (a decrement or a transfer by `i`) carries, besides the changed total,
//! the *backing* of the spend: `i`'s credit, and, because a `T[j][i]` in that credit is a debit
//! of `j`, `j`'s credit too, and so on through every replica that gave rights, directly or
//! not, to `i` (the closure of "gave to" ending at `i`). Every state and delta then keeps the
//! property above: the spender's own state has it (its credit only grows), a delta copies it
//! from that state, and a join keeps it because each debit's larger value comes from one side
//! together with that side's credit. Given the property, the latest debit of `i` that a state
//! holds came with `i`'s credit from that moment, when `i` had enough, and `i`'s earlier debits
//! are smaller, so `rights(i) ≥ 0` in the state. A spend delta thus has up to O(replicas²)
//! entries rather than one; increments stay one entry. Without the backing, deltas would be the
//! changed component only and the bound would hold only under causal delivery (this module's
//! proptest finds the counterexample: a transfer's receiver spends it, and its delta reaches a
//! replica that never saw the giver's increment; the law checker's `bound` law catches the
//! broken `bare-delta bounded` counter of `conformance/tests/broken_crdts.rs` the same way).
//!
//! A lower bound `b` other than zero is not built in: a counter that must stay at or above `b`
//! stores `balance − b` (its starting value is an increment by whoever holds the initial rights).
//! Carrying `b` in the state would need every replica to agree on it before the first join, a
//! configuration problem rather than a lattice one.
//!
//! # Size
//! `P` and `N` hold one entry per replica that ever incremented or decremented, `T` one per pair
//! that ever transferred: O(replicas²) in the worst case, bounded by the number of replicas, never
//! by the number of operations.
//!
//! # Overflow
//! Every total is a `u64`; an operation that would carry one past `u64::MAX` is refused with
//! [`BoundedError::Overflow`] and changes nothing. Rights and the value are computed in `i128`,
//! which holds any sum of `u64`s over fewer than 2^63 replicas.

use crate::{Lattice, ReplicaId, VectorClock};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Why a bounded-counter operation was refused. A refused operation changes nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BoundedError {
    /// A decrement or transfer asked for more rights than the replica holds.
    #[error("replica {replica} holds {held} rights but the operation needs {wanted}")]
    InsufficientRights {
        /// The replica that tried to spend.
        replica: ReplicaId,
        /// The rights it holds in its current state.
        held: i128,
        /// The rights the operation needs.
        wanted: u64,
    },
    /// The operation would carry one of the replica's totals past `u64::MAX`.
    #[error("a total of replica {replica} would overflow u64")]
    Overflow {
        /// The replica whose total would overflow.
        replica: ReplicaId,
    },
    /// A replica tried to transfer rights to itself, which would move nothing.
    #[error("replica {replica} cannot transfer rights to itself")]
    SelfTransfer {
        /// The replica.
        replica: ReplicaId,
    },
}

/// A counter that never reads below zero: a PN-counter plus per-replica rights, spent by
/// decrements and moved between replicas by transfers. See the [module documentation](self) for
/// the state, the rules and why the bound holds.
///
/// Invariants of the representation (checked on decode): no replica transfers to itself, no
/// transfer row is empty (so equal states are equal values), and every replica's rights are at
/// least zero.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Raw")]
pub struct BoundedCounter {
    /// `P`: each replica's increments.
    #[serde(rename = "p")]
    increments: VectorClock,
    /// `N`: each replica's decrements.
    #[serde(rename = "n")]
    decrements: VectorClock,
    /// `T`: for each giver, the rights it has given to each receiver (running totals).
    #[serde(rename = "t")]
    transfers: BTreeMap<ReplicaId, VectorClock>,
}

impl BoundedCounter {
    /// A counter at zero, with no rights anywhere.
    pub fn new() -> Self {
        Self::default()
    }

    /// Increments minus decrements. At least zero in every reachable state.
    pub fn value(&self) -> i128 {
        // Totals of u64 counts over fewer than 2^63 replicas fit i128 (see "Overflow").
        self.increments.total() as i128 - self.decrements.total() as i128
    }

    /// The rights `replica` holds in this state: what it may still decrement or transfer here.
    /// At least zero in every reachable state.
    pub fn rights(&self, replica: ReplicaId) -> i128 {
        let given: u128 = self.transfers.get(&replica).map_or(0, |row| row.total());
        let received: u128 = self
            .transfers
            .values()
            .map(|row| u128::from(row.get(replica)))
            .sum();
        i128::from(self.increments.get(replica)) - i128::from(self.decrements.get(replica))
            + received as i128
            - given as i128
    }

    /// The rights `from` has transferred to `to` so far.
    pub fn transferred(&self, from: ReplicaId, to: ReplicaId) -> u64 {
        self.transfers.get(&from).map_or(0, |row| row.get(to))
    }

    /// Builds a counter from its three components (`P`, `N`, `T`), refusing what no sequence of
    /// operations produces (see [`TryFrom`]'s rules below): the checked constructor decoders use.
    pub fn from_parts(
        increments: VectorClock,
        decrements: VectorClock,
        transfers: BTreeMap<ReplicaId, VectorClock>,
    ) -> Result<Self, String> {
        BoundedCounter::try_from(Raw {
            p: increments,
            n: decrements,
            t: transfers,
        })
    }

    /// `P`: each replica's increments.
    pub fn increments(&self) -> &VectorClock {
        &self.increments
    }

    /// `N`: each replica's decrements.
    pub fn decrements(&self) -> &VectorClock {
        &self.decrements
    }

    /// `T`: for each giver, the running totals it has given to each receiver (no row empty).
    pub fn transfers(&self) -> &BTreeMap<ReplicaId, VectorClock> {
        &self.transfers
    }

    /// Every replica that holds rights in this state (more than zero), in id order.
    pub fn holders(&self) -> Vec<ReplicaId> {
        let named: BTreeSet<ReplicaId> = self.replicas().collect();
        named.into_iter().filter(|&r| self.rights(r) > 0).collect()
    }

    /// The total of `replica`'s increments.
    pub fn increments_of(&self, replica: ReplicaId) -> u64 {
        self.increments.get(replica)
    }

    /// The total of `replica`'s decrements.
    pub fn decrements_of(&self, replica: ReplicaId) -> u64 {
        self.decrements.get(replica)
    }

    /// Adds `by` on behalf of `replica`, creating `by` rights there; returns the delta (the new
    /// increment total of `replica` alone).
    pub fn increment(&mut self, replica: ReplicaId, by: u64) -> Result<Self, BoundedError> {
        let total = self
            .increments
            .get(replica)
            .checked_add(by)
            .ok_or(BoundedError::Overflow { replica })?;
        self.increments.raise(replica, total);
        Ok(BoundedCounter {
            increments: [(replica, total)].into_iter().collect(),
            ..Self::default()
        })
    }

    /// Subtracts `by` on behalf of `replica` if it holds at least `by` rights; returns the delta
    /// (the new decrement total of `replica`, with the backing of the spend). Refused with no
    /// effect otherwise.
    pub fn decrement(&mut self, replica: ReplicaId, by: u64) -> Result<Self, BoundedError> {
        self.check_rights(replica, by)?;
        let total = self
            .decrements
            .get(replica)
            .checked_add(by)
            .ok_or(BoundedError::Overflow { replica })?;
        self.decrements.raise(replica, total);
        let mut delta = self.backing(replica);
        delta.decrements.raise(replica, total);
        Ok(delta)
    }

    /// Moves `by` rights from `from` to `to` if `from` holds at least `by`; returns the delta (the
    /// new transfer total from `from` to `to`, with the backing of the spend). Refused with no
    /// effect otherwise, or if `from == to`.
    pub fn transfer(
        &mut self,
        from: ReplicaId,
        to: ReplicaId,
        by: u64,
    ) -> Result<Self, BoundedError> {
        if from == to {
            return Err(BoundedError::SelfTransfer { replica: from });
        }
        self.check_rights(from, by)?;
        let total = self
            .transferred(from, to)
            .checked_add(by)
            .ok_or(BoundedError::Overflow { replica: from })?;
        if total > 0 {
            self.transfers.entry(from).or_default().raise(to, total);
        }
        let mut delta = self.backing(from);
        if total > 0 {
            delta.transfers.entry(from).or_default().raise(to, total);
        }
        Ok(delta)
    }

    fn check_rights(&self, replica: ReplicaId, wanted: u64) -> Result<(), BoundedError> {
        let held = self.rights(replica);
        if held < i128::from(wanted) {
            return Err(BoundedError::InsufficientRights {
                replica,
                held,
                wanted,
            });
        }
        Ok(())
    }

    /// The backing of a spend by `spender`: the credit of `spender` and of every replica that
    /// gave rights to it, directly or through others (`P[x]` and every `T[·][x]` for each such
    /// `x`). A spend's delta carries it so that no state holding a debit lacks the credit that
    /// paid for it (see the module documentation).
    fn backing(&self, spender: ReplicaId) -> Self {
        // A replica enters the closure once, so the loop runs once per replica at most.
        let mut closure = BTreeSet::from([spender]);
        let mut todo = vec![spender];
        while let Some(x) = todo.pop() {
            for (&giver, row) in &self.transfers {
                if row.get(x) > 0 && closure.insert(giver) {
                    todo.push(giver);
                }
            }
        }
        let transfers = self
            .transfers
            .iter()
            .filter_map(|(&giver, row)| {
                let into: VectorClock = row.iter().filter(|(r, _)| closure.contains(r)).collect();
                (!into.is_empty()).then_some((giver, into))
            })
            .collect();
        BoundedCounter {
            increments: closure
                .iter()
                .map(|&x| (x, self.increments.get(x)))
                .collect(),
            decrements: VectorClock::new(),
            transfers,
        }
    }

    /// Every replica the state names, as a giver, receiver, incrementer or decrementer.
    fn replicas(&self) -> impl Iterator<Item = ReplicaId> + '_ {
        self.increments
            .iter()
            .chain(self.decrements.iter())
            .map(|(r, _)| r)
            .chain(
                self.transfers.iter().flat_map(|(&giver, row)| {
                    std::iter::once(giver).chain(row.iter().map(|(r, _)| r))
                }),
            )
    }
}

impl Lattice for BoundedCounter {
    fn bottom() -> Self {
        Self::new()
    }

    fn join(&mut self, other: Self) {
        self.increments.merge(&other.increments);
        self.decrements.merge(&other.decrements);
        for (giver, row) in other.transfers {
            self.transfers.entry(giver).or_default().merge(&row);
        }
    }

    fn leq(&self, other: &Self) -> bool {
        other.increments.dominates(&self.increments)
            && other.decrements.dominates(&self.decrements)
            && self.transfers.iter().all(|(giver, row)| {
                other
                    .transfers
                    .get(giver)
                    .is_some_and(|theirs| theirs.dominates(row))
            })
    }
}

/// The decoded form before validation.
#[derive(Deserialize)]
struct Raw {
    p: VectorClock,
    n: VectorClock,
    t: BTreeMap<ReplicaId, VectorClock>,
}

impl TryFrom<Raw> for BoundedCounter {
    type Error = String;

    /// Refuses what no sequence of operations produces: a transfer to oneself, an empty transfer
    /// row (which would make two equal states unequal values), and a replica whose rights are
    /// below zero (a spend without the credit that allowed it).
    fn try_from(raw: Raw) -> Result<Self, String> {
        if let Some((giver, _)) = raw.t.iter().find(|(_, row)| row.is_empty()) {
            return Err(format!("bounded counter: empty transfer row for {giver}"));
        }
        if let Some((giver, _)) = raw.t.iter().find(|(g, row)| row.get(**g) > 0) {
            return Err(format!("bounded counter: {giver} transfers to itself"));
        }
        let counter = BoundedCounter {
            increments: raw.p,
            decrements: raw.n,
            transfers: raw.t,
        };
        // Every replica's rights from one pass over the components, so that validating a state
        // costs O(n log n) in its size (a decoder's input is untrusted; `rights` per replica
        // would cost a pass over every transfer row for each replica named).
        let mut rights: BTreeMap<ReplicaId, i128> = BTreeMap::new();
        let mut add = |r: ReplicaId, n: i128| *rights.entry(r).or_default() += n;
        for (r, n) in counter.increments.iter() {
            add(r, i128::from(n));
        }
        for (r, n) in counter.decrements.iter() {
            add(r, -i128::from(n));
        }
        for (&giver, row) in &counter.transfers {
            for (r, n) in row.iter() {
                add(r, i128::from(n));
                add(giver, -i128::from(n));
            }
        }
        if let Some((r, held)) = rights.into_iter().find(|&(_, held)| held < 0) {
            return Err(format!(
                "bounded counter: {r} holds {held} rights, below zero: it spent what it never had"
            ));
        }
        Ok(counter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: ReplicaId = ReplicaId(0);
    const B: ReplicaId = ReplicaId(1);
    const C: ReplicaId = ReplicaId(2);

    #[test]
    fn a_decrement_without_rights_fails_and_changes_nothing() {
        let mut a = BoundedCounter::new();
        a.increment(A, 3).unwrap();
        let mut b = a.clone();
        // B sees A's three units in the value but holds none of the rights.
        assert_eq!(b.value(), 3);
        let before = b.clone();
        assert_eq!(
            b.decrement(B, 1),
            Err(BoundedError::InsufficientRights {
                replica: B,
                held: 0,
                wanted: 1
            })
        );
        assert_eq!(b, before);
        // A may spend exactly what it holds and no more.
        assert_eq!(
            a.decrement(A, 4),
            Err(BoundedError::InsufficientRights {
                replica: A,
                held: 3,
                wanted: 4
            })
        );
        a.decrement(A, 3).unwrap();
        assert_eq!((a.value(), a.rights(A)), (0, 0));
    }

    #[test]
    fn a_transfer_moves_rights_without_changing_the_value() {
        let mut a = BoundedCounter::new();
        a.increment(A, 5).unwrap();
        let delta = a.transfer(A, B, 2).unwrap();
        assert_eq!((a.rights(A), a.rights(B), a.value()), (3, 2, 5));
        // B learns of the transfer from its delta alone and may spend it.
        let mut b = BoundedCounter::new();
        b.join(delta);
        assert_eq!(b.rights(B), 2);
        b.decrement(B, 2).unwrap();
        assert_eq!(b.decrement(B, 1).unwrap_err().to_string(), {
            "replica r1 holds 0 rights but the operation needs 1"
        });
        // A cannot give away what it already gave, nor give to itself.
        assert!(matches!(
            a.transfer(A, C, 4),
            Err(BoundedError::InsufficientRights { held: 3, .. })
        ));
        assert_eq!(
            a.transfer(A, A, 1),
            Err(BoundedError::SelfTransfer { replica: A })
        );
        a.join(b);
        assert_eq!((a.value(), a.rights(A), a.rights(B)), (3, 3, 0));
    }

    #[test]
    fn two_regions_cannot_both_withdraw_the_last_unit() {
        // One unit, held by A; B sees it. Only A may withdraw it, partitioned or not.
        let mut a = BoundedCounter::new();
        a.increment(A, 1).unwrap();
        let mut b = a.clone();
        assert!(a.decrement(A, 1).is_ok());
        assert!(b.decrement(B, 1).is_err());
        a.join(b.clone());
        b.join(a.clone());
        assert_eq!((a.value(), b.value()), (0, 0));
    }

    #[test]
    fn a_spend_delta_that_arrives_alone_brings_its_backing() {
        let mut a = BoundedCounter::new();
        a.increment(A, 5).unwrap();
        let spend = a.decrement(A, 5).unwrap();
        // A receiver that never got the increment's delta still reads zero, not minus five.
        let mut c = BoundedCounter::new();
        c.join(spend);
        assert_eq!((c.value(), c.rights(A)), (0, 0));
        // Spending transferred rights: B's delta names A's transfer, a debit of A, so it must
        // bring A's increment too, or C would compute A's rights, and the value, as minus two.
        let mut a = BoundedCounter::new();
        a.increment(A, 2).unwrap();
        let mut b = BoundedCounter::new();
        b.join(a.transfer(A, B, 2).unwrap());
        let spend = b.decrement(B, 2).unwrap();
        let mut c = BoundedCounter::new();
        c.join(spend);
        assert_eq!((c.value(), c.rights(A), c.rights(B)), (0, 0, 0));
    }

    #[test]
    fn overflow_is_refused_with_no_effect() {
        let mut a = BoundedCounter::new();
        a.increment(A, u64::MAX).unwrap();
        let before = a.clone();
        assert_eq!(
            a.increment(A, 1),
            Err(BoundedError::Overflow { replica: A })
        );
        assert_eq!(a, before);
        // A transfer total at u64::MAX cannot grow, though B's rights received from elsewhere
        // would allow it.
        a.transfer(A, B, u64::MAX).unwrap();
        let mut b = a.clone();
        b.increment(B, 1).unwrap();
        b.transfer(B, A, 1).unwrap();
        let before = b.clone();
        assert_eq!(
            b.transfer(A, B, 1),
            Err(BoundedError::Overflow { replica: A })
        );
        assert_eq!(b, before);
    }

    #[test]
    fn decoding_refuses_states_no_operation_produces() {
        let ok = r#"{"p":{"0":5},"n":{"0":2},"t":{"0":{"1":3}}}"#;
        let c: BoundedCounter = serde_json::from_str(ok).unwrap();
        assert_eq!((c.value(), c.rights(A), c.rights(B)), (3, 0, 3));
        for (json, reason) in [
            (r#"{"p":{"0":1},"n":{"0":2},"t":{}}"#, "below zero"),
            (r#"{"p":{"0":1},"n":{},"t":{"0":{"1":2}}}"#, "below zero"),
            (r#"{"p":{"0":1},"n":{},"t":{"0":{"0":1}}}"#, "to itself"),
            (r#"{"p":{},"n":{},"t":{"0":{}}}"#, "empty transfer row"),
        ] {
            let err = serde_json::from_str::<BoundedCounter>(json).unwrap_err();
            assert!(err.to_string().contains(reason), "{json}: {err}");
        }
    }

    /// One step of a run over three replicas.
    #[derive(Clone, Debug)]
    enum Step {
        Inc {
            at: u8,
            n: u64,
        },
        Dec {
            at: u8,
            n: u64,
        },
        Transfer {
            at: u8,
            to: u8,
            n: u64,
        },
        /// One of the deltas issued so far (any, again, in any order) reaches `to`.
        Delta {
            pick: usize,
            to: u8,
        },
        /// `from`'s whole state reaches `to`.
        State {
            from: u8,
            to: u8,
        },
    }

    fn step() -> impl Strategy<Value = Step> {
        let r = 0u8..3;
        let n = 0u64..5;
        prop_oneof![
            2 => (r.clone(), n.clone()).prop_map(|(at, n)| Step::Inc { at, n }),
            3 => (r.clone(), n.clone()).prop_map(|(at, n)| Step::Dec { at, n }),
            2 => (r.clone(), r.clone(), n).prop_map(|(at, to, n)| Step::Transfer { at, to, n }),
            3 => (any::<usize>(), r.clone()).prop_map(|(pick, to)| Step::Delta { pick, to }),
            1 => (r.clone(), r).prop_map(|(from, to)| Step::State { from, to }),
        ]
    }

    fn id(r: u8) -> ReplicaId {
        ReplicaId(u64::from(r))
    }

    /// Every replica's rights and the value are at least zero: the invariant.
    fn bounded(state: &BoundedCounter) -> Result<(), TestCaseError> {
        prop_assert!(state.value() >= 0, "value below zero: {state:?}");
        for r in 0..3 {
            prop_assert!(state.rights(id(r)) >= 0, "r{r} below zero: {state:?}");
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// No sequence of operations, delta deliveries (duplicated, reordered, before the deltas
        /// they follow) and state merges across three replicas ever reads below zero at any
        /// replica. Along the way: a refused operation changes nothing, a granted one changes
        /// the state exactly as joining its delta does, and once every delta has reached every
        /// replica they agree on the sum of the granted operations.
        #[test]
        fn no_replica_ever_reads_below_the_bound(steps in proptest::collection::vec(step(), 0..80)) {
            let mut states = vec![BoundedCounter::new(); 3];
            let mut deltas: Vec<BoundedCounter> = Vec::new();
            let mut granted: i128 = 0;
            for step in steps {
                let (at, result) = match step {
                    Step::Delta { pick, to } => {
                        if !deltas.is_empty() {
                            let delta = deltas[pick % deltas.len()].clone();
                            states[usize::from(to)].join(delta);
                        }
                        bounded(&states[usize::from(to)])?;
                        continue;
                    }
                    Step::State { from, to } => {
                        let state = states[usize::from(from)].clone();
                        states[usize::from(to)].join(state);
                        bounded(&states[usize::from(to)])?;
                        continue;
                    }
                    Step::Inc { at, n } => {
                        let before = states[usize::from(at)].clone();
                        let result = states[usize::from(at)].increment(id(at), n);
                        (at, (before, result.map(|d| (d, i128::from(n)))))
                    }
                    Step::Dec { at, n } => {
                        let before = states[usize::from(at)].clone();
                        let result = states[usize::from(at)].decrement(id(at), n);
                        (at, (before, result.map(|d| (d, -i128::from(n)))))
                    }
                    Step::Transfer { at, to, n } => {
                        let before = states[usize::from(at)].clone();
                        let result = states[usize::from(at)].transfer(id(at), id(to), n);
                        (at, (before, result.map(|d| (d, 0))))
                    }
                };
                let (before, result) = result;
                let state = &states[usize::from(at)];
                let held = before.rights(id(at));
                match result {
                    Ok((delta, change)) => {
                        prop_assert_eq!(&before.clone().joined(delta.clone()), state);
                        prop_assert_eq!(&state.clone().joined(delta.clone()), state);
                        granted += change;
                        deltas.push(delta);
                    }
                    Err(BoundedError::InsufficientRights { held: h, wanted, .. }) => {
                        prop_assert_eq!(h, held);
                        prop_assert!(h < i128::from(wanted));
                        prop_assert_eq!(&before, state);
                    }
                    Err(e @ (BoundedError::SelfTransfer { .. } | BoundedError::Overflow { .. })) => {
                        prop_assert!(matches!(e, BoundedError::SelfTransfer { .. }), "{e}");
                        prop_assert_eq!(&before, state);
                    }
                }
                bounded(state)?;
            }
            for state in &mut states {
                for delta in deltas.iter().rev() {
                    state.join(delta.clone());
                }
                bounded(state)?;
            }
            prop_assert!(states.iter().all(|s| *s == states[0]));
            prop_assert_eq!(states[0].value(), granted);
        }

        /// The join is commutative, associative and idempotent, and `leq` is the order it
        /// induces, on states reached by operations at three replicas and partial merges.
        #[test]
        fn merge_is_a_join(
            ops in proptest::collection::vec((0u8..3, 0u8..3, 0u8..3, 0u64..4), 0..30),
            picks in any::<[prop::sample::Index; 3]>(),
        ) {
            let mut states = vec![BoundedCounter::new(); 3];
            let mut reached = vec![BoundedCounter::new()];
            for (at, kind, other, n) in ops {
                let s = &mut states[usize::from(at)];
                // Refusals are expected here; only the states reached matter.
                let _ = match kind {
                    0 => s.increment(id(at), n),
                    1 => s.decrement(id(at), n),
                    _ => s.transfer(id(at), id(other), n),
                };
                // A replica naming itself as the other also merges its neighbour's state, so that
                // the states reached include partial merges.
                if other == at {
                    let from = states[usize::from((at + 1) % 3)].clone();
                    states[usize::from(at)].join(from);
                }
                reached.push(states[usize::from(at)].clone());
            }
            let [a, b, c] = picks.map(|p| reached[p.index(reached.len())].clone());
            prop_assert_eq!(a.clone().joined(b.clone()), b.clone().joined(a.clone()));
            prop_assert_eq!(
                a.clone().joined(b.clone()).joined(c.clone()),
                a.clone().joined(b.clone().joined(c.clone()))
            );
            prop_assert_eq!(a.clone().joined(a.clone()), a.clone());
            let ab = a.clone().joined(b.clone());
            prop_assert!(a.leq(&ab) && b.leq(&ab));
            prop_assert_eq!(a.leq(&b), ab == b);
            bounded(&ab)?;
        }
    }
}
