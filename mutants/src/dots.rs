//! The dot kernel shared by the OR-set and the multi-value register: a set of integer values,
//! each kept alive by *dots* (one per write that put it there), and a causal context of every dot
//! ever seen.
//!
//! A dot is `(replica, counter)`: the `counter`-th event of `replica`, counted from 1. Replicas
//! are incarnations (see [`crate::incarnation`]), so a restarted node never reuses a dot. The
//! context records every dot seen, so a dot that is in the context but not among the entries was
//! deleted, and the join keeps a dot only if both sides hold it or the side without it has never
//! seen it. Invariants:
//! - Every entry's dot is in the context (the decoder refuses a state that breaks this).
//! - A dot names one value for good: entries never change value, they only leave.
//! - The join is idempotent, commutative and associative, so states and deltas may arrive lost,
//!   duplicated and in any order; a delta is a state too and is joined the same way.
//! - Per replica the context keeps the largest counter below which every dot was seen, plus the
//!   few seen out of order above it, so it stays small however long a run lasts.

use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// One event of one replica: `(replica, counter)`, counters from 1.
pub type Dot = (String, u64);

/// The dots one replica's events that have been seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Seen {
    /// Every counter from 1 to `upto` was seen.
    upto: u64,
    /// Counters above `upto + 1` seen out of order.
    above: BTreeSet<u64>,
}

impl Seen {
    fn contains(&self, counter: u64) -> bool {
        counter <= self.upto || self.above.contains(&counter)
    }

    fn insert(&mut self, counter: u64) {
        if counter > self.upto {
            self.above.insert(counter);
            while self.above.remove(&(self.upto + 1)) {
                self.upto += 1;
            }
        }
    }

    fn highest(&self) -> u64 {
        self.above.last().copied().unwrap_or(self.upto)
    }
}

/// Every dot seen: a causal context.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Context {
    seen: BTreeMap<String, Seen>,
}

impl Context {
    /// Whether `dot` was seen.
    pub fn contains(&self, replica: &str, counter: u64) -> bool {
        self.seen.get(replica).is_some_and(|s| s.contains(counter))
    }

    /// Records `dot` as seen.
    pub fn insert(&mut self, replica: &str, counter: u64) {
        match self.seen.get_mut(replica) {
            Some(seen) => seen.insert(counter),
            None => {
                let mut seen = Seen::default();
                seen.insert(counter);
                self.seen.insert(replica.to_string(), seen);
            }
        }
    }

    /// The next dot of `replica`: one above the highest counter of it seen.
    pub fn next(&self, replica: &str) -> Dot {
        let highest = self.seen.get(replica).map_or(0, Seen::highest);
        (replica.to_string(), highest + 1)
    }

    /// Records every dot `other` has seen.
    pub fn join(&mut self, other: &Context) {
        for (replica, seen) in &other.seen {
            let mine = self.seen.entry(replica.clone()).or_default();
            if seen.upto > mine.upto {
                mine.upto = seen.upto;
                mine.above.retain(|&c| c > seen.upto);
            }
            for &c in &seen.above {
                mine.insert(c);
            }
            // Raising `upto` may have made counters just above it contiguous.
            while mine.above.remove(&(mine.upto + 1)) {
                mine.upto += 1;
            }
        }
    }

    /// `{replica: [upto, [counters above]]}`.
    pub fn to_json(&self) -> Value {
        let map: Map<String, Value> = self
            .seen
            .iter()
            .map(|(r, s)| (r.clone(), json!([s.upto, s.above])))
            .collect();
        Value::Object(map)
    }

    /// The inverse of [`Context::to_json`]; `None` if `value` is not one.
    pub fn from_json(value: &Value) -> Option<Context> {
        let mut ctx = Context::default();
        for (replica, seen) in value.as_object()? {
            let [upto, above] = seen.as_array()?.as_slice() else {
                return None;
            };
            let upto = upto.as_u64()?;
            let mut seen = Seen {
                upto,
                above: BTreeSet::new(),
            };
            for c in above.as_array()? {
                seen.insert(c.as_u64()?);
            }
            ctx.seen.insert(replica.clone(), seen);
        }
        Some(ctx)
    }
}

/// Integer values kept alive by dots, with the context of every dot seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dots {
    /// Per replica, per counter: the value that dot keeps alive.
    entries: BTreeMap<String, BTreeMap<u64, i64>>,
    ctx: Context,
}

impl Dots {
    /// The values alive, each once, in ascending order.
    pub fn values(&self) -> BTreeSet<i64> {
        self.entries
            .values()
            .flat_map(|m| m.values())
            .copied()
            .collect()
    }

