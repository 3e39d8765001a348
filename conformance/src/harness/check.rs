//! Verdicts of individual checks. One implementation per check, shared by every backend.

use serde::Serialize;

/// What one check concluded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// The history satisfies the property.
    Pass,
    /// It does not; the detail says where.
    Fail {
        /// The evidence.
        detail: String,
    },
    /// The history cannot decide it; never counted as a pass.
    Unknown {
        /// Why not.
        reason: String,
    },
}

/// One named check and its verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable name, e.g. `counter-bounds`.
    pub name: String,
    /// Whether Maelstrom applies it too (it runs under `--profile maelstrom`).
    pub maelstrom: bool,
    /// What it found.
    #[serde(flatten)]
    pub verdict: Verdict,
}

impl Check {
    /// A check result.
    pub fn new(name: &str, maelstrom: bool, verdict: Verdict) -> Self {
        Check {
            name: name.to_string(),
            maelstrom,
            verdict,
        }
    }

    /// A check that passed when `ok`, else failed with `detail`.
    pub fn from_bool(
        name: &str,
        maelstrom: bool,
        ok: bool,
        detail: impl FnOnce() -> String,
    ) -> Self {
        let verdict = if ok {
            Verdict::Pass
        } else {
            Verdict::Fail { detail: detail() }
        };
        Check::new(name, maelstrom, verdict)
    }
}
