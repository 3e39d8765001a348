//! The keyspace: typed CRDT states by key, with the Merkle tree over them, brought up to date
//! lazily: a write marks its key dirty, and the dirty keys are rehashed when the tree is read.
//!
//! # Layout
//! Keys are stored ordered by `(xxh3(key), key)`: a `BTreeMap` from the 64-bit key hash to the
//! (almost always single) keys with that hash. The hash order is what makes a Merkle leaf a
//! contiguous range of the map (a leaf is a prefix of the hash), so anti-entropy lists a leaf's
//! keys with one range scan; lookups compare one `u64` per tree level instead of byte strings.
//!
//! # Why the hashes are lazy
//! A key's item hash covers the canonical encoding of its whole state, so computing it costs
//! O(size of the state). Recomputing it on every write made a write to a large key (an `SADD`
//! into a set of 20k members) cost O(state) instead of O(delta). Instead, a write that changes a
//! key only flags its entry and queues its key hash in `dirty` (a flag test and a vector push: no
//! search, no allocation once warm); [`Keyspace::refresh`] rehashes the dirty keys and
//! moves their Merkle paths, and every reader of node hashes refreshes first (anti-entropy before
//! it builds a probe, a diff or a leaf listing) or computes around the dirty keys
//! ([`Keyspace::root`]). A key written N times between two reads is encoded once.
//!
//! # Residency
//! Besides the tree over every key, the keyspace keeps one tree per residency pin (see
//! `config::Pin`) over the pin's keys alone, moved by the same refreshes. Node hashes are sums,
//! so the tree over the keys outside a set of pins is the full tree less those pins' trees
//! ([`Keyspace::node_excluding`]): anti-entropy between two replicas compares exactly the keys
//! both may hold without a second keyspace.
//!
//! # Invariants
//! - `len` is the number of keys; a key's state only grows in the lattice order of
//!   [`KeyState`]; keys are never removed.
//! - Each entry's `hash` is the item hash it currently contributes to the tree, and every Merkle
//!   node holds the wrapping sum of the `hash`es of the keys below it (always, dirty or not).
//! - An entry not flagged `dirty` has `hash` = the hash of its key and the canonical encoding of
//!   its state; the key hash of every flagged entry is in `dirty`, once (so `dirty` is bounded
//!   by the keyspace). So after [`Keyspace::refresh`] (`dirty` empty) every node is the sum
//!   of the true item hashes below it, and the root is the sum over the keyspace (checked in
//!   debug builds by [`Keyspace::check`]).
//! - Equality and `Hash` of a keyspace depend only on its keys and states (and the tree's
//!   shape): the hashes, the node sums and the dirty flags are derived data, and two replicas
//!   holding the same states must compare equal however recently either refreshed (model
//!   checkers deduplicate states by `Eq` and `Hash`).

use super::api::Key;
use super::state::{KeyState, put_state};
use crate::Lattice;
use smallvec::SmallVec;
use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// The hash that places a key in the map and the Merkle tree. Fixed seed: every replica must
/// agree on it.
#[inline]
pub(crate) fn key_hash(key: &[u8]) -> u64 {
    xxh3_64(key)
}

/// One key with its state and the item hash it contributes to the tree (up to date unless its
/// slot is dirty).
///
/// Equality and `Hash` ignore `hash` and `dirty`: they are derived from the key and the state
/// (`hash` is stale while `dirty`), which must not make two equal keyspaces differ.
#[derive(Clone, Debug)]
struct KeyEntry {
    key: Key,
    state: KeyState,
    hash: u64,
    /// Changed since the last refresh; its key hash is then queued in [`Keyspace`]'s `dirty`.
    dirty: bool,
}

impl PartialEq for KeyEntry {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && self.state == other.state
    }
}
impl Eq for KeyEntry {}
impl std::hash::Hash for KeyEntry {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.key.hash(h);
        self.state.hash(h);
    }
}

