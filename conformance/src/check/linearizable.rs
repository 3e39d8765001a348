//! Linearizability of key-value register histories: Maelstrom's `lin-kv` workload, checked
//! black-box.
//!
//! # What it decides
//! A history is a list of [`Operation`]s: each one was invoked by a client at `invoke_ns`, asked to
//! read, write or compare-and-set one integer key, and either completed at `complete_ns` with an
//! [`Outcome`] or never got an answer. Every key is a register that starts absent:
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
//! - [`Outcome::Fail`] is a definite failure: the operation did not happen, so it is dropped. A
//!   failed cas is *not* taken to mean "the value differed from `from`": Maelstrom's definite
//!   errors include `temporarily-unavailable`, which says nothing about the value.
//! - [`Outcome::Unknown`] is indefinite: the operation may take effect at any time after its
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

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

/// What a client asked of the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KvOp {
    /// Read a key.
    Read {
        /// The key.
        key: u64,
    },
    /// Set a key.
    Write {
        /// The key.
        key: u64,
        /// The value written.
        value: i64,
    },
    /// Set a key to `to` if it holds `from`.
    Cas {
        /// The key.
        key: u64,
        /// The value the key must hold.
        from: i64,
        /// The value it is set to.
        to: i64,
    },
}

impl KvOp {
    /// The key the operation is on.
    pub fn key(&self) -> u64 {
        match *self {
            KvOp::Read { key } | KvOp::Write { key, .. } | KvOp::Cas { key, .. } => key,
        }
    }
}

/// What the client learnt of its operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// It took effect. For a read, the value read (`None`: the key was absent); for a write or a
    /// cas, `None`.
    Ok(Option<i64>),
    /// Definite failure: it did not take effect (a cas whose precondition failed, a read of a key
    /// that does not exist, a store that refused the request).
    Fail,
    /// Indefinite: a timeout or a crash. It may have taken effect at any time after its
    /// invocation, or never.
    Unknown,
}

/// One operation of a history.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Operation {
    /// The client that ran it; only used in reports.
    pub process: u64,
    /// When it was invoked.
    pub invoke_ns: u64,
    /// When it completed; `None` if its outcome is [`Outcome::Unknown`]. The time of an unknown
    /// outcome is ignored: it may take effect even after the client gave up.
    pub complete_ns: Option<u64>,
    /// What it asked for.
    pub op: KvOp,
    /// What came of it.
    pub outcome: Outcome,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = |v: Option<i64>| v.map_or_else(|| "absent".to_string(), |v| v.to_string());
        write!(f, "p{} ", self.process)?;
        match (self.op, self.outcome) {
            (KvOp::Read { key }, Outcome::Ok(v)) => write!(f, "read {key} -> {}", value(v))?,
            (KvOp::Read { key }, _) => write!(f, "read {key}")?,
            (KvOp::Write { key, value }, _) => write!(f, "write {key} := {value}")?,
            (KvOp::Cas { key, from, to }, _) => write!(f, "cas {key} {from} -> {to}")?,
        }
        match self.outcome {
            Outcome::Ok(_) if matches!(self.op, KvOp::Read { .. }) => {}
            Outcome::Ok(_) => write!(f, " ok")?,
            Outcome::Fail => write!(f, " failed")?,
            Outcome::Unknown => write!(f, " unknown")?,
        }
        match self.complete_ns {
            Some(c) if self.outcome != Outcome::Unknown => {
                write!(f, "  [{}, {c}]", self.invoke_ns)
            }
            _ => write!(f, "  [{}, ∞)", self.invoke_ns),
        }
    }
}

/// How much search [`check`] may spend before it answers [`Linearizability::Unknown`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Budget {
    /// Most search steps on one key: attempts to linearize an operation, backtracks, and
    /// configurations compared in the memo. A step costs tens of nanoseconds. An ordinary history
    /// needs a few per operation; the default (50 million) allows keys of millions of operations,
    /// and gives up after a few seconds on a search that would not end.
    pub max_steps_per_key: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            max_steps_per_key: 50_000_000,
        }
    }
}

/// The verdict on a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Linearizability {
    /// Every key's history is linearizable.
    Linearizable,
    /// One key's history is not (the lowest such key; the keys after it were not checked).
    NotLinearizable {
        /// The key.
        key: u64,
        /// A small set of operations on `key`, in invocation order, that is not linearizable by
        /// itself and ends where the violation surfaces (see the module documentation).
        minimal: Vec<Operation>,
        /// What went wrong, in words, with `minimal` spelled out.
        explanation: String,
    },
    /// The checker could not decide: a key needed more search than the budget allows, or the
    /// history is malformed. No key was found to be non-linearizable.
    Unknown {
        /// Why.
        reason: String,
    },
}

impl Linearizability {
    /// Whether the history was found linearizable.
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Linearizability::Linearizable)
    }
}

/// Checks that `history` is linearizable, one key at a time, spending at most `budget` on each key.
///
/// The order of `history` does not matter. Operations with [`Outcome::Fail`], and reads with
/// [`Outcome::Unknown`], are dropped. A malformed operation (one that completes before it is
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
        Verdict::Linearizable => return KeyVerdict::Linearizable,
        Verdict::Violation => {
            return KeyVerdict::Violation {
                cut: quick.frontier,
                earliest: true,
            };
        }
        Verdict::Exhausted => {}
    }
    if let Some(found) = blatant(ops) {
        let before = search(&prefix(ops, found.at.checked_sub(1)), max_steps);
        return match before.verdict {
            Verdict::Linearizable => KeyVerdict::Violation {
                cut: found.at,
                earliest: true,
            },
            Verdict::Violation => KeyVerdict::Violation {
                cut: before.frontier,
                earliest: true,
            },
            Verdict::Exhausted => KeyVerdict::Violation {
                cut: found.at,
                earliest: false,
            },
        };
    }
    let result = search(ops, max_steps);
    match result.verdict {
        Verdict::Linearizable => KeyVerdict::Linearizable,
        Verdict::Exhausted => KeyVerdict::Exhausted,
        Verdict::Violation => KeyVerdict::Violation {
            cut: result.frontier,
            earliest: true,
        },
    }
}

/// A violation that needs no search: an observer (a read, or a cas that succeeded) that no
/// order can satisfy, whatever the other operations do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Blatant {
    /// The observer's completion time.
    at: u64,
    /// The observer, as an index into the operations given to [`blatant`].
    observer: usize,
    why: Why,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Why {
    /// Nothing invoked before the observer completed writes the value it needs.
    NeverWritten,
    /// Every operation that writes the value completed, and `writer`, the last of them to be
    /// overwritten, was overwritten by `by`, which began after `writer` completed and completed
    /// before the observer began.
    Overwritten { writer: usize, by: usize },
    /// The key was read as absent after `after` wrote it and completed.
    ReadAbsent { after: usize },
}

/// How long a writer's value may remain current: until `overwritten` (the completion time of the
/// first operation that begins after the writer completed and sets another value, and that
/// operation), or for ever if nothing does or the writer is indefinite.
#[derive(Clone, Copy, Debug)]
struct Survival {
    writer: usize,
    overwritten: Option<(u64, usize)>,
}

impl Survival {
    fn outlives(&self, other: &Survival) -> bool {
        match (self.overwritten, other.overwritten) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some((a, _)), Some((b, _))) => a > b,
        }
    }
}

