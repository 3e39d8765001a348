//! The `converge` command-line tool, as a library: the glue between the crates.
//!
//! - [`certify`]: the `converge certify` command over the conformance harness.
//! - [`adapters`]: the law checker's view of converge-core's CRDTs (and of the `crdts` crate).
//! - [`fuzzing`]: the bodies of the fuzz targets, shared by `cargo fuzz` and the stable replay
//!   of their corpora.
//! - [`laws`]: the `converge laws` command.

pub mod adapters;
pub mod certify;
pub mod fuzzing;
pub mod laws;
pub mod sim;
pub mod simulate;
pub mod suite;
