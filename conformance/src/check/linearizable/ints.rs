//! The integer plumbing the checker's parts share: a hash map for keys and values from the
//! history, and the `u32` indices that the search and its cache use for list nodes, operations
//! and classes.
//!
//! Indices are `u32` to halve the memory of the search's arrays and of every cached
//! configuration; [`NIL`] is the one index no node or entry ever takes, and [`to_u32`] is the
//! only conversion into an index, so that an overflow is caught where it happens.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A hash map keyed by integers from the history. The standard library's SipHash resists
/// collision attacks that histories do not mount, and costs a tenth of the check's time; this is
/// FxHash's multiply-rotate.
pub(super) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

#[derive(Default)]
pub(super) struct FastHasher(u64);

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

/// The end of a linked list: of the search's call and return entries, and of the cache's chains.
pub(super) const NIL: u32 = u32::MAX;

/// Converts a count that the history's length bounds. Histories of 2³² operations per key would
/// not fit in memory as configurations anyway, so exceeding it is a bug in the caller's scale.
pub(super) fn to_u32(n: usize) -> u32 {
    u32::try_from(n).expect("fewer than 2^32 operations per key")
}