/// The earliest-completing observer that no order can satisfy, if there is one. `ops` must be in
/// invocation order.
///
/// An observer that needs `Some(v)` is satisfied only right after an operation that wrote `v`.
/// If every such writer `w` completed and was followed by an operation that sets another value,
/// began after `w` completed and completed before the observer began, then whichever writer the
/// observer follows is overwritten in between, and the overwriting operation needs a writer of
/// `v` after it in turn: there is no last one, so no order exists. Indefinite writers may take
/// effect at any time, so a value one of them writes is never blatantly stale. Reading the key
/// as absent is impossible once any operation that sets it has completed: nothing deletes.
///
/// Runs in O(n log n): per writer, the earliest completion of a later operation setting another
/// value comes from suffix minima that keep the two best values apart; per observer, the writers
/// of its value invoked by its completion are a prefix in invocation order, and it is enough that
/// the latest-overwritten of them survives until the observer begins.
fn blatant(ops: &[KOp]) -> Option<Blatant> {
    // Completed operations that set a value (writes, and cas that succeeded), by invocation
    // (the order of `ops`).
    debug_assert!(ops.is_sorted_by_key(|op| op.invoke));
    let setters: Vec<usize> = (0..ops.len())
        .filter(|&k| ops[k].ret.is_some() && ops[k].act.writes().is_some())
        .collect();
    let ret = |k: usize| ops[k].ret.unwrap_or(u64::MAX);
    let value = |k: usize| ops[k].act.writes();
    // suffix[i]: among setters[i..], the one completing first, and the one completing first among
    // those that set another value than it.
    let mut suffix: Vec<(Option<usize>, Option<usize>)> = vec![(None, None); setters.len() + 1];
    for i in (0..setters.len()).rev() {
        let k = setters[i];
        let (best, second) = suffix[i + 1];
        suffix[i] = match best {
            None => (Some(k), None),
            Some(b) if ret(k) < ret(b) => (
                Some(k),
                if value(k) != value(b) {
                    Some(b)
                } else {
                    second
                },
            ),
            Some(b) => {
                let better = value(k) != value(b) && second.is_none_or(|s| ret(k) < ret(s));
                (Some(b), if better { Some(k) } else { second })
            }
        };
    }
    // The first operation that begins after `t` and completes setting a value other than `v`.
    let overwriter = |t: u64, v: i64| -> Option<usize> {
        let i = setters.partition_point(|&k| ops[k].invoke <= t);
        match suffix[i] {
            (Some(b), _) if value(b) != Some(v) => Some(b),
            (_, second) => second,
        }
    };
    // Per value, its writers by invocation. Each entry's `survivor` is then replaced by the one
    // surviving longest among it and the entries before it.
    let mut writers: FastMap<i64, Vec<(u64, Survival)>> = FastMap::default();
    for (k, op) in ops.iter().enumerate() {
        let Some(v) = op.act.writes() else {
            continue;
        };
        let overwritten = op
            .ret
            .and_then(|r| overwriter(r, v))
            .map(|by| (ret(by), by));
        let survival = Survival {
            writer: k,
            overwritten,
        };
        writers.entry(v).or_default().push((op.invoke, survival));
    }
    for list in writers.values_mut() {
        // In invocation order, as `ops` is.
        for i in 1..list.len() {
            let prev = list[i - 1].1;
            if prev.outlives(&list[i].1) {
                list[i].1 = prev;
            }
        }
    }
    let first_setter = setters.iter().copied().min_by_key(|&k| ret(k));
    let mut found: Option<Blatant> = None;
    for (k, op) in ops.iter().enumerate() {
        let Some(at) = op.ret else {
            continue;
        };
        if found.is_some_and(|f| f.at <= at) {
            continue;
        }
        let why = match op.act {
            Act::Read(None) => first_setter
                .filter(|&x| ret(x) < op.invoke)
                .map(|after| Why::ReadAbsent { after }),
            Act::Read(Some(v)) | Act::Cas(v, _) => {
                let list = writers.get(&v).map_or(&[][..], Vec::as_slice);
                let n = list.partition_point(|&(invoke, _)| invoke <= at);
                match n.checked_sub(1).map(|i| list[i].1) {
                    None => Some(Why::NeverWritten),
                    Some(Survival {
                        writer,
                        overwritten: Some((end, by)),
                    }) if end < op.invoke => Some(Why::Overwritten { writer, by }),
                    Some(_) => None,
                }
            }
            Act::Write(_) => None,
        };
        if let Some(why) = why {
            found = Some(Blatant {
                at,
                observer: k,
                why,
            });
        }
    }
    found
}

/// A hash map keyed by integers from the history. The standard library's SipHash resists
/// collision attacks that histories do not mount, and costs a tenth of the check's time; this is
/// FxHash's multiply-rotate.
type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

#[derive(Default)]
struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64);
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }
}

/// What an operation does to the register, once its outcome is taken into account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Act {
    /// Observes the value.
    Read(Option<i64>),
    /// Sets the value.
    Write(i64),
    /// Sets the value to `.1` if it is `Some(.0)`. For an operation that completed, the value must
    /// be `Some(.0)`; for an indefinite one, which may not take effect, it may be anything.
    Cas(i64, i64),
}

impl Act {
    /// The value the register must hold for this operation to be linearized, if it needs one
    /// that an indefinite write or cas could provide.
    fn needs(self) -> Option<i64> {
        match self {
            Act::Read(v) => v,
            Act::Cas(from, _) => Some(from),
            Act::Write(_) => None,
        }
    }

    /// The register after a completed operation runs on `state`; `None` if it cannot.
    fn step(self, state: Option<i64>) -> Option<Option<i64>> {
        match self {
            Act::Read(v) => (v == state).then_some(state),
            Act::Write(v) => Some(Some(v)),
            Act::Cas(from, to) => (state == Some(from)).then_some(Some(to)),
        }
    }

    /// The value this operation writes, if it writes one.
    fn writes(self) -> Option<i64> {
        match self {
            Act::Read(_) => None,
            Act::Write(v) | Act::Cas(_, v) => Some(v),
        }
    }
}

/// An operation as the search sees it: Fail outcomes and unknown reads are gone, and an
/// indefinite operation has no return time.
#[derive(Clone, Copy, Debug)]
struct KOp {
    key: u64,
    invoke: u64,
    /// `None`: returns at +∞.
    ret: Option<u64>,
    act: Act,
    /// Index in the caller's history.
    orig: usize,
}

impl KOp {
    /// `Ok(None)` for an operation that constrains nothing; `Err` for a malformed one.
    fn from_operation(orig: usize, op: &Operation) -> Result<Option<KOp>, &'static str> {
        let (key, read) = (op.op.key(), matches!(op.op, KvOp::Read { .. }));
        let ret = match (op.outcome, op.complete_ns) {
            (Outcome::Unknown, _) => None,
            (Outcome::Ok(_) | Outcome::Fail, None) => {
                return Err("a definite outcome needs a completion time");
            }
            (_, Some(c)) if c < op.invoke_ns => return Err("it completes before it is invoked"),
            (Outcome::Fail, Some(_)) => return Ok(None),
            (Outcome::Ok(Some(_)), Some(_)) if !read => {
                return Err("a write or cas that succeeds returns no value");
            }
            (Outcome::Ok(_), Some(c)) => Some(c),
        };
        let act = match (op.op, op.outcome) {
            (KvOp::Read { .. }, Outcome::Ok(v)) => Act::Read(v),
            (KvOp::Read { .. }, _) => return Ok(None),
            (KvOp::Write { value, .. }, _) => Act::Write(value),
            (KvOp::Cas { from, to, .. }, _) => Act::Cas(from, to),
        };
        Ok(Some(KOp {
            key,
            invoke: op.invoke_ns,
            ret,
            act,
            orig,
        }))
    }
}

/// The ops of a history cut just after time `t`, in the order given: operations invoked later are
/// gone, and operations still running at `t` may or may not take effect (reads among them are
/// dropped, writes and cas become indefinite). `None` cuts before everything.
fn prefix(ops: &[KOp], t: Option<u64>) -> Vec<KOp> {
    let Some(t) = t else {
        return Vec::new();
    };
    ops.iter()
        .filter(|op| op.invoke <= t)
        .filter_map(|op| match op.ret {
            Some(r) if r <= t => Some(*op),
            _ if matches!(op.act, Act::Read(_)) => None,
            _ => Some(KOp { ret: None, ..*op }),
        })
        .collect()
}

/// The end of a linked list.
const NIL: u32 = u32::MAX;
/// The list's sentinel head node.
const HEAD: u32 = 0;

/// What a search found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Linearizable,
    Violation,
    Exhausted,
}

/// A verdict and the steps it took.
struct SearchResult {
    verdict: Verdict,
    steps: u64,
    /// The latest return time at which the search was stuck: the time of the first remaining
    /// return in the configuration that got furthest. On a violation, this is where it surfaces
    /// (see [`report_violation`]).
    frontier: u64,
}

/// Where the search is among the moves of the current configuration: a node of the list, and for
/// its operation whether it was tried directly and which chains of indefinite operations were.
#[derive(Clone, Copy, Debug)]
struct Cursor {
    node: u32,
    stage: Stage,
}

#[derive(Clone, Copy, Debug)]
enum Stage {
    /// The operation leaves the value as it is and is the only move tried (see
    /// [`Search::enter`]); it has not been tried yet.
    Forced,
    /// The only move worth trying from this configuration has been tried.
    Exhausted,
    /// The operation alone has not been tried.
    Direct,
    /// Tried alone; its chains have not been listed.
    Chains,
    /// Its chains are `chains[start..end]`; `pos` is the next one to try.
    ChainList { start: u32, pos: u32, end: u32 },
}

/// One move on the search path, with what is needed to undo it.
struct Frame {
    /// The call node of the completed operation linearized.
    node: u32,
    /// The chain of indefinite classes taken before it: `chains[chain.0..chain.1]`.
    chain: (u32, u32),
    /// The register before the move.
    state: Option<i64>,
    /// `m` before the move.
    m: u32,
    /// Where to continue in the parent configuration.
    resume: Cursor,
    /// The chain arena's length when the move was made: the parent's chains end there.
    arena_len: u32,
}

/// The per-key search state. Completed operations are numbered `0..n` in invocation order;
/// indefinite ones are grouped into classes (same write value, or same cas `from` and `to`).
struct Search {
    acts: Vec<Act>,
    // The doubly linked list of call and return entries. Node 0 is the head.
    next: Vec<u32>,
    prev: Vec<u32>,
    /// Operation number of each node.
    node_op: Vec<u32>,
    /// Whether the node is a return entry.
    node_ret: Vec<bool>,
    /// The time of each node.
    node_time: Vec<u64>,
    /// For a call node, its return node.
    partner: Vec<u32>,

