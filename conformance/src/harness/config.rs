//! How a run is configured: [`RunConfig`], its defaults (the simulator's settings), and
//! [`stability_window_ms`], which derives the final reads' stability window from the replication
//! period a run observed.
//!
//! Plain data: nothing here runs anything. Invariant: the defaults describe the simulator's
//! closed loop on in-process replicas; callers on other time scales (`converge certify`) set
//! their own values rather than relying on these.

use super::nemesis::Fault;
use super::workload::Profile;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// How to run.
///
/// The timing model (docs/protocol.md, "Timing"): the main phase lasts `time_limit_ms`, clients
/// issuing at `rate` in total (one request outstanding each) until the time is up or `ops`
/// operations that did not fail definitely were issued; windowed faults alternate with healthy
/// windows of `fault_window_ms`; after the heal the harness waits until no node-to-node or
/// service traffic was seen for `quiet_ms` (at most `settle_ms`), then reads every node until all
/// agree (at most `final_timeout_ms`) and keeps reading for a stability window that spans several
/// of the subject's own replication rounds, measured from the traffic the harness carried.
#[derive(Clone, Debug, Serialize)]
pub struct RunConfig {
    /// Nodes `n0…`.
    pub nodes: usize,
    /// Concurrent clients `c0…`; client `i` talks to node `i % nodes`.
    pub clients: usize,
    /// Most operations to issue in the main phase, not counting those that failed definitely
    /// (a node refusing requests does not use the run up); `u64::MAX` for no cap.
    pub ops: u64,
    /// Length of the main phase, in ms: with a `rate` the clients issue until it is over; without
    /// one it is only a cap.
    pub time_limit_ms: u64,
    /// Total request rate over all clients, in operations per second; `None` issues each client's
    /// next request as soon as its previous one ends (the simulator's closed loop).
    pub rate: Option<f64>,
    /// Fixed one-way latency added to every node-to-node message, in ms (Maelstrom's
    /// `--latency`); 0 keeps the network's sub-millisecond default.
    pub latency_ms: u64,
    /// The seed of every random decision.
    pub seed: u64,
    /// Faults to inject.
    pub faults: Vec<Fault>,
    /// Which checks apply.
    pub profile: Profile,
    /// A request without a reply after this long is indefinite.
    pub request_timeout_ms: u64,
    /// Longest wait for every `init_ok`.
    pub init_timeout_ms: u64,
    /// Longest wait after healing for the network to go quiet before final reads.
    pub settle_ms: u64,
    /// How long without node-to-node or service traffic counts as quiet.
    pub quiet_ms: u64,
    /// Longest wait for nodes to agree in final reads (the stability window comes on top).
    pub final_timeout_ms: u64,
    /// How long final reads must stay equal once the nodes agree; `None` derives it from the
    /// replication period observed (see [`stability_window_ms`]).
    pub stability_ms: Option<u64>,
    /// Pause between rounds of final reads.
    pub read_interval_ms: u64,
    /// Length of a fault window, and of the healthy window after it.
    pub fault_window_ms: u64,
    /// How many nodes the rolling-upgrade nemesis replaces by the backend's other build
    /// ([`super::backend::Backend::upgrade`]), one at a time, evenly spaced through the main
    /// phase, in an order drawn from the seed; 0 for none. Never every node: at least one keeps
    /// the first build to the end, so the final reads read a mixed cluster, which a change that
    /// is not add-only cannot bring to agreement.
    pub upgrades: usize,
    /// Which delivery schedule: runs that differ only here make the same client operations
    /// under different network, fault and service decisions.
    pub schedule: u64,
    /// Set from outside (a Ctrl-C handler) to stop the run early: the loop notices within one
    /// wait slice, skips what is left, and the backend reaps every node as usual.
    #[serde(skip)]
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Default for RunConfig {
    /// The simulator's settings: a closed loop of 1,000 operations on in-process replicas that
    /// replicate within milliseconds of virtual time. `converge certify` sets its own, on the
    /// time scale of real nodes.
    fn default() -> Self {
        RunConfig {
            nodes: 3,
            clients: 3,
            ops: 1000,
            time_limit_ms: 30_000,
            rate: None,
            latency_ms: 0,
            seed: 0,
            faults: Vec::new(),
            profile: Profile::Strict,
            request_timeout_ms: 1_000,
            init_timeout_ms: 10_000,
            settle_ms: 500,
            quiet_ms: 200,
            final_timeout_ms: 5_000,
            stability_ms: None,
            read_interval_ms: 100,
            fault_window_ms: 200,
            upgrades: 0,
            schedule: 0,
            cancel: None,
        }
    }
}

/// The stability window for a replication period of `period_ms` (the slowest link's typical gap
/// between sends): three periods, so a value that moves after agreement has had three chances to
/// show it, and never less than `floor_ms` nor more than a minute.
pub fn stability_window_ms(period_ms: u64, floor_ms: u64) -> u64 {
    period_ms.saturating_mul(3).clamp(floor_ms, 60_000)
}
