//! The state-based CRDTs, each with δ-mutators.
//!
//! A δ-mutator changes the state and returns a *delta*: a state of the same type, usually tiny,
//! such that joining the delta into the state before the mutation gives exactly the state after
//! it. Shipping deltas instead of whole states is what keeps replication cheap; joining whole
//! states is what repairs anything the deltas missed.
//!
//! Deltas assume causal delivery for the reads in between to be exact (a replica that applies the
//! delta of a remove before the add it removed shows neither until the add arrives); once every
//! delta or state has arrived, replicas are equal whatever the order. The law checker checks both.
//!
//! One type relies on less: the [`BoundedCounter`]'s spend deltas carry the credit that paid for
//! them, so that even a delta delivered ahead of its causal past never shows a value below zero.

mod bounded;
mod counter;
mod lww;
mod mvreg;
mod orset;

pub use bounded::{BoundedCounter, BoundedError};
pub use counter::{GCounter, Overflow, PnCounter};
pub use lww::{LwwEntry, LwwRegister};
pub use mvreg::{MvRegister, Sibling};
pub use orset::OrSet;
