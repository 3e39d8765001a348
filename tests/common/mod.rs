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
