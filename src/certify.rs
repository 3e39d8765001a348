//! `converge certify`: runs a node program through a workload under seeded faults and prints the
//! verdict, with the command that reproduces the run. A failing run is shrunk ([`shrink()`]) to the
//! smallest run that fails the same way, and drawn as a Lamport diagram ([`diagram()`]).

use converge_conformance::harness::backend::Backend;
use converge_conformance::harness::check::{Check, Verdict};
use converge_conformance::harness::cluster::spec::ClusterSpec;
use converge_conformance::harness::cluster::{ClusterBackend, ClusterConfig};
use converge_conformance::harness::diagram;
use converge_conformance::harness::nemesis::Fault;
use converge_conformance::harness::process::{ProcessBackend, ProcessConfig, find_libfaketime};
use converge_conformance::harness::run::{
    RunConfig, RunReport, Stage, merge_order_independence, run,
};
use converge_conformance::harness::shrink::{self, Floors, Limits, Replay, Shrunk, Signature};
use converge_conformance::harness::workload::{self, Profile};
use std::fmt::Write as _;

mod junit;
pub(crate) use junit::escape;
pub use junit::junit;
use std::path::PathBuf;

/// `--request-timeout-ms`'s default: [`reproduce`] leaves the flag out for it.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 1_000;

/// A run's time scale: how long the main phase lasts and how fast clients ask, how long fault
/// windows last, and how the harness waits for quiescence and stability after the heal
/// (docs/protocol.md, "Timing").
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// The main phase's length (`--time-limit`), ms.
    pub time_limit_ms: u64,
    /// Requests per second over all clients (`--rate`).
    pub rate: f64,
    /// Fault and healthy windows (`--nemesis-interval`), ms.
    pub fault_window_ms: u64,
    /// Longest wait for quiescence after the heal (`--settle`), ms.
    pub settle_ms: u64,
    /// Silence that counts as quiescence (`--quiet-ms`).
    pub quiet_ms: u64,
    /// Longest wait for agreement in final reads (`--final-timeout`), ms.
    pub final_timeout_ms: u64,
    /// The stability window (`--stability`), ms; `None` derives it from the traffic.
    pub stability_ms: Option<u64>,
}

impl Timing {
    /// What any node gets unless told otherwise. Real nodes replicate on timers of 100 ms to a
    /// few seconds: twenty seconds at 50 requests per second (about 1,000 operations, what a
    /// checker needs) spans two rounds of a 2-second gossip inside every fault window of four
    /// seconds; ten seconds of settling is what Maelstrom waits before its final reads.
    pub const DEFAULT: Timing = Timing {
        time_limit_ms: 20_000,
        rate: 50.0,
        fault_window_ms: 4_000,
        settle_ms: 10_000,
        quiet_ms: 1_000,
        final_timeout_ms: 10_000,
        stability_ms: None,
    };

    /// The suite's profile for converge's own reference node, which replicates every write
    /// within a few milliseconds of batch delay: the same number of operations in a tenth of the
    /// time, so the whole suite runs in minutes. A node with timers gets [`Timing::DEFAULT`].
    pub const REFERENCE: Timing = Timing {
        time_limit_ms: 2_000,
        rate: 500.0,
        fault_window_ms: 400,
        settle_ms: 2_000,
        quiet_ms: 200,
        final_timeout_ms: 5_000,
        stability_ms: None,
    };

    /// The default fault window for a main phase of `time_limit_ms`: a fifth of it, between one
    /// and ten seconds (Maelstrom's `--nemesis-interval` is ten). Windows start with a fault, so
    /// five of them are three fault windows and two healthy ones, and the main phase ends inside a
    /// fault: the last operations on each side of a partition stay concurrent until the heal,
    /// which is where add-wins sets and multi-value registers show what they keep.
    pub fn fault_window_for(time_limit_ms: u64) -> u64 {
        (time_limit_ms / 5).clamp(1_000, 10_000)
    }

    /// Puts this timing into `config`.
    pub fn apply(&self, config: &mut RunConfig) {
        config.time_limit_ms = self.time_limit_ms;
        config.rate = Some(self.rate);
        config.fault_window_ms = self.fault_window_ms;
        config.settle_ms = self.settle_ms;
        config.quiet_ms = self.quiet_ms;
        config.final_timeout_ms = self.final_timeout_ms;
        config.stability_ms = self.stability_ms;
    }

