//! `converge`: checks multi-region active-active replication.
//!
//! This file is the command line's top level: the [`Command`] enum that names the subcommands and
//! says what each does, and the dispatch to them. Each subcommand's arguments and its `run` live
//! in its own module under [`cli`].

mod cli;

/// mimalloc instead of the system allocator: the simulator, the harness and the node make many
/// small, short-lived allocations, which mimalloc serves in about half of glibc's time (see
/// docs/perf.md, "Simulator throughput").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use cli::{certify, cluster, laws, model, node, report, shared, sim};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

#[derive(Parser)]
#[command(
    name = "converge",
    version,
    about = "Checks multi-region active-active replication."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// The command line is parsed once, so a large variant costs nothing worth boxing it for.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Check the CRDT laws on every built-in type and print a table of law × type.
    ///
    /// Exits 0 only if every built-in type passes every law. Each failure is shrunk to a minimal
    /// trace and printed with the command that reproduces it.
    Laws(laws::LawsArgs),
    /// Certify a node program: run it through a workload under seeded faults and check what its
    /// clients saw. With no --bin and no --workload, certify converge's reference node on the
    /// whole suite.
    ///
    /// The program speaks Maelstrom's protocol (JSON lines on stdin/stdout, logs on stderr; see
    /// docs/protocol.md). With --cluster FILE.toml, a deployed system is certified instead: its
    /// own processes, its own TCP between them through proxies the harness owns, and a RESP
    /// client or an adapter program per node (docs/certify.md). Exits 0 if every check passes,
    /// 1 on a violation (including a node that crashes, prints malformed output or never
    /// answers), 2 on a usage error.
    ///
    /// On a violation, converge shrinks the run: it replays smaller runs with the same seed
    /// (fewer operations, nodes, clients and faults, a one-second time limit), at most
    /// --shrink-runs of them within --shrink-time, keeps the smallest that fails the same way
    /// (the same failing checks, or the same kind of node misbehaviour), and prints what shrank.
    /// It writes a Lamport diagram of that run (a lane per node, operations as boxes, messages as
    /// arrows, fault windows shaded) to LOG_DIR/lamport.svg or --diagram, and prints the command
    /// that replays it. --no-shrink skips the search: the diagram and the command are then of the
    /// run as given. --report and --junit describe the run as given; the report's "shrunk" field
    /// holds the smallest failing run.
    Certify(certify::CertifyArgs),
    /// Run one reference replica: over TCP (RESP clients, peer replication, /metrics; see
    /// docs/protocol.md) or, with --stdio, speaking Maelstrom's protocol on stdin and stdout (what
    /// `converge certify` runs when given no --bin).
    ///
    /// TCP mode needs --id, --region, --listen and --peer-listen (from flags or --config; flags
    /// win) and one --peer per other member, and either mutual TLS on peer links (--tls-ca,
    /// --tls-cert, --tls-key) or an explicit --insecure-peers. Logs go to stderr, filtered by RUST_LOG (default
    /// info). SIGTERM or Ctrl-C stops the node; every acknowledged write is already on disk.
    Node(node::NodeArgs),
    /// Run a local cluster of reference nodes on loopback, one process per region.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Simulate a cluster of reference replicas in this process on virtual time, under the
    /// harness's seeded faults, workloads and checks; one run per seed.
    ///
    /// Each seed draws its workload (among those given), its faults (among --nemesis) and their
    /// rates, the replicas' clock skews, and whether the oplog is short enough that lagging
    /// replicas need anti-entropy, and prints them. A failing seed prints the command
    /// that replays it exactly. Exits 0 if every seed passes, 1 otherwise.
    Sim(sim::SimArgs),
    /// List, check or explore the stateright models of the design's claims (docs/spec.md, Models).
    ///
    /// `check` explores a model breadth-first and prints, per model, the states generated, the
    /// distinct states, the deepest path, the time taken and a verdict per property. A broken
    /// variant's expected counterexample counts as a met expectation. Exits 0 iff every
    /// expectation holds, 1 otherwise, 2 on an unknown model. `explore` serves stateright's
    /// Explorer (a web UI to step through a model's states) on a loopback address until
    /// interrupted.
    Model(model::ModelArgs),
    /// Combine reports: `merge` the shards of a sharded run (`converge sim --partition K/N
    /// --report FILE`) into the verdict and listing of the whole run.
    #[command(subcommand)]
    Report(report::ReportCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The TCP node and the cluster commands handle their own signals (the node stops on SIGTERM;
    // the cluster commands are short): converge's Ctrl-C flag is for the long checking runs.
    let cli = match cli.command {
        Command::Node(args) if !args.stdio => return node::run_tcp(args),
        Command::Cluster(cmd) => {
            return match cluster::run(cmd) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        command => Cli { command },
    };
    let flag = Arc::clone(shared::interrupt_flag());
    // Without the handler a Ctrl-C still ends converge, but skips the clean-up that reaps node
    // processes ignoring SIGINT; failing to install it is worth a warning, not a refusal.
    if let Err(e) = ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed)) {
        eprintln!("warning: cannot install the Ctrl-C handler: {e}");
    }
    match cli.command {
        Command::Laws(args) => laws::run(args),
        Command::Certify(args) => certify::run(args),
        Command::Node(args) => node::run_stdio(args),
        Command::Sim(args) => sim::run(args),
        Command::Model(args) => model::run(args),
        Command::Report(cmd) => report::run(cmd),
        // Handled above, before the Ctrl-C handler is installed.
        Command::Cluster(_) => ExitCode::SUCCESS,
    }
}
