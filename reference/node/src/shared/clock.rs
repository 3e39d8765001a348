//! The node's hybrid logical clock (HLC), stamped by many tasks at once.
//!
//! A [`Stamp`] packs the physical time in milliseconds into its upper 48 bits and a logical counter
//! into its lower 16, so the HLC's order (physical first, then logical) is plain `u64` order and
//! the whole clock fits one [`AtomicU64`]. [`HlcClock::stamp`] and [`HlcClock::observe`] are
//! lock-free: a compare-and-swap loop and a `fetch_max`.
//!
//! # Invariants
//! - The clock's value only grows.
//! - Every stamp [`HlcClock::stamp`] returns is strictly greater than every stamp the clock
//!   returned or observed before it, so stamps are unique across tasks and increase within one.
//! - A stamp's physical part is at least the `phys_ms` it was asked with (clamped to 48 bits),
//!   except that a logical counter at its maximum carries into the physical part: the stamp after
//!   `(p, 0xffff)` is `(p + 1, 0)`, which is simply the next `u64`.
//! - [`HlcClock::observe`] refuses a remote stamp more than `max_drift_ms` ahead of the local
//!   physical time, so one peer with a wild clock cannot drag this clock into the future.
//!
//! Peer frame headers carry a stamp: the sender stamps each frame and the receiver observes it,
//! and reports replication lag in ms as its physical time minus the frame's physical part.

use crate::sync::{AtomicU64, Ordering};

/// Bits of a [`Stamp`] holding the logical counter.
const LOGICAL_BITS: u32 = 16;
/// The largest physical time a [`Stamp`] can hold, in ms (about the year 10889).
pub const MAX_PHYSICAL_MS: u64 = (1 << (64 - LOGICAL_BITS)) - 1;

/// A packed HLC timestamp: upper 48 bits physical ms, lower 16 bits logical counter. The total
/// order of stamps is the order of the `u64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp(pub u64);

impl Stamp {
    /// The stamp with physical part `phys_ms` (clamped to [`MAX_PHYSICAL_MS`]) and counter
    /// `logical`.
    pub fn new(phys_ms: u64, logical: u16) -> Self {
        Stamp((phys_ms.min(MAX_PHYSICAL_MS) << LOGICAL_BITS) | u64::from(logical))
    }

    /// The physical part, in ms.
    pub fn physical_ms(self) -> u64 {
        self.0 >> LOGICAL_BITS
    }

    /// The logical counter.
    pub fn logical(self) -> u16 {
        // The mask keeps exactly the low 16 bits, so the cast loses nothing.
        (self.0 & 0xffff) as u16
    }
}

/// A remote stamp too far ahead of the local clock, refused by [`HlcClock::observe`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "remote clock {remote_ms} ms is more than {max_drift_ms} ms ahead of the local {local_ms} ms"
)]
pub struct ClockDrift {
    /// The remote stamp's physical part.
    pub remote_ms: u64,
    /// The local physical time it was compared with.
    pub local_ms: u64,
    /// The largest drift accepted.
    pub max_drift_ms: u64,
}

/// The node's hybrid logical clock; see the module docs for its invariants.
#[derive(Debug)]
pub struct HlcClock {
    /// The greatest stamp returned or observed so far (0 before any).
    last: AtomicU64,
}

impl HlcClock {
    /// A clock that has stamped and observed nothing.
    pub fn new() -> Self {
        HlcClock {
            last: AtomicU64::new(0),
        }
    }

