//! The scan for *blatant* violations: observers that no order can satisfy, whatever the other
//! operations do, found in O(n log n) without search.
//!
//! It is exact in one direction only: everything [`blatant`] reports is a violation, but a
//! history it passes may still be one that only the search finds. The checker uses it to bound
//! the search (only the history before the first blatant violation needs searching) and to
//! explain a violation in words.

use super::ints::FastMap;
use super::ops::{Act, KOp};

/// A violation that needs no search: an observer (a read, or a cas that succeeded) that no
/// order can satisfy, whatever the other operations do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Blatant {
    /// The observer's completion time.
    pub(super) at: u64,
    /// The observer, as an index into the operations given to [`blatant`].
    pub(super) observer: usize,
    pub(super) why: Why,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Why {
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
pub(super) fn blatant(ops: &[KOp]) -> Option<Blatant> {
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
