//! Shared by the integration tests that drive `converge certify` as a user would.

use std::process::Command;

/// Runs `converge certify ARGS` from the repository root, with node logs in a temporary folder
/// of its own; returns the exit code and stdout followed by stderr.
#[allow(dead_code)] // Not every test file that includes this module uses it.
pub fn certify(args: &[&str]) -> (i32, String) {
    let logs = std::env::temp_dir().join(format!("converge-test-logs-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_converge"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("certify")
        .arg("--log-dir")
        .arg(&logs)
        .args(args)
        .output()
        .expect("the converge binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// [`certify`], but fails the test instead of hanging if the run takes longer than `limit`.
#[allow(dead_code)] // Not every test file that includes this module uses it.
pub fn certify_within(args: &[&str], limit: std::time::Duration) -> (i32, String) {
    let logs = std::env::temp_dir().join(format!("converge-test-logs-{}", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_converge"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("certify")
        .arg("--log-dir")
        .arg(&logs)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the converge binary runs");
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("waiting on converge") {
            let mut out = String::new();
            if let Some(mut stdout) = child.stdout.take() {
                use std::io::Read as _;
                let _ = stdout.read_to_string(&mut out);
            }
            return (status.code().unwrap_or(-1), out);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("converge certify {args:?} did not finish within {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The directory holding `converge-mutants`' node binaries, built once per test binary with cargo
/// in the test's own profile and found next to the `converge` binary. They are another package's
/// binaries, which `env!` cannot name from a test of this one.
#[allow(dead_code)] // Not every test file that includes this module uses it.
pub fn mutants_dir() -> &'static std::path::Path {
    use std::path::{Path, PathBuf};
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let converge = Path::new(env!("CARGO_BIN_EXE_converge"));
        let dir = converge
            .parent()
            .expect("the converge binary lives in a profile directory")
            .to_path_buf();
        let mut build = Command::new(env!("CARGO"));
        build.current_dir(env!("CARGO_MANIFEST_DIR")).args([
            "build",
            "--quiet",
            "-p",
            "converge-mutants",
            "--bins",
        ]);
        if converge.to_string_lossy().contains("/release/") {
            build.arg("--release");
        }
        let out = build.output().expect("cargo runs");
        assert!(
            out.status.success(),
            "building converge-mutants failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            dir.join("counter").exists(),
            "the mutant nodes were built, but not next to {} (a --target build?)",
            converge.display()
        );
        dir
    })
}

/// Runs `converge certify --log-dir LOGS --bin BIN --no-shrink ARGS` with `env` added, its output
/// in files under `logs` (a pipe could block the harness while the test waits), in a process
/// group of its own that its nodes join. A run still going after `deadline` has hung: the whole
/// group is killed (stopped nodes too) and the test fails with the node logs' place and
/// `command`, the line that reproduces it. Returns the exit code and stdout followed by stderr.
#[allow(dead_code)] // Not every test file that includes this module uses it.
pub fn certify_bounded(
    bin: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
    logs: &std::path::Path,
    deadline: std::time::Duration,
    command: &str,
) -> (i32, String) {
    use std::os::unix::process::CommandExt as _;
    let (stdout, stderr) = (logs.join("certify.out"), logs.join("certify.err"));
    let file =
        |path: &std::path::Path| std::fs::File::create(path).expect("the temp dir is writable");
    let mut child = Command::new(env!("CARGO_BIN_EXE_converge"))
        .arg("certify")
        .arg("--log-dir")
        .arg(logs)
        .arg("--bin")
        .arg(bin)
        // Shrinking replays a failing run many times; these tests need only the verdict, which
        // a replay would not change.
        .arg("--no-shrink")
        .args(args)
        .envs(env.iter().copied())
        .stdout(file(&stdout))
        .stderr(file(&stderr))
        .process_group(0)
        .spawn()
        .expect("the converge binary runs");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("the harness can be waited for") {
            break Some(status);
        }
        if started.elapsed() > deadline {
            // SIGKILL to the group ends the harness and its nodes, stopped ones too.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let read = |path: &std::path::Path| {
        String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
    };
    let out = format!("{}{}", read(&stdout), read(&stderr));
    let Some(status) = status else {
        panic!(
            "converge certify did not finish within {} s, so it was killed with its nodes; node \
             logs in {}\n{out}\nreproduce: {command}",
            deadline.as_secs(),
            logs.display()
        );
    };
    (status.code().unwrap_or(-1), out)
}

/// The verdict a `converge certify` run must reach, as its exit code.
#[allow(dead_code)] // Not every test file that includes this module uses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Exit 0: every check passed.
    Pass,
    /// Exit 1: some check failed, or the node misbehaved.
    Fail,
    /// Exit 2: the command line was refused.
    Usage,
}

impl Verdict {
    /// The exit code `converge certify` gives this verdict.
    #[allow(dead_code)] // Not every test file that includes this module uses it.
    pub fn code(self) -> i32 {
        match self {
            Verdict::Pass => 0,
            Verdict::Fail => 1,
            Verdict::Usage => 2,
        }
    }
}

/// One `converge certify` run of a table: the node, what to run it on, and what its output must
/// show. Rows start from [`Case::PASS`] or [`Case::FAIL`] and name only what differs.
#[allow(dead_code)] // Not every test file that includes this module uses it.
#[derive(Clone, Debug)]
pub struct Case<'a> {
    /// The node: a path from the repository root (`tests/nodes/gset.py`), or the name of a
    /// `converge-mutants` binary where the table's runner says so.
    pub node: &'a str,
    /// `--workload`, or `None` for the harness's default.
    pub workload: Option<&'a str>,
    /// The harness's other arguments, seed included, in the order given to it.
    pub args: &'a [&'a str],
    /// The node's own arguments, passed after `--`.
    pub node_args: &'a [&'a str],
    /// The exit code the run must end with.
    pub verdict: Verdict,
    /// Checks that must fail: each `FAIL    CHECK` line must be printed (a check may be given
    /// with the start of its message, `set-full: lost: n`).
    pub failing: &'a [&'a str],
    /// Checks that must pass, whatever the verdict: each `pass    CHECK` line must be printed.
    pub passing: &'a [&'a str],
    /// Text the output must contain: a fault the nemesis applied (`kill:n`), a message.
    pub output: &'a [&'a str],
    /// Text the output must not contain (a check a profile leaves out).
    pub absent: &'a [&'a str],
    /// How long the run may take before the test fails instead of hanging; `None` waits.
    pub deadline: Option<std::time::Duration>,
}