    /// A stamp strictly greater than every stamp this clock returned or observed before, with
    /// physical part ≥ `phys_ms` unless the logical counter overflowed (then it carries).
    ///
    /// The clock saturates at `u64::MAX`, which needs a physical time past [`MAX_PHYSICAL_MS`]
    /// (the year 10889); observe's drift bound keeps remote stamps from getting there first.
    pub fn stamp(&self, phys_ms: u64) -> Stamp {
        let floor = Stamp::new(phys_ms, 0).0;
        let mut current = self.last.load(Ordering::Acquire);
        loop {
            let next = current.saturating_add(1).max(floor);
            // AcqRel: a stamp handed out is ordered after every stamp returned or observed
            // before it, so a task that reads `last` afterwards sees at least this one.
            match self.last.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Stamp(next),
                Err(actual) => current = actual,
            }
        }
    }

    /// Absorbs `remote` so that every later [`stamp`](Self::stamp) is greater than it.
    ///
    /// Refuses it, absorbing nothing, when its physical part is more than `max_drift_ms` ahead
    /// of `phys_ms`.
    pub fn observe(
        &self,
        remote: Stamp,
        phys_ms: u64,
        max_drift_ms: u64,
    ) -> Result<(), ClockDrift> {
        if remote.physical_ms() > phys_ms.saturating_add(max_drift_ms) {
            return Err(ClockDrift {
                remote_ms: remote.physical_ms(),
                local_ms: phys_ms,
                max_drift_ms,
            });
        }
        self.last.fetch_max(remote.0, Ordering::AcqRel);
        Ok(())
    }

    /// The greatest stamp returned or observed so far (`Stamp(0)` before any).
    pub fn last(&self) -> Stamp {
        Stamp(self.last.load(Ordering::Acquire))
    }
}

impl Default for HlcClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn stamp_packs_physical_and_logical() {
        let s = Stamp::new(1_700_000_000_123, 7);
        assert_eq!(s.physical_ms(), 1_700_000_000_123);
        assert_eq!(s.logical(), 7);
        assert!(Stamp::new(5, 0xffff) < Stamp::new(6, 0));
        assert_eq!(Stamp::new(u64::MAX, 0).physical_ms(), MAX_PHYSICAL_MS);
    }

    #[test]
    fn stamps_follow_physical_time_and_count_within_a_millisecond() {
        let clock = HlcClock::new();
        assert_eq!(clock.stamp(100), Stamp::new(100, 0));
        assert_eq!(clock.stamp(100), Stamp::new(100, 1));
        // The OS clock stepping back does not move the HLC back.
        assert_eq!(clock.stamp(90), Stamp::new(100, 2));
        assert_eq!(clock.stamp(101), Stamp::new(101, 0));
        assert_eq!(clock.last(), Stamp::new(101, 0));
    }

    #[test]
    fn logical_overflow_carries_into_the_physical_part() {
        let clock = HlcClock::new();
        clock
            .observe(Stamp::new(100, 0xffff), 100, 0)
            .expect("not ahead");
        assert_eq!(clock.stamp(100), Stamp::new(101, 0));
    }

    #[test]
    fn observe_moves_later_stamps_past_the_remote_one() {
        let clock = HlcClock::new();
        clock.stamp(100);
        clock
            .observe(Stamp::new(150, 3), 100, 100)
            .expect("within drift");
        assert_eq!(clock.stamp(100), Stamp::new(150, 4));
        // Observing an older stamp changes nothing.
        clock.observe(Stamp::new(120, 0), 100, 100).expect("behind");
        assert_eq!(clock.stamp(100), Stamp::new(150, 5));
    }

    #[test]
    fn observe_refuses_a_stamp_too_far_ahead_and_absorbs_nothing() {
        let clock = HlcClock::new();
        let before = clock.stamp(100);
        let err = clock
            .observe(Stamp::new(201, 0), 100, 100)
            .expect_err("101 ms ahead");
        assert_eq!(
            err,
            ClockDrift {
                remote_ms: 201,
                local_ms: 100,
                max_drift_ms: 100
            }
        );
        assert_eq!(clock.last(), before);
        // Exactly at the bound is accepted.
        clock
            .observe(Stamp::new(200, 0), 100, 100)
            .expect("at the bound");
        assert_eq!(clock.last(), Stamp::new(200, 0));
    }

    #[test]
    fn stamps_from_many_threads_are_unique_and_increase_per_thread() {
        let clock = std::sync::Arc::new(HlcClock::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let clock = clock.clone();
                std::thread::spawn(move || (0..10_000).map(|_| clock.stamp(5)).collect::<Vec<_>>())
            })
            .collect();
        let mut all = Vec::new();
        for t in threads {
            let stamps = t.join().expect("stamping thread panicked");
            assert!(stamps.windows(2).all(|w| w[0] < w[1]), "not increasing");
            all.extend(stamps);
        }
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "two threads got the same stamp");
    }
}
