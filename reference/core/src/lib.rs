//! The sans-IO core of converge: clocks, CRDTs and their wire format.
//!
//! This crate does no networking, touches no file, never reads the operating system's clock and
//! never draws OS randomness. Time enters as an argument (`now_ms`), identities enter as
//! [`ReplicaId`]s, and every function is a deterministic function of its inputs. That is what lets
//! the same code be model-checked, simulated on virtual time and deployed.
//!
//! # Map
//! - [`clock`]: vector clocks, the hybrid logical clock (Kulkarni et al. 2014), dots, causal
//!   contexts and dotted version vectors.
//! - [`crdt`]: the state-based CRDTs with δ-mutators — [`GCounter`], [`PnCounter`], the add-wins
//!   [`OrSet`], the [`LwwRegister`], the multi-value [`MvRegister`] and the [`BoundedCounter`]
//!   (an escrow counter that never reads below zero).
//! - [`Lattice`]: the one trait every CRDT implements: a join-semilattice with a bottom.
//! - [`wire`]: the versioned binary encoding used for replication and the JSON used for humans.
//! - [`consensus`]: compare-and-set by single-decree Paxos per key and instance — a sans-IO
//!   [`Acceptor`](consensus::Acceptor) and [`Proposer`](consensus::Proposer), durable promises
//!   and accepts, bounded retries; standalone (not yet owned by the replica).
//! - [`replica`]: the replica state machine — keyspace, oplog, replication, consistency levels,
//!   session tokens, anti-entropy — as a sans-IO [`Replica`](replica::Replica) driven by
//!   `handle_*` inputs and `poll_*` outputs.
//!
//! # Invariants every type keeps
//! - `join` is associative, commutative and idempotent, `bottom()` is its identity, and `leq` is the
//!   order it induces. The law checker in `converge-conformance` checks this from outside.
//! - A δ-mutator changes the state exactly as joining the delta it returns would.
//! - Decoding validates: a value that breaks a type's invariant is refused, never repaired silently.

pub mod clock;
pub mod consensus;
pub mod crdt;
mod id;
mod lattice;
#[cfg(feature = "quickcheck")]
mod qc;
pub mod replica;
pub mod wire;

pub use clock::{CausalContext, Causality, ClockError, Dot, Dvv, Hlc, HlcTimestamp, VectorClock};
pub use crdt::{
    BoundedCounter, BoundedError, GCounter, LwwRegister, MvRegister, OrSet, Overflow, PnCounter,
};
pub use id::ReplicaId;
pub use lattice::Lattice;