    /// The timing `config` runs with.
    pub fn of(config: &RunConfig) -> Timing {
        Timing {
            time_limit_ms: config.time_limit_ms,
            rate: config.rate.unwrap_or(0.0),
            fault_window_ms: config.fault_window_ms,
            settle_ms: config.settle_ms,
            quiet_ms: config.quiet_ms,
            final_timeout_ms: config.final_timeout_ms,
            stability_ms: config.stability_ms,
        }
    }

    /// One line for the output: what a run of this timing does.
    pub fn describe(&self) -> String {
        let s = |ms: u64| ms as f64 / 1000.0;
        format!(
            "{} s main phase at {} ops/s, fault windows of {} s, quiescence {} ms (at most {} s), agreement within {} s, stability window {}",
            s(self.time_limit_ms),
            self.rate,
            s(self.fault_window_ms),
            self.quiet_ms,
            s(self.settle_ms),
            s(self.final_timeout_ms),
            self.stability_ms.map_or_else(
                || "three replication periods (at least 2 × quiescence)".to_string(),
                |ms| format!("{} s", s(ms))
            )
        )
    }
}

/// What the command line asked for.
#[derive(Clone, Debug)]
pub struct Request {
    /// The node program.
    pub program: PathBuf,
    /// Whether the program is converge's own reference node (`converge node --stdio`, from this
    /// very binary): its arguments are then built per workload, with a data directory per run,
    /// and the reproduce command names no `--bin`.
    pub reference: bool,
    /// Its arguments.
    pub args: Vec<String>,
    /// Workload name.
    pub workload: String,
    /// Where node logs go.
    pub log_dir: PathBuf,
    /// The run.
    pub config: RunConfig,
    /// Delivery schedules to run the same operations under.
    pub schedules: u64,
    /// A deployed system to certify instead of a stdio program (`--cluster FILE`): then
    /// `args` are appended to every node's command.
    pub cluster: Option<Cluster>,
    /// The other build for the rolling-upgrade nemesis (`--upgrade-bin`); how many nodes it
    /// replaces is `config.upgrades`.
    pub upgrade_bin: Option<PathBuf>,
}

/// `--cluster FILE`: the spec file as given (for the reproduce command) and as loaded.
#[derive(Clone, Debug)]
pub struct Cluster {
    /// The file.
    pub path: PathBuf,
    /// Its contents.
    pub spec: ClusterSpec,
}

impl Cluster {
    /// The spec with `args` appended to every node's command.
    fn with_args(&self, args: &[String]) -> ClusterSpec {
        let mut spec = self.spec.clone();
        let quoted: Vec<String> = args
            .iter()
            .map(|a| a.replace('{', "{{").replace('}', "}}"))
            .collect();
        if let Some(c) = spec.node.command.as_mut() {
            c.extend(quoted.iter().cloned());
        }
        for o in &mut spec.overrides {
            if let Some(c) = o.command.as_mut() {
                c.extend(quoted.iter().cloned());
            }
        }
        spec
    }
}

/// The runs of one certification: one per delivery schedule, and, with two or more, the
/// merge-order independence check across them.
pub struct Certification {
    /// One report per schedule, schedule 0 first.
    pub runs: Vec<RunReport>,
    /// Whether the same operations ended equal under every schedule.
    pub merge_order: Option<Check>,
}

impl Certification {
    /// Fail if any run or the merge-order check failed; unknown if a run could not be decided;
    /// else pass. A merge-order check that could not be decided (some schedule's operations
    /// failed or timed out, as faults make them do) leaves the verdict to the runs: it says so in
    /// the output, and gating on it would make `--schedules` under faults unusable.
    pub fn verdict(&self) -> Verdict {
        let verdicts = self.runs.iter().map(RunReport::verdict).chain(
            self.merge_order
                .iter()
                .filter(|c| matches!(c.verdict, Verdict::Fail { .. }))
                .map(|c| c.verdict.clone()),
        );
        let mut unknown = None;
        for v in verdicts {
            match v {
                Verdict::Fail { .. } => return v,
                Verdict::Unknown { .. } => unknown = unknown.or(Some(v)),
                Verdict::Pass => {}
            }
        }
        unknown.unwrap_or(Verdict::Pass)
    }
}

