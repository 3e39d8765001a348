//! The `converge` binary as a user meets it: exit codes and messages.

use std::process::Command;

fn converge(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_converge"))
        .args(args)
        .output()
        .expect("the converge binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn laws_prints_the_table_and_exits_zero_when_builtin_types_pass() {
    let (code, stdout, _) = converge(&["laws", "--seed", "5", "--cases", "32"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("seed 5"), "{stdout}");
    for name in [
        "g-counter",
        "pn-counter",
        "or-set",
        "lww-register",
        "mv-register",
        "bounded-counter",
    ] {
        assert!(stdout.contains(name), "missing {name}:\n{stdout}");
    }
    assert!(!stdout.contains("FAIL"), "{stdout}");
}

#[cfg(feature = "crdts-adapter")]
#[test]
fn crdts_findings_are_reported_with_a_reproduce_line_without_failing_the_run() {
    let (code, stdout, _) = converge(&[
        "laws",
        "--crdts",
        "--seed",
        "5",
        "--cases",
        "256",
        "--type",
        "crdts::LWWReg",
        "--law",
        "commutative",
    ]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("finding: crdts::LWWReg breaks commutative"),
        "{stdout}"
    );
    assert!(
        stdout.contains("reproduce: converge laws --crdts --seed 5 --cases 256"),
        "{stdout}"
    );
}

#[test]
fn bad_input_is_a_usage_error_with_exit_code_2() {
    let (code, _, stderr) = converge(&["laws", "--type", "no-such-type"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown type 'no-such-type'"), "{stderr}");
    let (code, _, stderr) = converge(&["laws", "--law", "transitivity"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown law 'transitivity'"), "{stderr}");
    let (code, _, _) = converge(&["laws", "--cases", "0"]);
    assert_eq!(code, 2);
}
