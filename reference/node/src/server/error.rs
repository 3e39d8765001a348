//! Why the TCP node stops: [`ServerError`].
//!
//! Its own module so that the driver (which stops the node when a commit fails) and the start-up
//! code in the parent module can both name it without either importing the other.

use crate::store::StoreError;

/// Why the node stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The store failed: the node stops rather than acknowledge what it could not persist.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored state was refused by the replica.
    #[error("the replica refused the stored state: {0}")]
    Recover(String),
    /// The configuration was refused by the replica.
    #[error("bad cluster configuration: {0}")]
    Config(String),
    /// The runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    /// A peer knows another incarnation of this replica: the node must not run on this store
    /// under this identity (see docs/protocol.md § identity).
    #[error("{0}")]
    Identity(String),
    /// The TLS material could not be loaded.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// A blocking commit task died.
    #[error("the commit thread failed: {0}")]
    Commit(String),
}
