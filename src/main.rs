//! `converge`: checks multi-region active-active replication.

mod cluster;

/// mimalloc instead of the system allocator: the simulator, the harness and the node make many
/// small, short-lived allocations, which mimalloc serves in about half of glibc's time (see
/// docs/perf.md, "Simulator throughput").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use converge::laws;
use converge_conformance::harness::check::Verdict;
use converge_conformance::harness::nemesis::Fault;
use converge_conformance::harness::run::{RunConfig, Stage};
use converge_conformance::harness::shrink::Limits;
use converge_conformance::harness::workload::{self, Profile};
use converge_conformance::laws::{Config, Law};
use converge_core::replica::{Bug, Consistency};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// `println!` that ignores a closed stdout (`converge … | head`) instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `print!` that ignores a closed stdout.
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}
use converge::certify::Timing;
use std::io::IsTerminal as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
    Laws(LawsArgs),
    /// Certify a node program: run it through a workload under seeded faults and check what its
    /// clients saw. With no --bin and no --workload, certify converge's reference node on the
    /// whole suite.
    ///
    /// The program speaks Maelstrom's protocol (JSON lines on stdin/stdout, logs on stderr; see
    /// docs/protocol.md). Exits 0 if every check passes, 1 on a violation (including a node that
    /// crashes, prints malformed output or never answers), 2 on a usage error.
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
    Certify(CertifyArgs),
    /// Run one reference replica: over TCP (RESP clients, peer replication, /metrics; see
    /// docs/protocol.md) or, with --stdio, speaking Maelstrom's protocol on stdin and stdout (what
    /// `converge certify` runs when given no --bin).
    ///
    /// TCP mode needs --id, --region, --listen and --peer-listen (from flags or --config; flags
    /// win) and one --peer per other member. Logs go to stderr, filtered by RUST_LOG (default
    /// info). SIGTERM or Ctrl-C stops the node; every acknowledged write is already on disk.
    Node(NodeArgs),
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
    Sim(SimArgs),
    /// List, check or explore the stateright models of the design's claims (docs/spec.md, Models).
    ///
    /// `check` explores a model breadth-first and prints, per model, the states generated, the
    /// distinct states, the deepest path, the time taken and a verdict per property. A broken
    /// variant's expected counterexample counts as a met expectation. Exits 0 iff every
    /// expectation holds, 1 otherwise, 2 on an unknown model. `explore` serves stateright's
    /// Explorer (a web UI to step through a model's states) on a loopback address until
    /// interrupted.
    Model(ModelArgs),
}

#[derive(clap::Args)]
struct ModelArgs {
    #[command(subcommand)]
    command: ModelCommand,
}

#[derive(Subcommand)]
enum ModelCommand {
    /// List every model and broken variant with the claim it checks.
    List,
    /// Check one model, or all of them.
    Check(ModelCheckArgs),
    /// Serve stateright's Explorer for one model on a loopback address, until interrupted.
    ///
    /// Open the printed URL in a browser to step through the model's states, action by action,
    /// and to see which properties have been discovered so far. Exits 1 if the address cannot
    /// be bound or is not loopback, 2 on an unknown model.
    Explore(ModelExploreArgs),
}

#[derive(clap::Args)]
struct ModelExploreArgs {
    /// The model to explore, as `converge model list` names it.
    name: String,
    /// The loopback address to serve on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: std::net::SocketAddr,
    /// Stateright's depth bound for the explorer's checker (default: the model's own bound).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    depth: Option<u64>,
}

#[derive(clap::Args)]
struct ModelCheckArgs {
    /// The model to check, as `converge model list` names it.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    name: Option<String>,
    /// Check every model.
    #[arg(long)]
    all: bool,
    /// Stateright's depth bound (default: the model's own bound, or its whole state space if it
    /// is finite). Stateright counts states on a path and checks the properties of a state when
    /// it expands it, so the properties are checked on paths of at most DEPTH - 2 steps.
    // Zero would mean "unbounded" to stateright, which never ends on the session models.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    depth: Option<u64>,
}

#[derive(clap::Args)]
struct SimArgs {
    /// Seeds to run, consecutive from --seed.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    seeds: u64,
    /// First seed. Default: drawn from the clock and printed.
    #[arg(long)]
    seed: Option<u64>,
    /// Workloads to draw from (repeatable) [default: every workload but echo].
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(workload::WORKLOADS))]
    workload: Vec<String>,
    /// Faults to draw from, comma-separated [default: every fault but clock].
    #[arg(long, value_name = "LIST", value_parser = parse_faults)]
    nemesis: Option<FaultList>,
    /// Regions.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=32))]
    regions: u16,
    /// Replicas per region.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=8))]
    replicas_per_region: u16,
    /// Client operations per seed.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    ops: u64,
    /// Largest clock offset of a replica, either way, in ms.
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    skew_ms: u64,
    /// Run a deliberately broken replica, to see the simulator catch it: apply-without-dedup,
    /// read-ignores-token or ae-skips-subtree.
    #[arg(long, value_parser = names_arg(Bug::ALL, Bug::name))]
    bug: Option<Bug>,
    /// Inject every fault of --nemesis in every seed, instead of the subset each seed draws
    /// (swarm testing).
    #[arg(long)]
    every_fault: bool,
}

