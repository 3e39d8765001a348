//! `converge node` over TCP: the tokio shell around one [`Replica`].
//!
//! # Tasks
//! - **The driver** (`driver`) owns the [`Replica`] (no lock on it). It handles batches of
//!   inputs from one bounded channel, makes one redb commit per batch (the group commit), and
//!   only then lets the batch's transmits and replies out: an acknowledged write survives
//!   `kill -9`.
//! - **A client task per RESP connection** (`client`) decodes commands, submits the requests
//!   of a pipeline without waiting, and writes the replies in order; `CLUSTER.LINKS` is the
//!   fault-injection switch for the peer links, for the `admin` user only. Every command passes
//!   the `AUTH` gate, and idle, silent or memory-hungry connections are closed.
//! - **Per peer, a dialer/writer** and, for each accepted link, **a reader** (`peer`). Links
//!   are one-way: a node sends on the link it dialed and receives on the links it accepted.
//! - **`/metrics`** (`metrics`): a minimal HTTP/1.1 responder, Prometheus text format.
//!
//! This module starts them (binding every listener first, so a bad address fails at once) and
//! runs until SIGTERM, Ctrl-C or a store failure.
//!
//! # Shared state
//! Only the pieces of [`crate::shared`] (waiters, outboxes, the HLC, the log cursors) and the
//! node's own atomic counters (through [`crate::sync`]) are shared between tasks, all gathered in
//! `state`; the replica is the driver's alone and publishes a
//! [`Stats`](converge_core::replica::Stats) snapshot for `/metrics` at most every
//! [`STATS_EVERY`].
//!
//! # Module layout
//! `state` and `error` import nothing from their siblings; `driver`, `client`, `peer`
//! and `metrics` import only from those two, never from each other; this module imports from
//! all of them and none of them imports from it. So the modules have no import cycle.

mod client;
mod driver;
mod error;
mod metrics;
mod peer;
mod state;

pub use driver::STATS_EVERY;
pub use error::ServerError;

use crate::config::{NodeConfig, PeerSecurity};
use crate::store::Store;
use crate::sync::Arc;
use converge_core::replica::Replica;
use state::{Identity, Node, now_ms};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing::{info, warn};

/// Builds a runtime and runs the node until SIGTERM or Ctrl-C.
pub fn run_blocking(config: NodeConfig) -> Result<(), ServerError> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Ignored if a subscriber is already installed (tests running several nodes in-process).
    // Colours only on a terminal: `converge cluster` sends the logs to files.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
    if let Some(bug) = config.bug {
        tracing::warn!(
            bug = bug.name(),
            "BROKEN: this replica runs a deliberately broken variant, for testing the testers"
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(ServerError::Runtime)?;
    rt.block_on(run(config))
}

/// Runs the node until SIGTERM or Ctrl-C (or a store failure).
pub async fn run(config: NodeConfig) -> Result<(), ServerError> {
    let rc = config.replica_config();
    let store = match &config.data_dir {
        Some(dir) => Some(Arc::new(Store::open(dir)?)),
        None => None,
    };
    let identity = match &store {
        Some(s) => {
            if !s.accepted() {
                info!(
                    incarnation = format_args!("{:#x}", s.incarnation()),
                    created = s.created(),
                    "new store: serving once every peer accepts this incarnation"
                );
            }
            Identity::new(s.incarnation(), !s.accepted(), s.peers()?, Some(s.clone()))
        }
        None => Identity::in_memory(),
    };
    let now = now_ms();
    let replica = match store.as_ref().map(|s| s.load()).transpose()?.flatten() {
        Some(durable) => {
            info!(
                keys = durable.keys.len(),
                oplog = durable.oplog.len(),
                "recovering from the store"
            );
            Replica::recover(rc, durable, now).map_err(|e| ServerError::Recover(e.to_string()))?
        }
        None => Replica::new(rc, now).map_err(|e| ServerError::Config(e.to_string()))?,
    };
    // TLS material is loaded before anything binds, so a bad file stops the node at once.
    let peer_tls = match &config.peer_security {
        PeerSecurity::Tls { ca, cert, key } => {
            Some(Arc::new(crate::tls::PeerTls::load(ca, cert, key)?))
        }
        PeerSecurity::Insecure => {
            warn!(
                "INSECURE: peer links are plaintext and unauthenticated (--insecure-peers): \
                 anyone who reaches the peer port can pose as a region and write into this one"
            );
            None
        }
    };
    let client_tls = match &config.client_tls {
        Some(t) => Some(crate::tls::client_port_acceptor(&t.cert, &t.key)?),
        None => None,
    };
    let bind = |addr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })
    };
    let clients = bind(config.client_listen).await?;
    let peers_l = bind(config.peer_listen).await?;
    let metrics_l = match config.metrics_listen {
        Some(a) => Some(bind(a).await?),
        None => None,
    };
    let (tx, rx) = mpsc::channel(config.limits.inbox_max);
    let node = Arc::new(Node::new(config, tx).with_identity(identity));
    info!(
        id = node.config.id,
        region = %node.config.region,
        client = %node.config.client_listen,
        peer = %node.config.peer_listen,
        metrics = ?node.config.metrics_listen,
        durable = node.config.data_dir.is_some(),
        peer_tls = peer_tls.is_some(),
        client_tls = client_tls.is_some(),
        "node listening"
    );
    let driver = tokio::spawn(driver::drive(replica, store, rx, node.clone()));
    tokio::spawn(client::accept_clients(clients, node.clone(), client_tls));
    tokio::spawn(peer::accept_peers(peers_l, node.clone(), peer_tls.clone()));
    if let Some(m) = metrics_l {
        tokio::spawn(metrics::serve_metrics(m, node.clone()));
    }
    for link in node.links.values() {
        tokio::spawn(peer::dial(link.clone(), node.clone(), peer_tls.clone()));
    }
    tokio::select! {
        r = driver => match r {
            Ok(r) => r,
            Err(e) => Err(ServerError::Commit(e.to_string())),
        },
        () = node.identity.refused_signal.notified() => {
            let why = crate::sync::lock(&node.identity.refused).take().unwrap_or_default();
            tracing::error!("{why}");
            Err(ServerError::Identity(why))
        }
        () = shutdown_signal() => {
            info!("shutting down (every acknowledged write is already on disk)");
            Ok(())
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C (Ctrl-C only where there is no SIGTERM).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
