use serde::{Deserialize, Serialize};
use std::fmt;

/// A hybrid logical clock timestamp: physical milliseconds plus a logical counter.
///
/// Ordered by `(wall_ms, logical)`. Within one replica the clock never issues the same timestamp
/// twice, so `(timestamp, replica id)` totally orders every write of a cluster.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HlcTimestamp {
    /// The largest physical time (ms since the Unix epoch) this clock has heard of: `l` in the paper.
    pub wall_ms: u64,
    /// Events since `wall_ms` last moved: `c` in the paper.
    pub logical: u32,
}

impl HlcTimestamp {
    /// A timestamp from its two parts.
    pub fn new(wall_ms: u64, logical: u32) -> Self {
        HlcTimestamp { wall_ms, logical }
    }
}

impl fmt::Debug for HlcTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.wall_ms, self.logical)
    }
}

/// Why the clock refused to move.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// A remote timestamp is further ahead of local physical time than the configured bound.
    /// Absorbing it would drag this clock (and every clock it talks to) into the future.
    #[error(
        "remote timestamp {remote_ms} ms is {ahead_ms} ms ahead of local physical time {physical_ms} ms (max drift {max_drift_ms} ms)"
    )]
    RemoteAhead {
        /// The remote timestamp's physical part.
        remote_ms: u64,
        /// Local physical time when it arrived.
        physical_ms: u64,
        /// How far ahead it was.
        ahead_ms: u64,
        /// The configured bound.
        max_drift_ms: u64,
    },
    /// The logical counter would overflow: 2^32 events within one millisecond of wall time, or a
    /// remote timestamp crafted with a saturated counter.
    #[error("logical counter overflow at wall time {wall_ms} ms")]
    LogicalOverflow {
        /// Wall time at which the counter ran out.
        wall_ms: u64,
    },
}

/// A hybrid logical clock, exactly as Kulkarni, Demirbas et al. define it (2014, "Logical
/// Physical Clocks"), with physical time passed in by the caller.
///
/// Invariants: issued timestamps strictly increase; `wall_ms` never falls below any physical time
/// passed in; a timestamp more than `max_drift_ms` ahead of local physical time is never absorbed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Hlc {
    last: HlcTimestamp,
    max_drift_ms: u64,
}

impl Hlc {
    /// A clock that refuses remote timestamps more than `max_drift_ms` ahead of local time.
    pub fn new(max_drift_ms: u64) -> Self {
        Hlc {
            last: HlcTimestamp::default(),
            max_drift_ms,
        }
    }

    /// Restores a clock that last issued `last` (e.g. from durable state after a restart).
    pub fn resume(last: HlcTimestamp, max_drift_ms: u64) -> Self {
        Hlc { last, max_drift_ms }
    }

    /// The last timestamp issued or observed.
    pub fn last(&self) -> HlcTimestamp {
        self.last
    }

    /// The configured drift bound.
    pub fn max_drift_ms(&self) -> u64 {
        self.max_drift_ms
    }

    /// Stamps a local or send event at physical time `now_ms`.
    ///
    /// `l' = max(l, pt)`; `c' = c + 1` if `l` did not move, else `0`.
    pub fn now(&mut self, now_ms: u64) -> Result<HlcTimestamp, ClockError> {
        let wall_ms = self.last.wall_ms.max(now_ms);
        let logical = if wall_ms == self.last.wall_ms {
            self.last
                .logical
                .checked_add(1)
                .ok_or(ClockError::LogicalOverflow { wall_ms })?
        } else {
            0
        };
        self.advance(HlcTimestamp { wall_ms, logical })
    }

