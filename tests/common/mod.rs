//! Shared by the integration tests that drive `converge certify` as a user would.

use std::process::Command;

/// Runs `converge certify ARGS` from the repository root, with node logs in a temporary folder
/// of its own; returns the exit code and stdout followed by stderr.
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