impl Case<'static> {
    /// A run that must pass, with nothing else asserted.
    #[allow(dead_code)] // Not every test file that includes this module uses it.
    pub const PASS: Case<'static> = Case {
        node: "",
        workload: None,
        args: &[],
        node_args: &[],
        verdict: Verdict::Pass,
        failing: &[],
        passing: &[],
        output: &[],
        absent: &[],
        deadline: None,
    };
    /// A run that must fail, with nothing else asserted.
    #[allow(dead_code)] // Not every test file that includes this module uses it.
    pub const FAIL: Case<'static> = Case {
        verdict: Verdict::Fail,
        ..Case::PASS
    };
}

impl Case<'_> {
    /// The arguments of `converge certify` after `--bin NODE`: the workload, the harness's
    /// arguments, then `--` and the node's.
    #[allow(dead_code)] // Not every test file that includes this module uses it.
    pub fn certify_args(&self) -> Vec<&str> {
        let mut args = Vec::new();
        if let Some(workload) = self.workload {
            args.extend(["--workload", workload]);
        }
        args.extend(self.args);
        if !self.node_args.is_empty() {
            args.push("--");
            args.extend(self.node_args);
        }
        args
    }

    /// Asserts what the row expects of a run that exited with `code` and printed `out`;
    /// `context` (the output, and how to reproduce the run) ends every failure message.
    #[allow(dead_code)] // Not every test file that includes this module uses it.
    pub fn assert_run(&self, code: i32, out: &str, context: &str) {
        assert_eq!(code, self.verdict.code(), "{:?}: {context}", self.verdict);
        for check in self.failing {
            let line = format!("FAIL    {check}");
            assert!(out.contains(&line), "{check} not caught: {context}");
        }
        for check in self.passing {
            let line = format!("pass    {check}");
            assert!(out.contains(&line), "{check} did not pass: {context}");
        }
        for text in self.output {
            assert!(out.contains(text), "no {text:?}: {context}");
        }
        for text in self.absent {
            assert!(!out.contains(text), "{text:?} printed: {context}");
        }
    }
}

/// The runner of the tables of `tests/certify*.rs`: runs `converge certify --bin NODE ARGS` from
/// the repository root (the Python nodes are named by their path from there), within the case's
/// deadline if it has one, asserts what the case expects, and returns the output for any further
/// assertion.
#[allow(dead_code)] // Not every test file that includes this module uses it.
pub fn run_case(case: &Case) -> String {
    let mut args = vec!["--bin", case.node];
    args.extend(case.certify_args());
    let (code, out) = match case.deadline {
        Some(limit) => certify_within(&args, limit),
        None => certify(&args),
    };
    case.assert_run(
        code,
        &out,
        &format!("{out}\nrun: converge certify {}", args.join(" ")),
    );
    out
}

/// Tests as tables: each row is a `#[test] fn NAME = [CASE, ...];` whose cases are run in turn by
/// `RUNNER` (a `fn(&Case)`), so that every row keeps its own name, a failure names its row, and
/// cargo runs rows in parallel. A row is written with `#[test] fn` so that it reads, and is found
/// by `tests/spec_tidy.rs`, as the test function it is.
#[allow(unused_macros)] // Not every test file that includes this module uses it.
macro_rules! certify_table {
    (runner: $runner:path; $($(#[$attr:meta])* fn $name:ident = $cases:expr;)*) => {
        $(
            $(#[$attr])*
            fn $name() {
                for case in &$cases {
                    $runner(case);
                }
            }
        )*
    };
}

/// Processes whose command line mentions `needle`, from /proc: what a test checks is gone after
/// a run.
#[allow(dead_code)] // Not every test file that includes this module uses it.
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline
                .contains(needle)
                .then(|| format!("{}: {cmdline}", e.file_name().to_string_lossy()))
        })
        .collect()
}

/// Sends SIGINT to `child` (Ctrl-C) and waits at most 20 s for it to exit; kills it and fails
/// the test if it does not.
#[allow(dead_code)] // Not every test file that includes this module uses it.
pub fn interrupt(child: &mut std::process::Child) -> std::process::ExitStatus {
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let interrupted = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("waiting on converge") {
            return status;
        }
        if interrupted.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("converge did not stop within 20 s of Ctrl-C");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