    /// Per class: what its operations do.
    class_act: Vec<Act>,
    /// Per class: its operations' invocation times, ascending: `class_invokes[class_start[c]..]`.
    class_start: Vec<u32>,
    class_len: Vec<u32>,
    class_invokes: Vec<u64>,
    /// The class of indefinite writes of a value.
    write_class: FastMap<i64, u32>,
    /// The classes of indefinite cas to a value.
    cas_to: FastMap<i64, Vec<u32>>,

    // The current configuration.
    m: u32,
    holes: Vec<u32>,
    state: Option<i64>,
    /// Operations used per class: the earliest-invoked ones.
    used_dense: Vec<u32>,
    /// The nonzero entries of `used_dense`, by class.
    used: Vec<(u32, u32)>,

    cache: Cache,
    /// Chains of classes, each stored as its length followed by its classes.
    chains: Vec<u32>,
    steps: u64,
    max_steps: u64,
    frontier: u64,
}

/// Searches for a linearization of `ops`, all on one key.
fn search(ops: &[KOp], max_steps: u64) -> SearchResult {
    let mut s = Search::new(ops, max_steps);
    let verdict = s.run();
    SearchResult {
        verdict,
        steps: s.steps,
        frontier: s.frontier,
    }
}

impl Search {
    /// Builds the search over `ops`, which must be in invocation order (ties in any order).
    fn new(ops: &[KOp], max_steps: u64) -> Self {
        debug_assert!(ops.is_sorted_by_key(|op| op.invoke));
        let mut acts = Vec::new();
        // Calls are in invocation order already; returns are sorted, then the two are merged.
        let mut calls: Vec<(u64, u32)> = Vec::with_capacity(ops.len());
        let mut returns: Vec<(u64, u32)> = Vec::with_capacity(ops.len());
        let mut classes: FastMap<(bool, i64, i64), u32> = FastMap::default();
        let mut class_act = Vec::new();
        let mut per_class: Vec<Vec<u64>> = Vec::new();
        for op in ops {
            if let Some(ret) = op.ret {
                let i = to_u32(acts.len());
                acts.push(op.act);
                calls.push((op.invoke, i));
                returns.push((ret, i));
                continue;
            }
            let class_key = match op.act {
                Act::Write(v) => (true, v, v),
                // A cas from a value to itself changes nothing whether it happens or not.
                Act::Cas(from, to) if from != to => (false, from, to),
                Act::Cas(..) | Act::Read(_) => continue,
            };
            let class = *classes.entry(class_key).or_insert_with(|| {
                class_act.push(op.act);
                per_class.push(Vec::new());
                to_u32(per_class.len() - 1)
            });
            // Operations arrive in invocation order, so each class's list is ascending.
            per_class[class as usize].push(op.invoke);
        }
        returns.sort_unstable();
        // (time, 0 for a call or 1 for a return, operation number): at equal times calls come
        // first, so that an operation completing when another is invoked counts as concurrent.
        let mut entries: Vec<(u64, u8, u32)> = Vec::with_capacity(2 * acts.len());
        let (mut c, mut r) = (0, 0);
        while c < calls.len() || r < returns.len() {
            if r == returns.len() || (c < calls.len() && calls[c].0 <= returns[r].0) {
                entries.push((calls[c].0, 0, calls[c].1));
                c += 1;
            } else {
                entries.push((returns[r].0, 1, returns[r].1));
                r += 1;
            }
        }

        let nodes = entries.len() + 1;
        let mut s = Search {
            next: (1..=to_u32(nodes))
                .map(|n| if n as usize == nodes { NIL } else { n })
                .collect(),
            prev: (0..to_u32(nodes)).map(|n| n.wrapping_sub(1)).collect(),
            node_op: vec![NIL; nodes],
            node_ret: vec![false; nodes],
            node_time: vec![0; nodes],
            partner: vec![NIL; nodes],
            class_start: Vec::with_capacity(per_class.len()),
            class_len: Vec::with_capacity(per_class.len()),
            class_invokes: Vec::new(),
            write_class: FastMap::default(),
            cas_to: FastMap::default(),
            m: 0,
            holes: Vec::new(),
            state: None,
            used_dense: vec![0; per_class.len()],
            used: Vec::new(),
            cache: Cache::new(acts.len()),
            chains: Vec::new(),
            steps: 0,
            max_steps,
            frontier: 0,
            acts,
            class_act,
        };
        let mut call_node = vec![NIL; s.acts.len()];
        for (k, &(time, kind, i)) in entries.iter().enumerate() {
            let node = k + 1;
            s.node_op[node] = i;
            s.node_time[node] = time;
            if kind == 0 {
                call_node[i as usize] = to_u32(node);
            } else {
                s.node_ret[node] = true;
                // A return sorts after its call (same or later time, and 1 > 0), so the call node
                // is known here.
                s.partner[call_node[i as usize] as usize] = to_u32(node);
            }
        }
        for (c, invokes) in per_class.into_iter().enumerate() {
            let c = to_u32(c);
            s.class_start.push(to_u32(s.class_invokes.len()));
            s.class_len.push(to_u32(invokes.len()));
            s.class_invokes.extend(invokes);
            match s.class_act[c as usize] {
                Act::Write(v) => {
                    s.write_class.insert(v, c);
                }
                Act::Cas(_, to) => s.cas_to.entry(to).or_default().push(c),
                Act::Read(_) => {}
            }
        }
        s
    }

    fn run(&mut self) -> Verdict {
        let mut remaining = self.acts.len();
        let mut stack: Vec<Frame> = Vec::new();
        let mut cur = self.enter();
        loop {
            if remaining == 0 {
                // Indefinite operations left over may simply never take effect.
                return Verdict::Linearizable;
            }
            self.steps += 1;
            if self.steps > self.max_steps {
                return Verdict::Exhausted;
            }
            let node = cur.node;
            // Every completed operation still unlinearized has its return in the list, and
            // `remaining > 0`, so the scan meets a return before the end; NIL is handled anyway.
            if node == NIL || self.node_ret[node as usize] || matches!(cur.stage, Stage::Exhausted)
            {
                // The scan reached a return whose operation was not linearized before it, or the
                // only move worth trying failed: nothing is left from this configuration, so undo
                // the last move.
                if node != NIL && self.node_ret[node as usize] {
                    self.frontier = self.frontier.max(self.node_time[node as usize]);
                }
                let Some(frame) = stack.pop() else {
                    return Verdict::Violation;
                };
                self.undo(&frame);
                self.unlift(frame.node);
                remaining += 1;
                self.chains.truncate(frame.arena_len as usize);
                cur = frame.resume;
                continue;
            }
            let i = self.node_op[node as usize];
            let act = self.acts[i as usize];
            let mut chain = (0, 0);
            let next_state = match cur.stage {
                Stage::Direct => {
                    cur.stage = Stage::Chains;
                    act.step(self.state)
                }
                Stage::Forced => {
                    cur.stage = Stage::Exhausted;
                    act.step(self.state)
                }
                // Handled with the returns above.
                Stage::Exhausted => None,
                Stage::Chains => {
                    // Only an operation that needs a value the register does not hold can use a
                    // chain, and only if there are indefinite operations at all.
                    let target = match act.needs() {
                        Some(v) if !self.class_act.is_empty() && self.state != Some(v) => v,
                        _ => {
                            cur = Cursor {
                                node: self.next[node as usize],
                                stage: Stage::Direct,
                            };
                            continue;
                        }
                    };
                    let start = to_u32(self.chains.len());
                    self.list_chains(node, target);
                    cur.stage = Stage::ChainList {
                        start,
                        pos: start,
                        end: to_u32(self.chains.len()),
                    };
                    continue;
                }
                Stage::ChainList { start, pos, end } => {
                    if pos == end {
                        self.chains.truncate(start as usize);
                        cur = Cursor {
                            node: self.next[node as usize],
                            stage: Stage::Direct,
                        };
                        continue;
                    }
                    let len = self.chains[pos as usize];
                    chain = (pos + 1, pos + 1 + len);
                    cur.stage = Stage::ChainList {
                        start,
                        pos: chain.1,
                        end,
                    };
                    let mut state = self.state;
                    for k in chain.0..chain.1 {
                        state = self.class_effect(self.chains[k as usize], state);
                    }
                    act.step(state)
                }
            };
            let Some(next_state) = next_state else {
                continue;
            };
            let frame = Frame {
                node,
                chain,
                state: self.state,
                m: self.m,
                resume: cur,
                arena_len: to_u32(self.chains.len()),
            };
            self.apply(i, chain, next_state);
            if self
                .cache
                .insert(self.m, &self.holes, &self.used, self.state, &mut self.steps)
            {
                self.lift(node);
                remaining -= 1;
                stack.push(frame);
                cur = self.enter();
            } else {
                self.undo(&frame);
            }
        }
    }