/// Runs the request once per schedule; `progress` sees each stage of each run.
pub fn certify(
    request: &Request,
    progress: &mut dyn FnMut(u64, Stage),
) -> Result<Certification, String> {
    // The clock nemesis moves node clocks with libfaketime: without it, say so before any run.
    let faketime = if request.config.faults.contains(&Fault::Clock) {
        Some(find_libfaketime()?)
    } else {
        None
    };
    let mut runs = Vec::new();
    for schedule in 0..request.schedules.max(1) {
        let mut workload = workload::by_name(&request.workload).ok_or_else(|| {
            format!(
                "unknown workload '{}'; expected one of {}",
                request.workload,
                workload::WORKLOADS.join(", ")
            )
        })?;
        let log_dir = request.log_dir.join(format!("schedule-{schedule}"));
        let args = if request.reference {
            // A fresh store per run: a node killed by the nemesis restarts from its own data,
            // never from an earlier run's.
            let data = log_dir.join("data");
            let _ = std::fs::remove_dir_all(&data);
            reference_args(&request.workload, &data)
        } else {
            request.args.clone()
        };
        let mut backend: Box<dyn Backend> = match &request.cluster {
            Some(cluster) => Box::new(
                ClusterBackend::new(ClusterConfig {
                    spec: cluster.with_args(&request.args),
                    workload: request.workload.clone(),
                    log_dir,
                    converge: std::env::current_exe()
                        .map_err(|e| format!("cannot find the converge binary: {e}"))?,
                    request_timeout_ms: request.config.request_timeout_ms,
                    upgrade_bin: request.upgrade_bin.clone(),
                    faketime: faketime.clone(),
                })
                .map_err(|e| format!("{}: {e}", cluster.path.display()))?,
            ),
            None => {
                let mut backend = ProcessBackend::new(
                    ProcessConfig {
                        program: request.program.clone(),
                        args,
                        log_dir,
                        faketime: faketime.clone(),
                    },
                    request.config.nodes,
                );
                if let Some(bin) = &request.upgrade_bin {
                    backend.set_upgrade(bin.clone());
                }
                Box::new(backend)
            }
        };
        let config = RunConfig {
            schedule,
            ..request.config.clone()
        };
        let report = run(workload.as_mut(), backend.as_mut(), &config, &mut |stage| {
            progress(schedule, stage)
        });
        runs.push(report);
    }
    let merge_order = (runs.len() > 1).then(|| merge_order_independence(&runs));
    Ok(Certification { runs, merge_order })
}

/// The reference node's arguments for `workload`, storing its data under `data`.
pub fn reference_args(workload: &str, data: &std::path::Path) -> Vec<String> {
    vec![
        "node".into(),
        "--stdio".into(),
        "--workload".into(),
        workload.into(),
        "--data-dir".into(),
        data.display().to_string(),
    ]
}

/// The command that replays `request` with the same seed.
pub fn reproduce(request: &Request) -> String {
    command(request, false)
}

/// The command that replays a failing run with `--no-shrink`: the smallest failing run found by
/// [`shrink()`] is as small as the search could make it, and a run given `--no-shrink` was not to
/// be shrunk, so replaying either should not search again (and the replay prints this same
/// command).
pub fn reproduce_minimal(request: &Request) -> String {
    command(request, true)
}