/// The keys sharing one 64-bit key hash; more than one only on a hash collision.
type Slot = SmallVec<[KeyEntry; 1]>;

/// The Merkle tree's shape and node hashes.
///
/// Level `l` has `fanout^l` nodes, stored level after level in one vector; a key's leaf is the
/// top `bits × depth` bits of its key hash, and the ancestor of a leaf at level `l` is the leaf
/// index shifted right by `bits × (depth − l)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Merkle {
    bits: u8,
    depth: u8,
    nodes: Vec<u64>,
}

impl Merkle {
    fn new(bits: u8, depth: u8) -> Self {
        let total: usize = (0..=depth)
            .map(|l| 1usize << (bits as usize * l as usize))
            .sum();
        Merkle {
            bits,
            depth,
            nodes: vec![0; total],
        }
    }

    /// Levels below the root.
    pub(crate) fn depth(&self) -> u8 {
        self.depth
    }

    /// Children per node.
    pub(crate) fn fanout(&self) -> u32 {
        1 << self.bits
    }

    /// Nodes at `level`.
    pub(crate) fn width(&self, level: u8) -> u32 {
        1 << (u32::from(self.bits) * u32::from(level))
    }

    fn offset(&self, level: u8) -> usize {
        (0..level).map(|l| self.width(l) as usize).sum()
    }

    /// The hash of node `index` at `level`; `None` if there is no such node.
    pub(crate) fn node(&self, level: u8, index: u32) -> Option<u64> {
        if level > self.depth || index >= self.width(level) {
            return None;
        }
        Some(self.nodes[self.offset(level) + index as usize])
    }

    /// The root hash: equal roots mean equal keyspaces (up to a 64-bit collision).
    pub(crate) fn root(&self) -> u64 {
        self.nodes[0]
    }

    fn leaf_of(&self, key_hash: u64) -> u32 {
        let leaf_bits = u32::from(self.bits) * u32::from(self.depth);
        (key_hash >> (64 - leaf_bits)) as u32
    }

    /// The key-hash range of leaf `leaf`.
    pub(crate) fn leaf_range(&self, leaf: u32) -> RangeInclusive<u64> {
        let shift = 64 - u32::from(self.bits) * u32::from(self.depth);
        let lo = u64::from(leaf) << shift;
        lo..=lo | ((1u64 << shift) - 1)
    }

    /// Adds `delta` (wrapping) to the leaf of `key_hash` and all its ancestors.
    fn add(&mut self, key_hash: u64, delta: u64) {
        if delta == 0 {
            return;
        }
        let leaf = self.leaf_of(key_hash);
        for level in 0..=self.depth {
            let index = leaf >> (u32::from(self.bits) * u32::from(self.depth - level));
            let at = self.offset(level) + index as usize;
            self.nodes[at] = self.nodes[at].wrapping_add(delta);
        }
    }
}

/// A scratch buffer for canonical encodings, so hashing a state allocates nothing after warm-up.
///
/// It carries no state: it compares equal to every other scratch, hashes to nothing and clones
/// empty, so it never makes two otherwise-equal replicas differ (model checkers deduplicate
/// states by `Eq` and `Hash`).
#[derive(Default)]
pub(crate) struct Scratch(pub(crate) Vec<u8>);

impl Clone for Scratch {
    fn clone(&self) -> Self {
        Scratch(Vec::new())
    }
}
impl PartialEq for Scratch {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Scratch {}
impl std::hash::Hash for Scratch {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}
impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scratch")
    }
}

/// The index of the pin among `pins` (prefixes that never overlap) whose prefix starts `key`.
#[inline]
fn pin_index(pins: &[Box<[u8]>], key: &[u8]) -> Option<usize> {
    if pins.is_empty() {
        return None;
    }
    pins.iter().position(|p| key.starts_with(p))
}

