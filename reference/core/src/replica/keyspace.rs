//! The keyspace: typed CRDT states by key, with the Merkle tree over them kept up to date on
//! every change.
//!
//! # Layout
//! Keys are stored ordered by `(xxh3(key), key)`: a `BTreeMap` from the 64-bit key hash to the
//! (almost always single) keys with that hash. The hash order is what makes a Merkle leaf a
//! contiguous range of the map (a leaf is a prefix of the hash), so anti-entropy lists a leaf's
//! keys with one range scan; lookups compare one `u64` per tree level instead of byte strings.
//!
//! # Invariants
//! - Each entry's `hash` is the hash of its key and the canonical encoding of its state.
//! - Every Merkle node holds the wrapping sum of the hashes of the keys below it; the root is
//!   the sum over the keyspace (checked in debug builds by [`Keyspace::check`]).
//! - A key's state only grows in the lattice order of [`KeyState`]; keys are never removed.

use super::api::{Key, KeyKind, Scalar, Value};
use super::codec::put_state;
use crate::{GCounter, Lattice, LwwRegister, MvRegister, OrSet, PnCounter};
use smallvec::SmallVec;
use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// The state of one key: one of the five CRDTs.
///
/// `KeyState` is itself a join-semilattice: the *ordinal sum* of the five, in [`KeyKind`] order.
/// Two states of one kind join as that kind does; of two kinds, the later kind's state wins and
/// the other is dropped. That only happens when two replicas concurrently create a key with
/// different types (each replica refuses a mismatched write with `WrongType`); it loses the
/// earlier kind's writes, but deterministically, the same at every replica, and it keeps the
/// join associative, commutative and idempotent. The bottom is the empty grow-only counter,
/// below every state of every kind.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// A grow-only counter.
    Counter(GCounter),
    /// A counter that also decrements.
    PnCounter(PnCounter),
    /// An add-wins set.
    Set(OrSet<Scalar>),
    /// A last-writer-wins register.
    Lww(LwwRegister<Scalar>),
    /// A multi-value register.
    Mv(MvRegister<Scalar>),
}

impl KeyState {
    /// The bottom state of `kind`.
    pub fn empty(kind: KeyKind) -> KeyState {
        match kind {
            KeyKind::Counter => KeyState::Counter(GCounter::new()),
            KeyKind::PnCounter => KeyState::PnCounter(PnCounter::new()),
            KeyKind::Set => KeyState::Set(OrSet::new()),
            KeyKind::Lww => KeyState::Lww(LwwRegister::new()),
            KeyKind::Mv => KeyState::Mv(MvRegister::new()),
        }
    }

    /// The key's type.
    pub fn kind(&self) -> KeyKind {
        match self {
            KeyState::Counter(_) => KeyKind::Counter,
            KeyState::PnCounter(_) => KeyKind::PnCounter,
            KeyState::Set(_) => KeyKind::Set,
            KeyState::Lww(_) => KeyKind::Lww,
            KeyState::Mv(_) => KeyKind::Mv,
        }
    }

    /// What a read returns.
    pub fn value(&self) -> Value {
        match self {
            KeyState::Counter(c) => Value::Counter(i128::try_from(c.value()).unwrap_or(i128::MAX)),
            KeyState::PnCounter(c) => Value::Counter(c.value()),
            KeyState::Set(s) => Value::Set(s.iter().cloned().collect()),
            KeyState::Lww(l) => match l.get() {
                Some(v) => Value::Register(v.clone()),
                None => Value::Absent,
            },
            KeyState::Mv(m) => Value::Siblings {
                values: m.values().cloned().collect(),
                context: m.read_context(),
            },
        }
    }

    /// The canonical binary encoding (the one the Merkle tree hashes and peers exchange).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_state(&mut out, self);
        out
    }

    /// Decodes and validates a state; never panics.
    pub fn decode(bytes: &[u8]) -> Result<KeyState, super::DecodeError> {
        super::codec::decode_all(bytes, super::codec::read_state)
    }
}

impl Lattice for KeyState {
    fn bottom() -> Self {
        KeyState::Counter(GCounter::new())
    }

    fn join(&mut self, other: Self) {
        match (self, other) {
            (KeyState::Counter(a), KeyState::Counter(b)) => a.join(b),
            (KeyState::PnCounter(a), KeyState::PnCounter(b)) => a.join(b),
            (KeyState::Set(a), KeyState::Set(b)) => a.join(b),
            (KeyState::Lww(a), KeyState::Lww(b)) => a.join(b),
            (KeyState::Mv(a), KeyState::Mv(b)) => a.join(b),
            (this, other) => {
                if other.kind() > this.kind() {
                    *this = other;
                }
            }
        }
    }

    fn leq(&self, other: &Self) -> bool {
        match (self, other) {
            (KeyState::Counter(a), KeyState::Counter(b)) => a.leq(b),
            (KeyState::PnCounter(a), KeyState::PnCounter(b)) => a.leq(b),
            (KeyState::Set(a), KeyState::Set(b)) => a.leq(b),
            (KeyState::Lww(a), KeyState::Lww(b)) => a.leq(b),
            (KeyState::Mv(a), KeyState::Mv(b)) => a.leq(b),
            (a, b) => a.kind() < b.kind(),
        }
    }
}

