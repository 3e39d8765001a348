//! What every replica of one configuration derives from it once: the members, the regions, the
//! routes and, per origin, the neighbours its entries are forwarded to.
//!
//! # Invariants
//! - Immutable once built: clones of a replica share one `Arc<Shared>`, and every part reads
//!   it, none writes it.
//! - `children(o)` are neighbours whose next hop towards `o` is this replica: each origin's
//!   entries flow down one spanning tree (see `config::Routes`).

use super::api::{Reply, Transmit};
use super::config::{Config, ConfigError, Routes, Topology};
use super::stats::Counters;
use crate::ReplicaId;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// What a part's step may use besides its own state and the parts below it: the cluster (read
/// only), the time of the input, the counters and the queues of messages and replies. The dispatcher lends it
/// for one call; no part keeps it.
pub(crate) struct Ctx<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) now_ms: u64,
    pub(crate) m: &'a mut Counters,
    pub(crate) out: &'a mut VecDeque<Transmit>,
    pub(crate) replies: &'a mut VecDeque<Reply>,
}

/// What every replica of one configuration derives once and shares between clones.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) routes: Routes,
    pub(crate) members: BTreeSet<ReplicaId>,
    pub(crate) neighbours: Vec<ReplicaId>,
    /// Replicas of each region (sorted), and the index of ours.
    pub(crate) regions: Vec<Vec<ReplicaId>>,
    pub(crate) my_region: usize,
    /// For each origin, the neighbours that receive its entries through this replica.
    children: BTreeMap<ReplicaId, Vec<ReplicaId>>,
    /// Whether acks carry the table of known frontiers (every topology but the full mesh).
    pub(crate) gossip: bool,
    /// Per residency pin (in `config.residency` order), the replicas that may hold its keys.
    pin_members: Vec<BTreeSet<ReplicaId>>,
}

impl Shared {
    pub(crate) fn new(config: Config) -> Result<Shared, ConfigError> {
        let routes = config.validate()?;
        let me = config.me;
        let members: BTreeSet<ReplicaId> = config.replicas.iter().map(|&(r, _)| r).collect();
        let neighbours = config.neighbours(me);
        let regions: Vec<Vec<ReplicaId>> = config.regions().into_iter().map(|(_, r)| r).collect();
        let my_region = regions
            .iter()
            .position(|rs| rs.contains(&me))
            .ok_or(ConfigError::NotAMember(me))?;
        let children = members
            .iter()
            .map(|&origin| {
                let kids = neighbours
                    .iter()
                    .copied()
                    .filter(|&n| n != origin && routes.next_hop(n, origin) == Some(me))
                    .collect();
                (origin, kids)
            })
            .collect();
        let gossip = config.topology != Topology::FullMesh && members.len() > 2;
        let pin_members = config
            .residency
            .iter()
            .map(|pin| {
                config
                    .replicas
                    .iter()
                    .filter(|(_, g)| pin.regions.contains(g))
                    .map(|&(r, _)| r)
                    .collect()
            })
            .collect();
        Ok(Shared {
            config,
            routes,
            members,
            neighbours,
            regions,
            my_region,
            children,
            gossip,
            pin_members,
        })
    }

    /// Whether replica `r` may hold `key` under the residency pins (see `config::Pin`).
    #[inline]
    pub(crate) fn may_hold(&self, r: ReplicaId, key: &[u8]) -> bool {
        match self.config.pin_of(key) {
            None => true,
            Some(i) => self.pin_members[i].contains(&r),
        }
    }

    /// The pins whose keys an anti-entropy exchange between `a` and `b` leaves out: those
    /// that one of them may not hold. Both sides compute the same list, so they compare the
    /// same keys.
    pub(crate) fn excluded_pins(&self, a: ReplicaId, b: ReplicaId) -> Vec<usize> {
        (0..self.pin_members.len())
            .filter(|&i| !(self.pin_members[i].contains(&a) && self.pin_members[i].contains(&b)))
            .collect()
    }

    /// The origins whose entries a claim of `responder`'s frontier by `puller` could cover
    /// without the puller having their data (see `anti_entropy` § Residency): the other
    /// replicas of every pin that allows the puller and not the responder. The responder
    /// applied their entries of such a pin's keys redacted, and the round compared none of
    /// those keys.
    pub(crate) fn risky_origins(&self, puller: ReplicaId, responder: ReplicaId) -> Vec<ReplicaId> {
        let mut out: Vec<ReplicaId> = self
            .pin_members
            .iter()
            .filter(|m| m.contains(&puller) && !m.contains(&responder))
            .flat_map(|m| m.iter().copied().filter(|&r| r != puller))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    pub(crate) fn children(&self, origin: ReplicaId) -> &[ReplicaId] {
        self.children.get(&origin).map_or(&[], |v| v.as_slice())
    }
}