/// The item hash of a key: its canonical state encoding hashed with the key hash as seed.
/// Costs O(size of the state): the one thing this module avoids doing per write.
fn item_hash(buf: &mut Vec<u8>, kh: u64, state: &KeyState) -> u64 {
    buf.clear();
    put_state(buf, state);
    xxh3_64_with_seed(buf, kh)
}

/// What [`Keyspace::modify`] remembers of a state before a local operation, to tell whether the
/// operation changed it without encoding or cloning a large state.
///
/// States only grow, so a witness only has to differ across every strict growth the callers
/// of `modify` make: a counter's totals rise with every increment; a local add to a set puts a
/// fresh dot in its causal context, and a local remove drops a whole element. The registers are
/// small (one value, or one per concurrent writer) and are kept whole. Debug builds check the
/// witness against a full comparison on small sets.
#[derive(PartialEq)]
enum Witness {
    Absent,
    Counter(u128),
    PnCounter(u128, u128),
    Set { ctx_dots: u128, elements: usize },
    Whole(KeyState),
}

impl Witness {
    fn of(state: &Option<KeyState>) -> Witness {
        match state {
            None => Witness::Absent,
            Some(KeyState::Counter(c)) => Witness::Counter(c.counts().total()),
            Some(KeyState::PnCounter(c)) => Witness::PnCounter(
                c.increments().counts().total(),
                c.decrements().counts().total(),
            ),
            Some(KeyState::Set(s)) => Witness::Set {
                ctx_dots: s.context().version_vector().total() + s.context().cloud().len() as u128,
                elements: s.len(),
            },
            Some(other) => Witness::Whole(other.clone()),
        }
    }
}

/// A clone of `state` if it is small enough for the debug cross-checks to afford one.
#[cfg(debug_assertions)]
fn small_clone(state: &KeyState) -> Option<KeyState> {
    match state {
        KeyState::Set(s) if s.len() > 64 => None,
        other => Some(other.clone()),
    }
}

/// Every key's state, and the Merkle tree over them (see the module documentation for which
/// node hashes are current).
#[derive(Clone, Debug)]
pub(crate) struct Keyspace {
    slots: BTreeMap<u64, Slot>,
    len: usize,
    tree: Merkle,
    /// The residency pins' prefixes, and per pin the tree over its keys alone (see
    /// § Residency); each `pinned[i]` node holds the sum of the hashes of pin `i`'s keys below it.
    pins: Vec<Box<[u8]>>,
    pinned: Vec<Merkle>,
    /// The key hashes of the entries flagged dirty, each once (pushed when the flag is set), so
    /// bounded by the keyspace; emptied by every refresh. Its order is the order of the writes,
    /// which no result depends on: the node sums commute.
    dirty: Vec<u64>,
    scratch: Scratch,
}

impl PartialEq for Keyspace {
    fn eq(&self, other: &Self) -> bool {
        // The states alone: the hashes, node sums and dirty flags derive from them.
        self.len == other.len
            && self.tree.bits == other.tree.bits
            && self.tree.depth == other.tree.depth
            && self.slots == other.slots
    }
}
impl Eq for Keyspace {}
impl std::hash::Hash for Keyspace {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.len.hash(h);
        self.tree.bits.hash(h);
        self.tree.depth.hash(h);
        self.slots.hash(h);
    }
}

impl Keyspace {
    pub(crate) fn new(fanout_bits: u8, depth: u8) -> Self {
        Keyspace {
            slots: BTreeMap::new(),
            len: 0,
            tree: Merkle::new(fanout_bits, depth),
            pins: Vec::new(),
            pinned: Vec::new(),
            dirty: Vec::new(),
            scratch: Scratch::default(),
        }
    }

    /// An empty keyspace that keeps a tree per residency pin (see § Residency).
    pub(crate) fn with_pins(fanout_bits: u8, depth: u8, prefixes: Vec<Box<[u8]>>) -> Self {
        let mut k = Keyspace::new(fanout_bits, depth);
        k.pinned = prefixes
            .iter()
            .map(|_| Merkle::new(fanout_bits, depth))
            .collect();
        k.pins = prefixes;
        k
    }

