//! Consensus compare-and-set: single-decree Paxos per key and instance, sans IO.
//!
//! CRDTs cannot say "reserve seat 5A": two regions that both read the seat free both grant it.
//! A compare-and-set that must not be granted twice needs the regions to agree, and this module
//! is that agreement, as two state machines that do no I/O, read no clock and draw no OS
//! randomness (the replica's shape: `handle_*` inputs, `take_durable` then `poll_*` outputs).
//! It stands alone: `Replica` does not own it yet, and its messages have no wire encoding yet.
//!
//! # The protocol, in the order a reader learns it
//! A key's value is a sequence of decisions. Instance `n` of a key decides the value the key
//! holds after its `n`-th successful compare-and-set; instance 0 is the absent key. Each
//! instance is one run of single-decree Paxos among the *acceptors* (one per region), and a
//! *proposer* drives one client operation, `cas(key, from, to)`, through it.
//!
//! **Phase 2 (accept).** A proposer with ballot `b` sends `Accept { instance n, b, proposal }`.
//! An acceptor that has promised nothing higher than `b` for instance `n` accepts: it records
//! `(b, proposal)` and answers `Accepted`. A proposal accepted by a majority at one ballot is
//! *chosen*: it is instance `n`'s decision, forever.
//!
//! **Phase 1 (prepare).** Before phase 2 the proposer must learn what may already be chosen. It
//! sends `Prepare { instance n, b }`; an acceptor that promised nothing as high promises `b` (it
//! will accept nothing lower) and answers `Promise` with the highest-ballot proposal it accepted
//! for `n`, or `Nack { higher }` with the ballot it promised. From a majority of promises the
//! proposer takes the highest-ballot accepted proposal, if any, and must propose *that* in phase
//! 2: any proposal chosen at a lower ballot was accepted by some acceptor of every majority, so
//! it is the one found, and a chosen value is never replaced. Only when no promise reports an
//! accepted proposal is the proposer free to propose its own.
//!
//! **The compare-and-set.** Its own proposal is the operation's decision against the key's
//! current value, which the proposer knows only from a majority: the decision of instance
//! `n - 1` (the `base` it prepared on) is current once a majority promised for instance `n`
//! with nothing accepted there. If `from` equals it, the proposal is `to`; if not, the operation
//! fails definitely with "precondition failed" — never decided on a local copy. A proposal that
//! was someone else's is re-proposed, chosen, and the operation moves on to instance `n + 1`.
//!
//! **Commit (learn).** A proposer that sees its phase 2 reach a majority sends `Commit` with the
//! decision to every acceptor. An acceptor that learns a decision at an instance beyond its own
//! jumps to it (a decision is the key's whole value, not a delta) and opens the next instance
//! with no promise and nothing accepted. Commits may be lost; every `Prepare` and `Accept`
//! carries its `base` (the decision of the instance before), so a lagging acceptor catches up
//! from the first message it gets, and an acceptor asked about an instance it has already
//! decided answers with that decision (a `Commit` back to the proposer) instead of a promise.
//!
//! **Ballots** are `(round, proposer)`, ordered by round, then proposer: totally ordered, and
//! unique since a proposer never issues a round twice — it persists a high-water mark of its
//! rounds before any message with a round above it leaves (see [`Proposer`]).
//!
//! # Outcomes
//! - `Ok`: the operation's proposal was chosen (its phase 2 reached a majority, or a decision
//!   naming it was learned).
//! - Definite failures — "precondition failed" and "unavailable" (no majority answered, or
//!   contention outlasted the attempts) — are reported only while no proposal of the operation
//!   can still be chosen: it never started phase 2, or every proposal it did start was seen lost
//!   to another decision of that instance.
//! - Indefinite: a proposal of the operation was sent to phase 2 and its instance's decision was
//!   not learned; it may be chosen (and may already be).
//!
//! # Invariants (asserted where the state lives)
//! - Acceptor, per key: the accepted ballot is at most the promised one; the promise and the
//!   accepted proposal belong to the instance after the last decision; the decision's instance
//!   never decreases.
//! - The ordering rule: what an input changed in an acceptor's promises, accepts and decisions
//!   (or in a proposer's round high-water mark) is taken by `take_durable` and made durable
//!   before any message that input produced is sent (debug builds assert that `poll_transmit`
//!   is not called with a durable change untaken). So a promise, once heard by a proposer,
//!   survives a crash of its acceptor: `Acceptor::recover` restores it.
//! - Proposer: at most `in_flight_max` operations; each ends within `attempts_max` attempts;
//!   every issued ballot's round is below the persisted high-water mark; an operation with a
//!   proposal possibly chosen never decides a new one.
//!
//! # Map
//! - `msg`: ballots, proposals, decisions and the messages.
//! - `acceptor`: [`Acceptor`], its per-key [`KeyRecord`], what it persists
//!   ([`AcceptorDurable`], [`AcceptorDelta`]) and the deliberately broken [`Bug`].
//! - `proposer`: [`Proposer`], its configuration, operations and outcomes.

mod acceptor;
mod msg;
mod proposer;

pub use acceptor::{Acceptor, AcceptorDelta, AcceptorDurable, Bug, KeyRecord};
pub use msg::{Ballot, Decision, Msg, Proposal, ProposalId};
pub use proposer::{
    Cas, CasError, CasOk, OpId, Outcome, Proposer, ProposerConfig, ProposerDurable, Refused, Want,
};

/// The smallest majority of `n` acceptors.
pub fn majority(n: usize) -> usize {
    n / 2 + 1
}
