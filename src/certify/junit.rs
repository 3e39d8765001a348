//! The certification as JUnit XML, for CI systems (`converge certify --junit`).

use super::Certification;
use converge_conformance::harness::check::Verdict;
use std::fmt::Write as _;

/// Text made safe for an XML attribute or element, for the JUnit reports.
pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The certification as JUnit XML: one test suite per schedule, one test case per check and per
/// node problem, so CI systems show each verdict on its own line.
pub fn junit(c: &Certification) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"converge certify\">\n",
    );
    let case = |out: &mut String, class: &str, name: &str, verdict: &Verdict| {
        let _ = write!(
            out,
            "    <testcase classname=\"{}\" name=\"{}\"",
            escape(class),
            escape(name)
        );
        match verdict {
            Verdict::Pass => out.push_str("/>\n"),
            Verdict::Fail { detail } => {
                let _ = write!(
                    out,
                    ">\n      <failure message=\"{}\"/>\n    </testcase>\n",
                    escape(detail)
                );
            }
            Verdict::Unknown { reason } => {
                let _ = write!(
                    out,
                    ">\n      <skipped message=\"{}\"/>\n    </testcase>\n",
                    escape(reason)
                );
            }
        }
    };
    for (i, run) in c.runs.iter().enumerate() {
        let class = format!("{}.schedule{i}", run.workload);
        let failures = run.problems.len()
            + run
                .checks
                .iter()
                .filter(|k| matches!(k.verdict, Verdict::Fail { .. }))
                .count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" time=\"{:.3}\">",
            escape(&class),
            run.checks.len() + run.problems.len(),
            run.elapsed_ms as f64 / 1000.0
        );
        for p in &run.problems {
            let detail = serde_json::to_string(p).unwrap_or_default();
            case(
                &mut out,
                &class,
                "node-behaviour",
                &Verdict::Fail { detail },
            );
        }
        for check in &run.checks {
            case(&mut out, &class, &check.name, &check.verdict);
        }
        out.push_str("  </testsuite>\n");
    }
    if let Some(check) = &c.merge_order {
        out.push_str("  <testsuite name=\"merge-order\" tests=\"1\">\n");
        case(&mut out, "merge-order", &check.name, &check.verdict);
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
