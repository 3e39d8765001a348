//! Loom model checks of the node's shared pieces (`converge_node::shared`).
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p converge-node --test loom --release` (or
//! `just loom`). Under `--cfg loom`, `converge_node::sync` hands the pieces loom's locks and
//! atomics, and each `loom::model` below runs its closure once per interleaving of the loom threads
//! it spawns (bounded by the preemption bound where noted), so an assertion here holds in *every*
//! interleaving, not in the ones a stress test happened to hit. A future left pending with nobody
//! to wake it makes loom report a deadlock, which is how a lost wake-up shows up.
//!
//! Each model stays small (two or three threads, a handful of operations) so the whole file runs in
//! seconds; loom's cost grows exponentially with operations per thread. A failure prints loom's
//! interleaving; set `LOOM_LOG=1 LOOM_LOCATION=1` to see each step.
#![cfg(loom)]

use converge_node::shared::{HlcClock, LogCursors, Outbox, PushError, Stamp, Waiters};
use converge_node::sync::{Arc, AtomicUsize, Ordering};
use loom::future::block_on;
use loom::thread;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A model builder with a preemption bound: bounding preemptions (not thread switches at blocking
/// points) keeps the larger models to seconds while still covering the interleavings where bugs
/// of this kind live (they need one or two preemptions).
fn bounded(preemptions: usize) -> loom::model::Builder {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(preemptions);
    builder
}

// ---- HLC ----------------------------------------------------------------------------------------

/// Two tasks stamp while a third observes a remote stamp: every task's stamps increase, no two
/// stamps are equal, a stamp taken after an observe is greater than the observed stamp, and
/// `last` ends at the greatest stamp handed out or observed.
#[test]
fn hlc_concurrent_stamps_are_monotonic_unique_and_respect_observe() {
    bounded(3).check(|| {
        let clock = Arc::new(HlcClock::new());
        let remote = Stamp::new(12, 5);
        let a = {
            let clock = clock.clone();
            thread::spawn(move || [clock.stamp(10), clock.stamp(11)])
        };
        let b = {
            let clock = clock.clone();
            thread::spawn(move || {
                clock.observe(remote, 10, 100).expect("within drift");
                let after = clock.stamp(10);
                assert!(after > remote, "{after:?} not after observed {remote:?}");
                after
            })
        };
        let own = [clock.stamp(10), clock.stamp(10)];
        let a = a.join().expect("thread a");
        let b = b.join().expect("thread b");
        for stamps in [&a, &own] {
            assert!(stamps[0] < stamps[1], "not monotonic: {stamps:?}");
            assert!(stamps[0].physical_ms() >= 10);
        }
        let mut all = vec![a[0], a[1], b, own[0], own[1]];
        let max = all.iter().copied().max().expect("five stamps");
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 5, "duplicate stamps: {all:?}");
        assert_eq!(clock.last(), max.max(remote));
    });
}

// ---- Waiters (the session wait) -----------------------------------------------------------------

/// The driver completes a request while the connection task polls it: whichever runs first, the
/// task is woken and gets the value (a lost wake-up would leave `block_on` waiting forever, which
/// loom reports as a deadlock), and the registry ends empty.
#[test]
fn waiter_is_woken_whatever_the_order_of_complete_and_poll() {
    loom::model(|| {
        let waiters = Waiters::new(2);
        let waiter = waiters.register().expect("room");
        let id = waiter.id();
        let driver = {
            let waiters = waiters.clone();
            thread::spawn(move || assert!(waiters.complete(id, 42u32)))
        };
        assert_eq!(block_on(waiter), 42);
        driver.join().expect("driver");
        assert!(waiters.is_empty(), "a resolved waiter left its slot");
    });
}

/// Counts its drops, so the model can check a value is dropped exactly once.
struct Counted(Arc<AtomicUsize>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A request times out (its waiter is dropped) while the driver completes it: either the
/// completion lands first (true) or finds nobody (false); the value is dropped exactly once either
/// way, and nothing is left registered.
#[test]
fn dropped_waiter_races_complete_without_leak() {
    loom::model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let waiters = Waiters::new(1);
        let waiter = waiters.register().expect("room");
        let id = waiter.id();
        let driver = {
            let waiters = waiters.clone();
            let drops = drops.clone();
            thread::spawn(move || waiters.complete(id, Counted(drops)))
        };
        drop(waiter);
        let _delivered = driver.join().expect("driver");
        assert!(waiters.is_empty(), "dropped waiter left its slot");
        assert_eq!(
            drops.load(Ordering::SeqCst),
            1,
            "value leaked or dropped twice"
        );
        // The capacity it held is free again.
        assert!(waiters.register().is_ok());
    });
}

/// A waiter polled once (pending, waker stored) is then dropped while the driver completes it:
/// no panic, no leak, exactly one drop of the value.
#[test]
fn polled_then_dropped_waiter_races_complete() {
    loom::model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let waiters = Waiters::new(1);
        let mut waiter = waiters.register().expect("room");
        let id = waiter.id();
        let driver = {
            let waiters = waiters.clone();
            let drops = drops.clone();
            thread::spawn(move || waiters.complete(id, Counted(drops)))
        };
        // One poll with a no-op waker, as a select! that then times out would.
        let first = Pin::new(&mut waiter).poll(&mut Context::from_waker(std::task::Waker::noop()));
        let resolved = matches!(first, Poll::Ready(_));
        drop(first);
        drop(waiter);
        let delivered = driver.join().expect("driver");
        assert!(!resolved || delivered, "resolved without a completion");
        assert!(waiters.is_empty());
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    });
}

/// Two requests wait at once and two driver threads complete them: each gets its own value.
#[test]
fn two_waiters_get_their_own_values() {
    bounded(2).check(|| {
        let waiters = Waiters::new(2);
        let first = waiters.register().expect("room");
        let second = waiters.register().expect("room");
        assert!(waiters.register().is_err(), "capacity 2");
        let (id1, id2) = (first.id(), second.id());
        let c1 = {
            let waiters = waiters.clone();
            thread::spawn(move || assert!(waiters.complete(id2, 2u8)))
        };
        let c2 = {
            let waiters = waiters.clone();
            thread::spawn(move || assert!(waiters.complete(id1, 1u8)))
        };
        assert_eq!(block_on(first), 1);
        assert_eq!(block_on(second), 2);
        c1.join().expect("c1");
        c2.join().expect("c2");
        assert!(waiters.is_empty());
    });
}

// ---- Oplog cursors ------------------------------------------------------------------------------

/// Checks the cursor invariants on one snapshot.
fn check_snapshot(c: &LogCursors) -> converge_node::shared::CursorSnapshot {
    let s = c.snapshot();
    assert!(s.durable <= s.appended, "durable past appended: {s:?}");
    assert!(s.truncated <= s.durable, "truncated past durable: {s:?}");
    for &(peer, acked) in &s.acked {
        assert!(
            acked <= s.appended,
            "peer {peer} acked past appended: {s:?}"
        );
        assert!(
            s.truncated <= acked,
            "truncated past peer {peer}'s ack: {s:?}"
        );
    }
    s
}

/// The driver appends and commits, two peer readers acknowledge and the metrics task snapshots
/// and truncates, all at once: every snapshot keeps `acked ≤ appended`, `durable ≤ appended`,
/// `truncated ≤ durable` and `≤ every acked`, and every cursor only moves forward.
#[test]
fn cursors_keep_their_invariants_in_every_interleaving() {
    bounded(2).check(|| {
        let cursors = Arc::new(LogCursors::new(&[7, 8]));
        let driver = {
            let c = cursors.clone();
            thread::spawn(move || {
                c.append(1);
                c.durable(1);
                c.append(2);
                c.durable(2);
            })
        };
        let peers = {
            let c = cursors.clone();
            thread::spawn(move || {
                // Acks may run ahead of what this node saw appended (a stale view); they clamp.
                c.ack(7, 2);
                c.ack(8, 1);
                c.truncate_point()
            })
        };
        let s1 = check_snapshot(&cursors);
        let t1 = cursors.truncate_point();
        let s2 = check_snapshot(&cursors);
        assert!(
            s2.truncated >= t1 && t1 >= s1.truncated,
            "truncate point moved back"
        );
        assert!(s2.appended >= s1.appended && s2.durable >= s1.durable);
        for (a, b) in s1.acked.iter().zip(&s2.acked) {
            assert!(b.1 >= a.1, "ack moved back");
        }
        driver.join().expect("driver");
        let t_peer = peers.join().expect("peers");
        let end = check_snapshot(&cursors);
        assert_eq!((end.appended, end.durable), (2, 2));
        assert!(t_peer <= cursors.truncate_point());
        assert_eq!(cursors.lag_entries(8), Some(2 - end.acked[1].1));
    });
}

// ---- Batching outbox ----------------------------------------------------------------------------

/// The driver pushes three frames into an outbox bounded at two and closes it, while the writer
/// awaits `ready` and takes batches: the writer receives exactly the accepted frames in push order
/// (FIFO), never sees more than two queued (bounded), is always woken for a push (no lost wake-up)
/// and wakes up and exits on close.
#[test]
fn outbox_is_fifo_bounded_and_never_loses_a_wake_up() {
    bounded(2).check(|| {
        let outbox = Outbox::new(2, 1024);
        let driver = {
            let outbox = outbox.clone();
            thread::spawn(move || {
                let mut accepted = Vec::new();
                for i in 0..3u8 {
                    match outbox.push(vec![i]) {
                        Ok(()) => accepted.push(i),
                        Err(PushError::Full) => {}
                        Err(PushError::Closed) => unreachable!("closed only below"),
                    }
                }
                outbox.close();
                accepted
            })
        };
        let mut received = Vec::new();
        loop {
            block_on(outbox.ready());
            let queued = outbox.stats().queued_frames;
            assert!(queued <= 2, "outbox over its bound: {queued}");
            let mut batch = Vec::new();
            let moved = outbox.take_batch(1024, &mut batch);
            received.extend(batch.into_iter().map(|f| f[0]));
            if moved == 0 && outbox.is_closed() {
                break;
            }
        }
        let accepted = driver.join().expect("driver");
        assert_eq!(received, accepted, "frames lost, duplicated or reordered");
        let stats = outbox.stats();
        assert_eq!(stats.pushed as usize + stats.rejected_full as usize, 3);
        assert_eq!(outbox.push(vec![9]), Err(PushError::Closed));
    });
}

/// `close` alone, racing a writer parked in `ready`, wakes it.
#[test]
fn outbox_close_wakes_a_waiting_writer() {
    loom::model(|| {
        let outbox = Outbox::new(1, 16);
        let closer = {
            let outbox = outbox.clone();
            thread::spawn(move || outbox.close())
        };
        block_on(outbox.ready());
        assert!(outbox.is_closed());
        closer.join().expect("closer");
    });
}
