//! `converge`: checks multi-region active-active replication.

use clap::{Parser, Subcommand};
use converge::laws;
use converge_conformance::harness::check::Verdict;
use converge_conformance::harness::nemesis::Fault;
use converge_conformance::harness::run::{RunConfig, Stage};
use converge_conformance::harness::workload::{self, Profile};
use converge_conformance::laws::{Config, Law};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::process::ExitCode;

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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

#[derive(Subcommand)]
enum Command {
    /// Check the CRDT laws on every built-in type and print a table of law × type.
    ///
    /// Exits 0 only if every built-in type passes every law. Each failure is shrunk to a minimal
    /// trace and printed with the command that reproduces it.
    Laws(LawsArgs),
    /// Certify a node program: run it through a workload under seeded faults and check what its
    /// clients saw.
    ///
    /// The program speaks Maelstrom's protocol (JSON lines on stdin/stdout, logs on stderr; see
    /// docs/protocol.md). Exits 0 if every check passes, 1 on a violation (including a node that
    /// crashes, prints malformed output or never answers), 2 on a usage error.
    Certify(CertifyArgs),
}

#[derive(clap::Args)]
struct CertifyArgs {
    /// The node program to run, once per node.
    #[arg(long = "bin", value_name = "PATH")]
    program: PathBuf,
    /// The workload.
    #[arg(long, default_value = "g-counter", value_parser = clap::builder::PossibleValuesParser::new(workload::WORKLOADS))]
    workload: String,
    /// Number of nodes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=64))]
    nodes: u16,
    /// Concurrent clients (default: one per node).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    clients: Option<u16>,
    /// Operations in the main phase.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    ops: u64,
    /// Faults to inject, comma-separated: partition, loss, duplicate, reorder, kill, pause.
    #[arg(long, value_name = "LIST", value_parser = parse_faults, default_value = "")]
    nemesis: FaultList,
    /// `maelstrom` applies Maelstrom's checks only; `strict` adds converge's.
    #[arg(long, default_value = "strict", value_parser = ["strict", "maelstrom"])]
    profile: String,
    /// Seed of every scheduling decision. Default: drawn from the clock and printed.
    #[arg(long)]
    seed: Option<u64>,
    /// Longest main phase, in seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    time_limit: u64,
    /// A request unanswered after this many milliseconds is indefinite.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    request_timeout_ms: u64,
    /// Run the same operations under this many delivery schedules; with two or more, their final
    /// states must be equal (merge-order independence).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    schedules: u64,
    /// Where each node's stderr goes (schedule-K/n0.log, …).
    #[arg(long, default_value = "converge-logs")]
    log_dir: PathBuf,
    /// Write the full report as JSON here.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Write the verdicts as JUnit XML here (one test case per check).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Arguments for the node program.
    #[arg(last = true)]
    args: Vec<String>,
}

#[derive(Clone, Debug)]
struct FaultList(Vec<Fault>);

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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Laws(args) => run_laws(args),
        Command::Certify(args) => run_certify(args),
    }
}

fn clock_seed() -> u64 {
    // Outside the core, the wall clock is a fine source of a fresh seed; it is printed so the run
    // can be replayed.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn run_certify(args: CertifyArgs) -> ExitCode {
    let nodes = usize::from(args.nodes);
    let request = converge::certify::Request {
        program: args.program,
        args: args.args,
        workload: args.workload,
        log_dir: args.log_dir,
        config: RunConfig {
            nodes,
            clients: args.clients.map_or(nodes, usize::from),
            ops: args.ops,
            time_limit_ms: args.time_limit * 1000,
            seed: args.seed.unwrap_or_else(clock_seed),
            faults: args.nemesis.0,
            profile: if args.profile == "maelstrom" {
                Profile::Maelstrom
            } else {
                Profile::Strict
            },
            request_timeout_ms: args.request_timeout_ms,
            ..RunConfig::default()
        },
        schedules: args.schedules,
    };
    if !request.program.exists() {
        eprintln!(
            "error: node program {} does not exist",
            request.program.display()
        );
        return ExitCode::from(2);
    }
    let bar = ProgressBar::new(request.config.ops);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg:10} {bar:40} {pos}/{len} ops")
            .expect("the template is valid"),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    let schedules = request.schedules;
    let result = converge::certify::certify(&request, &mut |schedule, stage| {
        let label = if schedules > 1 {
            format!("{}/{schedules} ", schedule + 1)
        } else {
            String::new()
        };
        match stage {
            Stage::Init => bar.set_message(format!("{label}init")),
            Stage::Main { done, .. } => {
                bar.set_message(format!("{label}workload"));
                bar.set_position(done);
            }
            Stage::Settle => bar.set_message(format!("{label}settle")),
            Stage::Final => bar.set_message(format!("{label}final")),
        }
    });
    bar.finish_and_clear();
    let certification = match result {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    say_raw!("{}", converge::certify::render_all(&certification));
    let verdict = certification.verdict();
    if let Some(path) = &args.report {
        let json = serde_json::json!({
            "verdict": verdict,
            "runs": certification.runs,
            "merge_order": certification.merge_order,
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
            say!(
                "verdict: FAIL\nreproduce: {}",
                converge::certify::reproduce(&request)
            );
            ExitCode::FAILURE
        }
        Verdict::Unknown { reason } => {
            say!(
                "verdict: unknown ({reason})\nreproduce: {}",
                converge::certify::reproduce(&request)
            );
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
