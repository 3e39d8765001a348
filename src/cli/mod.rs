//! The subcommands of the `converge` binary, one module each with its clap arguments and its
//! `run`:
//!
//! - [`certify`]: `converge certify`, one run or the whole `--suite` of a node program.
//! - [`sim`]: `converge sim`, seeds of the in-process simulator.
//! - [`laws`]: `converge laws`, the CRDT law table.
//! - [`model`]: `converge model list|check|explore`, the stateright models.
//! - [`node`]: `converge node`, one reference replica over TCP or stdio.
//! - [`cluster`]: `converge cluster up|down|status|partition|heal`, local node processes.
//! - [`report`]: `converge report merge`, the shards of a sharded run combined.
//! - [`shared`]: what several of them use: the Ctrl-C flag and exit status, fresh seeds, run log
//!   directories, the progress display and the argument parsers for enum names and fault lists.
//!
//! The work itself lives in the `converge` library (and the crates under it); these modules turn
//! arguments into its inputs and its results into output and exit codes.

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

pub mod certify;
pub mod cluster;
pub mod laws;
pub mod model;
pub mod node;
pub mod report;
pub mod shared;
pub mod sim;