fn command(request: &Request, no_shrink: bool) -> String {
    let c = &request.config;
    let bin = if let Some(cluster) = &request.cluster {
        format!(
            " --cluster {}",
            shell_word(&cluster.path.display().to_string())
        )
    } else if request.reference {
        String::new()
    } else {
        format!(
            " --bin {}",
            shell_word(&request.program.display().to_string())
        )
    };
    let mut cmd = format!(
        "converge certify{bin} --workload {} --nodes {} --clients {}",
        request.workload, c.nodes, c.clients
    );
    if c.ops != u64::MAX {
        let _ = write!(cmd, " --ops {}", c.ops);
    }
    let _ = write!(cmd, " --seed {}", c.seed);
    if request.schedules > 1 {
        let _ = write!(cmd, " --schedules {}", request.schedules);
    }
    if !c.faults.is_empty() {
        let names: Vec<&str> = c.faults.iter().map(|f| f.name()).collect();
        let _ = write!(cmd, " --nemesis {}", names.join(","));
    }
    // The default profile goes unsaid, as every other default does.
    if c.profile != Profile::Strict {
        let _ = write!(cmd, " --profile {}", c.profile);
    }
    // Every part of the timing that differs from what the command would default to.
    let t = Timing::of(c);
    let d = Timing::DEFAULT;
    let secs = |ms: u64| ms as f64 / 1000.0;
    if t.time_limit_ms != d.time_limit_ms {
        let _ = write!(cmd, " --time-limit {}", secs(t.time_limit_ms));
    }
    if t.rate != d.rate {
        let _ = write!(cmd, " --rate {}", t.rate);
    }
    if t.fault_window_ms != Timing::fault_window_for(t.time_limit_ms) {
        let _ = write!(cmd, " --nemesis-interval {}", secs(t.fault_window_ms));
    }
    if t.settle_ms != d.settle_ms {
        let _ = write!(cmd, " --settle {}", secs(t.settle_ms));
    }
    if t.quiet_ms != d.quiet_ms {
        let _ = write!(cmd, " --quiet-ms {}", t.quiet_ms);
    }
    if t.final_timeout_ms != d.final_timeout_ms {
        let _ = write!(cmd, " --final-timeout {}", secs(t.final_timeout_ms));
    }
    if let Some(ms) = t.stability_ms {
        let _ = write!(cmd, " --stability {}", secs(ms));
    }
    if c.latency_ms != 0 {
        let _ = write!(cmd, " --latency {}", c.latency_ms);
    }
    if let Some(bin) = &request.upgrade_bin {
        let _ = write!(
            cmd,
            " --upgrade-bin {}",
            shell_word(&bin.display().to_string())
        );
    }
    if c.upgrades > 0 {
        let _ = write!(cmd, " --upgrades {}", c.upgrades);
    }
    if c.request_timeout_ms != DEFAULT_REQUEST_TIMEOUT_MS {
        let _ = write!(cmd, " --request-timeout-ms {}", c.request_timeout_ms);
    }
    if no_shrink {
        cmd.push_str(" --no-shrink");
    }
    if !request.args.is_empty() {
        cmd.push_str(" --");
        for a in &request.args {
            let _ = write!(cmd, " {}", shell_word(a));
        }
    }
    cmd
}

/// The result of shrinking a failing certification.
pub struct Shrinking {
    /// What the search found and spent.
    pub shrunk: Shrunk,
    /// The smallest failing run, if it is smaller than the original: its request (whose log
    /// directory holds its node logs) and its certification.
    pub minimal: Option<(Request, Certification)>,
}

impl Shrinking {
    /// The smallest failing run: the shrunk one, or else the original.
    pub fn run<'a>(
        &'a self,
        original: (&'a Request, &'a Certification),
    ) -> (&'a Request, &'a Certification) {
        self.minimal.as_ref().map_or(original, |(r, c)| (r, c))
    }

    /// The `shrunk` field of the JSON report: the search's result, and how to replay it.
    pub fn json(&self, original: &Request) -> serde_json::Value {
        let request = self.minimal.as_ref().map_or(original, |(r, _)| r);
        serde_json::json!({
            "config": self.shrunk.config,
            "reductions": self.shrunk.reductions,
            "runs": self.shrunk.runs,
            "elapsed_ms": self.shrunk.elapsed_ms,
            "cut_short": self.shrunk.cut_short,
            "verdict": self.minimal.as_ref().map(|(_, c)| c.verdict()),
            "reproduce": reproduce_minimal(request),
            "log_dir": request.log_dir,
        })
    }
}

/// Shrinks the failing `original` certification of `request`: replays smaller runs with the same
/// seed (under `<log-dir>/shrink/replay-K`), within `limits`, and keeps the smallest that fails
/// the same way (see [`Signature::matches`]). `progress` sees each stage of each replay, with
/// the replay's number and configuration.
pub fn shrink(
    request: &Request,
    original: &Certification,
    limits: &Limits,
    progress: &mut dyn FnMut(u32, &RunConfig, Stage),
) -> Shrinking {
    let signature = Signature::of(&original.runs, original.merge_order.as_ref());
    let floors = Floors {
        // A deployed cluster runs the nodes its spec names: never fewer.
        nodes: match &request.cluster {
            Some(c) => c.spec.nodes,
            None => workload::by_name(&request.workload).map_or(1, |w| w.min_nodes()),
        },
        ..Floors::default()
    };
    // Node logs are appended to, so replays of an earlier search would mix with this one's.
    let _ = std::fs::remove_dir_all(request.log_dir.join("shrink"));
    let mut minimal = None;
    let mut replay = 0;
    let shrunk = shrink::shrink(&request.config, &floors, limits, |config| {
        replay += 1;
        let candidate = Request {
            config: config.clone(),
            log_dir: request
                .log_dir
                .join("shrink")
                .join(format!("replay-{replay}")),
            ..request.clone()
        };
        let Ok(c) = certify(&candidate, &mut |_, stage| progress(replay, config, stage)) else {
            return Replay::Stop;
        };
        let seen = Signature::of(&c.runs, c.merge_order.as_ref());
        // A run cut short by Ctrl-C (the `interrupted` problem) means the user wants out.
        if seen.problems.contains("interrupted") {
            return Replay::Stop;
        }
        if signature.matches(&seen) {
            minimal = Some((candidate, c));
            Replay::Same
        } else {
            Replay::Different
        }
    });
    // The last replay that failed the same way is the one the search ended on.
    Shrinking {
        minimal: minimal.filter(|_| shrunk.reduced()),
        shrunk,
    }
}

