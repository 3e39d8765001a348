//! The session wait: a client request waiting for the driver to hand it its reply.
//!
//! A connection task [`register`](Waiters::register)s a [`Waiter`], submits its request to the
//! driver with the waiter's id, and awaits the waiter (under a timeout of its own). When the
//! [`Replica`] produces the reply, the driver [`complete`](Waiters::complete)s that id, which
//! stores the value and wakes the task. A request that times out drops its waiter, and a reply
//! arriving after that finds nobody and is dropped.
//!
//! # Invariants
//! - **No lost wake-up**: a completed waiter is always woken, whatever the interleaving of
//!   `complete`, `poll` and drop. The value and the waker live in one slot behind one lock:
//!   `poll` checks for the value and stores its waker in the same critical section, and
//!   `complete` stores the value and takes the waker in another, so either `poll` sees the value
//!   or `complete` sees the waker.
//! - **Bounded, no leak**: at most `capacity` waiters are registered at once; a waiter's slot is
//!   removed when it resolves or is dropped, so [`Waiters::len`] goes back down.
//! - **Ids are never reused**, so a late `complete` for a dropped waiter cannot reach a newer one.
//! - Wakers are woken and values dropped after the lock is released, so a waker or a value's
//!   destructor never runs under the lock.
//!
//! [`Replica`]: converge_core::replica::Replica

use crate::sync::{Arc, Mutex, lock};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// [`Waiters::register`] refused: `capacity` requests are already waiting.
#[derive(Debug, thiserror::Error)]
#[error("too many requests waiting ({0})")]
pub struct WaitersFull(pub usize);

/// The registry of waiting requests, shared by the connection tasks and the driver.
///
/// [`Waiters::new`] returns an `Arc<Waiters<T>>` to share; the registry itself sits behind a
/// second, inner `Arc` that each [`Waiter`] holds, so `register` can take `&self` (loom's `Arc`
/// cannot be a method receiver on stable Rust) while `waiters.register()` reads the same on an
/// `Arc<Waiters<T>>`.
pub struct Waiters<T> {
    registry: Arc<Registry<T>>,
}

struct Registry<T> {
    capacity: usize,
    state: Mutex<State<T>>,
}

struct State<T> {
    /// The next id to hand out; ids start at 1 and only grow.
    next_id: u64,
    /// One slot per registered waiter that has neither resolved nor been dropped.
    slots: HashMap<u64, Slot<T>>,
}

struct Slot<T> {
    /// The reply, once completed and until the waiter takes it.
    value: Option<T>,
    /// The waker of the last poll that found no value.
    waker: Option<Waker>,
}

