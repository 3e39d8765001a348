//! Every built-in CRDT passes every law of the checker.
//!
//! Seed: `CONVERGE_SEED` (default 20261129); cases: `CONVERGE_CASES` (default 512). A failure prints
//! the shrunk trace and the command that reproduces it.

use converge::laws::{builtin, run};
use converge_conformance::laws::{Config, Law, LawVerdict};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn every_builtin_type_passes_every_law() {
    let config = Config {
        cases: u32::try_from(env_or("CONVERGE_CASES", 512)).expect("cases fit u32"),
        seed: env_or("CONVERGE_SEED", 20_261_129),
        max_steps: 60,
    };
    let report = run(&builtin(), &Law::ALL, &config, |_, _| {});
    let rendered = report.render();
    println!("{rendered}");
    assert!(
        report.builtin_ok(),
        "seed {}: built-in types break laws\n{rendered}\nreproduce: CONVERGE_SEED={} cargo test -p converge --test laws",
        config.seed,
        config.seed
    );
    // Every cell was decided: no built-in type skips a law, except the bound law on the types that
    // claim no bound. The bounded counter is among the rows and is held to it.
    assert!(
        report
            .rows
            .iter()
            .any(|(name, _, _)| name == "bounded-counter"),
        "the bounded counter is not checked"
    );
    for (name, _, verdicts) in &report.rows {
        for (law, v) in Law::ALL.iter().zip(verdicts) {
            let skipped = *law == Law::Bound && name != "bounded-counter";
            assert!(
                if skipped {
                    matches!(v, LawVerdict::NotApplicable { .. })
                } else {
                    matches!(v, LawVerdict::Pass { .. })
                },
                "{name} {}: {v:?}",
                law.name()
            );
        }
    }
}

/// The trace on which `conformance/tests/broken_crdts.rs` catches the global-check bounded
/// counter (two replicas withdrawing the last unit) holds every law for the reference: the
/// second withdrawal is refused, so no read goes below zero and every read matches the
/// specification.
#[test]
fn the_reference_bounded_counter_refuses_the_second_withdrawal_of_the_last_unit() {
    use converge::adapters::BoundedSubject;
    use converge_conformance::laws::{OpSeed, Step, Trace, check_trace_all};
    let inc = OpSeed { flip: false, x: 0 };
    let dec = OpSeed { flip: true, x: 0 };
    let trace = Trace {
        replicas: 0,
        steps: vec![
            Step::Op { at: 0, seed: inc },
            Step::State { from: 0, to: 1 },
            Step::Op { at: 0, seed: dec },
            Step::Op { at: 1, seed: dec },
            Step::State { from: 1, to: 0 },
        ],
        picks: [0; 3],
    };
    assert_eq!(check_trace_all(&BoundedSubject, &trace), Ok(()));
}