    /// Stamps the receipt of a message carrying `remote` at physical time `now_ms`.
    ///
    /// `l' = max(l, l_m, pt)`; `c'` is `max(c, c_m) + 1` if both `l` and `l_m` equal `l'`, `c + 1` if
    /// only `l` does, `c_m + 1` if only `l_m` does, else `0`. A remote timestamp more than the drift
    /// bound ahead of `now_ms` is refused and leaves the clock unchanged.
    pub fn observe(
        &mut self,
        remote: HlcTimestamp,
        now_ms: u64,
    ) -> Result<HlcTimestamp, ClockError> {
        let ahead_ms = remote.wall_ms.saturating_sub(now_ms);
        if ahead_ms > self.max_drift_ms {
            return Err(ClockError::RemoteAhead {
                remote_ms: remote.wall_ms,
                physical_ms: now_ms,
                ahead_ms,
                max_drift_ms: self.max_drift_ms,
            });
        }
        let local = self.last;
        let wall_ms = local.wall_ms.max(remote.wall_ms).max(now_ms);
        let overflow = ClockError::LogicalOverflow { wall_ms };
        let logical = match (wall_ms == local.wall_ms, wall_ms == remote.wall_ms) {
            (true, true) => local.logical.max(remote.logical).checked_add(1),
            (true, false) => local.logical.checked_add(1),
            (false, true) => remote.logical.checked_add(1),
            (false, false) => Some(0),
        }
        .ok_or(overflow)?;
        self.advance(HlcTimestamp { wall_ms, logical })
    }

    fn advance(&mut self, next: HlcTimestamp) -> Result<HlcTimestamp, ClockError> {
        debug_assert!(next > self.last, "HLC must strictly increase");
        self.last = next;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_events_follow_physical_time_or_count_when_it_stalls() {
        let mut hlc = Hlc::new(1_000);
        assert_eq!(hlc.now(10).unwrap(), HlcTimestamp::new(10, 0));
        assert_eq!(hlc.now(10).unwrap(), HlcTimestamp::new(10, 1));
        // Physical time going backwards (NTP step) does not move the clock back.
        assert_eq!(hlc.now(5).unwrap(), HlcTimestamp::new(10, 2));
        assert_eq!(hlc.now(11).unwrap(), HlcTimestamp::new(11, 0));
    }

    #[test]
    fn receive_rule_covers_each_branch_of_the_paper() {
        let mut hlc = Hlc::resume(HlcTimestamp::new(10, 4), 1_000);
        // l == l_m == l': max(c, c_m) + 1.
        assert_eq!(
            hlc.observe(HlcTimestamp::new(10, 7), 3).unwrap(),
            HlcTimestamp::new(10, 8)
        );
        // Only l == l': c + 1.
        assert_eq!(
            hlc.observe(HlcTimestamp::new(9, 50), 3).unwrap(),
            HlcTimestamp::new(10, 9)
        );
        // Only l_m == l': c_m + 1.
        assert_eq!(
            hlc.observe(HlcTimestamp::new(12, 3), 11).unwrap(),
            HlcTimestamp::new(12, 4)
        );
        // Physical time ahead of both: reset to 0.
        assert_eq!(
            hlc.observe(HlcTimestamp::new(12, 9), 20).unwrap(),
            HlcTimestamp::new(20, 0)
        );
    }

    #[test]
    fn a_timestamp_beyond_the_drift_bound_is_refused_and_leaves_the_clock_alone() {
        let mut hlc = Hlc::resume(HlcTimestamp::new(100, 0), 250);
        let err = hlc.observe(HlcTimestamp::new(351, 0), 100).unwrap_err();
        assert_eq!(
            err,
            ClockError::RemoteAhead {
                remote_ms: 351,
                physical_ms: 100,
                ahead_ms: 251,
                max_drift_ms: 250
            }
        );
        assert_eq!(hlc.last(), HlcTimestamp::new(100, 0));
        // Exactly at the bound is accepted.
        assert!(hlc.observe(HlcTimestamp::new(350, 0), 100).is_ok());
    }

    #[test]
    fn a_saturated_remote_counter_is_an_error_not_a_panic() {
        let mut hlc = Hlc::resume(HlcTimestamp::new(10, 0), 1_000);
        let err = hlc
            .observe(HlcTimestamp::new(10, u32::MAX), 10)
            .unwrap_err();
        assert_eq!(err, ClockError::LogicalOverflow { wall_ms: 10 });
        assert_eq!(hlc.last(), HlcTimestamp::new(10, 0));
    }
}
