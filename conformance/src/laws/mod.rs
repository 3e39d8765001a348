//! The CRDT law checker: certifies any state-based CRDT through a small adapter.
//!
//! # What it checks
//! Random *traces* — operations at a few replicas interleaved with deliveries of deltas and whole
//! states, duplicated and out of order — are run against the subject, and for each [`Law`]:
//!
//! | law | holds when |
//! |---|---|
//! | associative | `(a ⊔ b) ⊔ c == a ⊔ (b ⊔ c)` |
//! | commutative | `a ⊔ b == b ⊔ a` |
//! | idempotent | `a ⊔ a == a` |
//! | bottom | `⊥ ⊔ a == a == a ⊔ ⊥` |
//! | inflation | `a ≤ a ⊔ b`, and `a ≤ b` exactly when `a ⊔ b == b` |
//! | delta | a δ-mutator's delta joined into the old state gives the new state, and is absorbed by it |
//! | convergence | after every delta reaches every replica, in reverse order and twice, all replicas are equal |
//! | semantics | every read equals the reference specification of the type over the operations observed |
//! | bound | no read, at any replica after any step, nor of any reached state, delta or join of them, is below the kind's lower bound (kinds with a bound only) |
//!
//! The states `a`, `b`, `c` are drawn from everything the trace produced (replica states after
//! every step and every delta), so they are *reachable* states, which is where the laws must hold.
//!
//! # The reference specifications
//! Each subject names its [`Kind`], which fixes the operation vocabulary ([`Op`]) and the
//! specification its reads must match. Every operation records the set of operations its replica
//! had observed when it ran, and transitively what those had observed (its causal past).
//! Operations run on causally complete states: before a replica runs one, it receives the deltas
//! of everything in the past of what it has observed, as causal delivery would ensure; deliveries
//! between operations stay arbitrary. Reads are checked whenever the replica's observed set is
//! causally closed, and at the end:
//! - counter / pn-counter: the sum of the observed increments (minus decrements);
//! - add-wins set: `e` is in the set iff some observed `add(e)` is in the past of no observed
//!   `remove(e)` — a concurrent add wins, and a remove wins over every add it observed;
//! - LWW register: the value of the observed write with the greatest `(time, replica)`;
//! - MV register: the values of the observed writes that no observed write has in its past.
//! - bounded counter: the sum of the observed increments minus the observed decrements that were
//!   *granted*. A decrement or transfer of `n` at replica `r` is granted exactly when the rights
//!   `r` held over the operations it had observed cover `n`: `r`'s increments, plus the granted
//!   transfers to `r`, minus `r`'s granted decrements and transfers. A refused operation has no
//!   effect. This is Balegas et al.'s escrow rule (each replica spends only rights it holds), so a
//!   subject that refuses what it could grant, or grants what it could not, reads differently.
//!
//! Semantics reads are checked on causally closed states; the `bound` law reads *every* state,
//! causally closed or not, because a bound that holds only under causal delivery does not hold
//! under the deliveries traces make.
//!
//! # Reproducing a failure
//! Every run is driven by one `u64` seed. A failing [`LawVerdict`] carries the seed and the shrunk
//! trace; the same seed and case count replay the same cases and shrink to the same trace.

mod run;
mod spec;
mod trace;

pub use run::{Config, LawVerdict, check, check_trace, check_trace_all};
pub use spec::Observation;
pub use trace::{Op, OpSeed, Step, Trace};

use std::fmt::Debug;

/// Index of a replica in a trace: `0..trace.replicas`. Adapters map it to their own replica ids;
/// index order must be id order (LWW ties are broken by it).
pub type ReplicaIdx = u8;

