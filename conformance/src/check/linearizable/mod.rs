//! Linearizability of key-value register histories: Maelstrom's `lin-kv` workload, checked
//! black-box.
//!
//! # What it decides
//! A history is a list of [`Operation`]s: each one was invoked by a client at `invoke_ns`, asked to
//! read, write or compare-and-set one integer key, and either completed at `complete_ns` with an
//! [`KvOutcome`] or never got an answer. Every key is a register that starts absent:
//! - a read returns the current value (`None` while the key is absent);
//! - a write sets the value;
//! - a cas sets the value to `to` if and only if the current value is `Some(from)`.
//!
//! The history is linearizable when every operation can be given a point in time inside its
//! interval such that, executed one at a time in the order of those points, every operation sees
//! exactly what it reported. [`check`] answers [`Linearizability::Linearizable`], or
//! [`Linearizability::NotLinearizable`] with a small sub-history that fails on its own, or
//! [`Linearizability::Unknown`] when the search needed more than its [`Budget`]; it never passes a
//! history it has not finished checking.
//!
//! Outcomes are read as Maelstrom reads them:
//! - [`KvOutcome::Fail`] is a definite failure: the operation did not happen, so it is dropped. A
//!   failed cas is *not* taken to mean "the value differed from `from`": Maelstrom's definite
//!   errors include `temporarily-unavailable`, which says nothing about the value.
//! - [`KvOutcome::Unknown`] is indefinite: the operation may take effect at any time after its
//!   invocation, or never. Unknown reads constrain nothing and are dropped; unknown writes and cas
//!   complete at +∞.
//! - Two operations are concurrent when one completes at the very nanosecond the other is
//!   invoked, so that a clock's granularity cannot manufacture a violation.
//!
//! # How
//! Keys are independent registers, and linearizability is compositional (Herlihy & Wing's
//! locality), so each key is checked on its own. Per key the search is Wing & Gong's, with Lowe's
//! memoization, laid out as in porcupine: call and return entries sorted by time in a doubly
//! linked list; the search linearizes any call that precedes the first remaining return, unlinks
//! it and its return, and backtracks when it reaches a return whose call it could not linearize.
//! A configuration (the set of linearized operations and the register's value) is explored at
//! most once.
//!
//! Four refinements keep the search linear on ordinary histories, each exact (it never changes a
//! verdict, which the tests check against trying every order on small histories):
//! - **The linearized set is a prefix with holes.** Operations that completed are numbered in
//!   invocation order; the set is stored as `m` (one past the highest linearized number) and the
//!   *holes*, the unlinearized numbers below `m`. Every hole was still running when operation
//!   `m - 1` was invoked (had it returned, its return entry would have stopped the search before
//!   that call), so when each client runs one operation at a time there are fewer holes than
//!   clients. Hashing and comparing a configuration costs O(clients), not O(history).
//! - **Reads go first.** A read of the current value that may be linearized now is linearized now,
//!   and nothing else is tried from that configuration (`Search::enter` says why that loses
//!   nothing). Concurrent reads would otherwise be linearized in every subset and order.
//! - **Indefinite operations are used lazily.** An unknown write or cas changes the value and
//!   nothing else, so in some linearization, if there is one, each one that takes effect is
//!   immediately followed by an operation that observes the value it produced (otherwise it can be
//!   dropped or moved later: its interval never ends). They are therefore kept out of the list and
//!   only tried as a short *chain* right before a read or cas that needs a value the register does
//!   not hold: an unknown write of that value, or unknown cas steps leading to it.
//! - **Indefinite operations are interchangeable.** Two unknown writes of the same value (or two
//!   unknown cas with the same `from` and `to`) that have both been invoked have the same future,
//!   so the earliest-invoked unused one is always the one taken. What a configuration has used is
//!   then a count per such class, and a configuration that has used no more of any class than one
//!   already explored at the same point and value is *dominated*: it can do nothing that one
//!   could not, and is pruned.
//!
//! Finding a linearization is quick; proving there is none means exploring every configuration
//! before the point where the violation surfaces. So each key is first scanned, in O(n log n),
//! for violations that need no search (a value read that nothing invoked by then writes, a value
//! whose every write had been overwritten before the read began, an absent key read after a
//! write completed; see `blatant`), and the search only has to show that what precedes the
//! first of them is linearizable.
//!
//! # Cost
//! A few search steps per operation on ordinary histories: the benchmark
//! (`benches/linearizable.rs`) checks millions of operations per second. What makes a search
//! expensive is a *subtle* violation (one the scan above does not see) on a key with a long
//! history and much concurrency, since everything before it must be explored: coarse timestamps
//! make operations that merely touch concurrent, and every indefinite operation is a choice that
//! stays open for the rest of the history. Short per-key histories (as Maelstrom's `lin-kv`
//! generates: many keys, a bounded number of operations on each) and nanosecond timestamps keep
//! it cheap. Past the [`Budget`], the answer is [`Linearizability::Unknown`].
//!
//! # Reading a violation
//! The report names the key and the operation at whose completion the history stops being
//! linearizable: the prefix of the history that ends just before that completion is linearizable
//! (operations still running in it may take effect or not), the one that ends with it is not.
//! The operations reported around it are shrunk from that prefix while three properties hold: they
//! are not linearizable on their own, they become linearizable if the culprit is left running,
//! and every value that one of them reads or cas-es from is written by one of them whenever the
//! prefix writes it at all. Passing them back to [`check`] reports a violation again.
//!
//! # Layout
//! - `history`: the public vocabulary: [`Operation`], [`KvOp`], [`KvOutcome`], [`Budget`] and
//!   the verdict [`Linearizability`].
//! - `ops`: operations as the search sees them (`KOp`, `Act`) and histories cut at a time.
//! - `blatant`: the O(n log n) scan for violations that need no search.
//! - `search`: the per-key Wing & Gong search with its four refinements; `cache` holds the
//!   configurations it has explored, with domination.
//! - `explain`: where a violation surfaces, the shrunk witness and the text that explains it.
//! - `ints`: the integer plumbing the others share (a fast hash map, `u32` indices).
//!
//! This file holds [`check`] and the per-key strategy that chooses between a quick search, the
//! scan and a full search. The parts depend on each other one way only: `history` and `ints`
//! on nothing, `ops` on `history`, `blatant` and `cache` on `ops` and `ints`, `search` on those,
//! `explain` on `search` and what it builds on, and this file on all of them.