impl<T> Waiters<T> {
    /// An empty registry allowing `capacity` waiters at once.
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Waiters {
            registry: Arc::new(Registry {
                capacity,
                state: Mutex::new(State {
                    next_id: 1,
                    slots: HashMap::new(),
                }),
            }),
        })
    }

    /// Registers a waiter under a fresh id, or refuses when `capacity` waiters are waiting.
    pub fn register(&self) -> Result<Waiter<T>, WaitersFull> {
        let mut state = lock(&self.registry.state);
        if state.slots.len() >= self.registry.capacity {
            return Err(WaitersFull(self.registry.capacity));
        }
        let id = state.next_id;
        // 2^64 registrations do not happen; saturating keeps even that case from wrapping onto
        // an id in use (registration then fails below instead of reusing one).
        state.next_id = state.next_id.saturating_add(1);
        if state.slots.contains_key(&id) {
            return Err(WaitersFull(self.registry.capacity));
        }
        state.slots.insert(
            id,
            Slot {
                value: None,
                waker: None,
            },
        );
        Ok(Waiter {
            id,
            registry: self.registry.clone(),
        })
    }

    /// Hands `value` to waiter `id` and wakes it.
    ///
    /// Returns false, dropping `value`, when the waiter is gone (dropped, e.g. after a timeout,
    /// or already resolved) or was already completed. Safe before or after the waiter's first
    /// poll.
    pub fn complete(&self, id: u64, value: T) -> bool {
        let waker = {
            let mut state = lock(&self.registry.state);
            match state.slots.get_mut(&id) {
                Some(slot) if slot.value.is_none() => {
                    slot.value = Some(value);
                    slot.waker.take()
                }
                // Unknown or already completed: `value` is dropped after the lock is released.
                _ => {
                    drop(state);
                    return false;
                }
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }

    /// How many waiters are registered and not yet resolved or dropped.
    pub fn len(&self) -> usize {
        lock(&self.registry.state).slots.len()
    }

    /// Whether no waiter is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One registered request: a future resolving to the value [`Waiters::complete`] hands it.
///
/// Dropping it deregisters it. Polling it again after it resolved returns `Pending` forever (the
/// value was moved out); callers await it once, under a timeout.
pub struct Waiter<T> {
    id: u64,
    registry: Arc<Registry<T>>,
}

impl<T> Waiter<T> {
    /// The id to complete this waiter with.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl<T> Future for Waiter<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut state = lock(&self.registry.state);
        let Some(slot) = state.slots.get_mut(&self.id) else {
            // Already resolved: see the type's docs.
            return Poll::Pending;
        };
        if let Some(value) = slot.value.take() {
            // Resolved: the slot goes now, so `len` counts only requests still waiting.
            let old = state.slots.remove(&self.id);
            drop(state);
            drop(old);
            return Poll::Ready(value);
        }
        match &mut slot.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            stored => *stored = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> Drop for Waiter<T> {
    fn drop(&mut self) {
        let slot = lock(&self.registry.state).slots.remove(&self.id);
        // The slot (a value nobody will read, a stale waker) is dropped outside the lock.
        drop(slot);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering as StdOrdering};
    use std::task::Wake;

    /// A waker that counts its wake-ups.
    struct CountingWaker(AtomicUsize);
    impl Wake for CountingWaker {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, StdOrdering::SeqCst);
        }
    }

    fn poll<F: Future + Unpin>(f: &mut F, waker: &Waker) -> Poll<F::Output> {
        Pin::new(f).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn complete_after_poll_wakes_and_resolves() {
        let waiters = Waiters::new(4);
        let mut w = waiters.register().expect("room");
        let count = std::sync::Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        assert_eq!(poll(&mut w, &waker), Poll::Pending);
        assert!(waiters.complete(w.id(), "reply"));
        assert_eq!(count.0.load(StdOrdering::SeqCst), 1);
        assert_eq!(poll(&mut w, &waker), Poll::Ready("reply"));
        assert!(waiters.is_empty());
        // Completing it again finds nobody.
        assert!(!waiters.complete(w.id(), "late"));
    }

    #[test]
    fn complete_before_the_first_poll_resolves_at_once() {
        let waiters = Waiters::new(4);
        let mut w = waiters.register().expect("room");
        assert!(waiters.complete(w.id(), 7));
        assert!(!waiters.complete(w.id(), 8), "second completion refused");
        assert_eq!(poll(&mut w, Waker::noop()), Poll::Ready(7));
    }

    #[test]
    fn dropped_waiter_leaves_nothing_and_refuses_completion() {
        let waiters = Waiters::<u8>::new(4);
        let w = waiters.register().expect("room");
        let id = w.id();
        assert_eq!(waiters.len(), 1);
        drop(w);
        assert_eq!(waiters.len(), 0);
        assert!(!waiters.complete(id, 1));
    }

    #[test]
    fn registration_is_bounded_and_ids_are_not_reused() {
        let waiters = Waiters::<u8>::new(2);
        let a = waiters.register().expect("room");
        let b = waiters.register().expect("room");
        let full = waiters.register().map(|w| w.id()).expect_err("full");
        assert_eq!(full.0, 2);
        assert_eq!(full.to_string(), "too many requests waiting (2)");
        let (a_id, b_id) = (a.id(), b.id());
        drop(a);
        let c = waiters.register().expect("room again");
        assert!(c.id() != a_id && c.id() != b_id);
    }

    #[test]
    fn repolling_with_a_new_waker_wakes_the_new_one() {
        let waiters = Waiters::new(1);
        let mut w = waiters.register().expect("room");
        let first = std::sync::Arc::new(CountingWaker(AtomicUsize::new(0)));
        let second = std::sync::Arc::new(CountingWaker(AtomicUsize::new(0)));
        assert_eq!(poll(&mut w, &Waker::from(first.clone())), Poll::Pending);
        assert_eq!(poll(&mut w, &Waker::from(second.clone())), Poll::Pending);
        assert!(waiters.complete(w.id(), ()));
        assert_eq!(first.0.load(StdOrdering::SeqCst), 0);
        assert_eq!(second.0.load(StdOrdering::SeqCst), 1);
    }
}