/// The Lamport diagram of a certification's first failing run (schedule 0 if none failed), titled
/// with its first failure.
pub fn diagram(request: &Request, c: &Certification) -> String {
    let Some((index, run)) = c
        .runs
        .iter()
        .enumerate()
        .find(|(_, r)| matches!(r.verdict(), Verdict::Fail { .. }))
        .or_else(|| c.runs.first().map(|r| (0, r)))
    else {
        return diagram::render(&Default::default(), &diagram::Options::default());
    };
    let failure = run
        .problems
        .first()
        .map(|p| {
            (
                shrink::problem_kind(p),
                serde_json::to_string(p).unwrap_or_default(),
            )
        })
        .or_else(|| {
            run.checks
                .iter()
                .chain(c.merge_order.iter())
                .find_map(|k| match &k.verdict {
                    Verdict::Fail { detail } => Some((k.name.clone(), detail.clone())),
                    _ => None,
                })
        });
    let cfg = &run.config;
    // The nemesis as asked for, with the network rates this seed drew: loss and duplication
    // leave no shaded window, so the title is where they show.
    let mut nemesis = if cfg.faults.is_empty() {
        "none".to_string()
    } else {
        cfg.faults
            .iter()
            .map(|f| f.name())
            .collect::<Vec<_>>()
            .join(",")
    };
    let n = &run.network;
    let rates: Vec<String> = [("loss", n.loss), ("duplicate", n.duplicate)]
        .into_iter()
        .filter(|(_, p)| *p > 0.0)
        .map(|(name, p)| format!("{name} {p:.3}"))
        .collect();
    if !rates.is_empty() {
        let _ = write!(nemesis, " ({})", rates.join(", "));
    }
    let title = format!(
        "{} on {} nodes, {} clients, {} ops, seed {}{}; nemesis: {nemesis}; {}",
        run.workload,
        cfg.nodes,
        cfg.clients,
        cfg.ops,
        cfg.seed,
        if c.runs.len() > 1 {
            format!(", schedule {index}")
        } else {
            String::new()
        },
        request.program.display()
    );
    diagram::render(
        &run.history,
        &diagram::Options {
            title,
            failure,
            nodes: cfg.nodes,
            ..diagram::Options::default()
        },
    )
}

fn shell_word(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./=:,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// How the human output marks a verdict: `pass`, `FAIL` (capitals, to stand out in a long
/// listing) or `unknown`. The one spelling for `converge certify` and `converge sim`; the JSON
/// report and JUnit keep their own formats.
pub fn verdict_mark(verdict: &Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "pass",
        Verdict::Fail { .. } => "FAIL",
        Verdict::Unknown { .. } => "unknown",
    }
}