    /// The node `index` at `level` of the tree over the keys of no pin in `excluded` (see
    /// § Residency). Current only after a refresh, like [`Merkle::node`].
    pub(crate) fn node_excluding(&self, level: u8, index: u32, excluded: &[usize]) -> Option<u64> {
        let mut h = self.tree.node(level, index)?;
        for &i in excluded {
            if let Some(p) = self.pinned.get(i) {
                h = h.wrapping_sub(p.node(level, index).unwrap_or(0));
            }
        }
        Some(h)
    }

    /// Number of keys.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The tree's shape. Its node hashes lag behind the keys changed since the last
    /// [`refresh`](Self::refresh): read hashes through [`fresh_tree`](Self::fresh_tree).
    pub(crate) fn tree(&self) -> &Merkle {
        &self.tree
    }

    /// The tree with every node hash current: refreshes the dirty keys first.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn fresh_tree(&mut self) -> &Merkle {
        self.refresh();
        &self.tree
    }

    /// Rehashes every key changed since the last refresh and moves its Merkle path by the
    /// difference. Costs one state encoding per dirty key, however often it was written.
    pub(crate) fn refresh(&mut self) {
        for kh in std::mem::take(&mut self.dirty) {
            // A dirty slot always exists (keys are never removed); a missing one has nothing
            // to rehash.
            let Some(slot) = self.slots.get_mut(&kh) else {
                continue;
            };
            for e in slot.iter_mut().filter(|e| e.dirty) {
                let h = item_hash(&mut self.scratch.0, kh, &e.state);
                self.tree.add(kh, h.wrapping_sub(e.hash));
                if let Some(i) = pin_index(&self.pins, &e.key) {
                    self.pinned[i].add(kh, h.wrapping_sub(e.hash));
                }
                e.hash = h;
                e.dirty = false;
            }
        }
    }

    /// The root hash as a refresh would leave it, without refreshing: the stored root moved by
    /// the difference each dirty key would make. Equal roots mean equal keyspaces (up to a
    /// 64-bit collision).
    pub(crate) fn root(&self) -> u64 {
        let mut buf = Vec::new();
        let mut root = self.tree.root();
        for kh in &self.dirty {
            for e in self.slots.get(kh).into_iter().flatten().filter(|e| e.dirty) {
                root = root.wrapping_add(item_hash(&mut buf, *kh, &e.state).wrapping_sub(e.hash));
            }
        }
        root
    }

    /// The state of `key`, if any write reached it.
    pub(crate) fn get(&self, key: &[u8]) -> Option<&KeyState> {
        self.slots
            .get(&key_hash(key))?
            .iter()
            .find(|e| &*e.key == key)
            .map(|e| &e.state)
    }

    /// Runs `f` on the state of `key` (`None` if absent; `f` may create it, never remove it)
    /// and marks the key dirty if `f` reports a change or created it, or always with
    /// `mark_always`. Returns `f`'s result and whether the state changed.
    fn update<R>(
        &mut self,
        key: &[u8],
        mark_always: bool,
        f: impl FnOnce(&mut Option<KeyState>) -> (R, bool),
    ) -> (R, bool) {
        let kh = key_hash(key);
        let slot = self.slots.entry(kh).or_default();
        let pos = slot.iter().position(|e| &*e.key == key);
        // Move the state out (and back below) instead of cloning it.
        let mut state = pos.map(|i| std::mem::replace(&mut slot[i].state, KeyState::bottom()));
        let existed = state.is_some();
        let (out, changed) = f(&mut state);
        let (i, changed) = match (pos, state) {
            (Some(i), Some(s)) => {
                slot[i].state = s;
                (i, changed)
            }
            (None, Some(s)) => {
                // Contributes nothing to the tree until the refresh hashes it.
                slot.push(KeyEntry {
                    key: key.into(),
                    state: s,
                    hash: 0,
                    dirty: false,
                });
                self.len += 1;
                (slot.len() - 1, true)
            }
            (Some(i), None) => {
                // A key is never removed; should `f` try, the key stays at the bottom state
                // and is rehashed like any change.
                debug_assert!(false, "a key is never removed");
                (i, true)
            }
            (None, None) => {
                if slot.is_empty() {
                    self.slots.remove(&kh);
                }
                return (out, false);
            }
        };
        debug_assert!(existed || changed);
        if (changed || mark_always) && !slot[i].dirty {
            slot[i].dirty = true;
            self.dirty.push(kh);
        }
        (out, changed)
    }

    /// Runs a local operation `f` on the state of `key` (`None` if absent; `f` may create it,
    /// never remove it). Returns `f`'s result and whether the state changed.
    ///
    /// `f` must only make the changes a [`Witness`] tells apart: local client operations (and
    /// the injected duplicate increment). Joins go through [`join`](Self::join). The key is
    /// marked dirty whatever the witness says, so the tree never depends on it.
    pub(crate) fn modify<R>(
        &mut self,
        key: &[u8],
        f: impl FnOnce(&mut Option<KeyState>) -> R,
    ) -> (R, bool) {
        self.update(key, true, |slot| {
            #[cfg(debug_assertions)]
            let small = match &*slot {
                Some(s) => small_clone(s).map(Some),
                None => Some(None),
            };
            let before = Witness::of(slot);
            let out = f(slot);
            let changed = Witness::of(slot) != before;
            #[cfg(debug_assertions)]
            if let Some(old) = small {
                debug_assert_eq!(
                    changed,
                    *slot != old,
                    "the witness missed or invented a change"
                );
            }
            (out, changed)
        })
    }

    /// Joins `state` into `key`; returns whether the key changed and whether its kind conflicted
    /// with the state joined in.
    pub(crate) fn join(&mut self, key: &[u8], state: KeyState) -> (bool, bool) {
        let (conflict, changed) = self.update(key, false, |slot| match slot {
            Some(s) => {
                let conflict = s.kind() != state.kind();
                // `s ⊔ state = s` exactly when `state ≤ s`: nothing to join, nothing to rehash.
                // For a set, a delta carrying a dot `s` has not seen fails the test on its
                // causal context alone, without visiting the elements.
                if state.leq(s) {
                    #[cfg(debug_assertions)]
                    if let Some(mut joined) = small_clone(s) {
                        joined.join(state);
                        debug_assert!(joined == *s, "leq says a join leaves equal what it changes");
                    }
                    (conflict, false)
                } else {
                    #[cfg(debug_assertions)]
                    let old = small_clone(s);
                    s.join(state);
                    #[cfg(debug_assertions)]
                    if let Some(old) = old {
                        debug_assert!(*s != old, "leq says a join changes what it leaves equal");
                    }
                    (conflict, true)
                }
            }
            None => {
                *slot = Some(state);
                (false, true)
            }
        });
        (changed, conflict)
    }

    /// The keys and states of Merkle leaf `leaf`, in key-hash order.
    pub(crate) fn leaf(&self, leaf: u32) -> impl Iterator<Item = (&Key, &KeyState)> {
        self.slots
            .range(self.tree.leaf_range(leaf))
            .flat_map(|(_, slot)| slot.iter().map(|e| (&e.key, &e.state)))
    }

    /// Every key and state, in key-hash order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Key, &KeyState)> {
        self.slots
            .values()
            .flat_map(|slot| slot.iter().map(|e| (&e.key, &e.state)))
    }

    /// Whether no key changed since the last refresh.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn is_fresh(&self) -> bool {
        self.dirty.is_empty()
    }

    /// Recomputes every hash from scratch and compares: the tree invariants. Every node must be
    /// the sum of the stored hashes below it, every clean key's stored hash must be current, and
    /// [`root`](Self::root) must be the sum of the current hashes. Linear in the keyspace, so
    /// debug builds call it only on small keyspaces.
    #[cfg_attr(not(debug_assertions), allow(dead_code))]
    pub(crate) fn check(&self) -> bool {
        let mut stored = Merkle::new(self.tree.bits, self.tree.depth);
        let mut pinned: Vec<Merkle> = self
            .pins
            .iter()
            .map(|_| Merkle::new(self.tree.bits, self.tree.depth))
            .collect();
        let mut buf = Vec::new();
        let mut len = 0;
        let mut root = 0u64;
        for (&kh, slot) in &self.slots {
            for e in slot {
                let h = item_hash(&mut buf, kh, &e.state);
                if key_hash(&e.key) != kh
                    || (h != e.hash && !e.dirty)
                    || (e.dirty && !self.dirty.contains(&kh))
                {
                    return false;
                }
                stored.add(kh, e.hash);
                if let Some(i) = pin_index(&self.pins, &e.key) {
                    pinned[i].add(kh, e.hash);
                }
                root = root.wrapping_add(h);
                len += 1;
            }
        }
        stored == self.tree
            && pinned == self.pinned
            && len == self.len
            && root == self.root()
            && self.dirty.iter().all(|kh| self.slots.contains_key(kh))
            && self.dirty.len() == self.slots.values().flatten().filter(|e| e.dirty).count()
    }
}

