//! The one place that chooses between `std::sync` and loom's model-checked copies.
//!
//! Everything in [`crate::shared`] reaches its locks and atomics through this module, so the same
//! source runs on std in the node and on loom in `tests/loom.rs` (`RUSTFLAGS="--cfg loom"`), where
//! loom explores every interleaving of the threads a test starts. Loom's types only work inside
//! `loom::model`, so under `--cfg loom` nothing outside a model may construct them.
//!
//! # Poisoning
//! A lock is poisoned when a thread panics while holding it. The shared pieces restore their
//! invariants before every unlock (no method panics half-way through an update), so the data
//! behind a poisoned lock is valid: [`lock`] recovers it with `PoisonError::into_inner` rather than
//! spreading one task's panic to every other task.

#[cfg(loom)]
pub use loom::sync::{
    Arc, Condvar, Mutex, MutexGuard,
    atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
};
#[cfg(not(loom))]
pub use std::sync::{
    Arc, Condvar, Mutex, MutexGuard,
    atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
};

/// Locks `mutex`, recovering the data if a panicking thread poisoned it (see the module docs).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