mod blatant;
mod cache;
mod explain;
mod history;
mod ints;
mod ops;
mod search;
#[cfg(test)]
mod tests;

pub use history::{Budget, KvOp, KvOutcome, Linearizability, Operation};

use blatant::blatant;
use explain::report_violation;
use ints::FastMap;
use ops::{KOp, prefix};
use search::{SearchVerdict, search};

/// Checks that `history` is linearizable, one key at a time, spending at most `budget` on each key.
///
/// The order of `history` does not matter. Operations with [`KvOutcome::Fail`], and reads with
/// [`KvOutcome::Unknown`], are dropped. A malformed operation (one that completes before it is
/// invoked, an `Ok` or `Fail` without a completion time, or a write or cas whose `Ok` carries a
/// value) makes the answer [`Linearizability::Unknown`].
pub fn check(history: &[Operation], budget: Budget) -> Linearizability {
    // Each register's operations, in the history's order for now.
    let mut per_key: FastMap<u64, Vec<KOp>> = FastMap::default();
    for (orig, operation) in history.iter().enumerate() {
        match KOp::from_operation(orig, operation) {
            Ok(Some(op)) => per_key.entry(op.key).or_default().push(op),
            Ok(None) => {}
            Err(reason) => {
                return Linearizability::Unknown {
                    reason: format!("malformed operation #{orig} ({operation}): {reason}"),
                };
            }
        }
    }
    let mut keys: Vec<u64> = per_key.keys().copied().collect();
    keys.sort_unstable();
    let mut exhausted: Vec<u64> = Vec::new();
    for key in keys {
        let Some(run) = per_key.get_mut(&key) else {
            continue;
        };
        // Everything below wants invocation order. Histories are usually recorded close to it,
        // which the sort is quick on.
        run.sort_unstable_by_key(|op| (op.invoke, op.orig));
        let run = run.as_slice();
        match check_key(run, budget.max_steps_per_key) {
            KeyVerdict::Linearizable => {}
            KeyVerdict::Exhausted => exhausted.push(key),
            KeyVerdict::Violation { cut, earliest } => {
                return report_violation(key, run, cut, earliest, history, budget);
            }
        }
    }
    match exhausted.as_slice() {
        [] => Linearizability::Linearizable,
        [first, rest @ ..] => Linearizability::Unknown {
            reason: format!(
                "the search on key {first}{} exceeded the budget of {} steps per key; the other \
                 keys are linearizable. Raise Budget::max_steps_per_key or check a shorter history.",
                if rest.is_empty() {
                    String::new()
                } else {
                    format!(" (and {} more keys)", rest.len())
                },
                budget.max_steps_per_key
            ),
        },
    }
}