#[cfg(test)]
mod tests {
    use super::super::api::{KeyKind, Scalar};
    use super::*;
    use crate::{GCounter, ReplicaId};

    /// The tree less a pin's tree is the tree of a keyspace without the pin's keys, at every
    /// node: what lets two replicas compare only the keys both may hold.
    #[test]
    fn excluding_a_pin_gives_the_tree_without_its_keys() {
        let mut all = Keyspace::with_pins(2, 2, vec![b"eu:".as_slice().into()]);
        let mut plain = Keyspace::with_pins(2, 2, vec![b"eu:".as_slice().into()]);
        for i in 0..40u32 {
            let mut c = GCounter::new();
            c.increment(ReplicaId(1), u64::from(i) + 1).unwrap();
            let pinned = [b"eu:".as_slice(), &i.to_be_bytes()].concat();
            all.join(&pinned, KeyState::Counter(c.clone()));
            all.join(&i.to_be_bytes(), KeyState::Counter(c.clone()));
            plain.join(&i.to_be_bytes(), KeyState::Counter(c));
        }
        all.refresh();
        plain.refresh();
        assert!(all.check() && plain.check());
        assert_ne!(all.tree().root(), plain.tree().root());
        for level in 0..=2u8 {
            for i in 0..all.tree().width(level) {
                assert_eq!(
                    all.node_excluding(level, i, &[0]),
                    plain.node_excluding(level, i, &[]),
                    "level {level} node {i}"
                );
            }
        }
    }