/// The human summary of a report.
pub fn render(report: &RunReport) -> String {
    let mut out = String::new();
    let c = &report.config;
    let _ = writeln!(
        out,
        "{} on {} nodes, {} clients, seed {}: {} ops in {:.2} s ({} ok, {} failed, {} indefinite)",
        report.workload,
        c.nodes,
        c.clients,
        c.seed,
        report.ops,
        report.elapsed_ms as f64 / 1000.0,
        report.ok,
        report.fail,
        report.info
    );
    let n = &report.network;
    let _ = writeln!(
        out,
        "network: loss {:.3}, duplicate {:.3}, reorder {}; faults: {}; {:.2} msgs/op",
        n.loss,
        n.duplicate,
        n.reorder,
        if report.faults.is_empty() {
            "none".to_string()
        } else {
            report.faults.join(" ")
        },
        report.msgs_per_op
    );
    let l = &report.latency;
    let _ = writeln!(
        out,
        "latency p50 {} ms, p95 {} ms, p99 {} ms, max {} ms; availability {:.1}%{}",
        l.p50_ms,
        l.p95_ms,
        l.p99_ms,
        l.max_ms,
        100.0 * report.availability.overall,
        report
            .availability
            .during_faults
            .map(|a| format!(" ({:.1}% during faults)", 100.0 * a))
            .unwrap_or_default()
    );
    let secs = |ms: u64| ms as f64 / 1000.0;
    if !report.fault_windows.is_empty() {
        let spans: Vec<String> = report
            .fault_windows
            .iter()
            .map(|f| {
                format!(
                    "{} {:.1}-{:.1} s",
                    f.fault,
                    secs(f.start_ms),
                    secs(f.end_ms)
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "fault windows ({} in a {:.1} s main phase): {}",
            spans.len(),
            secs(report.main_ms),
            spans.join(", ")
        );
    }
    let st = &report.settle;
    let reads = if st.read_rounds == 0 {
        "no final reads (the workload has none)".to_string()
    } else {
        format!(
            "final reads {} in {:.1} s over {} rounds, stability window {:.1} s",
            if st.stable { "stable" } else { "NOT stable" },
            secs(st.reads_ms),
            st.read_rounds,
            secs(report.stability_window_ms)
        )
    };
    let _ = writeln!(
        out,
        "after heal: {} in {:.1} s; replication period {}; {reads}",
        if st.quiet {
            "quiet"
        } else {
            "not quiet (settle bound reached)"
        },
        secs(st.waited_ms),
        report
            .replication_period_ms
            .map_or_else(|| "not measured".to_string(), |p| format!("~{p} ms")),
    );
    if !report.services.is_empty() {
        let used: Vec<String> = report
            .services
            .iter()
            .map(|(name, stats)| {
                format!(
                    "{name} {} requests ({} errors)",
                    stats.requests, stats.errors
                )
            })
            .collect();
        let _ = writeln!(out, "services: {}", used.join(", "));
    }
    for line in &report.figures {
        let _ = writeln!(out, "{line}");
    }
    for p in &report.problems {
        let _ = writeln!(
            out,
            "  FAIL  {}",
            serde_json::to_string(p).unwrap_or_default()
        );
    }
    for check in &report.checks {
        let detail = match &check.verdict {
            Verdict::Pass => String::new(),
            Verdict::Fail { detail: why } | Verdict::Unknown { reason: why } => format!(": {why}"),
        };
        let mark = verdict_mark(&check.verdict);
        let _ = writeln!(out, "  {mark:7} {}{detail}", check.name);
    }
    out
}

/// The human summary of a certification: schedule 0 in full, a line per further schedule, and the
/// merge-order check.
pub fn render_all(c: &Certification) -> String {
    let mut out = String::new();
    for (i, run) in c.runs.iter().enumerate() {
        if i == 0 {
            out.push_str(&render(run));
        } else {
            let v = run.verdict();
            let verdict = match &v {
                Verdict::Pass => verdict_mark(&v).to_string(),
                Verdict::Fail { detail: why } | Verdict::Unknown { reason: why } => {
                    format!("{}: {why}", verdict_mark(&v))
                }
            };
            let _ = writeln!(
                out,
                "schedule {i}: {} ops, {} ok, faults: {}; {verdict}",
                run.ops,
                run.ok,
                if run.faults.is_empty() {
                    "none".to_string()
                } else {
                    run.faults.join(" ")
                }
            );
        }
    }
    if let Some(check) = &c.merge_order {
        let detail = match &check.verdict {
            Verdict::Pass => String::new(),
            Verdict::Fail { detail } => format!(": {detail}"),
            Verdict::Unknown { reason } => {
                format!(": {reason} (not decided, so it does not change the verdict)")
            }
        };
        let mark = verdict_mark(&check.verdict);
        let _ = writeln!(
            out,
            "  {mark:7} {} ({} schedules){detail}",
            check.name,
            c.runs.len()
        );
    }
    out
}

/// Parses `--nemesis a,b,c`.
pub fn parse_faults(list: &str) -> Result<Vec<Fault>, String> {
    let mut faults = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let fault = name.parse::<Fault>().map_err(|_| {
            let names: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
            format!(
                "unknown nemesis '{name}'; expected a list of {}",
                names.join(", ")
            )
        })?;
        if !faults.contains(&fault) {
            faults.push(fault);
        }
    }
    faults.sort();
    Ok(faults)
}
