//! Workloads: what clients ask of the nodes, and what the answers must satisfy.
//!
//! A workload generates request bodies, names the read that ends a run, and checks the history.
//! It knows nothing of processes or time sources: both backends drive the same workloads.

mod bounded_counter;
mod broadcast;
mod counter;
mod echo;
mod levels;
mod lin_kv;
mod orset;
mod register;
mod session;
mod set;

use super::check::Check;
use super::history::{Body, History};
use super::rng::SeededDice;
use serde_json::Value;

/// Which checks to apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// Maelstrom's checks only.
    Maelstrom,
    /// Maelstrom's checks plus converge's stricter ones.
    Strict,
}

impl Profile {
    /// Every profile, the default (`strict`) first, as `converge certify --profile` lists them.
    pub const ALL: [Profile; 2] = [Profile::Strict, Profile::Maelstrom];

    /// The profile's one spelling, used by `--profile`, the reproduce command and the JSON
    /// report (whose serde name is the same kebab-case word).
    pub fn name(self) -> &'static str {
        match self {
            Profile::Maelstrom => "maelstrom",
            Profile::Strict => "strict",
        }
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A profile name that is none of [`Profile::ALL`]'s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownProfile(pub String);

impl std::fmt::Display for UnknownProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "unknown profile {:?} (expected strict or maelstrom)",
            self.0
        )
    }
}

impl std::error::Error for UnknownProfile {}

impl std::str::FromStr for Profile {
    type Err = UnknownProfile;

    /// Parses exactly the names [`Profile::name`] gives, as the command line spells them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Profile::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| UnknownProfile(s.to_string()))
    }
}

/// A workload.
pub trait Workload {
    /// Its name on the command line.
    fn name(&self) -> &'static str;
    /// Requests sent to nodes after `init` and before the workload, each answered before the
    /// workload starts (e.g. broadcast's `topology`): `(node, body)` pairs without `msg_id`.
    fn setup(&mut self, node_ids: &[String]) -> Vec<(usize, Body)> {
        let _ = node_ids;
        Vec::new()
    }
    /// The next request body (without `msg_id`).
    fn next_op(&mut self, dice: &mut SeededDice) -> Body;
    /// The next request body for `client` (without `msg_id`). Workloads whose clients carry
    /// state between requests (session tokens) override this; the default ignores the client.
    fn next_op_for(&mut self, client: usize, dice: &mut SeededDice) -> Body {
        let _ = client;
        self.next_op(dice)
    }
    /// The node `client`'s next request goes to. By default a client always talks to one node.
    fn node_for(&mut self, client: usize, nodes: usize, dice: &mut SeededDice) -> usize {
        let _ = dice;
        client % nodes
    }
    /// The fewest nodes on which the workload can show a violation at all, so that shrinking a
    /// failing run does not spend re-runs on clusters too small to fail (sessions that hop
    /// between nodes need two). Any size from 1 up still runs.
    fn min_nodes(&self) -> usize {
        1
    }
    /// Sees every successful reply to `client`, e.g. to keep its session token.
    fn observe(&mut self, client: usize, reply: &Body) {
        let _ = (client, reply);
    }
    /// The request that reads a node's final state after the cluster healed and went quiet, if
    /// the workload has one.
    fn final_read(&self) -> Option<Body>;
    /// The value a final read shows, for convergence: equal values mean equal states.
    fn final_value(&self, reply: &Body) -> Option<Value>;
    /// Whether the final state depends only on which operations took effect, not on their
    /// order: then runs of the same operations under different schedules must end equal.
    fn order_independent(&self) -> bool {
        false
    }
    /// Checks the history.
    fn check(&self, history: &History, nodes: usize) -> Vec<Check>;
    /// What the workload measured of the history without judging it, one line each, for the
    /// report (e.g. `bounded-counter`'s withdrawal availability): figures that depend on the
    /// workload's meaning, which the harness's own availability line cannot know.
    fn figures(&self, history: &History) -> Vec<String> {
        let _ = history;
        Vec::new()
    }
    /// After every node agreed on the final value `from`, a node read `to`: why no write could
    /// explain that, or `None` if one could (or the workload cannot tell from outside). The
    /// harness then waits for a new agreement either way; a reason is a `stability` violation.
    fn unexplained_change(&self, history: &History, from: &Value, to: &Value) -> Option<String> {
        let _ = (history, from, to);
        None
    }
}

/// Makes a fresh workload.
type MakeWorkload = fn() -> Box<dyn Workload>;