#[derive(clap::Args)]
struct NodeArgs {
    /// Speak Maelstrom's JSON-lines protocol on stdin/stdout, logs on stderr (instead of TCP).
    #[arg(long, conflicts_with_all = ["config", "id", "region", "peer", "listen", "peer_listen", "metrics_listen"])]
    stdio: bool,
    /// (--stdio) Which workload's messages to serve.
    #[arg(long, requires = "stdio", value_parser = clap::builder::PossibleValuesParser::new(workload::WORKLOADS))]
    workload: Option<String>,
    /// (--stdio) Replicas per region: node nK belongs to region K / R.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    replicas_per_region: u32,
    /// Consistency of requests (stdio) or connections (TCP) that name none [default: LOCAL_ONE].
    #[arg(long, value_parser = consistency_arg())]
    consistency: Option<Consistency>,
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
}

#[derive(clap::Args)]
struct CertifyArgs {
    /// The node program to run, once per node. Default: converge's own reference node
    /// (`converge node --stdio`, durable under the log directory).
    #[arg(long = "bin", value_name = "PATH")]
    program: Option<PathBuf>,
    /// The workload [default: g-counter]. With --suite, repeatable, and every workload when
    /// absent.
    #[arg(short = 'w', long, value_parser = clap::builder::PossibleValuesParser::new(workload::WORKLOADS))]
    workload: Vec<String>,
    /// Run every workload (or those given) under no fault, each fault of --nemesis alone (every
    /// fault but clock when absent) and all of them together, over --seeds seeds, and print one
    /// table.
    /// Implied when neither --bin nor --workload is given: `converge certify` alone certifies
    /// the reference node on the whole suite.
    #[arg(long)]
    suite: bool,
    /// With the suite: seeds per cell, consecutive from --seed [default: 2].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1000))]
    seeds: Option<u64>,
    /// With the suite: runs at once [default: the number of CPUs].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    jobs: Option<u16>,
    /// Number of nodes.
    #[arg(long, visible_alias = "node-count", default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=64))]
    nodes: u16,
    /// Concurrent clients, each with one request outstanding: a number, or `Kn` for K per node
    /// (Maelstrom's form) [default: one per node].
    #[arg(long, visible_alias = "concurrency", value_name = "N|Kn", value_parser = parse_clients)]
    clients: Option<Clients>,
    /// Total requests per second over all clients [default: 50].
    #[arg(long, value_parser = parse_rate)]
    rate: Option<f64>,
    /// Length of the main phase, in seconds: clients issue at --rate until it is over
    /// [default: 20].
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    time_limit: Option<f64>,
    /// Most operations in the main phase, a cap on top of --time-limit; definite failures do not
    /// count [default: none].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    ops: Option<u64>,
    /// Length of each fault window and of the healthy window after it, in seconds [default: a
    /// fifth of --time-limit, between 1 and 10].
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    nemesis_interval: Option<f64>,
    /// Fixed latency of every node-to-node message, in ms [default: 0, sub-millisecond].
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(0..=60_000))]
    latency: Option<u64>,
    /// Longest wait after the heal for the network to go quiet, in seconds [default: 10].
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    settle: Option<f64>,
    /// Milliseconds without node-to-node or service traffic that count as quiet [default: 1000].
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=600_000))]
    quiet_ms: Option<u64>,
    /// Longest wait for every node's final read to agree, in seconds [default: 10].
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    final_timeout: Option<f64>,
    /// How long final reads must stay equal once all nodes agree, in seconds [default: three of
    /// the replication periods measured from the traffic, at least twice --quiet-ms].
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    stability: Option<f64>,
    /// Faults to inject, comma-separated: partition, loss, duplicate, reorder, kill, pause,
    /// clock (process nodes' wall clocks moved through libfaketime, package `faketime`).
    #[arg(long, value_name = "LIST", value_parser = parse_faults, default_value = "")]
    nemesis: FaultList,
    /// `maelstrom` applies Maelstrom's checks only; `strict` adds converge's.
    #[arg(long, default_value_t = Profile::Strict, value_parser = names_arg(Profile::ALL, Profile::name))]
    profile: Profile,
    /// Seed of every scheduling decision. Default: drawn from the clock and printed.
    #[arg(long)]
    seed: Option<u64>,
    /// A request unanswered after this many milliseconds is indefinite.
    #[arg(long, default_value_t = converge::certify::DEFAULT_REQUEST_TIMEOUT_MS, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    request_timeout_ms: u64,
    /// Run the same operations under this many delivery schedules; with two or more, their final
    /// states must be equal (merge-order independence).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    schedules: u64,
    /// Where logs go: each run gets LOG_DIR/run-SEED-SECONDS/ (node stderr in schedule-K/n0.log, …),
    /// and LOG_DIR/latest points at the newest.
    #[arg(long, default_value = "converge-logs")]
    log_dir: PathBuf,
    /// Write the full report as JSON here.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Write the verdicts as JUnit XML here (one test case per check).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// On a violation, do not search for a smaller failing run.
    #[arg(long)]
    no_shrink: bool,
    /// Most replays when shrinking a failing run.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_runs, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    shrink_runs: u32,
    /// Most seconds spent shrinking a failing run (checked before each replay).
    #[arg(long, value_name = "SECONDS", default_value_t = Limits::default().max_wall.as_secs(), value_parser = clap::value_parser!(u64).range(1..=86_400))]
    shrink_time: u64,
    /// Where to write the Lamport diagram (SVG) of a failing run [default: LOG_DIR/lamport.svg].
    #[arg(long, value_name = "FILE")]
    diagram: Option<PathBuf>,
    /// Arguments for the node program.
    #[arg(last = true)]
    args: Vec<String>,
}

