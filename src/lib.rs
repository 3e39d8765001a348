//! The `converge` command-line tool, as a library: the glue between the crates. The binary's
//! `src/cli/` turns each subcommand's arguments into these modules' inputs.
//!
//! - [`certify`]: the `converge certify` command over the conformance harness: one run, its
//!   report, shrinking and diagram.
//! - [`suite`]: `converge certify --suite`, workload × nemesis × seed cells in parallel and their
//!   table.
//! - [`simulator`]: `converge sim`'s runs, one per seed, on the in-process simulator
//!   ([`simulator::backend`], the harness backend of reference replicas on virtual time).
//! - [`adapters`]: the law checker's view of converge-core's CRDTs (and of the `crdts` crate).
//! - [`fuzzing`]: the bodies of the fuzz targets, shared by `cargo fuzz` and the stable replay
//!   of their corpora.
//! - [`laws`]: the `converge laws` command.
//! - [`reference`]: which of the harness's workloads the reference node serves.

pub mod adapters;
pub mod certify;
pub mod fuzzing;
pub mod laws;
pub mod reference;
pub mod simulator;
pub mod suite;