    /// Where to start in a configuration just entered.
    ///
    /// A read of the current value (or a cas from a value to itself) that may be linearized now
    /// can be linearized first without loss: in any completion of this configuration, moving it
    /// to the front keeps every operation legal (it changes nothing, here or where it was), and
    /// keeps real time, since every operation that returned before it was invoked is linearized
    /// already (its return would precede this call in the list). So when there is one, it is the
    /// only move tried. Without this, concurrent reads of one value would be linearized in every
    /// subset and order.
    fn enter(&self) -> Cursor {
        let mut node = self.next[HEAD as usize];
        while node != NIL && !self.node_ret[node as usize] {
            let keeps = match self.acts[self.node_op[node as usize] as usize] {
                Act::Read(v) => v == self.state,
                Act::Cas(from, to) => from == to && self.state == Some(from),
                Act::Write(_) => false,
            };
            if keeps {
                return Cursor {
                    node,
                    stage: Stage::Forced,
                };
            }
            node = self.next[node as usize];
        }
        Cursor {
            node: self.next[HEAD as usize],
            stage: Stage::Direct,
        }
    }

    /// What an indefinite class's next operation does to `state`. Chains only contain classes
    /// whose operation applies (a cas's `from` is the value before it).
    fn class_effect(&self, class: u32, state: Option<i64>) -> Option<i64> {
        match self.class_act[class as usize] {
            Act::Write(v) => Some(v),
            Act::Cas(from, to) => {
                debug_assert_eq!(state, Some(from));
                Some(to)
            }
            Act::Read(_) => state,
        }
    }

    /// Linearizes completed operation `i` after the classes of `chain`, leaving `state`.
    fn apply(&mut self, i: u32, chain: (u32, u32), state: Option<i64>) {
        for k in chain.0..chain.1 {
            let c = self.chains[k as usize];
            self.used_dense[c as usize] += 1;
            match self.used.binary_search_by_key(&c, |&(class, _)| class) {
                Ok(at) => self.used[at].1 += 1,
                Err(at) => self.used.insert(at, (c, 1)),
            }
        }
        if i >= self.m {
            // Everything between the old `m` and `i` is unlinearized: new holes.
            self.holes.extend(self.m..i);
            self.m = i + 1;
        } else if let Ok(at) = self.holes.binary_search(&i) {
            self.holes.remove(at);
        }
        self.state = state;
    }

    /// Undoes the move recorded in `frame`, which linearized the operation of its node.
    fn undo(&mut self, frame: &Frame) {
        let i = self.node_op[frame.node as usize];
        if i >= frame.m {
            let added = (i - frame.m) as usize;
            self.holes.truncate(self.holes.len() - added);
        } else if let Err(at) = self.holes.binary_search(&i) {
            self.holes.insert(at, i);
        }
        self.m = frame.m;
        for k in frame.chain.0..frame.chain.1 {
            let c = self.chains[k as usize];
            self.used_dense[c as usize] -= 1;
            if let Ok(at) = self.used.binary_search_by_key(&c, |&(class, _)| class) {
                self.used[at].1 -= 1;
                if self.used[at].1 == 0 {
                    self.used.remove(at);
                }
            }
        }
        self.state = frame.state;
    }

    /// Removes a call node and its return from the list (dancing links: the nodes keep their own
    /// pointers, so [`Search::unlift`] puts them back in the reverse order).
    fn lift(&mut self, call: u32) {
        let ret = self.partner[call as usize];
        for node in [call, ret] {
            let (p, n) = (self.prev[node as usize], self.next[node as usize]);
            self.next[p as usize] = n;
            if n != NIL {
                self.prev[n as usize] = p;
            }
        }
    }

    fn unlift(&mut self, call: u32) {
        let ret = self.partner[call as usize];
        for node in [ret, call] {
            let (p, n) = (self.prev[node as usize], self.next[node as usize]);
            self.next[p as usize] = node;
            if n != NIL {
                self.prev[n as usize] = node;
            }
        }
    }

    /// Whether class `c` has an unused operation invoked by `time`.
    fn available(&self, c: u32, time: u64) -> bool {
        let used = self.used_dense[c as usize];
        used < self.class_len[c as usize]
            && self.class_invokes[(self.class_start[c as usize] + used) as usize] <= time
    }

    /// Appends to `chains` every chain of indefinite operations that can run now and takes the
    /// register from its current value to `Some(target)`: an optional write, then cas steps, with
    /// no value visited twice (a loop could be left out, and using fewer operations dominates).
    fn list_chains(&mut self, from_node: u32, target: i64) {
        // Indefinite operations may be linearized now if invoked by the first remaining return.
        let mut node = from_node;
        while node != NIL && !self.node_ret[node as usize] {
            node = self.next[node as usize];
        }
        let now = if node == NIL {
            u64::MAX
        } else {
            self.node_time[node as usize]
        };
        // A depth-first walk backwards from `target` over cas classes. `path[d]` is the value at
        // depth `d`, the class that leads from it to `path[d - 1]`, and the next candidate class
        // to try from it.
        struct Level {
            value: i64,
            via: u32,
            next_candidate: usize,
        }
        let mut path = vec![Level {
            value: target,
            via: NIL,
            next_candidate: 0,
        }];
        let mut entered = true;
        while let Some(level) = path.last() {
            self.steps += 1;
            let value = level.value;
            if entered {
                entered = false;
                if self.state == Some(value) {
                    // The walk reached the current value: the cas steps alone form a chain. (At
                    // depth 0 the caller has ruled this out.) Going further back would only
                    // leave the current value and return to it.
                    let steps: Vec<u32> = path[1..].iter().rev().map(|l| l.via).collect();
                    self.push_chain(None, &steps);
                    path.pop();
                    continue;
                }
                if let Some(&w) = self.write_class.get(&value)
                    && self.available(w, now)
                {
                    let steps: Vec<u32> = path[1..].iter().rev().map(|l| l.via).collect();
                    self.push_chain(Some(w), &steps);
                }
            }
            let candidates = self.cas_to.get(&value).map_or(&[][..], Vec::as_slice);
            let mut descended = false;
            let mut k = level.next_candidate;
            while k < candidates.len() {
                let c = candidates[k];
                k += 1;
                let Act::Cas(from, _) = self.class_act[c as usize] else {
                    continue;
                };
                if self.available(c, now) && path.iter().all(|l| l.value != from) {
                    let depth = path.len() - 1;
                    path[depth].next_candidate = k;
                    path.push(Level {
                        value: from,
                        via: c,
                        next_candidate: 0,
                    });
                    entered = true;
                    descended = true;
                    break;
                }
            }
            if !descended {
                path.pop();
            }
        }
    }

    fn push_chain(&mut self, write: Option<u32>, cas_steps: &[u32]) {
        self.chains
            .push(to_u32(cas_steps.len() + usize::from(write.is_some())));
        self.chains.extend(write);
        self.chains.extend_from_slice(cas_steps);
    }
}

/// Converts a count that the history's length bounds. Histories of 2³² operations per key would
/// not fit in memory as configurations anyway, so exceeding it is a bug in the caller's scale.
fn to_u32(n: usize) -> u32 {
    u32::try_from(n).expect("fewer than 2^32 operations per key")
}

/// The configurations explored: separate chaining over a power-of-two table of chain heads,
/// with each configuration's holes and class counts stored in one arena. Lookups hash only the
/// prefix, the holes and the value, so the configurations that differ in indefinite operations
/// used share a chain, where domination is checked.
struct Cache {
    heads: Vec<u32>,
    entries: Vec<CacheEntry>,
    arena: Vec<u32>,
}

struct CacheEntry {
    hash: u64,
    next: u32,
    m: u32,
    /// `arena[off..off + holes]` are the holes, then `2 * used` words of (class, count).
    off: usize,
    holes: u32,
    used: u32,
    state: Option<i64>,
    /// Dominated by a later configuration and unlinked.
    dead: bool,
}

impl Cache {
    fn new(ops: usize) -> Self {
        Cache {
            heads: vec![NIL; (2 * ops).next_power_of_two().max(64)],
            entries: Vec::new(),
            arena: Vec::new(),
        }
    }

    fn hash(m: u32, holes: &[u32], state: Option<i64>) -> u64 {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut h = u64::from(m).wrapping_mul(K);
        for &x in holes {
            h = (h.rotate_left(5) ^ u64::from(x)).wrapping_mul(K);
        }
        h = match state {
            None => h.rotate_left(5).wrapping_mul(K),
            Some(v) => (h.rotate_left(5) ^ (v as u64) ^ 1).wrapping_mul(K),
        };
        h ^ (h >> 29)
    }

