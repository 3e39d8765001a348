//! The indexes behind the register checks' two relations over a history: what a node
//! *definitely had* ([`FirstHad`], and per node its acknowledged writes, [`NodeWrites`]) and what
//! a write *could have seen* ([`SeenBy`]).
//!
//! Invariant: memory linear in the history, and every question answered by a map lookup, a
//! binary search or a look at two entries, never a scan of the history; a list of every (write,
//! earlier value) pair would grow with the square of the run.

use crate::harness::history::{Event, History, Outcome};
use std::collections::BTreeMap;

/// The earliest place in the order of observations at which each node definitely had each
/// value, by (value, node).
#[derive(Default)]
pub(super) struct FirstHad(BTreeMap<(i64, usize), u64>);

impl FirstHad {
    pub(super) fn add(&mut self, node: usize, value: i64, at: u64) {
        self.0
            .entry((value, node))
            .and_modify(|t| *t = (*t).min(at))
            .or_insert(at);
    }

    pub(super) fn first(&self, node: usize, value: i64) -> Option<u64> {
        self.0.get(&(value, node)).copied()
    }

    /// The nodes that had `value`, each with the earliest time it did.
    pub(super) fn nodes_of(&self, value: i64) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.0
            .range((value, 0)..=(value, usize::MAX))
            .map(|(&(_, node), &t)| (node, t))
    }
}

/// An acknowledged write: when it was invoked, its value, and when its reply was seen.
#[derive(Clone, Copy)]
pub(super) struct Acked {
    pub(super) invoke: u64,
    pub(super) value: i64,
    pub(super) done: Option<u64>,
}

/// One node's acknowledged writes by invocation, with, for every suffix, its two least values
/// and its two earliest acknowledgements (two, so that one write can be left out).
///
/// "The writes invoked after `t`" is a suffix, so each question below is a binary search and a
/// look at two entries: linear memory, where a list of every (write, earlier value) pair grew
/// with the square of the run.
pub(super) struct NodeWrites {
    acked: Vec<Acked>,
    /// Positions in `acked` of the suffix's two least values.
    least: Vec<[Option<usize>; 2]>,
    /// Positions in `acked` of the suffix's two earliest acknowledgements.
    earliest: Vec<[Option<usize>; 2]>,
}

impl NodeWrites {
    pub(super) fn new(mut acked: Vec<Acked>) -> Self {
        acked.sort_by_key(|a| a.invoke);
        let least = suffix_two_least(&acked, |a| Some(a.value));
        let earliest = suffix_two_least(&acked, |a| a.done);
        NodeWrites {
            acked,
            least,
            earliest,
        }
    }

    /// Where the writes invoked strictly after `t` begin.
    fn after(&self, t: u64) -> usize {
        self.acked.partition_point(|a| a.invoke <= t)
    }

    /// The first of `two` whose write's value is not `except`.
    fn other_than(&self, two: Option<&[Option<usize>; 2]>, except: i64) -> Option<&Acked> {
        two?.iter()
            .flatten()
            .map(|&k| &self.acked[k])
            .find(|a| a.value != except)
    }

    /// The least value of a write invoked after `t`, other than `except`.
    pub(super) fn least_after(&self, t: u64, except: i64) -> Option<i64> {
        let k = self.after(t);
        self.other_than(self.least.get(k), except).map(|a| a.value)
    }

    /// The earliest acknowledgement of a write invoked after `t`, other than the write of
    /// `except`.
    pub(super) fn earliest_ack_after(&self, t: u64, except: i64) -> Option<u64> {
        let k = self.after(t);
        self.other_than(self.earliest.get(k), except)
            .and_then(|a| a.done)
    }
}

/// For every suffix `items[k..]`, the positions of its two least keys (items without a key
/// left out; ties keep the earlier position).
pub(super) fn suffix_two_least<T, K: Ord>(
    items: &[T],
    key: impl Fn(&T) -> Option<K>,
) -> Vec<[Option<usize>; 2]> {
    let mut out = vec![[None, None]; items.len()];
    let mut best: [Option<usize>; 2] = [None, None];
    for k in (0..items.len()).rev() {
        if let Some(new) = key(&items[k]) {
            let beats = |slot: Option<usize>| {
                slot.is_none_or(|j| key(&items[j]).is_none_or(|old| old >= new))
            };
            if beats(best[0]) {
                best = [Some(k), best[0]];
            } else if beats(best[1]) {
                best[1] = Some(k);
            }
        }
        out[k] = best;
    }
    out
}

/// Whether a write could have been seen by another write: for every party, the two latest
/// places of it that any write (acknowledged or indefinite) could have known of at its
/// invocation, with whose they are.
pub(super) struct SeenBy(Vec<[Option<(u64, usize)>; 2]>);

impl SeenBy {
    pub(super) fn of(
        history: &History,
        nodes: usize,
        writes: &BTreeMap<i64, (usize, &Event)>,
    ) -> Self {
        let mut counted = vec![false; history.events.len()];
        for &(i, w) in writes.values() {
            counted[i] = !matches!(w.outcome, Outcome::Fail { .. });
        }
        let mut latest: Vec<[Option<(u64, usize)>; 2]> = Vec::new();
        history.reach_each(nodes, |i, known| {
            if !counted[i] {
                return;
            }
            if latest.len() < known.len() {
                latest.resize(known.len(), [None, None]);
            }
            for (slot, &t) in latest.iter_mut().zip(known) {
                let Some(t) = t else { continue };
                if slot[0].is_none_or(|(s, _)| t > s) {
                    *slot = [Some((t, i)), slot[0]];
                } else if slot[1].is_none_or(|(s, _)| t > s) {
                    slot[1] = Some((t, i));
                }
            }
        });
        SeenBy(latest)
    }

    /// Whether some write other than `history.events[write]` could have known of `node`'s
    /// operations up to `invoked`.
    pub(super) fn by_another(&self, write: usize, node: usize, invoked: u64) -> bool {
        self.0
            .get(node)
            .and_then(|two| two.iter().flatten().find(|&&(_, i)| i != write))
            .is_some_and(|&(t, _)| t >= invoked)
    }
}
