//! The reference node: the shells around converge-core's sans-IO [`Replica`].
//!
//! [`maelstrom::Face`] maps `docs/protocol.md` (Maelstrom's JSON-lines protocol and converge's
//! workloads) onto a replica without doing any I/O itself, so the stdio node and the in-process
//! simulator share one mapping. [`stdio`] is the loop that runs a face over stdin and stdout, and
//! [`store`] the disk it keeps a replica's durable state on when given a data directory.
//!
//! [`Replica`]: converge_core::replica::Replica

pub mod config;
pub mod frame;
pub mod maelstrom;
pub mod resp;
// The tokio shell is not built under loom: loom checks the tokio-free pieces in `shared` only.
#[cfg(not(loom))]
pub mod server;
pub mod shared;
pub mod stdio;
pub mod store;
pub mod sync;
pub mod tls;