    #[test]
    fn the_tree_tracks_every_change_and_ignores_order() {
        let mut a = Keyspace::new(2, 2);
        let mut b = Keyspace::new(2, 2);
        let keys: Vec<Vec<u8>> = (0..40u32).map(|i| i.to_be_bytes().to_vec()).collect();
        for k in &keys {
            a.modify(k, |s| {
                let mut c = GCounter::new();
                c.increment(ReplicaId(1), 1).unwrap();
                *s = Some(KeyState::Counter(c));
            });
        }
        for k in keys.iter().rev() {
            let mut c = GCounter::new();
            c.increment(ReplicaId(1), 1).unwrap();
            b.join(k, KeyState::Counter(c));
        }
        assert!(a.check() && b.check());
        assert_eq!(a.root(), b.root());
        assert_eq!(a.fresh_tree().root(), b.fresh_tree().root());
        assert_eq!(a, b);
        // One more increment changes the root, and joining it back is a no-op change.
        let mut c = GCounter::new();
        c.increment(ReplicaId(2), 1).unwrap();
        assert_eq!(
            a.join(&keys[3], KeyState::Counter(c.clone())),
            (true, false)
        );
        assert_ne!(a.root(), b.root());
        assert_ne!(a.fresh_tree().root(), b.fresh_tree().root());
        assert_eq!(a.join(&keys[3], KeyState::Counter(c)), (false, false));
        assert!(a.check());
        // Every key lies in the leaf its hash names.
        let leaves = a.tree().width(a.tree().depth());
        let listed: usize = (0..leaves).map(|l| a.leaf(l).count()).sum();
        assert_eq!(listed, a.len());
    }