#[derive(Clone, Debug)]
struct FaultList(Vec<Fault>);

/// `--clients` / `--concurrency`: a count, or a count per node.
#[derive(Clone, Copy, Debug)]
enum Clients {
    Total(usize),
    PerNode(usize),
}

impl Clients {
    fn count(self, nodes: usize) -> usize {
        match self {
            Clients::Total(n) => n,
            Clients::PerNode(k) => k * nodes,
        }
    }
}

fn parse_clients(s: &str) -> Result<Clients, String> {
    let (digits, per_node) = match s.strip_suffix('n') {
        Some(d) => (d, true),
        None => (s, false),
    };
    let n: usize = digits
        .parse()
        .map_err(|_| format!("'{s}' is not a number of clients (like 6) or per node (like 2n)"))?;
    if !(1..=1024).contains(&n) {
        return Err(format!("{n} is not in 1..=1024"));
    }
    Ok(if per_node {
        Clients::PerNode(n)
    } else {
        Clients::Total(n)
    })
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r > 0.0 && r <= 1_000_000.0 => Ok(r),
        _ => Err(format!(
            "'{s}' is not a rate in requests per second, above 0 and at most 1000000"
        )),
    }
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.001..=86_400.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "'{s}' is not a duration in seconds between 0.001 and 86400"
        )),
    }
}

fn parse_faults(list: &str) -> Result<FaultList, String> {
    converge::certify::parse_faults(list).map(FaultList)
}

#[derive(clap::Args)]
struct LawsArgs {
    /// Also check the `crdts` crate's types; what they break is reported as findings and does not
    /// change the exit code.
    #[arg(long)]
    crdts: bool,
    /// Only these types (repeatable), by the names in the table.
    #[arg(long = "type", value_name = "NAME")]
    types: Vec<String>,
    /// Only these laws (repeatable): associative, commutative, idempotent, bottom, inflation,
    /// delta, convergence, semantics.
    #[arg(long = "law", value_name = "LAW", value_parser = parse_law)]
    laws: Vec<Law>,
    /// Random traces per law and type.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    cases: u32,
    /// Seed of the trace generator; a run with the same seed, cases and steps is the same run.
    /// Default: drawn from the clock and printed.
    #[arg(long)]
    seed: Option<u64>,
    /// Longest trace, in steps.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u16).range(1..=2_000))]
    max_steps: u16,
}

fn parse_law(name: &str) -> Result<Law, String> {
    Law::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Law::ALL.iter().map(|l| l.name()).collect();
        format!("unknown law '{name}'; expected one of {}", names.join(", "))
    })
}

/// Set by the Ctrl-C (SIGINT, SIGTERM, SIGHUP) handler; long runs poll it and wind down, so every
/// node process is killed and reaped before converge exits.
fn interrupt_flag() -> &'static Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Whether the user asked converge to stop.
fn interrupted() -> bool {
    interrupt_flag().load(Ordering::Relaxed)
}

/// Exit status after an interruption, as shells expect for SIGINT (128 + 2).
const EXIT_INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The TCP node and the cluster commands handle their own signals (the node stops on SIGTERM;
    // the cluster commands are short): converge's Ctrl-C flag is for the long checking runs.
    let cli = match cli.command {
        Command::Node(args) if !args.stdio => return run_tcp_node(args),
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
    let flag = Arc::clone(interrupt_flag());
    // Without the handler a Ctrl-C still ends converge, but skips the clean-up that reaps node
    // processes ignoring SIGINT; failing to install it is worth a warning, not a refusal.
    if let Err(e) = ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed)) {
        eprintln!("warning: cannot install the Ctrl-C handler: {e}");
    }
    match cli.command {
        Command::Laws(args) => run_laws(args),
        Command::Certify(args) => run_certify(args),
        Command::Node(args) => run_node(args),
        Command::Sim(args) => run_sim(args),
        Command::Model(args) => run_model(args),
        // Handled above, before the Ctrl-C handler is installed.
        Command::Cluster(_) => ExitCode::SUCCESS,
    }
}