    /// Every dot alive, with its value.
    pub fn entries(&self) -> impl Iterator<Item = (Dot, i64)> + '_ {
        self.entries
            .iter()
            .flat_map(|(r, m)| m.iter().map(|(&c, &v)| ((r.clone(), c), v)))
    }

    /// The dots keeping `value` alive.
    pub fn dots_of(&self, value: i64) -> Vec<Dot> {
        self.entries()
            .filter(|(_, v)| *v == value)
            .map(|(d, _)| d)
            .collect()
    }

    /// Whether `dot` is alive.
    pub fn is_alive(&self, dot: &Dot) -> bool {
        self.entries
            .get(&dot.0)
            .is_some_and(|m| m.contains_key(&dot.1))
    }

    /// The causal context.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Writes `value` with a new dot of `replica`, deleting the dots in `replaces`; returns the
    /// delta (the new dot and the deleted ones) and the new dot.
    pub fn write(&mut self, replica: &str, value: i64, replaces: &[Dot]) -> (Dots, Dot) {
        let mut delta = self.delete(replaces);
        let dot = self.ctx.next(replica);
        for d in [&mut *self, &mut delta] {
            d.ctx.insert(&dot.0, dot.1);
            d.entries
                .entry(dot.0.clone())
                .or_default()
                .insert(dot.1, value);
        }
        (delta, dot)
    }

    /// Deletes the dots in `dots`; returns the delta, which carries them in its context only.
    pub fn delete(&mut self, dots: &[Dot]) -> Dots {
        let mut delta = Dots::default();
        for (replica, counter) in dots {
            if let Some(m) = self.entries.get_mut(replica) {
                m.remove(counter);
                if m.is_empty() {
                    self.entries.remove(replica);
                }
            }
            // Deleting a dot this node has seen is all a delete can do; it is already in the
            // context, and the delta's context tells the peers.
            delta.ctx.insert(replica, *counter);
        }
        delta
    }

    /// Joins `other` into this: a dot stays if both hold it, or if the side without it has
    /// never seen it.
    pub fn join(&mut self, other: &Dots) {
        for (replica, mine) in &mut self.entries {
            let theirs = other.entries.get(replica);
            mine.retain(|&c, _| {
                theirs.is_some_and(|t| t.contains_key(&c)) || !other.ctx.contains(replica, c)
            });
        }
        self.entries.retain(|_, m| !m.is_empty());
        for (replica, theirs) in &other.entries {
            for (&c, &v) in theirs {
                if !self.ctx.contains(replica, c) {
                    self.entries
                        .entry(replica.clone())
                        .or_default()
                        .insert(c, v);
                }
            }
        }
        self.ctx.join(&other.ctx);
    }

    /// `{"entries": {replica: [[counter, value], …]}, "ctx": …}` (see [`Context::to_json`]).
    pub fn to_json(&self) -> Value {
        let entries: Map<String, Value> = self
            .entries
            .iter()
            .map(|(r, m)| {
                let pairs: Vec<Value> = m.iter().map(|(c, v)| json!([c, v])).collect();
                (r.clone(), Value::Array(pairs))
            })
            .collect();
        json!({"entries": entries, "ctx": self.ctx.to_json()})
    }

    /// The inverse of [`Dots::to_json`]; `None` if `value` is not one, or if an entry's dot is
    /// missing from the context.
    pub fn from_json(value: &Value) -> Option<Dots> {
        let ctx = Context::from_json(value.get("ctx")?)?;
        let mut entries: BTreeMap<String, BTreeMap<u64, i64>> = BTreeMap::new();
        for (replica, pairs) in value.get("entries")?.as_object()? {
            for pair in pairs.as_array()? {
                let [c, v] = pair.as_array()?.as_slice() else {
                    return None;
                };
                let (c, v) = (c.as_u64()?, v.as_i64()?);
                if !ctx.contains(replica, c) {
                    return None;
                }
                entries.entry(replica.clone()).or_default().insert(c, v);
            }
        }
        Some(Dots { entries, ctx })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(r: &str, c: u64) -> Dot {
        (r.to_string(), c)
    }

    #[test]
    fn the_context_stays_compact_whatever_the_order() {
        let mut ctx = Context::default();
        for c in [3, 1, 5, 2] {
            ctx.insert("a", c);
        }
        assert!(ctx.contains("a", 3) && !ctx.contains("a", 4) && ctx.contains("a", 5));
        assert_eq!(ctx.to_json(), json!({"a": [3, [5]]}));
        assert_eq!(ctx.next("a"), dot("a", 6));
        let mut other = Context::default();
        other.insert("a", 4);
        ctx.join(&other);
        assert_eq!(ctx.to_json(), json!({"a": [5, []]}));
        assert_eq!(Context::from_json(&ctx.to_json()), Some(ctx));
    }

    #[test]
    fn a_delete_wins_over_the_dots_it_saw_and_a_concurrent_write_survives() {
        let (mut a, mut b) = (Dots::default(), Dots::default());
        let (w1, _) = a.write("a", 7, &[]);
        b.join(&w1);
        // b deletes the 7 it saw while a writes 7 again, concurrently.
        let del = b.delete(&b.dots_of(7));
        let (w2, _) = a.write("a", 7, &[]);
        for d in [&del, &w2, &w1] {
            a.join(d);
            b.join(d);
        }
        assert_eq!(a, b);
        assert_eq!(a.values(), BTreeSet::from([7]));
        assert_eq!(a.dots_of(7), vec![dot("a", 2)]);
    }

    #[test]
    fn the_join_is_idempotent_commutative_and_decodes_what_it_encodes() {
        let (mut a, mut b) = (Dots::default(), Dots::default());
        a.write("a", 1, &[]);
        let (_, d) = a.write("a", 2, &[]);
        b.write("b", 3, &[]);
        let mut ab = a.clone();
        ab.join(&b);
        let mut ba = b.clone();
        ba.join(&a);
        assert_eq!(ab, ba);
        let once = ab.clone();
        ab.join(&once);
        assert_eq!(ab, once);
        assert!(ab.is_alive(&d));
        assert_eq!(Dots::from_json(&ab.to_json()), Some(ab));
        let orphan = json!({"entries": {"a": [[9, 1]]}, "ctx": {}});
        assert_eq!(Dots::from_json(&orphan), None);
    }
}
