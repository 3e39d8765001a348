use crate::{CausalContext, Dot, Lattice, ReplicaId};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smallvec::SmallVec;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

/// The dots that keep one element alive. Almost always one, so it lives inline.
type Dots = SmallVec<[Dot; 1]>;

/// An add-wins observed-remove set, without tombstones (Almeida, Shoker, Baquero: "Delta State
/// Replicated Data Types", the AWORSet).
///
/// Every add tags its element with a fresh dot; a remove deletes the dots it has observed. The
/// causal context records every dot the replica has ever seen, so a dot that is in the context
/// but no longer in the store was removed — no per-element tombstone is kept, and the context is
/// a version vector plus the few dots that arrived out of order.
///
/// - A remove and a concurrent add of the same element: the add's dot was not observed by the
///   remove, so it survives — add wins.
/// - A remove that arrives before the add it observed: the remove's context holds the add's dot,
///   so when the add arrives its dot is already "seen and absent" and it stays dead. Nothing is
///   deferred; the context alone decides.
///
/// Invariants (checked on decode): every element has at least one dot, its dots are sorted and
/// unique, no dot tags two elements, and every dot in the store is in the context.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OrSet<E: Ord> {
    entries: BTreeMap<E, Dots>,
    ctx: CausalContext,
}

impl<E: Ord> Default for OrSet<E> {
    fn default() -> Self {
        OrSet {
            entries: BTreeMap::new(),
            ctx: CausalContext::new(),
        }
    }
}

impl<E: Ord + Clone> OrSet<E> {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `element` is in the set.
    pub fn contains(&self, element: &E) -> bool {
        self.entries.contains_key(element)
    }

    /// The elements, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &E> {
        self.entries.keys()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the set has no element.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every dot this replica has seen, live or removed.
    pub fn context(&self) -> &CausalContext {
        &self.ctx
    }

    /// The dots keeping `element` alive (empty if absent).
    pub fn dots_of(&self, element: &E) -> &[Dot] {
        self.entries.get(element).map_or(&[], |d| d.as_slice())
    }

    /// The live elements with the dots keeping each alive, in element order.
    pub(crate) fn entries(&self) -> impl ExactSizeIterator<Item = (&E, &[Dot])> {
        self.entries.iter().map(|(e, d)| (e, d.as_slice()))
    }
}

impl<E: Ord> OrSet<E> {
    /// The set made of `entries` and `ctx`, validated exactly as decoding validates: every element
    /// has at least one dot, its dots are sorted and unique, no dot tags two elements, every dot
    /// is in the context and no element is listed twice.
    pub(crate) fn from_parts(
        entries: impl IntoIterator<Item = (E, Vec<Dot>)>,
        ctx: CausalContext,
    ) -> Result<Self, &'static str> {
        let mut map = BTreeMap::new();
        let mut seen = BTreeSet::new();
        for (element, dots) in entries {
            if dots.is_empty() {
                return Err("or-set element without dots");
            }
            if !dots.windows(2).all(|w| w[0] < w[1]) {
                return Err("or-set dots not sorted and unique");
            }
            for dot in &dots {
                if !ctx.contains(dot) {
                    return Err("or-set dot missing from its causal context");
                }
                if !seen.insert(*dot) {
                    return Err("or-set dot tags two elements");
                }
            }
            if map.insert(element, Dots::from_vec(dots)).is_some() {
                return Err("or-set element listed twice");
            }
        }
        Ok(OrSet { entries: map, ctx })
    }
}

impl<E: Ord + Clone> OrSet<E> {
    /// Adds `element` on behalf of `replica`; returns the delta.
    ///
    /// The new dot replaces the element's old dots, which the delta's context marks as seen: the
    /// element stays alive by one dot however often it is re-added.
    pub fn add(&mut self, replica: ReplicaId, element: E) -> OrSet<E> {
        let dot = self.ctx.next_dot(replica);
        let mut delta_ctx = CausalContext::from_dots(self.dots_of(&element).iter().copied());
        delta_ctx.insert_dot(dot);
        self.ctx.insert_dot(dot);
        self.entries
            .insert(element.clone(), smallvec::smallvec![dot]);
        OrSet {
            entries: BTreeMap::from([(element, smallvec::smallvec![dot])]),
            ctx: delta_ctx,
        }
    }

    /// Removes `element` (the adds of it this replica has observed); returns the delta.
    pub fn remove(&mut self, element: &E) -> OrSet<E> {
        match self.entries.remove(element) {
            Some(dots) => OrSet {
                entries: BTreeMap::new(),
                ctx: CausalContext::from_dots(dots),
            },
            None => OrSet::new(),
        }
    }
}

/// The dots of one element that survive a join: those both sides hold, plus those one side holds
/// that the other has never seen. `a` and `b` are sorted.
fn join_dots(a: &[Dot], a_ctx: &CausalContext, b: &[Dot], b_ctx: &CausalContext) -> Dots {
    let mut out = Dots::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let order = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => Ordering::Less,
            (None, _) => Ordering::Greater,
        };
        match order {
            Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
            Ordering::Less => {
                if !b_ctx.contains(&a[i]) {
                    out.push(a[i]);
                }
                i += 1;
            }
            Ordering::Greater => {
                if !a_ctx.contains(&b[j]) {
                    out.push(b[j]);
                }
                j += 1;
            }
        }
    }
    out
}

impl<E: Ord + Clone + std::fmt::Debug> Lattice for OrSet<E> {
    fn bottom() -> Self {
        Self::new()
    }