/// The hash that places a key in the map and the Merkle tree. Fixed seed: every replica must
/// agree on it.
#[inline]
pub(crate) fn key_hash(key: &[u8]) -> u64 {
    xxh3_64(key)
}

/// One key with its state and the hash of both.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct KeyEntry {
    key: Key,
    state: KeyState,
    hash: u64,
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

/// Every key's state, and the Merkle tree over them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Keyspace {
    slots: BTreeMap<u64, Slot>,
    len: usize,
    tree: Merkle,
    scratch: Scratch,
}

impl Keyspace {
    pub(crate) fn new(fanout_bits: u8, depth: u8) -> Self {
        Keyspace {
            slots: BTreeMap::new(),
            len: 0,
            tree: Merkle::new(fanout_bits, depth),
            scratch: Scratch::default(),
        }
    }

    /// Number of keys.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn tree(&self) -> &Merkle {
        &self.tree
    }

    /// The state of `key`, if any write reached it.
    pub(crate) fn get(&self, key: &[u8]) -> Option<&KeyState> {
        self.slots
            .get(&key_hash(key))?
            .iter()
            .find(|e| &*e.key == key)
            .map(|e| &e.state)
    }

    /// Runs `f` on the state of `key` (`None` if absent; `f` may create it, never remove it),
    /// then rehashes the key and updates the tree. Returns `f`'s result and whether the state
    /// changed.
    pub(crate) fn modify<R>(
        &mut self,
        key: &[u8],
        f: impl FnOnce(&mut Option<KeyState>) -> R,
    ) -> (R, bool) {
        let kh = key_hash(key);
        let slot = self.slots.entry(kh).or_default();
        let pos = slot.iter().position(|e| &*e.key == key);
        let (old_hash, mut state) = match pos {
            Some(i) => {
                // Move the state out (and back below) instead of cloning it.
                let placeholder = KeyState::bottom();
                (
                    slot[i].hash,
                    Some(std::mem::replace(&mut slot[i].state, placeholder)),
                )
            }
            None => (0, None),
        };
        let existed = state.is_some();
        let out = f(&mut state);
        let Some(state) = state else {
            debug_assert!(!existed, "a key is never removed");
            if slot.is_empty() {
                self.slots.remove(&kh);
            }
            return (out, false);
        };
        self.scratch.0.clear();
        put_state(&mut self.scratch.0, &state);
        let new_hash = xxh3_64_with_seed(&self.scratch.0, kh);
        match pos {
            Some(i) => {
                slot[i].state = state;
                slot[i].hash = new_hash;
            }
            None => {
                slot.push(KeyEntry {
                    key: key.into(),
                    state,
                    hash: new_hash,
                });
                self.len += 1;
            }
        }
        let changed = !existed || new_hash != old_hash;
        self.tree.add(kh, new_hash.wrapping_sub(old_hash));
        (out, changed)
    }

    /// Joins `state` into `key`; returns whether the key changed and whether its kind conflicted
    /// with the state joined in.
    pub(crate) fn join(&mut self, key: &[u8], state: KeyState) -> (bool, bool) {
        let (conflict, changed) = self.modify(key, |slot| match slot {
            Some(s) => {
                let conflict = s.kind() != state.kind();
                s.join(state);
                conflict
            }
            None => {
                *slot = Some(state);
                false
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

    /// Recomputes every hash from scratch and compares: the tree invariant. Linear in the
    /// keyspace, so debug builds call it only on small keyspaces.
    #[cfg_attr(not(debug_assertions), allow(dead_code))]
    pub(crate) fn check(&self) -> bool {
        let mut tree = Merkle::new(self.tree.bits, self.tree.depth);
        let mut buf = Vec::new();
        let mut len = 0;
        for (&kh, slot) in &self.slots {
            for e in slot {
                buf.clear();
                put_state(&mut buf, &e.state);
                let h = xxh3_64_with_seed(&buf, kh);
                if h != e.hash || key_hash(&e.key) != kh {
                    return false;
                }
                tree.add(kh, h);
                len += 1;
            }
        }
        tree == self.tree && len == self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ReplicaId;

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
        assert_eq!(a.tree().root(), b.tree().root());
        assert_eq!(a, b);
        // One more increment changes the root, and joining it back is a no-op change.
        let mut c = GCounter::new();
        c.increment(ReplicaId(2), 1).unwrap();
        assert_eq!(
            a.join(&keys[3], KeyState::Counter(c.clone())),
            (true, false)
        );
        assert_ne!(a.tree().root(), b.tree().root());
        assert_eq!(a.join(&keys[3], KeyState::Counter(c)), (false, false));
        assert!(a.check());
        // Every key lies in the leaf its hash names.
        let leaves = a.tree().width(a.tree().depth());
        let listed: usize = (0..leaves).map(|l| a.leaf(l).count()).sum();
        assert_eq!(listed, a.len());
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