/// The verdict on one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyVerdict {
    Linearizable,
    Exhausted,
    /// The prefix of the key's history cut at `cut` is not linearizable; if `earliest`, the one
    /// cut just before it is.
    Violation {
        cut: u64,
        earliest: bool,
    },
}

/// Steps per operation, and steps besides, that a first search may take before [`check_key`]
/// looks for blatant violations. Linearizable histories take one or two per operation.
const QUICK_STEPS_PER_OP: u64 = 16;
/// See [`QUICK_STEPS_PER_OP`]; this keeps short histories from being cut off by rounding.
const QUICK_STEPS_BASE: u64 = 10_000;

/// Checks one key's operations, in invocation order.
///
/// Most histories are linearizable, and a search shows it in a step or two per operation, so
/// one is run first with a budget to match. A search must explore every configuration before the
/// point where a violation surfaces to prove it, though, which on a long history with many
/// indefinite operations (each a choice to use or not) can exceed any budget. The violations a
/// store most often commits are visible without search ([`blatant`]: a value read that was never
/// written, or only by writes long overwritten), so when the first search does not finish those
/// are looked for next, and the search then only has to show that the history before the first
/// of them is linearizable, which it does quickly when it is.
fn check_key(ops: &[KOp], max_steps: u64) -> KeyVerdict {
    let quick_steps = QUICK_STEPS_PER_OP
        .saturating_mul(ops.len() as u64)
        .saturating_add(QUICK_STEPS_BASE);
    check_key_with(ops, max_steps, quick_steps)
}

/// [`check_key`], with the first search's budget given.
fn check_key_with(ops: &[KOp], max_steps: u64, quick_steps: u64) -> KeyVerdict {
    let quick = search(ops, quick_steps.min(max_steps));
    match quick.verdict {
        SearchVerdict::Linearizable => return KeyVerdict::Linearizable,
        SearchVerdict::Violation => {
            return KeyVerdict::Violation {
                cut: quick.frontier,
                earliest: true,
            };
        }
        SearchVerdict::Exhausted => {}
    }
    if let Some(found) = blatant(ops) {
        let before = search(&prefix(ops, found.at.checked_sub(1)), max_steps);
        return match before.verdict {
            SearchVerdict::Linearizable => KeyVerdict::Violation {
                cut: found.at,
                earliest: true,
            },
            SearchVerdict::Violation => KeyVerdict::Violation {
                cut: before.frontier,
                earliest: true,
            },
            SearchVerdict::Exhausted => KeyVerdict::Violation {
                cut: found.at,
                earliest: false,
            },
        };
    }
    let result = search(ops, max_steps);
    match result.verdict {
        SearchVerdict::Linearizable => KeyVerdict::Linearizable,
        SearchVerdict::Exhausted => KeyVerdict::Exhausted,
        SearchVerdict::Violation => KeyVerdict::Violation {
            cut: result.frontier,
            earliest: true,
        },
    }
}
