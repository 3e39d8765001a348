//! History checkers that stand on their own, independent of how the history was produced.
//!
//! - [`linearizable`]: linearizability of key-value register histories (Maelstrom's `lin-kv`).

pub mod linearizable;
