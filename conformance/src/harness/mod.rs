//! The conformance harness: drives any implementation through a workload under seeded faults and
//! checks what its clients saw.
//!
//! The parts know nothing of each other's insides:
//! - [`backend::Backend`] is all the harness knows of the nodes. [`process::ProcessBackend`] runs
//!   programs that speak Maelstrom's JSON-lines protocol; [`cluster::ClusterBackend`] runs a
//!   deployed system's own processes on their own TCP, through proxies the harness owns.
//! - [`net::Network`] owns the network: every node-to-node message passes through it.
//! - [`workload::Workload`] generates requests and checks the [`history::History`].
//! - [`services::Services`] are Maelstrom's `seq-kv`, `lin-kv`, `lww-kv` and `lin-tso`, answered
//!   by the harness itself so that unchanged Maelstrom nodes that use them run here.
//! - [`run::run`] is the loop that ties them together: it takes a [`run::RunConfig`] (defined in
//!   `config`) and returns a [`run::RunReport`] (defined with its parts in `report`); both are
//!   re-exported from [`run`], their public path.
//! - [`shrink::shrink`] searches for a smaller run that fails the same way, through a closure
//!   that replays a configuration; [`diagram::render`] draws a history as a Lamport diagram.
//!
//! Same seed, same decisions: the network, the operations and the faults each draw from their own
//! stream forked from the run's seed.

pub mod backend;
pub mod body;
pub mod cadence;
pub mod check;
pub mod cluster;
mod config;
pub mod containment;
pub mod diagram;
pub mod history;
pub mod message;
pub mod nemesis;
pub mod net;
pub mod process;
mod report;
pub mod rng;
pub mod run;
pub mod services;
pub mod shrink;
pub mod workload;
