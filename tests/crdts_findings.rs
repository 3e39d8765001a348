//! What the law checker finds in the `crdts` crate (7.3.2), asserted so that it is documented
//! and a change in either crate shows up here.
//!
//! Finding: `LWWReg` with a time-only marker is not commutative: two replicas that write at the
//! same time keep whichever value arrived first, so they never converge. The crate's
//! `validate_merge` refuses such a merge (`ConflictingMarker`) but `merge` itself does not; with
//! `(time, actor)` as the marker every law holds. Everything else passes.
#![cfg(feature = "crdts-adapter")]

use converge::laws::{crdts, run};
use converge_conformance::laws::{Config, Law, LawVerdict};

#[test]
fn crdts_lwwreg_with_equal_markers_diverges_and_everything_else_passes() {
    let config = Config {
        cases: 512,
        seed: 20_261_129,
        max_steps: 60,
    };
    let report = run(&crdts(), &Law::ALL, &config, |_, _| {});
    println!("{}", report.render());
    let mut failing: Vec<(String, &str)> = Vec::new();
    let mut not_applicable: Vec<(String, &str)> = Vec::new();
    for (name, _, verdicts) in &report.rows {
        for (law, v) in Law::ALL.iter().zip(verdicts) {
            match v {
                LawVerdict::Fail { .. } => failing.push((name.clone(), law.name())),
                LawVerdict::NotApplicable { .. } => not_applicable.push((name.clone(), law.name())),
                LawVerdict::Pass { .. } => {}
            }
        }
    }
    let lww = "crdts::LWWReg".to_string();
    assert_eq!(
        failing,
        vec![
            (lww.clone(), "commutative"),
            (lww.clone(), "convergence"),
            (lww, "semantics")
        ],
        "{}",
        report.render()
    );
    // Orswot's ops carry version-vector contexts, so it has no δ-mutators to check; no type of
    // the crate claims a lower bound, so the bound law applies to none.
    let mut expected = vec![("crdts::Orswot".to_string(), "delta")];
    expected.extend(
        report
            .rows
            .iter()
            .map(|(name, _, _)| (name.clone(), "bound")),
    );
    expected.sort();
    not_applicable.sort();
    assert_eq!(not_applicable, expected);
}
