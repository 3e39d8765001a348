//! `converge laws`: the law checker over every built-in CRDT (and, on request, the `crdts`
//! crate), as a table of law × type.

use crate::adapters::{
    BoundedSubject, GCounterSubject, LwwSubject, MvSubject, OrSetSubject, PnCounterSubject,
};
use converge_conformance::laws::{self, Config, Law, LawVerdict, Subject};
use std::fmt::Write as _;

/// A law check with the subject's state type erased.
type CheckFn = Box<dyn Fn(Law, &Config) -> LawVerdict + Send + Sync>;

/// One type under check, with its state type erased.
pub struct Entry {
    /// The name used in tables and on the command line.
    pub name: String,
    /// Whether it is one of converge's own types (whose failures fail the command).
    pub builtin: bool,
    check: CheckFn,
}

impl Entry {
    fn new<S: Subject + Send + Sync + 'static>(subject: S, builtin: bool) -> Self {
        Entry {
            name: subject.name(),
            builtin,
            check: Box::new(move |law, config| laws::check(&subject, law, config)),
        }
    }

    /// Checks one law.
    pub fn check(&self, law: Law, config: &Config) -> LawVerdict {
        (self.check)(law, config)
    }
}

/// converge-core's CRDTs.
pub fn builtin() -> Vec<Entry> {
    vec![
        Entry::new(GCounterSubject, true),
        Entry::new(PnCounterSubject, true),
        Entry::new(OrSetSubject, true),
        Entry::new(LwwSubject, true),
        Entry::new(MvSubject, true),
        Entry::new(BoundedSubject, true),
    ]
}

/// The `crdts` crate's CRDTs.
#[cfg(feature = "crdts-adapter")]
pub fn crdts() -> Vec<Entry> {
    use crate::adapters::crdts::*;
    vec![
        Entry::new(CrdtsGCounter, false),
        Entry::new(CrdtsPnCounter, false),
        Entry::new(CrdtsOrswot, false),
        Entry::new(CrdtsLwwReg, false),
        Entry::new(CrdtsLwwRegTieBroken, false),
        Entry::new(CrdtsMvReg, false),
    ]
}

/// The results of a run: one verdict per (type, law) checked.
pub struct Report {
    /// The configuration every check used.
    pub config: Config,
    /// Laws in column order.
    pub laws: Vec<Law>,
    /// Per type: name, built-in or not, and a verdict per law.
    pub rows: Vec<(String, bool, Vec<LawVerdict>)>,
}

impl Report {
    /// Whether every built-in type passed every law.
    pub fn builtin_ok(&self) -> bool {
        self.rows
            .iter()
            .filter(|(_, builtin, _)| *builtin)
            .all(|(_, _, verdicts)| verdicts.iter().all(LawVerdict::is_ok))
    }

    /// The table, then one paragraph per failure with the command that reproduces it.
    pub fn render(&self) -> String {
        let width = self
            .rows
            .iter()
            .map(|r| r.0.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let mut out = String::new();
        let _ = write!(out, "{:width$}", "type");
        for law in &self.laws {
            let _ = write!(out, "  {:>11}", law.name());
        }
        out.push('\n');
        for (name, _, verdicts) in &self.rows {
            let _ = write!(out, "{name:width$}");
            for v in verdicts {
                let cell = match v {
                    LawVerdict::Pass { .. } => "pass",
                    LawVerdict::Fail { .. } => "FAIL",
                    LawVerdict::NotApplicable { .. } => "n/a",
                };
                let _ = write!(out, "  {cell:>11}");
            }
            out.push('\n');
        }
        for (name, builtin, verdicts) in &self.rows {
            for (law, v) in self.laws.iter().zip(verdicts) {
                match v {
                    LawVerdict::Fail { seed, message, .. } => {
                        let kind = if *builtin { "VIOLATION" } else { "finding" };
                        let crdts = if *builtin { "" } else { " --crdts" };
                        let _ = write!(
                            out,
                            "\n{kind}: {name} breaks {law}\n{message}\nreproduce: converge laws{crdts} --seed {seed} --cases {} --max-steps {} --type '{name}' --law {law}\n",
                            self.config.cases,
                            self.config.max_steps,
                            law = law.name(),
                        );
                    }
                    LawVerdict::NotApplicable { reason } if *builtin => {
                        let _ = writeln!(out, "\nn/a: {name} {}: {reason}", law.name());
                    }
                    _ => {}
                }
            }
        }
        out
    }
}

/// Runs `laws` over `entries`, calling `progress` after each check.
pub fn run(
    entries: &[Entry],
    laws: &[Law],
    config: &Config,
    mut progress: impl FnMut(&str, Law),
) -> Report {
    let rows = entries
        .iter()
        .map(|entry| {
            let verdicts = laws
                .iter()
                .map(|&law| {
                    let verdict = entry.check(law, config);
                    progress(&entry.name, law);
                    verdict
                })
                .collect();
            (entry.name.clone(), entry.builtin, verdicts)
        })
        .collect();
    Report {
        config: config.clone(),
        laws: laws.to_vec(),
        rows,
    }
}
