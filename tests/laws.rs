//! Every built-in CRDT passes every law of the checker.
//!
//! Seed: `CONVERGE_SEED` (default 20261129); cases: `CONVERGE_CASES` (default 512). A failure prints
//! the shrunk trace and the command that reproduces it.

use converge::laws::{builtin, run};
use converge_conformance::laws::{Config, Law};

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
    // Every cell was decided: no built-in type skips a law.
    for (name, _, verdicts) in &report.rows {
        for (law, v) in Law::ALL.iter().zip(verdicts) {
            assert!(
                matches!(v, converge_conformance::laws::LawVerdict::Pass { .. }),
                "{name} {}: {v:?}",
                law.name()
            );
        }
    }
}