    fn join(&mut self, mut other: Self) {
        // One merge-join pass over both sorted maps, filtering dots in place. Afterwards both maps
        // hold the joined dots of every element they share, and an element whose dots all died
        // is emptied on whichever side holds it.
        let mut ours_emptied = false;
        let mut theirs_emptied = false;
        let mut theirs_new = 0usize;
        {
            let mut a = self.entries.iter_mut().peekable();
            let mut b = other.entries.iter_mut().peekable();
            loop {
                let order = match (a.peek(), b.peek()) {
                    (Some((x, _)), Some((y, _))) => x.cmp(y),
                    (Some(_), None) => Ordering::Less,
                    (None, Some(_)) => Ordering::Greater,
                    (None, None) => break,
                };
                // The `expect`s below cannot fire: `order` was computed from the peeked items.
                match order {
                    Ordering::Less => {
                        let (_, dots) = a.next().expect("peeked");
                        dots.retain(|d| !other.ctx.contains(d));
                        ours_emptied |= dots.is_empty();
                    }
                    Ordering::Greater => {
                        let (_, dots) = b.next().expect("peeked");
                        dots.retain(|d| !self.ctx.contains(d));
                        if dots.is_empty() {
                            theirs_emptied = true;
                        } else {
                            theirs_new += 1;
                        }
                    }
                    Ordering::Equal => {
                        let (_, da) = a.next().expect("peeked");
                        let (_, db) = b.next().expect("peeked");
                        // Identical dots, the common case between replicas in sync, need no work.
                        if da != db {
                            let joined = join_dots(da, &self.ctx, db, &other.ctx);
                            if joined.is_empty() {
                                ours_emptied = true;
                                theirs_emptied = true;
                            }
                            da.clone_from(&joined);
                            *db = joined;
                        }
                    }
                }
            }
        }
        if ours_emptied {
            self.entries.retain(|_, dots| !dots.is_empty());
        }
        if theirs_new.saturating_mul(8) < self.entries.len() {
            // Few new elements (replicas nearly in sync): find them with a second sorted pass over
            // the keys and insert them one by one into our tree.
            let mut ours = self.entries.keys().peekable();
            let mut fresh = Vec::with_capacity(theirs_new);
            for (element, dots) in other.entries {
                while ours.next_if(|e| **e < element).is_some() {}
                if dots.is_empty() || ours.next_if(|e| **e == element).is_some() {
                    continue;
                }
                fresh.push((element, dots));
            }
            self.entries.extend(fresh);
        } else {
            // Many (diverged replicas): `append` builds one tree from both sorted maps in a single
            // pass, without an intermediate buffer; shared elements hold equal dots on both sides.
            if theirs_emptied {
                other.entries.retain(|_, dots| !dots.is_empty());
            }
            self.entries.append(&mut other.entries);
        }
        self.ctx.union(&other.ctx);
    }

    fn leq(&self, other: &Self) -> bool {
        // `other` has seen every dot `self` has, and every live dot of `other` that `self` has
        // seen is live in `self` too (otherwise `self` removed it and the join would drop it).
        self.ctx.leq(&other.ctx)
            && other.entries.iter().all(|(e, dots)| {
                dots.iter()
                    .all(|d| !self.ctx.contains(d) || self.dots_of(e).contains(d))
            })
    }
}

impl<E: Ord + Serialize> Serialize for OrSet<E> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Raw<'a, E: Ord> {
            entries: Vec<(&'a E, &'a [Dot])>,
            ctx: &'a CausalContext,
        }
        Raw {
            entries: self
                .entries
                .iter()
                .map(|(e, d)| (e, d.as_slice()))
                .collect(),
            ctx: &self.ctx,
        }
        .serialize(serializer)
    }
}

impl<'de, E: Ord + Deserialize<'de>> Deserialize<'de> for OrSet<E> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        struct Raw<E> {
            entries: Vec<(E, Vec<Dot>)>,
            ctx: CausalContext,
        }
        let raw = Raw::<E>::deserialize(deserializer)?;
        OrSet::from_parts(raw.entries, raw.ctx).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ReplicaId = ReplicaId(1);
    const B: ReplicaId = ReplicaId(2);

    #[test]
    fn a_concurrent_add_wins_over_a_remove() {
        let mut a = OrSet::new();
        a.add(A, "x");
        let mut b = a.clone();
        b.remove(&"x");
        a.add(A, "x");
        assert!(a.clone().joined(b.clone()).contains(&"x"));
        assert!(b.joined(a).contains(&"x"));
    }

    #[test]
    fn a_remove_delivered_before_the_add_it_observed_still_wins() {
        let mut origin = OrSet::new();
        let add = origin.add(A, 7u32);
        let remove = origin.remove(&7);
        // A third replica receives the remove first, then the add: the add stays dead and no
        // deferred operation is kept anywhere.
        let mut late = OrSet::new();
        late.join(remove);
        late.join(add);
        assert!(!late.contains(&7));
        assert_eq!(late, origin);
    }

    #[test]
    fn re_adding_keeps_one_dot_per_element() {
        let mut s = OrSet::new();
        for _ in 0..5 {
            s.add(B, 1u8);
        }
        assert_eq!(s.dots_of(&1), &[Dot::new(2, 5)]);
        assert!(s.context().cloud().len() == 0);
    }

    #[test]
    fn decode_refuses_a_dot_outside_the_context() {
        let json = r#"{"entries":[[1,[[1,3]]]],"ctx":{"vv":{"1":2},"cloud":[]}}"#;
        let err = serde_json::from_str::<OrSet<u8>>(json).unwrap_err();
        assert!(err.to_string().contains("causal context"), "{err}");
    }
}
