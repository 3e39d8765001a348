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
