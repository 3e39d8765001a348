//! `converge model list|check|explore`: the arguments, and the runs over `converge-models`'
//! catalogue.

use super::shared::{EXIT_INTERRUPTED, interrupted};
use clap::Subcommand;
use std::process::ExitCode;
use std::time::Duration;

/// `converge model`'s arguments: which of its subcommands.
#[derive(clap::Args)]
pub(crate) struct ModelArgs {
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

/// Runs `converge model`.
pub(crate) fn run(args: ModelArgs) -> ExitCode {
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
        ModelCommand::Explore(args) => return explore(args),
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

/// Serves the explorer for `converge model explore`.
fn explore(args: ModelExploreArgs) -> ExitCode {
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
