//! What several subcommands share: the Ctrl-C flag and the exit status after it, a fresh seed
//! from the clock, a run's own log directory, the progress display of a certification run, and
//! the argument parsers for fault lists and for enums that own their names.

use converge_conformance::harness::nemesis::Fault;
use converge_conformance::harness::run::Stage;
use converge_core::replica::Consistency;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// `--nemesis`: the faults named, in [`converge::certify::parse_faults`]'s order.
#[derive(Clone, Debug)]
pub(crate) struct FaultList(pub(crate) Vec<Fault>);

/// Parses `--nemesis a,b,c` (`certify` and `sim` take the same list).
pub(crate) fn parse_faults(list: &str) -> Result<FaultList, String> {
    converge::certify::parse_faults(list).map(FaultList)
}

/// Set by the Ctrl-C (SIGINT, SIGTERM, SIGHUP) handler; long runs poll it and wind down, so every
/// node process is killed and reaped before converge exits.
pub(crate) fn interrupt_flag() -> &'static Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Whether the user asked converge to stop.
pub(crate) fn interrupted() -> bool {
    interrupt_flag().load(Ordering::Relaxed)
}

/// Exit status after an interruption, as shells expect for SIGINT (128 + 2).
pub(crate) const EXIT_INTERRUPTED: u8 = 130;

/// A fresh seed for a run that names none.
pub(crate) fn clock_seed() -> u64 {
    // Outside the core, the wall clock is a fine source of a fresh seed; it is printed so the run
    // can be replayed.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A run's own log directory under `--log-dir`, so a second run never appends to the first's
/// node logs: `LOG_DIR/run-<seed>-<unix seconds>`, with `LOG_DIR/latest` pointing at it.
pub(crate) fn run_log_dir(base: &std::path::Path, seed: u64) -> PathBuf {
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
pub(crate) struct RunProgress {
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: Option<Instant>,
    last_stage: String,
}

impl RunProgress {
    /// Plain lines on a pipe come at most this often.
    const LINE_EVERY: Duration = Duration::from_secs(5);

    /// A display for a main phase of `total_ms`.
    pub(crate) fn new(total_ms: u64) -> Self {
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

    /// Shows `stage`, after `label` (which names the run: a schedule or a shrink replay).
    pub(crate) fn show(&mut self, label: &str, stage: Stage) {
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

    /// Clears the bar, if there is one.
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Progress of a long batch of runs on a pipe (a CI log), where no bar is drawn: a line every
/// [`Heartbeat::EVERY`] from a thread of its own — runs done of the total, failures so far,
/// elapsed — so a log shows life even while every run in flight is still going. Stops (and
/// joins its thread) when dropped.
pub(crate) struct Heartbeat {
    done: Arc<std::sync::atomic::AtomicUsize>,
    failed: Arc<std::sync::atomic::AtomicUsize>,
    stop: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Heartbeat {
    /// How often a line is printed: well inside the 10 s a CI log may go quiet.
    pub(crate) const EVERY: Duration = Duration::from_secs(5);

    /// Starts printing `progress: D/total WHAT, F failed, S s` to stderr.
    pub(crate) fn start(total: usize, what: &'static str) -> Heartbeat {
        use std::sync::atomic::Ordering;
        let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let failed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let (d, f, s) = (Arc::clone(&done), Arc::clone(&failed), Arc::clone(&stop));
        let started = Instant::now();
        let thread = std::thread::spawn(move || {
            let (lock, cvar) = &*s;
            let mut stopped = lock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            loop {
                let (guard, _) = cvar
                    .wait_timeout(stopped, Self::EVERY)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                stopped = guard;
                if *stopped {
                    return;
                }
                eprintln!(
                    "progress: {}/{total} {what}, {} failed, {:.0} s",
                    d.load(Ordering::Relaxed),
                    f.load(Ordering::Relaxed),
                    started.elapsed().as_secs_f64()
                );
            }
        });
        Heartbeat {
            done,
            failed,
            stop,
            thread: Some(thread),
        }
    }

    /// One more run finished, failed or not.
    pub(crate) fn finished(&self, failed: bool) {
        use std::sync::atomic::Ordering;
        self.done.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        let (lock, cvar) = &*self.stop;
        *lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        cvar.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Parses a consistency level with [`Consistency`]'s own names, listed in `--help`.
pub(crate) fn consistency_arg() -> impl clap::builder::TypedValueParser<Value = Consistency> {
    names_arg(Consistency::ALL, Consistency::name)
}

/// Parses one of an enum's own names (each of `all` through `name`) with its `FromStr`, so the
/// enum is the one place that spells them; clap lists them in `--help` as the possible values and
/// refuses any other before `FromStr` sees it.
pub(crate) fn names_arg<T, E>(
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

/// Like [`names_arg`], but clap only lists the names in `--help` and leaves refusing any other to
/// the enum's `FromStr`, so the error names what was wrong in the enum's own words (`converge
/// laws --law`'s "unknown law ..." message predates the list in `--help` and is kept).
pub(crate) fn listed_names_arg<T, E>(
    all: impl IntoIterator<Item = T>,
    name: fn(T) -> &'static str,
) -> impl clap::builder::TypedValueParser<Value = T>
where
    T: std::str::FromStr<Err = E> + Clone + Send + Sync + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
{
    use clap::builder::TypedValueParser as _;
    ListedNames(all.into_iter().map(name).collect()).try_map(|s| s.parse::<T>())
}

/// A string argument whose possible values `--help` lists but which accepts any string, for
/// [`listed_names_arg`] to hand to `FromStr`.
#[derive(Clone)]
struct ListedNames(Vec<&'static str>);

impl clap::builder::TypedValueParser for ListedNames {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        value
            .to_str()
            .map(str::to_string)
            .ok_or_else(|| clap::Error::new(clap::error::ErrorKind::InvalidUtf8).with_cmd(cmd))
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            self.0.iter().map(|n| clap::builder::PossibleValue::new(*n)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use converge_conformance::harness::nemesis::Fault;
    use converge_conformance::harness::workload::Profile;
    use converge_conformance::laws::Law;
    use converge_core::replica::Bug;

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
        for law in Law::ALL {
            assert_eq!(law.to_string().parse::<Law>(), Ok(law));
        }
        for fault in Fault::ALL {
            assert_eq!(fault.to_string().parse::<Fault>(), Ok(fault));
        }
    }

    /// The JSON report names a run's profile through serde; it must be the word `--profile`
    /// takes, or a report could not be turned back into a command.
    #[test]
    fn the_report_spells_profiles_as_the_command_line_does() {
        for profile in Profile::ALL {
            assert_eq!(
                serde_json::to_value(profile).ok(),
                Some(serde_json::Value::from(profile.name()))
            );
        }
    }
}