    /// Records a configuration; `false` if it or one that dominates it was recorded before.
    /// Recorded configurations that the new one dominates are dropped, so that each chain holds
    /// only incomparable uses of indefinite operations. Adds the entries it looked at to `steps`.
    fn insert(
        &mut self,
        m: u32,
        holes: &[u32],
        used: &[(u32, u32)],
        state: Option<i64>,
        steps: &mut u64,
    ) -> bool {
        let hash = Self::hash(m, holes, state);
        let mask = self.heads.len() as u64 - 1;
        let slot = (hash & mask) as usize;
        let (mut prev, mut e) = (NIL, self.heads[slot]);
        while e != NIL {
            *steps += 1;
            let entry = &self.entries[e as usize];
            let next = entry.next;
            if entry.hash == hash
                && entry.m == m
                && entry.state == state
                && entry.holes as usize == holes.len()
            {
                let off = entry.off;
                let stored_holes = &self.arena[off..off + holes.len()];
                let stored_used = &self.arena[off + holes.len()..][..2 * entry.used as usize];
                if stored_holes == holes {
                    let stored = stored_used.chunks_exact(2).map(|p| (p[0], p[1]));
                    if at_most(stored.clone(), used.iter().copied()) {
                        return false;
                    }
                    if at_most(used.iter().copied(), stored) {
                        // Unlink it: the new configuration will stand for it.
                        self.entries[e as usize].dead = true;
                        if prev == NIL {
                            self.heads[slot] = next;
                        } else {
                            self.entries[prev as usize].next = next;
                        }
                        e = next;
                        continue;
                    }
                }
            }
            prev = e;
            e = next;
        }
        if self.entries.len() >= self.heads.len() {
            self.grow();
        }
        let mask = self.heads.len() as u64 - 1;
        let slot = (hash & mask) as usize;
        let off = self.arena.len();
        self.arena.extend_from_slice(holes);
        for &(c, n) in used {
            self.arena.extend([c, n]);
        }
        self.entries.push(CacheEntry {
            hash,
            next: self.heads[slot],
            m,
            off,
            holes: to_u32(holes.len()),
            used: to_u32(used.len()),
            state,
            dead: false,
        });
        self.heads[slot] = to_u32(self.entries.len() - 1);
        true
    }

    fn grow(&mut self) {
        let len = self.heads.len() * 2;
        self.heads = vec![NIL; len];
        let mask = len as u64 - 1;
        for (i, entry) in self.entries.iter_mut().enumerate() {
            if entry.dead {
                continue;
            }
            let slot = (entry.hash & mask) as usize;
            entry.next = self.heads[slot];
            self.heads[slot] = to_u32(i);
        }
    }
}

/// Whether uses `a` are at most uses `b`, class by class: then a configuration that used `a`
/// dominates the same configuration having used `b`. Both list (class, count) by class, counts
/// nonzero.
fn at_most(
    mut a: impl Iterator<Item = (u32, u32)>,
    mut b: impl Iterator<Item = (u32, u32)>,
) -> bool {
    a.all(|(class, count)| {
        b.by_ref()
            .find(|&(c, _)| c >= class)
            .is_some_and(|(c, n)| c == class && n >= count)
    })
}

/// Finds where the violation on `key` surfaces, shrinks the operations around it and explains.
///
/// `frontier` is the failed search's [`SearchResult::frontier`], and it is where the violation
/// surfaces: the prefix of the history cut just before it is linearizable, the one cut at it is
/// not. A configuration whose first remaining return is at `t` has linearized everything that
/// returned before `t`, and the part of its sequence up to the last of those is a linearization
/// of the prefix cut before `t` (an operation invoked later cannot precede one that had returned;
/// operations still running at the cut may or may not happen). Conversely a linearization of the
/// prefix cut at `t` would give the search a configuration past `t`, and the search, pruned as it
/// is, reaches some configuration past every point that any configuration passes: the reductions
/// of [`Search::enter`] and of indefinite operations turn partial sequences into partial sequences
/// just as they turn complete ones.
///
/// When `earliest` is false the budget ran out before the prefix cut just before `cut` could be
/// shown linearizable, and the report says so.
fn report_violation(
    key: u64,
    ops: &[KOp],
    cut: u64,
    earliest: bool,
    history: &[Operation],
    budget: Budget,
) -> Linearizability {
    let base = prefix(ops, Some(cut));
    let (witness, shrunk) = shrink(&base, cut, earliest, budget);

    let mut minimal: Vec<Operation> = witness.iter().map(|op| history[op.orig].clone()).collect();
    minimal.sort_by_key(|op| (op.invoke_ns, op.complete_ns));
    let culprits: Vec<&Operation> = witness
        .iter()
        .filter(|op| op.ret == Some(cut))
        .map(|op| &history[op.orig])
        .collect();
    let culprit_list = culprits
        .iter()
        .map(|op| format!("`{op}`"))
        .collect::<Vec<_>>()
        .join(" and ");
    let mut explanation = if earliest {
        format!(
            "key {key} is not linearizable. Its history is linearizable until {culprit_list} \
             completes at {cut} ns, and not once it has.\n"
        )
    } else {
        format!(
            "key {key} is not linearizable once {culprit_list} completes at {cut} ns. (Whether it \
             was linearizable until then could not be decided within the search budget.)\n"
        )
    };
    if let Some(hint) = hint(&base, cut, history) {
        explanation.push_str(&hint);
        explanation.push('\n');
    }
    explanation.push_str(&format!(
        "These {} operations admit no order that respects real time and the register's \
         semantics{}:\n",
        minimal.len(),
        if shrunk {
            ""
        } else {
            " (the search budget ran out before they were shrunk to a minimum)"
        }
    ));
    for op in minimal.iter().take(EXPLAIN_OPS_MAX) {
        let mark = if culprits.contains(&op) {
            "   <- the violation surfaces here"
        } else {
            ""
        };
        explanation.push_str(&format!("  {op}{mark}\n"));
    }
    if minimal.len() > EXPLAIN_OPS_MAX {
        explanation.push_str(&format!(
            "  ... and {} more\n",
            minimal.len() - EXPLAIN_OPS_MAX
        ));
    }
    Linearizability::NotLinearizable {
        key,
        minimal,
        explanation,
    }
}

/// Most operations an explanation spells out; the witness itself is returned whole.
const EXPLAIN_OPS_MAX: usize = 100;

/// Most candidate sub-histories [`shrink`] tries.
const SHRINK_TRIES_MAX: usize = 10_000;

/// Shrinks `base` (a prefix cut at `cut` that is not linearizable) while it stays a witness:
/// not linearizable, linearizable once the operations completing at `cut` are left running, and
/// with a writer for every value read or cas-ed from that `base` has a writer for. Whole runs of
/// operations are dropped first, halving their length, then single ones until none can go
/// (delta debugging). Returns the witness and whether it is 1-minimal (the budget held).
///
/// When `base` is not known to be linearizable before `cut` (`earliest` is false), the second
/// property cannot be asked of the candidates either, and is dropped.
fn shrink(base: &[KOp], cut: u64, earliest: bool, budget: Budget) -> (Vec<KOp>, bool) {
    let written: HashSet<i64> = base.iter().filter_map(|op| op.act.writes()).collect();
    let mut spent = 0u64;
    let mut tries = 0usize;
    let max = budget.max_steps_per_key;
    let witness_ok = |candidate: &[KOp], spent: &mut u64| -> bool {
        let mut writes: HashSet<i64> = HashSet::new();
        for op in candidate {
            writes.extend(op.act.writes());
        }
        let closed = candidate.iter().all(|op| match op.act {
            // Only completed observers need a writer: indefinite ones can simply not happen.
            Act::Read(Some(v)) | Act::Cas(v, _) if op.ret.is_some() => {
                !written.contains(&v) || writes.contains(&v)
            }
            _ => true,
        });
        if !closed {
            return false;
        }
        if blatant(candidate).is_none() {
            let whole = search(candidate, max);
            *spent += whole.steps;
            if whole.verdict != Verdict::Violation {
                return false;
            }
        }
        if !earliest {
            return true;
        }
        let before = search(&prefix(candidate, cut.checked_sub(1)), max);
        *spent += before.steps;
        before.verdict == Verdict::Linearizable
    };
    let mut witness = base.to_vec();
    // Violations are local, so the latest-invoked operations are tried first, in windows that
    // double, before the whole prefix is shrunk: on a long history that saves searching halves
    // of it that cannot matter.
    let mut window = 8;
    while window < base.len() && spent <= max {
        let from = base.len() - window;
        let candidate: Vec<KOp> = base
            .iter()
            .enumerate()
            .filter(|&(k, op)| k >= from || op.ret == Some(cut))
            .map(|(_, op)| *op)
            .collect();
        tries += 1;
        if witness_ok(&candidate, &mut spent) {
            witness = candidate;
            break;
        }
        window *= 2;
    }
    let mut chunk = (witness.len() / 2).max(1);
    loop {
        let mut changed = false;
        let mut at = 0;
        while at < witness.len() {
            if spent > max || tries >= SHRINK_TRIES_MAX {
                return (witness, false);
            }
            let end = (at + chunk).min(witness.len());
            // The operations completing at the cut are where the violation surfaces: they stay.
            let candidate: Vec<KOp> = witness
                .iter()
                .enumerate()
                .filter(|&(k, op)| !(at..end).contains(&k) || op.ret == Some(cut))
                .map(|(_, op)| *op)
                .collect();
            if candidate.len() < witness.len() {
                tries += 1;
                if witness_ok(&candidate, &mut spent) {
                    witness = candidate;
                    changed = true;
                    continue;
                }
            }
            at = end;
        }
        if chunk > 1 {
            chunk /= 2;
        } else if !changed {
            return (witness, true);
        }
    }
}

