//! `anti-entropy`: after a partition that lost replication messages, with an oplog too short to
//! send them again, Merkle anti-entropy alone brings the replicas together (spec MODEL-7).
//!
//! # The system
//! The actors of [`replication`](crate::replication) (the real [`Replica`] behind the same
//! persist-then-send shell), with [`REGIONS`] regions of one replica each. In the initial state
//! each region has made [`WRITES`] increments, each on its own key, during a partition that lost
//! every message they produced. The oplog keeps one entry ([`Config::oplog_entries_max`] = 1),
//! so each region's first entry is already truncated: go-back-N retransmission finds its peer
//! behind the truncation point and can send nothing, which is the situation anti-entropy exists
//! for. The network is then healed: unordered, neither losing nor duplicating.
//!
//! Periodic rounds are off ([`AE_OFF_MS`]); instead each replica pulls once from its neighbour,
//! by `start_anti_entropy`, when its `Pull` timer fires, so that rounds interleave with
//! everything else in every order. Time moves only through the replicas' `Wake` timers, at most
//! [`TIMEOUTS`] clock-moving ones each, and a round's deadline lies beyond any time reached, so
//! that no round is abandoned. The Merkle tree is small (2 × 2 leaves) so that rounds descend
//! more than one level.
//!
//! # Properties
//! - `always` [`CONVERGED_WHEN_QUIESCENT`]: quiescent (as defined in
//!   [`replication`](crate::replication), with no pull left to make) implies every replica has
//!   the same keyspace with every write.
//! - `sometimes` [`QUIESCENT`]: a quiescent state is reached.
//! - `sometimes` [`ALL_WRITES_EVERYWHERE`]: quiescent with every write at every replica.
//! - `sometimes` [`REPAIRED`]: a round repaired a key (`ae_keys_repaired > 0`; the counters
//!   are not part of a replica's equality, so this is a witness, not a state predicate).
//!
//! The broken variants keep only [`QUIESCENT`] as their `sometimes`: they never get every write
//! everywhere, which is the point.
//!
//! [`Variant::NoPulls`] never starts a round and must break the `always` property (the writes
//! stay where they were made: the oplog cannot repair them); [`Variant::SkipsSubtree`] runs
//! [`Bug::AeSkipsSubtree`], whose rounds claim what they never shipped, and must break it too.

use crate::replication::{
    AE_OFF_MS, Region, Scenario, State, actor_model, converged, quiescent, total, up,
};
use converge_core::replica::{Bug, Config};
use stateright::Expectation;
use stateright::actor::{ActorModel, LossyNetwork, Network};

/// Regions, one replica each.
pub const REGIONS: usize = 2;
/// Writes each region made during the partition.
pub const WRITES: usize = 2;
/// Clock-moving timeouts each replica may take.
pub const TIMEOUTS: u8 = 1;

/// `always`: quiescent states are converged, every write everywhere.
pub const CONVERGED_WHEN_QUIESCENT: &str = "quiescent => converged with every write";
/// `sometimes`: a quiescent state is reached.
pub const QUIESCENT: &str = "quiescent";
/// `sometimes`: quiescent with every write at every replica.
pub const ALL_WRITES_EVERYWHERE: &str = "quiescent with every write everywhere";
/// `sometimes`: anti-entropy repaired a key.
pub const REPAIRED: &str = "anti-entropy repaired a key";

/// Which anti-entropy model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// Each replica pulls once from its neighbour.
    Pulls,
    /// No replica ever starts a round.
    NoPulls,
    /// Each replica pulls once, with [`Bug::AeSkipsSubtree`].
    SkipsSubtree,
}

/// The scenario of `variant`.
pub fn scenario(variant: Variant) -> Scenario {
    let mut config = Config::grid(0, REGIONS as u32, 1);
    config.batch_delay_ms = 0;
    config.ae_interval_ms = AE_OFF_MS;
    config.ae_timeout_ms = AE_OFF_MS;
    config.oplog_entries_max = 1;
    config.merkle_fanout_bits = 1;
    config.merkle_depth = 2;
    config.track_durable = true;
    if variant == Variant::SkipsSubtree {
        config.bug = Some(Bug::AeSkipsSubtree);
    }
    Scenario {
        regions: REGIONS,
        writes: WRITES,
        writes_lost_in_partition: true,
        pulls: variant != Variant::NoPulls,
        timeouts: TIMEOUTS,
        config,
    }
}

fn all_writes_everywhere(model: &ActorModel<Region>, state: &State) -> bool {
    let n = model.actors.len();
    let made = (n * WRITES) as u128;
    (0..n).all(|i| up(state, i).is_some_and(|u| total(&u.replica, WRITES) == made))
}

/// The anti-entropy model of `variant`.
pub fn model(variant: Variant) -> ActorModel<Region> {
    let m = actor_model(&scenario(variant))
        .init_network(Network::new_unordered_nonduplicating([]))
        .lossy_network(LossyNetwork::No)
        .property(
            Expectation::Always,
            CONVERGED_WHEN_QUIESCENT,
            |model, state| {
                (converged(model, state) && all_writes_everywhere(model, state))
                    || !quiescent(model, state)
            },
        )
        .property(Expectation::Sometimes, QUIESCENT, quiescent);
    // The broken variants reach neither: only the claim itself gets the examples that make its
    // `always` property non-vacuous.
    if variant != Variant::Pulls {
        return m;
    }
    m.property(
        Expectation::Sometimes,
        ALL_WRITES_EVERYWHERE,
        |model, state| all_writes_everywhere(model, state) && quiescent(model, state),
    )
    .property(Expectation::Sometimes, REPAIRED, |model, state| {
        (0..model.actors.len())
            .any(|i| up(state, i).is_some_and(|u| u.replica.stats().counters.ae_keys_repaired > 0))
    })
}