/// Every workload this build has, in the order the command line lists them: its name and how to
/// make a fresh one. It is the one place a workload's name is spelled; [`WORKLOADS`] and
/// [`by_name`] both read it.
const TABLE: [(&str, MakeWorkload); 11] = [
    ("echo", || Box::new(echo::Echo::default())),
    ("g-counter", || Box::new(counter::Counter::new(false))),
    ("pn-counter", || Box::new(counter::Counter::new(true))),
    ("g-set", || Box::new(set::SetWorkload::new(set::G_SET))),
    ("broadcast", || Box::new(broadcast::Broadcast::default())),
    ("lin-kv", || Box::new(lin_kv::LinKv)),
    ("or-set", || Box::new(orset::OrSet::default())),
    ("session", || Box::new(session::Session::default())),
    ("lww-register", || {
        Box::new(register::Register::new(register::Flavor::Lww))
    }),
    ("mv-register", || {
        Box::new(register::Register::new(register::Flavor::Mv))
    }),
    ("bounded-counter", || {
        Box::new(bounded_counter::BoundedCounter)
    }),
];

/// The workloads this build has, by name.
pub const WORKLOADS: &[&str] = &{
    let mut names = [""; TABLE.len()];
    let mut i = 0;
    while i < TABLE.len() {
        names[i] = TABLE[i].0;
        i += 1;
    }
    names
};

/// The workload called `name`.
pub fn by_name(name: &str) -> Option<Box<dyn Workload>> {
    TABLE
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, make)| make())
}

/// The two verdicts the final-state workloads (`or-set`, the registers) share: their semantic
/// check named `name`, failing with the first few `problems` (unknown if no node answered a final
/// read), and `convergence` over `finals`, each node's last final read.
fn verdicts<T: PartialEq + std::fmt::Debug>(
    name: &str,
    finals: &std::collections::BTreeMap<usize, T>,
    mut problems: Vec<String>,
    nodes: usize,
) -> Vec<Check> {
    use super::check::Verdict;
    let semantics = if finals.is_empty() {
        Verdict::Unknown {
            reason: "no node answered a final read".into(),
        }
    } else if problems.is_empty() {
        Verdict::Pass
    } else {
        problems.truncate(5);
        Verdict::Fail {
            detail: problems.join("; "),
        }
    };
    let missing: Vec<String> = (0..nodes)
        .filter(|n| !finals.contains_key(n))
        .map(|n| format!("n{n}"))
        .collect();
    let mut values = finals.values();
    let first = values.next();
    let converged = if !missing.is_empty() {
        Verdict::Fail {
            detail: format!(
                "no final read from {} after heal and quiescence",
                missing.join(", ")
            ),
        }
    } else if values.all(|v| Some(v) == first) {
        Verdict::Pass
    } else {
        Verdict::Fail {
            detail: format!(
                "final reads differ after heal and quiescence: {}",
                finals
                    .iter()
                    .map(|(n, v)| format!("n{n}={v:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    };
    vec![
        Check::new(name, false, semantics),
        Check::new("convergence", false, converged),
    ]
}

/// For the workloads' tests: one operation of `client` at `node`, invoked and completed at the
/// given places in the order of observations (ms are the same numbers: only the order matters
/// there). `reply` is an `_ok` body, a definite error code, or `Null` for no reply.
#[cfg(test)]
pub(super) fn test_op(
    client: usize,
    node: usize,
    request: Value,
    seq: (u64, u64),
    reply: Value,
) -> crate::harness::history::Event {
    use crate::harness::history::{Event, Outcome, Phase};
    let outcome = match reply {
        Value::Object(reply) => Outcome::Ok {
            reply: reply.into(),
        },
        Value::Number(code) => Outcome::Fail {
            code: code.as_u64().unwrap_or(11),
        },
        _ => Outcome::Info {
            reason: "no reply".into(),
        },
    };
    let done = !matches!(outcome, Outcome::Info { .. });
    Event {
        client,
        node,
        request: request.as_object().cloned().unwrap_or_default().into(),
        invoke_ms: seq.0,
        complete_ms: done.then_some(seq.1),
        invoke_seq: seq.0,
        complete_seq: done.then_some(seq.1),
        outcome,
        phase: Phase::Main,
        during_fault: false,
    }
}

#[cfg(test)]
mod table_tests {
    use super::*;

    /// Each name of the table makes the workload that answers to it, and no other name makes one.
    #[test]
    fn every_listed_workload_is_made_by_its_name() {
        assert_eq!(WORKLOADS.len(), TABLE.len());
        for name in WORKLOADS {
            let workload = by_name(name).expect("a listed workload");
            assert_eq!(workload.name(), *name);
        }
        assert!(by_name("G-COUNTER").is_none());
    }
}