/// The semantics a subject claims: it fixes the operations it is driven with and the reference
/// specification its reads are held to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Grow-only counter: `Op::Inc`.
    Counter,
    /// Counter with decrements: `Op::Inc`, `Op::Dec`.
    PnCounter,
    /// Add-wins observed-remove set of small integers: `Op::Add`, `Op::Remove`.
    AddWinsSet,
    /// Last-writer-wins register ordered by `(time, replica)`: `Op::Write`.
    LwwRegister,
    /// Multi-value register: `Op::Write` (the `time` is ignored).
    MvRegister,
    /// Counter that never goes below zero: `Op::Inc`, `Op::Dec` and `Op::Transfer`, where a
    /// decrement or transfer is granted only while the replica holds enough rights.
    BoundedCounter,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 6] = [
        Kind::Counter,
        Kind::PnCounter,
        Kind::AddWinsSet,
        Kind::LwwRegister,
        Kind::MvRegister,
        Kind::BoundedCounter,
    ];

    /// The lower bound every read of this kind must respect, if the kind claims one; the `bound`
    /// law applies only to kinds that do.
    pub fn bound(self) -> Option<i128> {
        match self {
            Kind::BoundedCounter => Some(0),
            Kind::Counter
            | Kind::PnCounter
            | Kind::AddWinsSet
            | Kind::LwwRegister
            | Kind::MvRegister => None,
        }
    }
}

/// One law of the checker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Law {
    /// `(a ⊔ b) ⊔ c == a ⊔ (b ⊔ c)`.
    Associative,
    /// `a ⊔ b == b ⊔ a`.
    Commutative,
    /// `a ⊔ a == a`.
    Idempotent,
    /// `⊥ ⊔ a == a == a ⊔ ⊥`.
    Bottom,
    /// `a ≤ a ⊔ b` and the order agrees with the join.
    Inflation,
    /// δ-mutators: `s ⊔ δ == s'` and `s' ⊔ δ == s'`.
    Delta,
    /// Replicas that received everything are equal.
    Convergence,
    /// Reads match the kind's reference specification.
    Semantics,
    /// No read of any reached state is below the kind's lower bound.
    Bound,
}

impl Law {
    /// Every law, in report order.
    pub const ALL: [Law; 9] = [
        Law::Associative,
        Law::Commutative,
        Law::Idempotent,
        Law::Bottom,
        Law::Inflation,
        Law::Delta,
        Law::Convergence,
        Law::Semantics,
        Law::Bound,
    ];

    /// The short name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Law::Associative => "associative",
            Law::Commutative => "commutative",
            Law::Idempotent => "idempotent",
            Law::Bottom => "bottom",
            Law::Inflation => "inflation",
            Law::Delta => "delta",
            Law::Convergence => "convergence",
            Law::Semantics => "semantics",
            Law::Bound => "bound",
        }
    }
}

impl std::fmt::Display for Law {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A law name that is none of [`Law::ALL`]'s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownLaw(pub String);

impl std::fmt::Display for UnknownLaw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = Law::ALL.iter().map(|l| l.name()).collect();
        write!(
            f,
            "unknown law '{}'; expected one of {}",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownLaw {}

impl std::str::FromStr for Law {
    type Err = UnknownLaw;

    /// Parses exactly the short names [`Law::name`] gives.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Law::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| UnknownLaw(s.to_string()))
    }
}

/// An adapter that lets the law checker drive a CRDT implementation.
///
/// Implement it for a unit struct that stands for your type. The checker only ever creates states
/// through `bottom`, `apply` and `join`, so the states it checks are states your type can reach.
pub trait Subject {
    /// The CRDT state.
    type State: Clone + Debug + PartialEq;

    /// A short name for reports, e.g. `or-set`.
    fn name(&self) -> String;

    /// The semantics this type claims.
    fn kind(&self) -> Kind;

    /// The state of a replica that has seen nothing.
    fn bottom(&self) -> Self::State;

    /// `into := into ⊔ other`.
    fn join(&self, into: &mut Self::State, other: &Self::State);

    /// The type's own partial order, if it has one: `Some(a ≤ b)`. Without it, the inflation law is
    /// checked through the order the join induces (`a ⊔ (a ⊔ b) == a ⊔ b`).
    fn leq(&self, a: &Self::State, b: &Self::State) -> Option<bool> {
        let _ = (a, b);
        None
    }

    /// Whether [`Subject::apply`] returns deltas. Without them the delta law does not apply and
    /// replicas exchange whole states only.
    fn has_deltas(&self) -> bool;

    /// Runs `op` at `replica` (which owns `state`), returning the delta if the type has
    /// δ-mutators. Ops of another kind are never passed.
    fn apply(&self, state: &mut Self::State, replica: ReplicaIdx, op: &Op) -> Option<Self::State>;

    /// Reads the state in the kind's vocabulary.
    fn read(&self, state: &Self::State) -> Observation;
}