/// A specific reason, when the violation is one that needs no search (see [`blatant`]).
fn hint(base: &[KOp], cut: u64, history: &[Operation]) -> Option<String> {
    let found = blatant(base).filter(|f| f.at == cut)?;
    let observer = &base[found.observer];
    let show = |k: usize| history[base[k].orig].to_string();
    let what = |v: i64| {
        if matches!(observer.act, Act::Read(_)) {
            format!("{v} was read")
        } else {
            format!("a cas from {v} succeeded")
        }
    };
    Some(match (found.why, observer.act.needs()) {
        (Why::NeverWritten, Some(v)) => {
            format!("Nothing invoked by then writes {v}, yet {}.", what(v))
        }
        (Why::Overwritten { writer, by }, Some(v)) => format!(
            "{} after every write of it had been overwritten: the last, `{}`, by `{}`, which \
             completed before `{}` began.",
            what(v),
            show(writer),
            show(by),
            show(found.observer)
        ),
        (Why::ReadAbsent { after }, _) => format!(
            "The key was read as absent although `{}` had completed before the read began, and \
             nothing deletes a key.",
            show(after)
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{
        Config as ProptestConfig, RngAlgorithm, TestCaseError, TestRng, TestRunner,
    };
    use std::collections::BTreeMap;
    use std::fmt::Debug;

    fn op(p: u64, invoke: u64, complete: Option<u64>, op: KvOp, outcome: Outcome) -> Operation {
        Operation {
            process: p,
            invoke_ns: invoke,
            complete_ns: complete,
            op,
            outcome,
        }
    }

    /// A read of key 0 returning `value`.
    fn read(p: u64, invoke: u64, complete: u64, value: Option<i64>) -> Operation {
        op(
            p,
            invoke,
            Some(complete),
            KvOp::Read { key: 0 },
            Outcome::Ok(value),
        )
    }

    fn write(p: u64, invoke: u64, complete: u64, value: i64) -> Operation {
        op(
            p,
            invoke,
            Some(complete),
            KvOp::Write { key: 0, value },
            Outcome::Ok(None),
        )
    }

    fn write_unknown(p: u64, invoke: u64, value: i64) -> Operation {
        op(
            p,
            invoke,
            None,
            KvOp::Write { key: 0, value },
            Outcome::Unknown,
        )
    }

    fn cas(p: u64, invoke: u64, complete: u64, from: i64, to: i64, ok: bool) -> Operation {
        let outcome = if ok { Outcome::Ok(None) } else { Outcome::Fail };
        op(
            p,
            invoke,
            Some(complete),
            KvOp::Cas { key: 0, from, to },
            outcome,
        )
    }

    fn cas_unknown(p: u64, invoke: u64, from: i64, to: i64) -> Operation {
        op(
            p,
            invoke,
            None,
            KvOp::Cas { key: 0, from, to },
            Outcome::Unknown,
        )
    }

    fn on_key(mut o: Operation, key: u64) -> Operation {
        o.op = match o.op {
            KvOp::Read { .. } => KvOp::Read { key },
            KvOp::Write { value, .. } => KvOp::Write { key, value },
            KvOp::Cas { from, to, .. } => KvOp::Cas { key, from, to },
        };
        o
    }

    fn verdict(history: &[Operation]) -> Linearizability {
        check(history, Budget::default())
    }

    fn assert_linearizable(history: &[Operation]) {
        let v = verdict(history);
        assert!(v.is_linearizable(), "expected linearizable, got {v:#?}");
        assert!(brute_force(history), "the oracle disagrees");
    }

    /// Asserts a violation on `key` whose minimal sub-history is `expected` (in any order), and
    /// that the minimal sub-history fails on its own. Returns the explanation.
    fn assert_violation(history: &[Operation], key: u64, expected: &[Operation]) -> String {
        assert!(
            !brute_force(history),
            "the oracle finds the history linearizable"
        );
        match verdict(history) {
            Linearizability::NotLinearizable {
                key: k,
                minimal,
                explanation,
            } => {
                assert_eq!(k, key, "{explanation}");
                let mut got = minimal.clone();
                let mut want = expected.to_vec();
                got.sort_by_key(|o| (o.invoke_ns, o.complete_ns, format!("{o}")));
                want.sort_by_key(|o| (o.invoke_ns, o.complete_ns, format!("{o}")));
                assert_eq!(got, want, "{explanation}");
                assert!(
                    !verdict(&minimal).is_linearizable(),
                    "the minimal history passes on its own: {explanation}"
                );
                explanation
            }
            other => panic!("expected a violation, got {other:#?}"),
        }
    }

    #[test]
    fn the_empty_history_is_linearizable() {
        assert_linearizable(&[]);
    }

    #[test]
    fn a_sequential_history_that_follows_the_register_is_linearizable() {
        assert_linearizable(&[
            read(0, 0, 1, None),
            write(0, 2, 3, 1),
            read(1, 4, 5, Some(1)),
            cas(0, 6, 7, 1, 2, true),
            cas(1, 8, 9, 1, 3, false),
            read(0, 10, 11, Some(2)),
        ]);
    }

    #[test]
    fn a_stale_read_after_a_completed_write_is_a_violation() {
        let h = [write(0, 0, 10, 1), read(1, 20, 30, None)];
        let explanation = assert_violation(&h, 0, &h);
        assert!(explanation.contains("read as absent"), "{explanation}");
        assert!(explanation.contains("surfaces here"), "{explanation}");
    }

    #[test]
    fn a_read_of_an_overwritten_value_is_a_violation() {
        let h = [
            write(0, 0, 10, 1),
            write(0, 20, 30, 2),
            read(1, 40, 50, Some(1)),
        ];
        let explanation = assert_violation(&h, 0, &h);
        assert!(
            explanation.contains("1 was read after every write of it had been overwritten"),
            "{explanation}"
        );
    }

    #[test]
    fn two_sequential_writes_read_in_the_wrong_order_are_a_violation() {
        // The reads run while nothing else does; the second one goes back in time. The write
        // of 2 had completed before it began, which is all the witness needs.
        let h = [
            write(0, 0, 10, 1),
            write(0, 20, 30, 2),
            read(1, 35, 40, Some(2)),
            read(1, 45, 50, Some(1)),
            read(2, 60, 70, Some(2)),
        ];
        assert_violation(&h, 0, &[h[0].clone(), h[1].clone(), h[3].clone()]);
    }

    #[test]
    fn concurrent_writes_are_linearizable_in_the_order_the_reads_show() {
        let h = [
            write(0, 0, 100, 1),
            write(1, 0, 100, 2),
            read(2, 110, 120, Some(2)),
        ];
        assert_linearizable(&h);
        let mut later = h.to_vec();
        later.push(read(2, 130, 140, Some(1)));
        assert_violation(&later, 0, &later);
    }

    #[test]
    fn concurrent_operations_linearizable_in_only_one_order() {
        // Both reads overlap the cas; only read 1, cas, read 2 works.
        let h = [
            write(0, 0, 10, 1),
            cas(1, 20, 60, 1, 2, true),
            read(2, 20, 40, Some(1)),
            read(3, 25, 70, Some(2)),
            read(2, 45, 50, Some(2)),
        ];
        assert_linearizable(&h);
        // If the read of 1 starts after a read of 2 completed, no order works.
        let h = [
            write(0, 0, 10, 1),
            cas(1, 20, 60, 1, 2, true),
            read(2, 20, 30, Some(2)),
            read(3, 35, 70, Some(1)),
        ];
        assert_violation(&h, 0, &h);
    }

    #[test]
    fn cas_succeeds_only_on_the_value_it_expects() {
        assert_linearizable(&[
            write(0, 0, 10, 1),
            cas(1, 20, 30, 1, 2, true),
            read(0, 40, 50, Some(2)),
        ]);
        let h = [write(0, 0, 10, 1), cas(1, 20, 30, 5, 6, true)];
        let explanation = assert_violation(&h, 0, &h[1..]);
        assert!(
            explanation.contains("a cas from 5 succeeded"),
            "{explanation}"
        );
        // Two successful cas from the same value cannot both have seen it.
        let h = [
            write(0, 0, 10, 1),
            cas(1, 20, 30, 1, 2, true),
            cas(2, 20, 30, 1, 3, true),
        ];
        assert_violation(&h, 0, &h);
    }

    #[test]
    fn definite_failures_did_not_happen() {
        // The failed cas's precondition held, but a failure is not a claim about the value.
        assert_linearizable(&[
            write(0, 0, 10, 1),
            cas(1, 20, 30, 1, 2, false),
            read(0, 40, 50, Some(1)),
        ]);
        let failed_write = op(
            0,
            0,
            Some(10),
            KvOp::Write { key: 0, value: 1 },
            Outcome::Fail,
        );
        assert_linearizable(&[failed_write.clone(), read(1, 20, 30, None)]);
        let h = [failed_write, read(1, 20, 30, Some(1))];
        let explanation = assert_violation(&h, 0, &h[1..]);
        assert!(
            explanation.contains("Nothing invoked by then writes 1"),
            "{explanation}"
        );
        // A failed read is dropped too.
        let failed_read = op(0, 0, Some(1), KvOp::Read { key: 0 }, Outcome::Fail);
        assert_linearizable(&[write(0, 2, 3, 1), failed_read]);
    }

    #[test]
    fn an_unknown_write_may_or_may_not_have_happened() {
        let h = [write(0, 0, 10, 1), write_unknown(1, 20, 2)];
        assert_linearizable(&[h[0].clone(), h[1].clone(), read(2, 30, 40, Some(2))]);
        assert_linearizable(&[h[0].clone(), h[1].clone(), read(2, 30, 40, Some(1))]);
        // It may take effect long after it was invoked...
        assert_linearizable(&[
            h[0].clone(),
            h[1].clone(),
            read(2, 30, 40, Some(1)),
            read(2, 1_000, 1_010, Some(2)),
        ]);
        // ...but only once.
        let back = [
            h[0].clone(),
            h[1].clone(),
            read(2, 30, 40, Some(2)),
            read(2, 50, 60, Some(1)),
        ];
        assert_violation(&back, 0, &back);
        // And not before it was invoked.
        let early = [read(2, 0, 10, Some(2)), write_unknown(1, 20, 2)];
        let explanation = assert_violation(&early, 0, &early[..1]);
        assert!(
            explanation.contains("Nothing invoked by then writes 2"),
            "{explanation}"
        );
    }

    #[test]
    fn an_unknown_write_is_used_at_most_once() {
        let h = [
            write_unknown(0, 0, 1),
            write(1, 1, 2, 2),
            read(1, 3, 4, Some(1)),
            write(1, 5, 6, 3),
            read(1, 7, 8, Some(1)),
        ];
        // The first read is what uses up the unknown write; the write of 2 is not needed.
        let witness = [h[0].clone(), h[2].clone(), h[3].clone(), h[4].clone()];
        assert_violation(&h, 0, &witness);
        // A second unknown write of the same value lets both reads happen.
        let mut two = h.to_vec();
        two.push(write_unknown(2, 0, 1));
        assert_linearizable(&two);
    }

    #[test]
    fn unknown_cas_steps_chain() {
        let base = [
            write(0, 0, 1, 1),
            cas_unknown(1, 2, 1, 2),
            cas_unknown(2, 2, 2, 3),
        ];
        let with = |reads: &[Operation]| [&base[..], reads].concat();
        assert_linearizable(&with(&[read(3, 10, 11, Some(3))]));
        assert_linearizable(&with(&[read(3, 10, 11, Some(2)), read(3, 12, 13, Some(3))]));
        let h = with(&[read(3, 10, 11, Some(3)), read(3, 12, 13, Some(2))]);
        assert_violation(&h, 0, &h);
        // An unknown write then an unknown cas.
        assert_linearizable(&[
            write_unknown(0, 0, 5),
            cas_unknown(1, 0, 5, 6),
            read(2, 1, 2, Some(6)),
        ]);
        // A cas that succeeded needs the value an unknown write produced.
        assert_linearizable(&[write_unknown(0, 0, 5), cas(1, 1, 2, 5, 6, true)]);
    }

    #[test]
    fn unknown_reads_constrain_nothing() {
        let unknown_read = op(1, 0, None, KvOp::Read { key: 0 }, Outcome::Unknown);
        assert_linearizable(&[write(0, 0, 10, 1), unknown_read]);
    }

    #[test]
    fn operations_that_touch_in_time_are_concurrent() {
        assert_linearizable(&[write(0, 0, 10, 1), read(1, 10, 20, None)]);
    }

    #[test]
    fn keys_are_independent_and_the_violating_key_is_named() {
        let h = [
            on_key(write(0, 0, 10, 1), 7),
            on_key(read(1, 20, 30, None), 8),
            on_key(read(1, 40, 50, Some(1)), 7),
            on_key(write(0, 0, 10, 1), 9),
            on_key(read(1, 20, 30, Some(2)), 9),
        ];
        assert_violation(&h, 9, &h[4..]);
        assert_linearizable(&h[..3]);
    }

    #[test]
    fn an_exhausted_budget_is_unknown_never_a_pass() {
        let h = [write(0, 0, 10, 1), read(1, 20, 30, Some(1))];
        match check(
            &h,
            Budget {
                max_steps_per_key: 1,
            },
        ) {
            Linearizability::Unknown { reason } => assert!(reason.contains("budget"), "{reason}"),
            other => panic!("expected unknown, got {other:#?}"),
        }
    }

    #[test]
    fn a_blatant_violation_is_reported_even_when_the_budget_runs_out() {
        let h = [
            write(0, 0, 10, 1),
            read(1, 20, 30, Some(1)),
            read(1, 40, 50, Some(1)),
            write(0, 60, 70, 2),
            read(1, 80, 90, Some(9)),
        ];
        let tiny = Budget {
            max_steps_per_key: 3,
        };
        match check(&h, tiny) {
            Linearizability::NotLinearizable {
                key,
                minimal,
                explanation,
            } => {
                assert_eq!(key, 0);
                assert_eq!(minimal, [h[4].clone()], "{explanation}");
                assert!(
                    explanation.contains("could not be decided"),
                    "{explanation}"
                );
            }
            other => panic!("expected a violation, got {other:#?}"),
        }
    }

    #[test]
    fn malformed_operations_are_reported() {
        for bad in [
            write(0, 10, 5, 1),
            op(
                0,
                0,
                None,
                KvOp::Write { key: 0, value: 1 },
                Outcome::Ok(None),
            ),
            op(
                0,
                0,
                Some(1),
                KvOp::Write { key: 0, value: 1 },
                Outcome::Ok(Some(1)),
            ),
        ] {
            match verdict(&[bad]) {
                Linearizability::Unknown { reason } => {
                    assert!(reason.contains("malformed"), "{reason}");
                }
                other => panic!("expected unknown, got {other:#?}"),
            }
        }
    }

    #[test]
    fn a_long_overlapping_history_takes_linear_steps() {
        let mut h = Vec::new();
        for k in 0..10_000u64 {
            let t = 10 * k;
            let v = i64::try_from(k).unwrap();
            h.push(write(k % 5, t, t + 15, v));
            h.push(read(5 + k % 5, t + 16, t + 18, Some(v)));
        }
        let mut ops: Vec<KOp> = h
            .iter()
            .enumerate()
            .filter_map(|(i, o)| KOp::from_operation(i, o).unwrap())
            .collect();
        ops.sort_by_key(|op| (op.invoke, op.orig));
        let result = search(&ops, u64::MAX);
        assert_eq!(result.verdict, Verdict::Linearizable);
        assert!(result.steps < 10 * h.len() as u64, "{} steps", result.steps);
    }

    // ---- The oracle ----

    /// Whether `history` is linearizable, by trying every order: the definition, for a handful
    /// of operations. It shares no code with the checker.
    fn brute_force(history: &[Operation]) -> bool {
        let ops: Vec<&Operation> = history
            .iter()
            .filter(|o| match o.outcome {
                Outcome::Fail => false,
                Outcome::Unknown => !matches!(o.op, KvOp::Read { .. }),
                Outcome::Ok(_) => true,
            })
            .collect();
        fn go(ops: &[&Operation], done: &mut Vec<bool>, state: &mut BTreeMap<u64, i64>) -> bool {
            let pending = |o: &Operation| o.outcome != Outcome::Unknown;
            if ops.iter().zip(done.iter()).all(|(o, &d)| d || !pending(o)) {
                return true;
            }
            for i in 0..ops.len() {
                if done[i] {
                    continue;
                }
                let o = ops[i];
                // Nothing left may have completed before this one was invoked.
                let blocked = ops.iter().zip(done.iter()).any(|(p, &d)| {
                    !d && pending(p) && p.complete_ns.is_some_and(|c| c < o.invoke_ns)
                });
                if blocked {
                    continue;
                }
                let key = o.op.key();
                let before = state.get(&key).copied();
                let after = match (o.op, o.outcome) {
                    (KvOp::Read { .. }, Outcome::Ok(v)) if v == before => before,
                    (KvOp::Read { .. }, _) => continue,
                    (KvOp::Write { value, .. }, _) => Some(value),
                    (KvOp::Cas { from, to, .. }, _) if before == Some(from) => Some(to),
                    (KvOp::Cas { .. }, Outcome::Unknown) => before,
                    (KvOp::Cas { .. }, _) => continue,
                };
                if let Some(v) = after {
                    state.insert(key, v);
                }
                done[i] = true;
                let found = go(ops, done, state);
                done[i] = false;
                match before {
                    Some(v) => state.insert(key, v),
                    None => state.remove(&key),
                };
                if found {
                    return true;
                }
            }
            false
        }
        go(&ops, &mut vec![false; ops.len()], &mut BTreeMap::new())
    }

    // ---- Properties ----

    /// Runs a property with a fresh seed, or `LINEARIZABLE_SEED` to replay, and names the seed
    /// if it fails.
    fn run_property<S>(
        name: &str,
        cases: u32,
        strategy: S,
        test: impl Fn(S::Value) -> Result<(), TestCaseError>,
    ) where
        S: Strategy,
        S::Value: Debug,
    {
        let seed = std::env::var("LINEARIZABLE_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
                now.map_or(0, |d| d.as_nanos() as u64)
            });
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        let config = ProptestConfig {
            cases,
            failure_persistence: None,
            ..ProptestConfig::default()
        };
        let mut runner =
            TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
        if let Err(e) = runner.run(&strategy, test) {
            panic!("{name} failed with seed {seed} (replay: LINEARIZABLE_SEED={seed}): {e}");
        }
    }

    /// One operation of a generated sequential execution.
    #[derive(Clone, Debug)]
    struct Step {
        client: usize,
        key: u64,
        kind: u8,
        a: i64,
        b: i64,
        /// Time from the previous operation's linearization point to this one's.
        gap: u64,
        /// How long before its linearization point it was invoked.
        pre: u64,
        /// How long after it completed.
        post: u64,
        /// 0: indefinite, took effect; 1: indefinite, did not; 2: failed; otherwise as it ran.
        fate: u8,
    }

    fn step() -> impl Strategy<Value = Step> {
        (
            0..5usize,
            0..3u64,
            0..3u8,
            0..4i64,
            0..4i64,
            1..6u64,
            0..30u64,
            0..30u64,
            0..16u8,
        )
            .prop_map(|(client, key, kind, a, b, gap, pre, post, fate)| Step {
                client,
                key,
                kind,
                a,
                b,
                gap,
                pre,
                post,
                fate,
            })
    }

    /// A history of registers run one operation at a time, each at a point inside an interval
    /// that overlaps its neighbours': linearizable by construction.
    fn sequential(clients: usize, steps: &[Step]) -> Vec<Operation> {
        let mut free = vec![0u64; clients];
        let mut now = 0u64;
        let mut registers: BTreeMap<u64, i64> = BTreeMap::new();
        let mut history = Vec::new();
        for s in steps {
            let c = s.client % clients;
            now = (now + s.gap).max(free[c] + 1);
            let invoke = now.saturating_sub(s.pre).max(free[c] + 1);
            let complete = now + s.post;
            free[c] = complete;
            let key = s.key;
            let kv = match s.kind {
                0 => KvOp::Read { key },
                1 => KvOp::Write { key, value: s.a },
                _ => KvOp::Cas {
                    key,
                    from: s.a,
                    to: s.b,
                },
            };
            let current = registers.get(&key).copied();
            let happens = match s.fate {
                1 | 2 => false,
                _ => match kv {
                    KvOp::Read { .. } | KvOp::Write { .. } => true,
                    KvOp::Cas { from, .. } => current == Some(from),
                },
            };
            if happens {
                match kv {
                    KvOp::Write { value, .. } | KvOp::Cas { to: value, .. } => {
                        registers.insert(key, value);
                    }
                    KvOp::Read { .. } => {}
                }
            }
            let outcome = match (s.fate, kv) {
                (0 | 1, _) => Outcome::Unknown,
                (2, _) => Outcome::Fail,
                (_, KvOp::Read { .. }) => Outcome::Ok(current),
                (_, KvOp::Cas { .. }) if !happens => Outcome::Fail,
                _ => Outcome::Ok(None),
            };
            let complete_ns = (outcome != Outcome::Unknown).then_some(complete);
            history.push(op(c as u64, invoke, complete_ns, kv, outcome));
        }
        history
    }

    #[test]
    fn sequential_executions_with_overlapping_intervals_are_linearizable() {
        run_property(
            "sequential executions are linearizable",
            256,
            (1..=5usize, prop::collection::vec(step(), 1..120)),
            |(clients, steps)| {
                let history = sequential(clients, &steps);
                let v = verdict(&history);
                prop_assert!(v.is_linearizable(), "{v:#?}\non {history:#?}");
                Ok(())
            },
        );
    }

    #[test]
    fn a_read_of_a_value_never_written_is_found() {
        run_property(
            "a read of a value never written is found",
            256,
            (
                1..=5usize,
                prop::collection::vec(step(), 1..120),
                any::<prop::sample::Index>(),
            ),
            |(clients, steps, pick)| {
                let mut history = sequential(clients, &steps);
                let reads: Vec<usize> = (0..history.len())
                    .filter(|&i| {
                        matches!(
                            (history[i].op, history[i].outcome),
                            (KvOp::Read { .. }, Outcome::Ok(_))
                        )
                    })
                    .collect();
                prop_assume!(!reads.is_empty());
                let mutated = reads[pick.index(reads.len())];
                history[mutated].outcome = Outcome::Ok(Some(1_000_000));
                match verdict(&history) {
                    Linearizability::NotLinearizable {
                        key,
                        minimal,
                        explanation,
                    } => {
                        prop_assert_eq!(key, history[mutated].op.key(), "{}", explanation);
                        prop_assert!(minimal.contains(&history[mutated]), "{}", explanation);
                        prop_assert!(
                            !verdict(&minimal).is_linearizable(),
                            "the minimal history passes: {}",
                            explanation
                        );
                    }
                    other => prop_assert!(false, "expected a violation, got {other:#?}"),
                }
                Ok(())
            },
        );
    }

    fn arbitrary_op() -> impl Strategy<Value = Operation> {
        (
            0..2u64,
            0..3u8,
            0..3i64,
            0..3i64,
            0..16u64,
            0..8u64,
            0..6u8,
            prop::option::of(0..3i64),
        )
            .prop_map(|(key, kind, a, b, invoke, length, fate, read)| {
                let kv = match kind {
                    0 => KvOp::Read { key },
                    1 => KvOp::Write { key, value: a },
                    _ => KvOp::Cas {
                        key,
                        from: a,
                        to: b,
                    },
                };
                let outcome = match (fate, kv) {
                    (0, _) => Outcome::Unknown,
                    (1, _) => Outcome::Fail,
                    (_, KvOp::Read { .. }) => Outcome::Ok(read),
                    _ => Outcome::Ok(None),
                };
                let complete = (outcome != Outcome::Unknown).then_some(invoke + length);
                op(u64::from(kind), invoke, complete, kv, outcome)
            })
    }

    /// The history cut just after `t`, as the module documentation defines it.
    fn cut_history(history: &[Operation], t: Option<u64>) -> Vec<Operation> {
        let Some(t) = t else {
            return Vec::new();
        };
        history
            .iter()
            .filter(|o| o.invoke_ns <= t && o.outcome != Outcome::Fail)
            .filter_map(|o| match o.complete_ns {
                Some(c) if c <= t && o.outcome != Outcome::Unknown => Some(o.clone()),
                _ if matches!(o.op, KvOp::Read { .. }) => None,
                _ => Some(Operation {
                    complete_ns: None,
                    outcome: Outcome::Unknown,
                    ..o.clone()
                }),
            })
            .collect()
    }

    #[test]
    fn violations_surface_where_the_report_says() {
        run_property(
            "violations surface where the report says",
            2_000,
            prop::collection::vec(arbitrary_op(), 0..8),
            |history| {
                for key in 0..2 {
                    let on_key: Vec<Operation> = history
                        .iter()
                        .filter(|o| o.op.key() == key)
                        .cloned()
                        .collect();
                    let mut ops: Vec<KOp> = on_key
                        .iter()
                        .enumerate()
                        .filter_map(|(i, o)| KOp::from_operation(i, o).unwrap())
                        .collect();
                    ops.sort_by_key(|op| (op.invoke, op.orig));
                    if let Some(found) = blatant(&ops) {
                        prop_assert!(
                            !brute_force(&cut_history(&on_key, Some(found.at))),
                            "{found:?}"
                        );
                    }
                    // With no first search, blatant violations are looked for straight away.
                    let verdict = check_key(&ops, u64::MAX);
                    prop_assert_eq!(verdict, check_key_with(&ops, u64::MAX, 0));
                    match verdict {
                        KeyVerdict::Violation { cut, earliest } => {
                            prop_assert!(earliest);
                            prop_assert!(!brute_force(&cut_history(&on_key, Some(cut))));
                            prop_assert!(brute_force(&cut_history(&on_key, cut.checked_sub(1))));
                        }
                        v => prop_assert!(brute_force(&on_key), "{v:?}"),
                    }
                }
                Ok(())
            },
        );
    }

    #[test]
    fn the_checker_agrees_with_trying_every_order() {
        run_property(
            "the checker agrees with the oracle",
            2_000,
            prop::collection::vec(arbitrary_op(), 0..8),
            |history| {
                let v = verdict(&history);
                prop_assert_eq!(v.is_linearizable(), brute_force(&history), "{:#?}", v);
                if let Linearizability::NotLinearizable {
                    minimal,
                    explanation,
                    ..
                } = v
                {
                    prop_assert!(!minimal.is_empty());
                    prop_assert!(!brute_force(&minimal), "{}", explanation);
                }
                Ok(())
            },
        );
    }
}
