//! `converge certify`: its arguments, one certification run (with the shrinking and the diagram
//! of a failure), and `--suite`'s table of runs. The command line becomes a run in one place,
//! [`build_request`], for a single run and for the suite's template alike.

use super::shared::{
    EXIT_INTERRUPTED, FaultList, Heartbeat, RunProgress, clock_seed, interrupt_flag, interrupted,
    names_arg, parse_faults, run_log_dir,
};
use converge::certify::{Request, Timing};
use converge_conformance::harness::check::Verdict;
use converge_conformance::harness::nemesis::Fault;
use converge_conformance::harness::run::RunConfig;
use converge_conformance::harness::shrink::Limits;
use converge_conformance::harness::workload::{self, Profile};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// `converge certify`'s arguments.
#[derive(clap::Args)]
pub(crate) struct CertifyArgs {
    /// The node program to run, once per node. Default: converge's own reference node
    /// (`converge node --stdio`, durable under the log directory).
    #[arg(long = "bin", value_name = "PATH")]
    program: Option<PathBuf>,
    /// Certify a deployed system instead: the spec FILE.toml says how to start each node, which
    /// ports the harness proxies, and how to speak to it as a client (docs/certify.md).
    /// Arguments after -- are appended to every node's command.
    #[arg(long, value_name = "FILE.toml", conflicts_with_all = ["program", "suite", "seeds", "jobs"])]
    cluster: Option<PathBuf>,
    /// Rolling upgrade: replace nodes one at a time, mid-run and on their own data, by this
    /// other build of the node program (with --cluster: the program of each node's command),
    /// and require every check to hold in the mixed cluster (docs/certify.md).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["suite", "seeds", "jobs"])]
    upgrade_bin: Option<PathBuf>,
    /// With --upgrade-bin (or a cluster spec's upgrade_command): how many nodes to upgrade, at
    /// most all but one, so the final reads read a mixed cluster [default: all but one].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=63))]
    upgrades: Option<u64>,
    /// The workload [default: g-counter]. With --suite, repeatable, and every workload when
    /// absent (on the reference node, every workload it serves).
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

/// Runs `converge certify`: one run of one workload, or with `--suite` (or neither `--bin` nor
/// `--workload`) the suite's table.
pub(crate) fn run(mut args: CertifyArgs) -> ExitCode {
    if args.suite || (args.program.is_none() && args.cluster.is_none() && args.workload.is_empty())
    {
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
    let cluster = match args.cluster.clone() {
        Some(path) => match load_cluster(&path, &mut args, &workload) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let Some((program, reference)) = (match &cluster {
        Some(c) => Some((c.path.clone(), false)),
        None => node_program(&args),
    }) else {
        return ExitCode::from(2);
    };
    if reference && !converge::reference::serves(&workload) {
        eprintln!(
            "error: {}; certify another node with --bin",
            converge::reference::lacks(&workload)
        );
        return ExitCode::from(2);
    }
    let seed = args.seed.unwrap_or_else(clock_seed);
    let mut request = build_request(&args, program, reference, workload, Timing::DEFAULT, seed);
    let upgradable = args.upgrade_bin.is_some()
        || cluster
            .as_ref()
            .is_some_and(|c| c.spec.node.upgrade_command.is_some());
    if let Some(bin) = &args.upgrade_bin
        && !bin.is_file()
    {
        eprintln!("error: --upgrade-bin {}: no such file", bin.display());
        return ExitCode::from(2);
    }
    if args.upgrades.is_some() && !upgradable {
        eprintln!("error: --upgrades needs --upgrade-bin (or a cluster spec with upgrade_command)");
        return ExitCode::from(2);
    }
    if upgradable {
        let most = request.config.nodes.saturating_sub(1);
        request.config.upgrades = args
            .upgrades
            .map_or(most, |n| usize::try_from(n).unwrap_or(most).min(most));
        request.upgrade_bin = args.upgrade_bin.clone();
    }
    if let Some(c) = cluster {
        // A started node may take this long to answer on its client port.
        request.config.init_timeout_ms = c.spec.ready_timeout_ms();
        request.cluster = Some(c);
    }
    say!("timing: {}", Timing::of(&request.config).describe());
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
    let json = || {
        serde_json::json!({
            "verdict": verdict,
            "runs": certification.runs,
            "merge_order": certification.merge_order,
            "shrunk": explained
                .as_ref()
                .and_then(|e| e.shrinking.as_ref())
                .map(|s| s.json(&request)),
        })
    };
    if let Err(code) = write_reports(&args, json, || converge::certify::junit(&certification)) {
        return code;
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

/// The run the command line asks for, of `workload` by `program` (`reference` if it is converge's
/// own node), on `timing` wherever the flags name none, with its own log directory under
/// `--log-dir`. This is the one place the arguments become a [`RunConfig`] and a [`Request`]: a
/// single run and the suite's template both come from here, so a new flag is read once.
fn build_request(
    args: &CertifyArgs,
    program: PathBuf,
    reference: bool,
    workload: String,
    timing: Timing,
    seed: u64,
) -> Request {
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
    Request {
        program,
        reference,
        args: args.args.clone(),
        workload,
        log_dir: run_log_dir(&args.log_dir, seed),
        config,
        schedules: args.schedules,
        cluster: None,
        upgrade_bin: None,
    }
}

/// Loads `--cluster`'s spec and checks it against the command line: the cluster runs the nodes
/// its spec names (`--nodes` may only repeat that number), and its client must map the workload.
fn load_cluster(
    path: &Path,
    args: &mut CertifyArgs,
    workload: &str,
) -> Result<converge::certify::Cluster, String> {
    use converge_conformance::harness::cluster::{mapping, spec};
    let spec = spec::ClusterSpec::load(path).map_err(|e| e.to_string())?;
    let given = usize::from(args.nodes);
    if given != 3 && given != spec.nodes {
        return Err(format!(
            "--nodes {given}, but {} runs {} nodes",
            path.display(),
            spec.nodes
        ));
    }
    args.nodes = u16::try_from(spec.nodes).map_err(|_| "too many nodes".to_string())?;
    if spec.client.protocol == spec::Protocol::Resp {
        mapping::Mapping::new(workload, spec.dialect())?;
    }
    Ok(converge::certify::Cluster {
        path: path.to_path_buf(),
        spec,
    })
}

/// Writes `--report` (the JSON `json` builds) and `--junit` (`junit`'s XML) where asked; on an
/// error, says so and gives the usage-error exit code, 2.
fn write_reports(
    args: &CertifyArgs,
    json: impl FnOnce() -> serde_json::Value,
    junit: impl FnOnce() -> String,
) -> Result<(), ExitCode> {
    if let Some(path) = &args.report
        && let Err(e) = std::fs::write(
            path,
            serde_json::to_string_pretty(&json()).unwrap_or_default(),
        )
    {
        eprintln!("error: cannot write report {}: {e}", path.display());
        return Err(ExitCode::from(2));
    }
    if let Some(path) = &args.junit
        && let Err(e) = std::fs::write(path, junit())
    {
        eprintln!("error: cannot write JUnit report {}: {e}", path.display());
        return Err(ExitCode::from(2));
    }
    Ok(())
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
    request: &Request,
    certification: &converge::certify::Certification,
    shrink: Option<Limits>,
    diagram: Option<&Path>,
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

/// Runs `converge certify --suite`: every workload × nemesis × seed cell, `--jobs` at a time,
/// and prints one table.
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
    // The template's workload is left empty: each cell names its own.
    let template = build_request(&args, program, reference, String::new(), timing, seed);
    let faults = if args.nemesis.0.is_empty() {
        Fault::DEFAULT.to_vec()
    } else {
        args.nemesis.0.clone()
    };
    let workloads: Vec<String> = if args.workload.is_empty() {
        workload::WORKLOADS
            .iter()
            .filter(|w| !reference || converge::reference::serves(w))
            .map(|w| w.to_string())
            .collect()
    } else {
        let mut chosen = args.workload.clone();
        chosen.dedup();
        chosen
    };
    if reference && let Some(w) = workloads.iter().find(|w| !converge::reference::serves(w)) {
        eprintln!(
            "error: {}; certify another node with --bin",
            converge::reference::lacks(w)
        );
        return ExitCode::from(2);
    }
    let suite = suite::Suite {
        template,
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
    // On a pipe the bar draws nothing: a heartbeat line instead, every few seconds.
    let heartbeat = bar.is_hidden().then(|| Heartbeat::start(total, "runs"));
    let cells = suite::run(&suite, &interrupted, &|cell| {
        let column = &suite.columns[cell.col].name;
        let failed = matches!(cell.verdict(), Verdict::Fail { .. });
        if let Some(h) = &heartbeat {
            h.finished(failed);
        }
        if failed {
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
    drop(heartbeat);
    if interrupted() {
        eprintln!("interrupted: every node process was stopped; the table below is partial");
    }
    say_raw!("{}", suite::render(&suite, &cells));
    if let Err(code) = write_reports(
        &args,
        || suite::json(&suite, &cells),
        || suite::junit(&suite, &cells),
    ) {
        return code;
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