    fn hash_of(k: &Keyspace) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        k.hash(&mut h);
        h.finish()
    }

    #[test]
    fn writes_defer_the_rehash_and_a_refresh_catches_up_on_every_dirty_key() {
        let mut lazy = Keyspace::new(2, 2);
        // Many adds to one set and a few other keys, with no tree read in between.
        for i in 0..500i64 {
            let (_, changed) = lazy.modify(b"set", |s| {
                let set = s.get_or_insert_with(|| KeyState::empty(KeyKind::Set));
                if let KeyState::Set(set) = set {
                    set.add(ReplicaId(1), Scalar::Int(i));
                }
            });
            assert!(changed, "every add is a change");
        }
        for i in 0..10u32 {
            lazy.modify(&i.to_be_bytes(), |s| {
                *s = Some(KeyState::empty(KeyKind::Counter));
            });
        }
        assert!(!lazy.is_fresh(), "no write rehashed its key");
        assert!(
            lazy.check(),
            "the stored sums still match the stored hashes"
        );
        // The same states, joined in one go and refreshed.
        let mut eager = Keyspace::new(2, 2);
        for (k, s) in lazy.iter() {
            eager.join(k, s.clone());
        }
        eager.refresh();
        assert!(eager.is_fresh() && eager.check());
        // Equality and hashing see the states only, dirty or not.
        assert_eq!(lazy, eager);
        assert_eq!(hash_of(&lazy), hash_of(&eager));
        // The root is computed around the dirty keys without refreshing them...
        assert_eq!(lazy.root(), eager.tree().root());
        assert!(!lazy.is_fresh());
        // ...and a refresh brings every node up to date, not just the root.
        let before = lazy.clone();
        assert_eq!(lazy.fresh_tree(), eager.tree());
        assert!(lazy.is_fresh() && lazy.check());
        assert_eq!(lazy, before, "a refresh changes no state");
        // A removal of an absent member changes nothing and reports so; a present one does.
        let absent = lazy.modify(b"set", |s| {
            if let Some(KeyState::Set(set)) = s {
                set.remove(&Scalar::Int(-1));
            }
        });
        assert!(!absent.1);
        let present = lazy.modify(b"set", |s| {
            if let Some(KeyState::Set(set)) = s {
                set.remove(&Scalar::Int(7));
            }
        });
        assert!(present.1);
        assert_ne!(lazy.root(), eager.tree().root());
        // Joining an old state back changes nothing; joining the new one into `eager` does.
        let newer = lazy.get(b"set").cloned().unwrap();
        assert_eq!(
            lazy.join(b"set", eager.get(b"set").cloned().unwrap()),
            (false, false)
        );
        assert_eq!(eager.join(b"set", newer), (true, false));
        assert_eq!(lazy.fresh_tree(), eager.fresh_tree());
    }

    #[test]
    fn type_conflicts_resolve_by_kind_order_in_both_directions() {
        let mut counter = KeyState::empty(KeyKind::Counter);
        let set = KeyState::empty(KeyKind::Set);
        let mut set2 = set.clone();
        counter.join(set.clone());
        set2.join(KeyState::empty(KeyKind::Counter));
        assert_eq!(counter, set);
        assert_eq!(set2, set);
        assert!(KeyState::bottom().leq(&set) && !set.leq(&KeyState::bottom()));
    }
}
