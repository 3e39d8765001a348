//! Traces: what the law checker runs against a subject.

use super::{Kind, ReplicaIdx};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// An operation, in the vocabulary of the subject's [`Kind`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    /// Add to a counter.
    Inc(u64),
    /// Subtract from a pn-counter or a bounded counter.
    Dec(u64),
    /// Move rights of a bounded counter from the running replica to replica `to` (never itself).
    Transfer {
        /// The receiving replica.
        to: ReplicaIdx,
        /// How many rights.
        amount: u64,
    },
    /// Add an element to a set.
    Add(u8),
    /// Remove an element from a set.
    Remove(u8),
    /// Write a register. Values are unique within a trace, so every read names the writes it
    /// reflects. `time` strictly increases per replica; different replicas may repeat a time, so
    /// ties between replicas are exercised.
    Write {
        /// The value written.
        value: u64,
        /// The writer's clock.
        time: u64,
    },
}

/// The kind-independent seed of an operation; [`OpSeed::to_op`] turns it into an [`Op`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct OpSeed {
    /// Picks between the kind's two operations (inc/dec, add/remove); for the bounded counter,
    /// between increment and a spend, which `x` makes a decrement or a transfer.
    pub flip: bool,
    /// The operation's argument, folded into a small range so that operations collide.
    pub x: u8,
}

/// Number of distinct set elements: small, so that adds and removes of one element meet.
pub const SET_ELEMENTS: u8 = 5;

impl OpSeed {
    /// The operation this seed stands for, for the `id`-th operation of a trace, run at replica
    /// `at` of `replicas`; `clock` is the replica's register clock, advanced for writes.
    pub fn to_op(self, kind: Kind, id: u64, at: ReplicaIdx, replicas: u8, clock: &mut u64) -> Op {
        let amount = 1 + u64::from(self.x % 4);
        match kind {
            Kind::Counter => Op::Inc(amount),
            Kind::PnCounter if self.flip => Op::Dec(amount),
            Kind::PnCounter => Op::Inc(amount),
            // Two spends in three are decrements, so that rights run out and refusals happen;
            // a transfer goes to one of the other replicas, never to `at` itself.
            Kind::BoundedCounter if self.flip && (self.x / 4) % 3 == 2 => {
                let others = replicas.saturating_sub(1).max(1);
                Op::Transfer {
                    to: (at + 1 + (self.x / 12) % others) % replicas.max(1),
                    amount,
                }
            }
            Kind::BoundedCounter if self.flip => Op::Dec(amount),
            Kind::BoundedCounter => Op::Inc(amount),
            Kind::AddWinsSet if self.flip => Op::Remove(self.x % SET_ELEMENTS),
            Kind::AddWinsSet => Op::Add(self.x % SET_ELEMENTS),
            Kind::LwwRegister | Kind::MvRegister => {
                // The time comes mostly from the seed rather than from the replica's history, so
                // that removing an earlier step while shrinking keeps the later ties intact.
                *clock = (*clock + 1).max(1 + u64::from(self.x % 8));
                Op::Write {
                    value: id,
                    time: *clock,
                }
            }
        }
    }
}

/// One step of a trace. Replica indices are taken modulo the trace's replica count.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Step {
    /// Replica `at` runs an operation.
    Op {
        /// The replica.
        at: ReplicaIdx,
        /// What it runs.
        seed: OpSeed,
    },
    /// One of `from`'s deltas (number `pick` modulo how many it has issued) reaches `to`: any
    /// delta, any number of times, in any order. Subjects without deltas send their state.
    Delta {
        /// The sender.
        from: ReplicaIdx,
        /// The receiver.
        to: ReplicaIdx,
        /// Which of the sender's deltas.
        pick: u16,
    },
    /// `from`'s whole state reaches `to`.
    State {
        /// The sender.
        from: ReplicaIdx,
        /// The receiver.
        to: ReplicaIdx,
    },
}

/// A run of operations and deliveries over a few replicas.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Trace {
    /// Replica count, folded into `2..=MAX_REPLICAS`.
    pub replicas: u8,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// Which reached states the algebraic laws take as `a`, `b` and `c`.
    pub picks: [u16; 3],
}

/// Most replicas in a trace.
pub const MAX_REPLICAS: u8 = 4;

impl Trace {
    /// The replica count, in `2..=MAX_REPLICAS`.
    pub fn replica_count(&self) -> u8 {
        2 + self.replicas % (MAX_REPLICAS - 1)
    }

    /// The trace as numbered lines in the kind's vocabulary, for counterexamples.
    pub fn describe(&self, kind: Kind) -> String {
        let n = self.replica_count();
        let mut clocks = vec![0u64; usize::from(n)];
        let mut ops = 0u64;
        let mut out = format!("{n} replicas\n");
        for (i, step) in self.steps.iter().enumerate() {
            let line = match step {
                Step::Op { at, seed } => {
                    let at = at % n;
                    let op = seed.to_op(kind, ops, at, n, &mut clocks[usize::from(at)]);
                    ops += 1;
                    format!("r{at}: {op:?}  (op #{})", ops - 1)
                }
                Step::Delta { from, to, pick } => {
                    format!("r{} -> r{}: delta pick {pick}", from % n, to % n)
                }
                Step::State { from, to } => format!("r{} -> r{}: whole state", from % n, to % n),
            };
            // Writing to a String cannot fail.
            let _ = writeln!(out, "  {i:>3}  {line}");
        }
        let _ = write!(out, "  picks a,b,c = {:?}", self.picks);
        out
    }
}

fn step() -> impl Strategy<Value = Step> {
    let replica = 0..MAX_REPLICAS;
    prop_oneof![
        3 => (replica.clone(), any::<bool>(), any::<u8>())
            .prop_map(|(at, flip, x)| Step::Op { at, seed: OpSeed { flip, x } }),
        2 => (replica.clone(), replica.clone(), any::<u16>())
            .prop_map(|(from, to, pick)| Step::Delta { from, to, pick }),
        1 => (replica.clone(), replica).prop_map(|(from, to)| Step::State { from, to }),
    ]
}

/// Traces of up to `max_steps` steps over 2 to 4 replicas. Shrinks towards fewer steps, fewer
/// replicas and smaller arguments.
pub fn strategy(max_steps: usize) -> impl Strategy<Value = Trace> {
    (
        0..MAX_REPLICAS - 1,
        proptest::collection::vec(step(), 0..=max_steps),
        any::<[u16; 3]>(),
    )
        .prop_map(|(replicas, steps, picks)| Trace {
            replicas,
            steps,
            picks,
        })
}