fn clock_seed() -> u64 {
    // Outside the core, the wall clock is a fine source of a fresh seed; it is printed so the run
    // can be replayed.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn run_certify(mut args: CertifyArgs) -> ExitCode {
    if args.suite || (args.program.is_none() && args.workload.is_empty()) {
        return run_suite(args);
    }
    if args.seeds.is_some() || args.jobs.is_some() {
        eprintln!("error: --seeds and --jobs need --suite");
        return ExitCode::from(2);
    }
    let workload = match args.workload.len() {
        0 => "g-counter".to_string(),
        1 => args.workload.remove(0),
        _ => {
            eprintln!("error: several --workload flags need --suite");
            return ExitCode::from(2);
        }
    };
    let Some((program, reference)) = node_program(&args) else {
        return ExitCode::from(2);
    };
    let seed = args.seed.unwrap_or_else(clock_seed);
    let config = run_config(&args, Timing::DEFAULT, seed);
    say!("timing: {}", Timing::of(&config).describe());
    let request = converge::certify::Request {
        program,
        reference,
        args: args.args,
        workload,
        log_dir: run_log_dir(&args.log_dir, seed),
        config,
        schedules: args.schedules,
    };
    let schedules = request.schedules;
    let mut progress = RunProgress::new(request.config.time_limit_ms);
    let result = converge::certify::certify(&request, &mut |schedule, stage| {
        let label = if schedules > 1 {
            format!("schedule {}/{schedules} ", schedule + 1)
        } else {
            String::new()
        };
        progress.show(&label, stage);
    });
    progress.finish();
    let certification = match result {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if interrupted() {
        eprintln!("interrupted: every node process was stopped; nothing was judged");
        return ExitCode::from(EXIT_INTERRUPTED);
    }
    say_raw!("{}", converge::certify::render_all(&certification));
    let verdict = certification.verdict();
    let explained = if matches!(verdict, Verdict::Fail { .. }) {
        let limits = Limits {
            max_runs: args.shrink_runs,
            max_wall: Duration::from_secs(args.shrink_time),
        };
        let shrink = (!args.no_shrink).then_some(limits);
        match explain_failure(&request, &certification, shrink, args.diagram.as_deref()) {
            Ok(explained) => Some(explained),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };
    if let Some(path) = &args.report {
        let json = serde_json::json!({
            "verdict": verdict,
            "runs": certification.runs,
            "merge_order": certification.merge_order,
            "shrunk": explained
                .as_ref()
                .and_then(|e| e.shrinking.as_ref())
                .map(|s| s.json(&request)),
        });
        if let Err(e) = std::fs::write(
            path,
            serde_json::to_string_pretty(&json).unwrap_or_default(),
        ) {
            eprintln!("error: cannot write report {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    if let Some(path) = &args.junit
        && let Err(e) = std::fs::write(path, converge::certify::junit(&certification))
    {
        eprintln!("error: cannot write JUnit report {}: {e}", path.display());
        return ExitCode::from(2);
    }
    match verdict {
        Verdict::Pass => {
            say!("verdict: pass");
            ExitCode::SUCCESS
        }
        Verdict::Fail { .. } => {
            let reproduce =
                explained.map_or_else(|| converge::certify::reproduce(&request), |e| e.reproduce);
            say!("verdict: FAIL\nreproduce: {reproduce}\n{REPRODUCES}");
            ExitCode::FAILURE
        }
        Verdict::Unknown { reason } => {
            say!(
                "verdict: unknown ({reason})\nreproduce: {}\n{REPRODUCES}",
                converge::certify::reproduce(&request)
            );
            ExitCode::FAILURE
        }
    }
}

/// The run settings the command line asks for, on `timing` wherever it names none.
fn run_config(args: &CertifyArgs, timing: Timing, seed: u64) -> RunConfig {
    let nodes = usize::from(args.nodes);
    let ms = |seconds: f64| (seconds * 1000.0).round() as u64;
    let mut t = timing;
    if let Some(s) = args.time_limit {
        t.time_limit_ms = ms(s);
        t.fault_window_ms = Timing::fault_window_for(t.time_limit_ms);
    }
    if let Some(rate) = args.rate {
        t.rate = rate;
    }
    if let Some(s) = args.nemesis_interval {
        t.fault_window_ms = ms(s);
    }
    if let Some(s) = args.settle {
        t.settle_ms = ms(s);
    }
    if let Some(q) = args.quiet_ms {
        t.quiet_ms = q;
    }
    if let Some(s) = args.final_timeout {
        t.final_timeout_ms = ms(s);
    }
    if let Some(s) = args.stability {
        t.stability_ms = Some(ms(s));
    }
    let mut config = RunConfig {
        nodes,
        clients: args.clients.map_or(nodes, |c| c.count(nodes)),
        ops: args.ops.unwrap_or(u64::MAX),
        latency_ms: args.latency.unwrap_or(0),
        seed,
        faults: args.nemesis.0.clone(),
        profile: args.profile,
        request_timeout_ms: args.request_timeout_ms,
        cancel: Some(Arc::clone(interrupt_flag())),
        ..RunConfig::default()
    };
    t.apply(&mut config);
    config
}

/// A run's own log directory under `--log-dir`, so a second run never appends to the first's
/// node logs: `LOG_DIR/run-<seed>-<unix seconds>`, with `LOG_DIR/latest` pointing at it.
fn run_log_dir(base: &std::path::Path, seed: u64) -> PathBuf {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let _ = std::fs::create_dir_all(base);
    let mut dir = base.join(format!("run-{seed}-{secs}"));
    // Two runs of one seed within a second (a script, parallel tests) still get a directory
    // each: creating it is the claim, and it fails if another run got there first.
    let mut k = 1;
    while std::fs::create_dir(&dir).is_err() && k < 1000 {
        k += 1;
        dir = base.join(format!("run-{seed}-{secs}-{k}"));
    }
    if dir.is_dir() {
        let latest = base.join("latest");
        let _ = std::fs::remove_file(&latest);
        if let Some(name) = dir.file_name() {
            let _ = std::os::unix::fs::symlink(name, &latest);
        }
    }
    dir
}

/// Progress of one certification: a bar over the main phase's time on a terminal, and on a pipe
/// (a CI log) a plain line at most every five seconds, so a long run shows life either way.
struct RunProgress {
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: Option<Instant>,
    last_stage: String,
}

impl RunProgress {
    /// Plain lines on a pipe come at most this often.
    const LINE_EVERY: Duration = Duration::from_secs(5);

    fn new(total_ms: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total_ms);
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg:28} {bar:40} {elapsed}")
                    .expect("the template is valid"),
            );
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        RunProgress {
            bar,
            started: Instant::now(),
            last_line: None,
            last_stage: String::new(),
        }
    }

    fn show(&mut self, label: &str, stage: Stage) {
        let (message, position) = match stage {
            Stage::Init => (format!("{label}init"), None),
            Stage::Main {
                done,
                elapsed_ms,
                total_ms,
            } => (
                format!("{label}workload, {done} ops"),
                Some((elapsed_ms, total_ms)),
            ),
            Stage::Settle => (format!("{label}settling after heal"), None),
            Stage::Final => (format!("{label}final reads"), None),
        };
        if let Some(bar) = &self.bar {
            if let Some((elapsed, total)) = position {
                bar.set_length(total);
                bar.set_position(elapsed.min(total));
            }
            bar.set_message(message);
            return;
        }
        // On a pipe: a line when the stage changes, and within a stage at a bounded rate.
        let stage_name = message.split(',').next().unwrap_or_default().to_string();
        let due = self
            .last_line
            .is_none_or(|t| t.elapsed() >= Self::LINE_EVERY);
        if stage_name != self.last_stage || due {
            self.last_stage = stage_name;
            self.last_line = Some(Instant::now());
            eprintln!(
                "progress: {:.0} s: {message}",
                self.started.elapsed().as_secs_f64()
            );
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// What `converge certify` adds to a failure: the shrunk run and the command that replays the
/// run it reports.
struct Explained {
    shrinking: Option<converge::certify::Shrinking>,
    reproduce: String,
}

/// What a certify reproduce line reproduces, said next to it.
const REPRODUCES: &str = "(the same seed makes the same operations, fault plan and network decisions; \
real processes still run on their own timing, so the interleaving, and a failure that needs one, \
may take a few replays)";

/// Shrinks a failure within `shrink` (`None` for `--no-shrink`), showing each replay's progress,
/// then writes the diagram of the smallest failing run to `diagram` (default: the log directory)
/// and says where. Errs if the diagram cannot be written.
fn explain_failure(
    request: &converge::certify::Request,
    certification: &converge::certify::Certification,
    shrink: Option<Limits>,
    diagram: Option<&std::path::Path>,
) -> Result<Explained, String> {
    let shrinking = shrink.map(|limits| {
        let mut progress = RunProgress::new(request.config.time_limit_ms);
        let shrinking = converge::certify::shrink(
            request,
            certification,
            &limits,
            &mut |replay, config, stage| {
                let label = format!(
                    "shrink {replay}/{} ({} nodes, {} clients): ",
                    limits.max_runs, config.nodes, config.clients
                );
                progress.show(&label, stage);
            },
        );
        progress.finish();
        let s = &shrinking.shrunk;
        say!(
            "shrunk: {} ({} replays in {:.1} s{})",
            s.summary(),
            s.runs,
            s.elapsed_ms as f64 / 1000.0,
            s.cut_short
                .as_ref()
                .map(|why| format!("; cut short: {why}"))
                .unwrap_or_default()
        );
        shrinking
    });
    let (run_request, run) = shrinking.as_ref().map_or((request, certification), |s| {
        s.run((request, certification))
    });
    if let Some((minimal, c)) = shrinking.as_ref().and_then(|s| s.minimal.as_ref()) {
        let first = converge::certify::render_all(c);
        say!(
            "smallest failing run: {}\nits node logs: {}",
            first.lines().next().unwrap_or_default(),
            minimal.log_dir.display()
        );
    }
    let path = diagram.map_or_else(|| request.log_dir.join("lamport.svg"), PathBuf::from);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {} for the diagram: {e}", dir.display()))?;
    }
    std::fs::write(&path, converge::certify::diagram(run_request, run))
        .map_err(|e| format!("cannot write the diagram {}: {e}", path.display()))?;
    say!("diagram: {}", path.display());
    // With `--no-shrink` either way: the run is the smallest found, or one the user asked not to
    // shrink, so replaying it should not search again.
    Ok(Explained {
        reproduce: converge::certify::reproduce_minimal(run_request),
        shrinking,
    })
}

/// The program to certify and whether it is the reference node, or `None` after printing why
/// the choice is unusable.
fn node_program(args: &CertifyArgs) -> Option<(PathBuf, bool)> {
    match &args.program {
        Some(program) if program.exists() => Some((program.clone(), false)),
        // A bare name (`--bin python3 -- node.py`) is looked up on PATH, as a shell would.
        Some(program) if program.components().count() == 1 => {
            let found = std::env::var_os("PATH").and_then(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join(program))
                    .find(|p| p.is_file())
            });
            match found {
                Some(p) => Some((p, false)),
                None => {
                    eprintln!(
                        "error: node program {} is neither a file nor found on PATH",
                        program.display()
                    );
                    None
                }
            }
        }
        Some(program) => {
            eprintln!("error: node program {} does not exist", program.display());
            None
        }
        None if !args.args.is_empty() => {
            eprintln!("error: arguments after -- are for a --bin program");
            None
        }
        None => match std::env::current_exe() {
            Ok(me) => Some((me, true)),
            Err(e) => {
                eprintln!("error: cannot find the converge binary to run its reference node: {e}");
                None
            }
        },
    }
}

fn run_suite(args: CertifyArgs) -> ExitCode {
    use converge::suite;
    let Some((program, reference)) = node_program(&args) else {
        return ExitCode::from(2);
    };
    let seed = args.seed.unwrap_or_else(clock_seed);
    let timing = if reference {
        Timing::REFERENCE
    } else {
        Timing::DEFAULT
    };
    let config = run_config(&args, timing, seed);
    let faults = if args.nemesis.0.is_empty() {
        Fault::DEFAULT.to_vec()
    } else {
        args.nemesis.0
    };
    let workloads = if args.workload.is_empty() {
        workload::WORKLOADS.iter().map(|w| w.to_string()).collect()
    } else {
        let mut chosen = args.workload;
        chosen.dedup();
        chosen
    };
    let suite = suite::Suite {
        template: converge::certify::Request {
            program,
            reference,
            args: args.args,
            workload: String::new(),
            log_dir: run_log_dir(&args.log_dir, seed),
            config,
            schedules: args.schedules,
        },
        workloads,
        columns: suite::columns(&faults),
        seeds: (0..args.seeds.unwrap_or(2))
            .map(|k| seed.wrapping_add(k))
            .collect(),
        jobs: args.jobs.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            usize::from,
        ),
    };
    let total = suite.workloads.len() * suite.columns.len() * suite.seeds.len();
    say!(
        "timing{}: {}",
        if reference {
            " (the reference node's short profile: it replicates within milliseconds; a node given with --bin gets a 20 s main phase at 50 ops/s)"
        } else {
            ""
        },
        Timing::of(&suite.template.config).describe()
    );
    say!(
        "converge certify --suite: seed {seed}, {} workloads × {} nemeses × {} seeds = {total} runs, {} at a time",
        suite.workloads.len(),
        suite.columns.len(),
        suite.seeds.len(),
        suite.jobs
    );
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} runs {elapsed}  {msg}")
            .expect("the template is valid"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let cells = suite::run(&suite, &interrupted, &|cell| {
        let column = &suite.columns[cell.col].name;
        if let Verdict::Fail { .. } = cell.verdict() {
            bar.println(format!(
                "FAIL {} × {column} seed {}: {}",
                cell.request.workload,
                cell.request.config.seed,
                cell.failed().join(", ")
            ));
        }
        bar.set_message(format!("{} × {column}", cell.request.workload));
        bar.inc(1);
    });
    bar.finish_and_clear();
    if interrupted() {
        eprintln!("interrupted: every node process was stopped; the table below is partial");
    }
    say_raw!("{}", suite::render(&suite, &cells));
    if let Some(path) = &args.report {
        let json = suite::json(&suite, &cells);
        if let Err(e) = std::fs::write(
            path,
            serde_json::to_string_pretty(&json).unwrap_or_default(),
        ) {
            eprintln!("error: cannot write report {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    if let Some(path) = &args.junit
        && let Err(e) = std::fs::write(path, suite::junit(&suite, &cells))
    {
        eprintln!("error: cannot write JUnit report {}: {e}", path.display());
        return ExitCode::from(2);
    }
    if interrupted() {
        return ExitCode::from(EXIT_INTERRUPTED);
    }
    if cells.len() == total && cells.iter().all(|c| c.verdict() == Verdict::Pass) {
        say!("verdict: pass");
        ExitCode::SUCCESS
    } else {
        say!("verdict: FAIL");
        ExitCode::FAILURE
    }
}

fn run_model(args: ModelArgs) -> ExitCode {
    // The Ctrl-C handler installed in `main` only raises a flag, which the model checker and the
    // explorer's server never look at: without this watcher a Ctrl-C (or SIGTERM) would leave
    // a long check or the explorer running. There is nothing to clean up, so it exits at once.
    std::thread::spawn(|| {
        while !interrupted() {
            std::thread::sleep(Duration::from_millis(100));
        }
        std::process::exit(i32::from(EXIT_INTERRUPTED));
    });
    let check = match args.command {
        ModelCommand::List => {
            for entry in converge_models::catalogue() {
                say!("{:<24} {}", entry.name, entry.about);
            }
            return ExitCode::SUCCESS;
        }
        ModelCommand::Check(check) => check,
        ModelCommand::Explore(explore) => return run_model_explore(explore),
    };
    let entries: Vec<_> = match &check.name {
        Some(name) => match converge_models::find(name) {
            Some(entry) => vec![entry],
            None => {
                eprintln!("error: no model named {name:?}; `converge model list` names them");
                return ExitCode::from(2);
            }
        },
        None => converge_models::catalogue().iter().collect(),
    };
    let mut ok = true;
    for entry in entries {
        let depth = check
            .depth
            .map(|d| usize::try_from(d).unwrap_or(usize::MAX));
        let report = entry.check(depth);
        say!(
            "{}: {} states, {} unique, max depth {}, {:.2} s",
            report.name,
            report.states,
            report.unique_states,
            report.max_depth,
            report.seconds
        );
        for p in &report.properties {
            say!("  {:<48} {}", p.name, p.verdict());
            // A single model's counterexamples are what one asks it for; with --all only a
            // failed expectation is worth the screen space.
            let show = !p.ok() || (!check.all && p.expect != converge_models::Expect::Example);
            if let Some(path) = p.path.as_ref().filter(|_| show) {
                say!("{path}");
            }
        }
        ok &= report.ok();
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run_model_explore(args: ModelExploreArgs) -> ExitCode {
    let Some(entry) = converge_models::find(&args.name) else {
        eprintln!(
            "error: no model named {:?}; `converge model list` names them",
            args.name
        );
        return ExitCode::from(2);
    };
    let depth = args.depth.map(|d| usize::try_from(d).unwrap_or(usize::MAX));
    let ready = || {
        say!(
            "serving the explorer for {} on http://{} (Ctrl-C stops it)",
            entry.name,
            args.addr
        );
    };
    match entry.explore(args.addr, depth, ready) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_sim(args: SimArgs) -> ExitCode {
    use converge::simulate::{self, Plan};
    let first = args.seed.unwrap_or_else(clock_seed);
    let workloads: Vec<String> = if args.workload.is_empty() {
        workload::WORKLOADS
            .iter()
            .filter(|w| **w != "echo")
            .map(|w| w.to_string())
            .collect()
    } else {
        args.workload
    };
    let plan = Plan {
        workloads,
        faults: args
            .nemesis
            .map_or_else(|| Fault::DEFAULT.to_vec(), |f| f.0),
        every_fault: args.every_fault,
        regions: usize::from(args.regions),
        replicas_per_region: usize::from(args.replicas_per_region),
        ops: args.ops,
        skew_ms: args.skew_ms,
        bug: args.bug,
        cancel: Some(Arc::clone(interrupt_flag())),
    };
    say!(
        "converge sim: seeds {first}..{}, {} regions × {} replicas, {} ops per seed",
        first.saturating_add(args.seeds - 1),
        plan.regions,
        plan.replicas_per_region,
        plan.ops
    );
    let bar = ProgressBar::new(args.seeds);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} seeds {elapsed}  {msg}")
            .expect("the template is valid"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let started = std::time::Instant::now();
    let (mut failed, mut ops) = (Vec::new(), 0u64);
    for k in 0..args.seeds {
        if interrupted() {
            break;
        }
        let seed = first.wrapping_add(k);
        let outcome = simulate::run_seed(&plan, seed);
        ops += outcome.ops;
        let line = outcome.summary();
        if outcome.passed() {
            if !bar.is_hidden() {
                bar.set_message(line);
            } else {
                say!("{line}");
            }
        } else {
            bar.suspend(|| say!("{line}\n{}", outcome.details()));
            failed.push(seed);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    if interrupted() {
        eprintln!("interrupted");
        return ExitCode::from(EXIT_INTERRUPTED);
    }
    say!(
        "{} seeds, {} failed; {ops} client ops in {secs:.1} s ({:.0} ops/s)",
        args.seeds,
        failed.len(),
        ops as f64 / secs.max(1e-9)
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        say!("failing seeds: {failed:?}");
        ExitCode::FAILURE
    }
}

/// Parses a consistency level with [`Consistency`]'s own names, listed in `--help`.
fn consistency_arg() -> impl clap::builder::TypedValueParser<Value = Consistency> {
    names_arg(Consistency::ALL, Consistency::name)
}

/// Parses one of an enum's own names (each of `all` through `name`) with its `FromStr`, so the
/// enum is the one place that spells them; clap lists them in `--help` as the possible values and
/// refuses any other before `FromStr` sees it.
fn names_arg<T, E>(
    all: impl IntoIterator<Item = T>,
    name: fn(T) -> &'static str,
) -> impl clap::builder::TypedValueParser<Value = T>
where
    T: std::str::FromStr<Err = E> + Clone + Send + Sync + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
{
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(all.into_iter().map(name)).try_map(|s| s.parse::<T>())
}

fn run_tcp_node(args: NodeArgs) -> ExitCode {
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

fn run_node(args: NodeArgs) -> ExitCode {
    use converge_node::maelstrom::{FaceConfig, Workload};
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
    match converge_node::stdio::run(config, args.data_dir.as_deref()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_laws(args: LawsArgs) -> ExitCode {
    let mut entries = laws::builtin();
    if args.crdts {
        #[cfg(feature = "crdts-adapter")]
        entries.extend(laws::crdts());
        #[cfg(not(feature = "crdts-adapter"))]
        {
            eprintln!("error: this build has no crdts adapter (feature `crdts-adapter`)");
            return ExitCode::from(2);
        }
    }
    if !args.types.is_empty() {
        if let Some(unknown) = args
            .types
            .iter()
            .find(|t| !entries.iter().any(|e| &e.name == *t))
        {
            let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
            eprintln!(
                "error: unknown type '{unknown}'; expected one of {}",
                names.join(", ")
            );
            return ExitCode::from(2);
        }
        entries.retain(|e| args.types.contains(&e.name));
    }
    let laws = if args.laws.is_empty() {
        Law::ALL.to_vec()
    } else {
        args.laws
    };
    let seed = args.seed.unwrap_or_else(clock_seed);
    let config = Config {
        cases: args.cases,
        seed,
        max_steps: usize::from(args.max_steps),
    };
    say!(
        "converge laws: seed {seed}, {} traces of up to {} steps per check, {} types × {} laws",
        config.cases,
        config.max_steps,
        entries.len(),
        laws.len()
    );
    let bar = ProgressBar::new((entries.len() * laws.len()) as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} checks  {msg}")
            .expect("the template is valid"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    // Panics inside a type under check are caught and reported as failures with their message;
    // the default hook would also spray them over the terminal.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let report = laws::run(&entries, &laws, &config, |name, law| {
        bar.set_message(format!("{name}: {}", law.name()));
        bar.inc(1);
    });
    std::panic::set_hook(hook);
    bar.finish_and_clear();
    say_raw!("{}", report.render());
    if report.builtin_ok() {
        say!("\nall built-in types pass every law");
        ExitCode::SUCCESS
    } else {
        say!("\nbuilt-in types break laws (see above)");
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each enum's names parse back to it, so `--help`'s possible values and the replay commands
    /// printed with them are accepted.
    #[test]
    fn names_round_trip() {
        for bug in Bug::ALL {
            assert_eq!(bug.name().parse::<Bug>(), Ok(bug));
        }
        for profile in Profile::ALL {
            assert_eq!(profile.to_string().parse::<Profile>(), Ok(profile));
        }
        assert!("Strict".parse::<Profile>().is_err());
    }
}
