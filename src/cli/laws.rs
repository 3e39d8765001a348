//! `converge laws`: its arguments, and the run of the law checker over the built-in types (and
//! the `crdts` crate's) with its table.

use super::shared::{clock_seed, listed_names_arg};
use converge::laws;
use converge_conformance::laws::{Config, Law};
use indicatif::{ProgressBar, ProgressStyle};
use std::process::ExitCode;
use std::time::Duration;

/// `converge laws`' arguments.
#[derive(clap::Args)]
pub(crate) struct LawsArgs {
    /// Also check the `crdts` crate's types; what they break is reported as findings and does not
    /// change the exit code.
    #[arg(long)]
    crdts: bool,
    /// Only these types (repeatable), by the names in the table.
    #[arg(long = "type", value_name = "NAME")]
    types: Vec<String>,
    /// Only these laws (repeatable).
    #[arg(long = "law", value_name = "LAW", value_parser = listed_names_arg(Law::ALL, Law::name))]
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

/// Runs `converge laws`.
pub(crate) fn run(args: LawsArgs) -> ExitCode {
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
