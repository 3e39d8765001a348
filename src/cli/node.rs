//! `converge node`: its arguments, and one reference replica run over TCP ([`run_tcp`]) or on
//! stdin and stdout ([`run_stdio`]).

use super::shared::{consistency_arg, names_arg};
use converge_core::replica::{Bug, Consistency};
use converge_node::maelstrom::Workload;
use std::path::PathBuf;
use std::process::ExitCode;

/// `converge node`'s arguments.
#[derive(clap::Args)]
pub(crate) struct NodeArgs {
    /// Speak Maelstrom's JSON-lines protocol on stdin/stdout, logs on stderr (instead of TCP).
    #[arg(long, conflicts_with_all = ["config", "id", "region", "peer", "listen", "peer_listen", "metrics_listen", "password_file", "admin_password_file", "tls_ca", "tls_cert", "tls_key", "insecure_peers", "client_tls_cert", "client_tls_key"])]
    pub(crate) stdio: bool,
    /// (--stdio) Which workload's messages to serve.
    // The node's own table of the workloads its face serves, not the harness's: a workload the
    // node serves before the harness generates it (or the reverse) is then named truthfully.
    #[arg(long, requires = "stdio", value_parser = clap::builder::PossibleValuesParser::new(Workload::ALL.map(|(name, _)| name)))]
    workload: Option<String>,
    /// (--stdio) Replicas per region: node nK belongs to region K / R.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    replicas_per_region: u32,
    /// Consistency of requests (stdio) or connections (TCP) that name none [default: LOCAL_ONE].
    #[arg(long, value_parser = consistency_arg())]
    consistency: Option<Consistency>,
    /// Run a deliberately broken replica, to see `converge certify` catch it: e.g.
    /// `converge certify --workload lin-kv --bin converge -- node --stdio --workload lin-kv
    /// --bug cas-decided-locally`, or over TCP through `certify --cluster`. For testing the
    /// testers only.
    #[arg(long, value_parser = names_arg(Bug::ALL, Bug::name))]
    bug: Option<Bug>,
    /// Keep the replica's durable state in a redb database under DIR (with --stdio, in
    /// DIR/<node_id>/) and recover from it on restart, so an acknowledged write survives kill -9.
    /// Without it the node is in memory.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// (TCP) Read settings from this TOML file; flags override it (see docs/protocol.md).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// (TCP) This replica's id, unique in the cluster.
    #[arg(long)]
    id: Option<u64>,
    /// (TCP) This replica's region name.
    #[arg(long)]
    region: Option<String>,
    /// (TCP) Another member, as ID=REGION@IP:PORT (its peer port); repeat for each.
    #[arg(long, value_name = "ID=REGION@IP:PORT")]
    peer: Vec<converge_node::config::PeerSpec>,
    /// (TCP) RESP client address, e.g. 127.0.0.1:6380.
    #[arg(long, value_name = "IP:PORT")]
    listen: Option<std::net::SocketAddr>,
    /// (TCP) Peer replication address.
    #[arg(long, value_name = "IP:PORT")]
    peer_listen: Option<std::net::SocketAddr>,
    /// (TCP) Prometheus /metrics HTTP address.
    #[arg(long, value_name = "IP:PORT")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// (TCP) Require clients to `AUTH` with the password in this file (or in the
    /// CONVERGE_PASSWORD environment variable, or the config file's [auth]).
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// (TCP) The `admin` user's password, in this file (or CONVERGE_ADMIN_PASSWORD, or the
    /// config file's [auth]): `AUTH admin <password>` allows CLUSTER.LINKS, which is disabled
    /// without one.
    #[arg(long, value_name = "FILE")]
    admin_password_file: Option<PathBuf>,
    /// (TCP) The cluster CA's certificate (PEM): peers are trusted only if theirs chains to it.
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// (TCP) This node's certificate (PEM), naming its member as r<ID>.<REGION>.member.converge.
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// (TCP) This node's private key (PEM).
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// (TCP) Run peer links in plaintext with no authentication instead of mutual TLS: anyone
    /// who reaches the peer port can then pose as a region.
    #[arg(long)]
    insecure_peers: bool,
    /// (TCP) Serve the client port over TLS only, with this certificate (PEM).
    #[arg(long, value_name = "FILE", requires = "client_tls_key")]
    client_tls_cert: Option<PathBuf>,
    /// (TCP) The client port certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "client_tls_cert")]
    client_tls_key: Option<PathBuf>,
}

/// Runs a replica over TCP (without `--stdio`) until SIGTERM or Ctrl-C stops it.
pub(crate) fn run_tcp(args: NodeArgs) -> ExitCode {
    use converge_node::config::{Flags, NodeConfig};
    let flags = Flags {
        config: args.config,
        id: args.id,
        region: args.region,
        peers: args.peer,
        client_listen: args.listen,
        peer_listen: args.peer_listen,
        metrics_listen: args.metrics_listen,
        data_dir: args.data_dir,
        consistency: args.consistency.map(|c| c.to_string()),
        password_file: args.password_file,
        admin_password_file: args.admin_password_file,
        // From the environment rather than flags, so they do not show in `ps`.
        password: std::env::var("CONVERGE_PASSWORD").ok(),
        admin_password: std::env::var("CONVERGE_ADMIN_PASSWORD").ok(),
        tls: converge_node::config::TlsFiles {
            ca: args.tls_ca,
            cert: args.tls_cert,
            key: args.tls_key,
            client_cert: args.client_tls_cert,
            client_key: args.client_tls_key,
        },
        insecure_peers: args.insecure_peers,
        bug: args.bug,
    };
    let config = match NodeConfig::resolve(flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match converge_node::server::run_blocking(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a replica speaking Maelstrom's protocol on stdin and stdout (`--stdio`) until its input
/// ends.
pub(crate) fn run_stdio(args: NodeArgs) -> ExitCode {
    use converge_node::maelstrom::FaceConfig;
    let Some(name) = args.workload.as_deref() else {
        eprintln!("error: --stdio needs --workload");
        return ExitCode::from(2);
    };
    let Some(workload) = Workload::from_name(name) else {
        eprintln!("error: the reference node does not serve '{name}'");
        return ExitCode::from(2);
    };
    let mut config = FaceConfig::new(workload);
    config.replicas_per_region = args.replicas_per_region;
    config.default_consistency = args.consistency.unwrap_or(Consistency::LocalOne);
    config.bug = args.bug;
    match converge_node::stdio::run(config, args.data_dir.as_deref()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
