//! The configurations a search has explored, so that each is explored at most once, and those
//! that another dominates (same point, holes and value, no more indefinite operations used of
//! any class) are not explored at all.
//!
//! Invariant: each chain holds only configurations whose uses of indefinite operations are
//! incomparable; an entry dominated by a newer one is unlinked and marked dead.

use super::ints::{NIL, to_u32};

/// The configurations explored: separate chaining over a power-of-two table of chain heads,
/// with each configuration's holes and class counts stored in one arena. Lookups hash only the
/// prefix, the holes and the value, so the configurations that differ in indefinite operations
/// used share a chain, where domination is checked.
pub(super) struct Cache {
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
    pub(super) fn new(ops: usize) -> Self {
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
    pub(super) fn insert(
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
