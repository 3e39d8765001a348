//! The subject's own rhythm, measured from the node-to-node traffic the harness carries: how
//! often each node sends to each peer, so that the final reads can watch a cluster for long
//! enough to span several of its replication rounds, whatever its timers are.
//!
//! A node that replicates each write at once sends in bursts that follow the clients; one that
//! gossips on a timer sends a burst per tick. Sends closer together than [`BURST_GAP_MS`] count
//! as one burst, and a link's period is the median gap between its bursts over its last
//! [`GAPS_KEPT`] bursts. The cluster's period is the slowest link's, among links that sent often
//! enough to have one.
//!
//! Invariants: memory is bounded by the number of links times [`GAPS_KEPT`]; the period depends
//! only on the send times observed.

use std::collections::{BTreeMap, VecDeque};

/// Sends on one link closer together than this are one burst.
pub const BURST_GAP_MS: u64 = 10;
/// Gaps kept per link: enough for a stable median, few enough to follow a change of pace.
pub const GAPS_KEPT: usize = 64;
/// Gaps a link needs before its median counts.
const MIN_GAPS: usize = 4;

/// Send times per directed link, reduced to the recent gaps between bursts.
#[derive(Debug, Default)]
pub struct Cadence {
    links: BTreeMap<(usize, usize), Link>,
}

#[derive(Debug, Default)]
struct Link {
    last_burst_ms: Option<u64>,
    gaps: VecDeque<u64>,
}

impl Cadence {
    /// Records a message from `from` to `to` sent at `now_ms` (times never go back).
    pub fn sent(&mut self, from: usize, to: usize, now_ms: u64) {
        let link = self.links.entry((from, to)).or_default();
        match link.last_burst_ms {
            Some(last) if now_ms.saturating_sub(last) < BURST_GAP_MS => {}
            Some(last) => {
                if link.gaps.len() == GAPS_KEPT {
                    link.gaps.pop_front();
                }
                link.gaps.push_back(now_ms - last);
                link.last_burst_ms = Some(now_ms);
            }
            None => link.last_burst_ms = Some(now_ms),
        }
    }

    /// The slowest link's median gap between bursts, in ms; `None` until some link has sent
    /// enough bursts to tell.
    pub fn period_ms(&self) -> Option<u64> {
        self.links
            .values()
            .filter(|l| l.gaps.len() >= MIN_GAPS)
            .map(|l| {
                let mut gaps: Vec<u64> = l.gaps.iter().copied().collect();
                gaps.sort_unstable();
                gaps[gaps.len() / 2]
            })
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timer_driven_link_shows_its_period_and_bursts_count_once() {
        let mut c = Cadence::default();
        assert_eq!(c.period_ms(), None);
        // A gossip tick every 1.5 s, each tick three messages a millisecond apart.
        for tick in 0..10u64 {
            for k in 0..3 {
                c.sent(0, 1, tick * 1500 + k);
            }
        }
        assert_eq!(c.period_ms(), Some(1500));
    }

    #[test]
    fn the_slowest_busy_link_sets_the_period_and_rare_links_do_not() {
        let mut c = Cadence::default();
        for i in 0..100u64 {
            c.sent(0, 1, i * 20);
        }
        for i in 0..10u64 {
            c.sent(1, 2, i * 700);
        }
        // Two sends are one gap: too few to say anything about a period.
        c.sent(2, 0, 0);
        c.sent(2, 0, 50_000);
        assert_eq!(c.period_ms(), Some(700));
    }

    #[test]
    fn only_recent_gaps_count() {
        let mut c = Cadence::default();
        let mut t = 0;
        for _ in 0..GAPS_KEPT {
            t += 5_000;
            c.sent(0, 1, t);
        }
        for _ in 0..GAPS_KEPT {
            t += 100;
            c.sent(0, 1, t);
        }
        assert_eq!(c.period_ms(), Some(100));
    }
}
