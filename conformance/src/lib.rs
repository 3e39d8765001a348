//! Black-box checks for replicated data types and replicated stores.
//!
//! This crate never depends on converge's reference implementation: everything it checks, it
//! reaches through a small adapter trait, so the same checks certify anyone's code.
//!
//! - [`laws`]: the CRDT law checker. Give it an adapter ([`laws::Subject`]) for your type and it
//!   checks the join-semilattice laws, δ-mutators, convergence under arbitrary delivery and the
//!   type's semantics against a reference specification, with proptest shrinking and a printed
//!   seed for every failure.
//! - [`check`]: standalone history checkers, e.g. linearizability of key-value histories.
//! - [`harness`]: the conformance harness behind `converge certify`: runs any implementation that
//!   speaks Maelstrom's protocol through a workload under seeded faults and checks the history.

pub mod check;
pub mod harness;
pub mod laws;
