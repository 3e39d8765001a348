//! What a face serves and how it builds its replica: the [`Workload`]s of `docs/protocol.md`
//! and the [`FaceConfig`].
//!
//! # Invariants
//! - [`Workload::ALL`] is the one table of workload names: [`Workload::from_name`] and
//!   [`Workload::name`] both read it, so a name parses back to the workload that prints it.

use converge_core::replica::{Bug, Config, Consistency, Pin, Topology};

/// The workloads of `docs/protocol.md`: which key and type each message maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// `echo`.
    Echo,
    /// `g-counter`: a grow-only counter at key `counter`.
    GCounter,
    /// `pn-counter`: a pn-counter at key `counter`.
    PnCounter,
    /// `g-set`: elements in an add-wins set at key `set` (only adds arrive).
    GSet,
    /// `broadcast`: messages in a set at key `messages`.
    Broadcast,
    /// `lin-kv`: integer keys holding consensus registers: reads, writes and compare-and-sets
    /// decided by a majority.
    LinKv,
    /// `or-set`: an add-wins set at key `set`.
    OrSet,
    /// `lww-register`: an LWW register at key `r`.
    LwwRegister,
    /// `mv-register`: a multi-value register at key `r`.
    MvRegister,
    /// `session`: a set at key `set`, with session tokens and consistency levels.
    Session,
    /// `bounded-counter`: a bounded (escrow) counter at key `counter` that never reads below
    /// zero; withdrawals (negative adds) need rights, gathered from peers when short.
    BoundedCounter,
}

impl Workload {
    /// Every workload, with its name on the command line.
    pub const ALL: [(&'static str, Workload); 11] = [
        ("echo", Workload::Echo),
        ("g-counter", Workload::GCounter),
        ("pn-counter", Workload::PnCounter),
        ("g-set", Workload::GSet),
        ("broadcast", Workload::Broadcast),
        ("lin-kv", Workload::LinKv),
        ("or-set", Workload::OrSet),
        ("lww-register", Workload::LwwRegister),
        ("mv-register", Workload::MvRegister),
        ("session", Workload::Session),
        ("bounded-counter", Workload::BoundedCounter),
    ];

    /// The workload called `name`.
    pub fn from_name(name: &str) -> Option<Workload> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|&(_, w)| w)
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|&&(_, w)| w == self)
            .map_or("?", |&(n, _)| n)
    }
}

/// How the face builds its replica.
#[derive(Clone, Debug)]
pub struct FaceConfig {
    /// Which messages to expect.
    pub workload: Workload,
    /// Replicas per region: node `nK` is in region `K / replicas_per_region`.
    pub replicas_per_region: u32,
    /// The replication topology between regions.
    pub topology: Topology,
    /// Consistency when a request names none (lin-kv always uses GLOBAL_QUORUM).
    pub default_consistency: Consistency,
    /// Record durable deltas for [`Face::take_durable`](super::Face::take_durable).
    pub track_durable: bool,
    /// A deliberately broken protocol variant, for testing the testers.
    pub bug: Option<Bug>,
    /// Seed for the replica's only random choice (anti-entropy jitter), mixed with its id.
    pub seed: u64,
    /// Caps the replica's oplog (`None`: the replica's default). A small cap makes replicas that
    /// fall behind depend on anti-entropy, which the simulator wants to exercise.
    pub oplog_entries_max: Option<usize>,
    /// Adjusts the replica's configuration (limits and timers) before it starts.
    pub tune: fn(&mut Config),
    /// Residency pins (see `converge_core::replica::Pin`); empty by default.
    pub residency: Vec<Pin>,
}

impl FaceConfig {
    /// Defaults for `workload`: one replica per region, full mesh, LOCAL_ONE.
    pub fn new(workload: Workload) -> Self {
        FaceConfig {
            workload,
            replicas_per_region: 1,
            topology: Topology::FullMesh,
            default_consistency: Consistency::LocalOne,
            track_durable: false,
            bug: None,
            seed: 0,
            oplog_entries_max: None,
            tune: |_| {},
            residency: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_workload_name_parses_back_to_its_workload() {
        for (name, w) in Workload::ALL {
            assert_eq!(Workload::from_name(name), Some(w));
            assert_eq!(w.name(), name);
        }
        assert_eq!(Workload::from_name("G-COUNTER"), None);
    }
}
