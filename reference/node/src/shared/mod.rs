//! State shared between the node's tasks, kept free of tokio so loom can check it.
//!
//! The TCP node runs many tokio tasks (one per client connection, one reader and one writer per
//! peer link, the driver that owns the [`Replica`]) that share a few pieces of state. Each piece
//! here uses only [`crate::sync`] (std or loom locks and atomics) and std's `Future`/`Waker`, never
//! a tokio type, because loom cannot model tokio's runtime: under `RUSTFLAGS="--cfg loom"`,
//! `tests/loom.rs` runs every piece on loom threads and explores their interleavings.
//!
//! - [`clock`]: the node's hybrid logical clock, stamped by many tasks at once.
//! - [`waiters`]: the session wait, a client request waiting for the driver's reply.
//! - [`outbox`]: the bounded, batching outbox of one peer link.
//! - [`cursors`]: the oplog's append / durable / ack / truncate cursors.
//!
//! **Invariant**: no lock here is held across an `.await` or while waking a task, and no method
//! takes two locks, so the pieces cannot deadlock with each other or with their callers.
//!
//! [`Replica`]: converge_core::replica::Replica

pub mod clock;
pub mod cursors;
pub mod outbox;
pub mod waiters;

pub use clock::{ClockDrift, HlcClock, Stamp};
pub use cursors::{CursorSnapshot, LogCursors};
pub use outbox::{Outbox, OutboxStats, PushError, Ready};
pub use waiters::{Waiter, Waiters, WaitersFull};
