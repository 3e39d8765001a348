//! The `bounded-counter` workload: one escrow counter per cluster that must never go below 0 in
//! any replica (Balegas et al. 2015), where deposits are always available and withdrawals succeed
//! only while the node can prove the balance covers them.
//!
//! The protocol is `g-counter`'s with a precondition: `add {delta}` with `delta ≥ 0` is a deposit
//! and is always answered `add_ok`; `delta < 0` is a withdrawal, answered `add_ok` if applied,
//! error 22 (`precondition-failed`) if refused for lack of balance, or error 11
//! (`temporarily-unavailable`) if the node could not gather the rights in time. Both errors are
//! definite: the withdrawal had no effect. `read` → `read_ok {value}`.
//!
//! Invariants the checks hold a node to (all converge's; Maelstrom has no such workload):
//! - `bound`: no successful read, during the workload or final, at any node, shows a value below
//!   0. A replica's value is the sum of the rights every replica holds, and a correct replica
//!   only spends rights it holds, so no state it can be in reads negative, however stale. Nor may
//!   the acknowledgements imply one: the withdrawals acknowledged by any moment never exceed the
//!   deposits invoked by then, since the value of everything applied anywhere is at most that
//!   difference (see [`overdrafts`]). This part needs no read at the right moment.
//! - `accounting`: each node's last final read, after heal and quiescence, is the sum of every
//!   acknowledged add plus the deltas of some subset of the indefinite ones. Definitely refused
//!   withdrawals add nothing. With few indefinite adds ([`EXACT_INDEFINITE_MAX`]) the subset is
//!   searched exactly; with more, the value need only lie between the acknowledged sum plus every
//!   negative indefinite delta and that sum plus every positive one.
//! - `convergence`: every node answers a final read and all answers are equal.
//!
//! The workload also reports, without judging it, how available withdrawals were: attempted,
//! applied, refused (22), unavailable (11) and indefinite, over the whole main phase and split by
//! what the nemesis was doing when each was invoked (see [`availability`]).
//!
//! Clients draw somewhat more and larger withdrawals than deposits, so that the balance hovers a
//! few units above 0 instead of drifting upwards: only a balance near 0 gives a node that spends
//! what it does not hold the chance to show it.

use super::Workload;
use crate::harness::body::Kind;
use crate::harness::check::{Check, Verdict};
use crate::harness::history::{Body, Event, History, Outcome, Phase};
use crate::harness::rng::SeededDice;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// With at most this many indefinite adds, `accounting` decides exactly whether some subset of
/// them explains a final read (the reachable sums are at most 2^20); with more it checks the
/// range their deltas span, which is what is cheap and still catches lost or invented adds.
pub(super) const EXACT_INDEFINITE_MAX: usize = 20;

/// At most this many bad reads are named in a failure's detail; the count is always given.
const SHOWN: usize = 3;

/// The `bounded-counter` workload.
#[derive(Default)]
pub(super) struct BoundedCounter;

impl Workload for BoundedCounter {
    fn name(&self) -> &'static str {
        "bounded-counter"
    }

    fn next_op(&mut self, dice: &mut SeededDice) -> Body {
        // In twenty: four reads, seven deposits of 1 to 4 and nine withdrawals of 1 to 5. The
        // excess of withdrawals pulls the balance down to a few units (refused withdrawals make
        // it bounce off 0), so withdrawals are often refused and a node that spends what it
        // does not hold soon overdraws. Equal rates and sizes would let the balance climb with
        // the square root of the run, out of reach of any such bug; a milder excess still lets
        // a seed wander off for most of a run (a random walk's excursions are long).
        let roll = dice.below(20);
        if roll < 4 {
            return Kind::Read { key: None }.into();
        }
        let delta = if roll < 11 {
            1 + dice.below(4) as i64
        } else {
            -(1 + dice.below(5) as i64)
        };
        Kind::Add { delta }.into()
    }

    fn order_independent(&self) -> bool {
        // Which withdrawals a node applies depends on the order it sees deposits in, so equal
        // operations under two schedules may legitimately end differently.
        false
    }

    fn final_read(&self) -> Option<Body> {
        Some(Kind::Read { key: None }.into())
    }

    fn final_value(&self, reply: &Body) -> Option<Value> {
        reply.read_value().cloned()
    }

    fn unexplained_change(&self, history: &History, from: &Value, to: &Value) -> Option<String> {
        let (from, to) = (from.as_i64()?, to.as_i64()?);
        let ledger = Ledger::of(history);
        let (low, high) = (ledger.low(), ledger.high());
        // As for the counters: a value outside the range may still be draining towards it, but a
        // move that takes it farther from the range has no add to explain it.
        let distance = |v: i64| (low - v).max(v - high).max(0);
        (distance(to) > distance(from)).then(|| {
            format!(
                "acknowledged adds sum to {} and indefinite ones allow [{low}, {high}], so no add explains a move away from that range",
                ledger.acked
            )
        })
    }

    fn check(&self, history: &History, nodes: usize) -> Vec<Check> {
        let ledger = Ledger::of(history);
        let mut finals: BTreeMap<usize, Plain> = BTreeMap::new();
        for e in history.phase(Phase::Final) {
            if let Some(value) = e.reply().and_then(Body::read_value) {
                finals.insert(e.node, Plain(value.clone()));
            }
        }
        let problems: Vec<String> = finals
            .iter()
            .filter_map(|(n, Plain(v))| match v.as_i64() {
                None => Some(format!("n{n}'s final read returned {v}, not an integer")),
                Some(v) => ledger
                    .explains(v)
                    .err()
                    .map(|why| format!("n{n} read {v}: {why}")),
            })
            .collect();
        let mut checks = vec![Check::new("bound", false, bound(history))];
        checks.extend(super::verdicts("accounting", &finals, problems, nodes));
        checks
    }

    fn figures(&self, history: &History) -> Vec<String> {
        availability(history)
    }
}

/// A final read's value, shown as its JSON text in `convergence`'s detail.
#[derive(PartialEq)]
struct Plain(Value);

impl std::fmt::Debug for Plain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// `bound`: the value is never below 0, judged two ways, and a failure names the evidence.
/// Every successful read, of either phase, is an integer of at least 0 ([`negative_reads`]); and
/// no moment of the history needs a value below 0: the withdrawals acknowledged by any moment
/// never exceed the deposits invoked by then ([`overdrafts`]).
fn bound(history: &History) -> Verdict {
    let mut problems: Vec<String> = Vec::new();
    let reads = negative_reads(history, &mut problems);
    let acks = overdrafts(history, &mut problems);
    if problems.is_empty() {
        return Verdict::Pass;
    }
    let mut counts = Vec::new();
    if reads > 0 {
        counts.push(format!("{reads} reads out of bounds"));
    }
    if acks > 0 {
        counts.push(format!(
            "{acks} withdrawals acknowledged beyond the balance"
        ));
    }
    Verdict::Fail {
        detail: format!("{}; {}", counts.join(", "), problems.join("; ")),
    }
}

/// Counts the successful reads that are not an integer of at least 0, and names the first
/// [`SHOWN`] of them in `shown`.
fn negative_reads(history: &History, shown: &mut Vec<String>) -> usize {
    let mut count = 0usize;
    let mut named = 0usize;
    for e in history.events.iter().filter(|e| e.kind() == "read") {
        let Some(reply) = e.reply() else { continue };
        let why = match reply.read_value() {
            Some(v) => match v.as_i64() {
                Some(value) if value >= 0 => continue,
                Some(value) => format!("returned {value}, below 0"),
                None => format!("returned {v}, not an integer"),
            },
            None => "returned no value".to_string(),
        };
        count += 1;
        if named < SHOWN {
            named += 1;
            let phase = match e.phase {
                Phase::Main => "read",
                Phase::Final => "final read",
            };
            shown.push(format!(
                "n{}'s {phase} by c{} at {}–{} ms {why}",
                e.node,
                e.client,
                e.invoke_ms,
                e.complete_ms.unwrap_or(e.invoke_ms),
            ));
        }
    }
    count
}

/// Counts the acknowledged withdrawals after which the acknowledgements alone put the value
/// below 0, and names the first [`SHOWN`] of them in `shown`.
///
/// Whatever the replicas hold, the value of everything applied anywhere by a moment is at most
/// the deposits invoked before it (adds that failed definitely aside) minus the withdrawals
/// acknowledged by it: an acknowledged withdrawal was applied, and no deposit is applied before
/// it is sent. A correct node keeps that value at least 0 at every moment (it is the sum of the
/// rights every replica holds), whether or not a read happens to look then; a node that lets two
/// replicas spend the same balance shows it here even when its overdraft is repaid by the next
/// deposit before any read. Moments are places in the harness's order of observations.
fn overdrafts(history: &History, shown: &mut Vec<String>) -> usize {
    let mut deposits: Vec<(u64, i64)> = history
        .events
        .iter()
        .filter(|e| e.kind() == "add" && !matches!(e.outcome, Outcome::Fail { .. }))
        .filter_map(|e| {
            let delta = e.request.delta()?;
            (delta > 0).then_some((e.invoke_seq, delta))
        })
        .collect();
    deposits.sort_unstable();
    let mut invoked = vec![0i64];
    for &(_, delta) in &deposits {
        invoked.push(invoked[invoked.len() - 1].saturating_add(delta));
    }
    let mut acks: Vec<(u64, &Event)> = history
        .events
        .iter()
        .filter(|e| e.kind() == "add" && e.request.delta().is_some_and(|d| d < 0))
        .filter_map(|e| e.reply().and(e.complete_seq).map(|done| (done, e)))
        .collect();
    acks.sort_unstable_by_key(|(done, _)| *done);
    let (mut count, mut named, mut withdrawn) = (0usize, 0usize, 0i64);
    for (done, e) in acks {
        let amount = e.request.delta().unwrap_or(0).saturating_neg();
        withdrawn = withdrawn.saturating_add(amount);
        let k = deposits.partition_point(|&(at, _)| at < done);
        let most = invoked[k].saturating_sub(withdrawn);
        if most >= 0 {
            continue;
        }
        count += 1;
        if named < SHOWN {
            named += 1;
            shown.push(format!(
                "c{}'s withdrawal of {amount} at n{}, acknowledged at {} ms, brought the acknowledged withdrawals to {withdrawn} against {} of deposits invoked by then ({k} deposits): the value was at most {most}",
                e.client,
                e.node,
                e.complete_ms.unwrap_or(e.invoke_ms),
                invoked[k],
            ));
        }
    }
    count
}

/// What the main phase's adds allow a final read to be: the sum of acknowledged adds, and the
/// deltas of the indefinite ones (nonzero only; a zero changes nothing either way).
struct Ledger {
    acked: i64,
    indefinite: Vec<i64>,
}

impl Ledger {
    fn of(history: &History) -> Ledger {
        let mut ledger = Ledger {
            acked: 0,
            indefinite: Vec::new(),
        };
        for e in history.phase(Phase::Main).filter(|e| e.kind() == "add") {
            let delta = e.request.delta().unwrap_or(0);
            match e.outcome {
                Outcome::Ok { .. } => ledger.acked = ledger.acked.saturating_add(delta),
                Outcome::Info { .. } if delta != 0 => ledger.indefinite.push(delta),
                // A definite refusal (22, 11, or any other definite code) had no effect.
                Outcome::Info { .. } | Outcome::Fail { .. } => {}
            }
        }
        ledger
    }

    /// The lowest value the adds allow: every negative indefinite add applied, no positive one.
    fn low(&self) -> i64 {
        let down: i64 = self.indefinite.iter().filter(|d| **d < 0).sum();
        self.acked.saturating_add(down)
    }

    /// The highest: every positive indefinite add applied, no negative one.
    fn high(&self) -> i64 {
        let up: i64 = self.indefinite.iter().filter(|d| **d > 0).sum();
        self.acked.saturating_add(up)
    }

    /// Whether some subset of the indefinite adds, with every acknowledged one, sums to `value`;
    /// if not, why not.
    fn explains(&self, value: i64) -> Result<(), String> {
        let (low, high) = (self.low(), self.high());
        if value < low || value > high {
            return Err(format!(
                "acknowledged adds sum to {} and {} indefinite ones allow at most [{low}, {high}]",
                self.acked,
                self.indefinite.len(),
            ));
        }
        if self.indefinite.len() > EXACT_INDEFINITE_MAX {
            return Ok(());
        }
        let mut sums = BTreeSet::from([self.acked]);
        for &delta in &self.indefinite {
            let moved: Vec<i64> = sums.iter().map(|s| s.saturating_add(delta)).collect();
            sums.extend(moved);
        }
        if sums.contains(&value) {
            Ok(())
        } else {
            Err(format!(
                "acknowledged adds sum to {} and no subset of the {} indefinite ones ({}) makes up the difference",
                self.acked,
                self.indefinite.len(),
                self.indefinite
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    }
}

/// What the nemesis was doing when an operation was invoked, for the availability figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Period {
    /// No windowed fault in force.
    Healthy,
    /// A partition window.
    Partition,
    /// Another windowed fault: a kill, a pause, moved clocks.
    OtherFault,
}

impl Period {
    fn name(self) -> &'static str {
        match self {
            Period::Healthy => "with no fault",
            Period::Partition => "during partitions",
            Period::OtherFault => "during other faults",
        }
    }

    /// The period `e` was invoked in: the fault window whose span, in the harness's order of
    /// observations, holds its invocation, if any.
    fn of(e: &Event, history: &History) -> Period {
        let window = history.faults.iter().find(|w| {
            e.invoke_seq > w.after_seq && w.healed_after_seq.is_none_or(|h| e.invoke_seq <= h)
        });
        match window {
            None => Period::Healthy,
            Some(w) if w.fault.starts_with("partition") => Period::Partition,
            Some(_) => Period::OtherFault,
        }
    }
}

/// How the main phase's withdrawals ended, as counts.
#[derive(Clone, Copy, Default)]
struct Tally {
    attempted: u64,
    applied: u64,
    refused: u64,
    unavailable: u64,
    other_errors: u64,
    indefinite: u64,
}

impl Tally {
    fn add(&mut self, outcome: &Outcome) {
        use crate::harness::message::ErrorCode;
        self.attempted += 1;
        match outcome {
            Outcome::Ok { .. } => self.applied += 1,
            Outcome::Fail { code } if *code == ErrorCode::PreconditionFailed.code() => {
                self.refused += 1;
            }
            Outcome::Fail { code } if *code == ErrorCode::TemporarilyUnavailable.code() => {
                self.unavailable += 1;
            }
            Outcome::Fail { .. } => self.other_errors += 1,
            Outcome::Info { .. } => self.indefinite += 1,
        }
    }

    fn describe(&self) -> String {
        let share = if self.attempted == 0 {
            0.0
        } else {
            100.0 * self.applied as f64 / self.attempted as f64
        };
        let mut out = format!(
            "{} attempted, {} applied ({share:.1}%), {} refused (22), {} unavailable (11), {} indefinite",
            self.attempted, self.applied, self.refused, self.unavailable, self.indefinite
        );
        if self.other_errors > 0 {
            out.push_str(&format!(", {} other errors", self.other_errors));
        }
        out
    }
}

/// The availability figures: withdrawals over the whole main phase, then split by the period
/// their invocation fell in (healthy, a partition window, another fault's window). A withdrawal
/// is attributed to the window in force when the harness sent it, which is what the harness
/// knows; one invoked just before a heal may well have been answered after it.
fn availability(history: &History) -> Vec<String> {
    let mut overall = Tally::default();
    let mut by_period: BTreeMap<Period, Tally> = BTreeMap::new();
    let mut deposits = Tally::default();
    for e in history.phase(Phase::Main).filter(|e| e.kind() == "add") {
        match e.request.delta() {
            Some(delta) if delta < 0 => {
                overall.add(&e.outcome);
                by_period
                    .entry(Period::of(e, history))
                    .or_default()
                    .add(&e.outcome);
            }
            _ => deposits.add(&e.outcome),
        }
    }
    let mut lines = vec![format!("withdrawals: {}", overall.describe())];
    for (period, tally) in &by_period {
        lines.push(format!(
            "withdrawals {}: {}",
            period.name(),
            tally.describe()
        ));
    }
    lines.push(format!(
        "deposits: {} attempted, {} applied, {} indefinite",
        deposits.attempted, deposits.applied, deposits.indefinite
    ));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::history::FaultWindow;
    use crate::harness::workload::test_op as op;
    use serde_json::json;

    fn add(client: usize, delta: i64, seq: (u64, u64)) -> Event {
        let request = json!({"type": "add", "delta": delta});
        op(client, client, request, seq, json!({"type": "add_ok"}))
    }

    /// A withdrawal refused with `code`, or left without a reply for `code: None`.
    fn not_applied(client: usize, delta: i64, seq: (u64, u64), code: Option<u64>) -> Event {
        let request = json!({"type": "add", "delta": delta});
        op(
            client,
            client,
            request,
            seq,
            code.map_or(Value::Null, Value::from),
        )
    }

    fn read(client: usize, node: usize, seq: (u64, u64), value: i64) -> Event {
        let reply = json!({"type": "read_ok", "value": value});
        op(client, node, json!({"type": "read"}), seq, reply)
    }

    fn final_read(node: usize, at: u64, value: i64) -> Event {
        let mut e = read(10 + node, node, (at, at + 1), value);
        e.phase = Phase::Final;
        e
    }

    fn history(events: Vec<Event>) -> History {
        History {
            events,
            ..History::default()
        }
    }

    /// The verdict of `name` on these events, over two nodes.
    fn verdict(events: Vec<Event>, name: &str) -> Verdict {
        BoundedCounter
            .check(&history(events), 2)
            .into_iter()
            .find(|c| c.name == name)
            .map(|c| c.verdict)
            .unwrap_or_else(|| panic!("no check {name}"))
    }

    fn detail(v: Verdict) -> String {
        match v {
            Verdict::Fail { detail } => detail,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    /// A correct run: deposits at both nodes, withdrawals applied while covered and refused (22,
    /// 11) when not, reads never negative, final reads equal to the acknowledged sum.
    fn correct() -> Vec<Event> {
        vec![
            add(0, 3, (1, 2)),
            add(1, 2, (3, 4)),
            add(0, -4, (5, 6)),
            read(1, 1, (7, 8), 2),
            not_applied(0, -5, (9, 10), Some(22)),
            not_applied(1, -1, (11, 12), Some(11)),
            add(1, -1, (13, 14)),
            read(0, 0, (15, 16), 0),
            final_read(0, 20, 0),
            final_read(1, 20, 0),
        ]
    }

    #[test]
    fn a_correct_history_passes_every_check() {
        for name in ["bound", "accounting", "convergence"] {
            assert_eq!(verdict(correct(), name), Verdict::Pass, "{name}");
        }
    }

    #[test]
    fn a_negative_read_fails_bound_naming_the_read_during_the_run_or_final() {
        let mut events = correct();
        events.insert(4, read(1, 1, (17, 19), -3));
        let d = detail(verdict(events, "bound"));
        assert!(
            d.contains("1 reads out of bounds; n1's read by c1 at 17–19 ms returned -3, below 0"),
            "{d}"
        );
        let mut events = correct();
        events.pop();
        events.push(final_read(1, 20, -1));
        let d = detail(verdict(events, "bound"));
        assert!(
            d.contains("n1's final read by c11 at 20–21 ms returned -1"),
            "{d}"
        );
    }

    #[test]
    fn withdrawals_acknowledged_beyond_the_deposits_invoked_so_far_fail_bound_without_any_read() {
        // n0 and n1 each withdraw the same 3 units; the deposit of 4 that repays the overdraft
        // is only invoked afterwards, and no read looks in between.
        let events = vec![
            add(0, 3, (1, 2)),
            add(0, -3, (3, 4)),
            add(1, -3, (5, 6)),
            add(0, 4, (7, 8)),
            final_read(0, 20, 1),
            final_read(1, 20, 1),
        ];
        assert_eq!(verdict(events.clone(), "accounting"), Verdict::Pass);
        let d = detail(verdict(events, "bound"));
        assert!(
            d.starts_with("1 withdrawals acknowledged beyond the balance; c1's withdrawal of 3 at n1, acknowledged at 6 ms, brought the acknowledged withdrawals to 6 against 3 of deposits invoked by then (1 deposits): the value was at most -3"),
            "{d}"
        );
        // A deposit invoked before the second withdrawal's acknowledgement may have covered it,
        // even one never answered; one that failed definitely may not.
        let mut unanswered = not_applied(0, 4, (5, 0), None);
        let events = vec![
            add(0, 3, (1, 2)),
            add(0, -3, (3, 4)),
            unanswered.clone(),
            add(1, -3, (6, 7)),
        ];
        assert_eq!(verdict(events, "bound"), Verdict::Pass);
        unanswered.outcome = Outcome::Fail { code: 22 };
        let events = vec![
            add(0, 3, (1, 2)),
            add(0, -3, (3, 4)),
            unanswered,
            add(1, -3, (6, 7)),
        ];
        assert!(matches!(verdict(events, "bound"), Verdict::Fail { .. }));
    }

    #[test]
    fn refused_withdrawals_count_for_nothing_so_a_final_read_that_applied_them_fails_accounting() {
        // The refused -5 and -1, applied anyway, would make the value -6.
        let mut events = correct();
        events.truncate(8);
        events.push(final_read(0, 20, -6));
        events.push(final_read(1, 20, -6));
        let d = detail(verdict(events, "accounting"));
        assert!(
            d.contains(
                "n0 read -6: acknowledged adds sum to 0 and 0 indefinite ones allow at most [0, 0]"
            ),
            "{d}"
        );
    }

    #[test]
    fn an_indefinite_withdrawal_may_or_may_not_have_happened_but_nothing_else_explains_a_value() {
        // Acknowledged: +5, -2; indefinite: -1, -2 (no reply) and +4 (no reply). Reachable:
        // 3 + any subset of {-1, -2, +4}: {0, 1, 2, 3, 4, 5, 6, 7}; the range is [0, 7].
        let base = vec![
            add(0, 5, (1, 2)),
            add(1, -2, (3, 4)),
            not_applied(0, -1, (5, 0), None),
            not_applied(1, -2, (6, 0), None),
            not_applied(0, 4, (7, 0), None),
        ];
        for value in 0..=7 {
            let mut events = base.clone();
            events.push(final_read(0, 20, value));
            events.push(final_read(1, 20, value));
            assert_eq!(verdict(events, "accounting"), Verdict::Pass, "{value}");
        }
        for value in [-1, 8] {
            let mut events = base.clone();
            events.push(final_read(0, 20, value));
            events.push(final_read(1, 20, value));
            let d = detail(verdict(events, "accounting"));
            assert!(d.contains("allow at most [0, 7]"), "{value}: {d}");
        }
        // Inside the range but no subset reaches it: acknowledged 0, indefinite -3 and +3.
        let events = vec![
            not_applied(0, -3, (1, 0), None),
            not_applied(1, 3, (2, 0), None),
            final_read(0, 20, 1),
            final_read(1, 20, 1),
        ];
        let d = detail(verdict(events, "accounting"));
        assert!(
            d.contains("no subset of the 2 indefinite ones (-3, 3) makes up the difference"),
            "{d}"
        );
    }

    #[test]
    fn with_many_indefinite_adds_accounting_checks_the_range_only() {
        // Twenty-one indefinite deposits of 2: only even values are sums, but past the exact
        // limit any value of the range passes, and one outside it still fails.
        let mut events: Vec<Event> = (0..=EXACT_INDEFINITE_MAX as u64)
            .map(|i| not_applied(0, 2, (i + 1, 0), None))
            .collect();
        events.push(final_read(0, 100, 7));
        events.push(final_read(1, 100, 7));
        assert_eq!(verdict(events.clone(), "accounting"), Verdict::Pass);
        events.truncate(EXACT_INDEFINITE_MAX);
        events.push(final_read(0, 100, 7));
        events.push(final_read(1, 100, 7));
        assert!(matches!(
            verdict(events, "accounting"),
            Verdict::Fail { .. }
        ));
    }

    #[test]
    fn final_reads_that_differ_or_are_missing_fail_convergence() {
        let mut events = correct();
        events.pop();
        events.push(final_read(1, 20, 1));
        let d = detail(verdict(events, "convergence"));
        assert!(d.contains("n0=0, n1=1"), "{d}");
        let mut events = correct();
        events.pop();
        let d = detail(verdict(events, "convergence"));
        assert!(d.contains("no final read from n1"), "{d}");
    }

    #[test]
    fn availability_is_split_by_the_fault_window_each_withdrawal_was_invoked_in() {
        let mut h = history(correct());
        // A partition after observation 8, healed after 12: the refused -5 (9) and the refused
        // -1 (11) fall in it; the -4 (5) and the -1 (13) do not.
        h.faults.push(FaultWindow {
            fault: "partition:one".into(),
            after_seq: 8,
            healed_after_seq: Some(12),
        });
        let lines = BoundedCounter.figures(&h);
        assert_eq!(
            lines,
            vec![
                "withdrawals: 4 attempted, 2 applied (50.0%), 1 refused (22), 1 unavailable (11), 0 indefinite",
                "withdrawals with no fault: 2 attempted, 2 applied (100.0%), 0 refused (22), 0 unavailable (11), 0 indefinite",
                "withdrawals during partitions: 2 attempted, 0 applied (0.0%), 1 refused (22), 1 unavailable (11), 0 indefinite",
                "deposits: 2 attempted, 2 applied, 0 indefinite",
            ]
        );
    }

    #[test]
    fn the_generator_mixes_reads_deposits_of_1_to_4_and_more_withdrawals_of_1_to_5() {
        let mut dice = SeededDice::new(7);
        let mut w = BoundedCounter;
        let (mut reads, mut deposits, mut withdrawals) = (0, 0, 0);
        for _ in 0..2000 {
            let body = w.next_op(&mut dice);
            match body.delta() {
                None => reads += 1,
                Some(d) if d > 0 => {
                    assert!(d <= 4);
                    deposits += 1;
                }
                Some(d) => {
                    assert!((-5..0).contains(&d));
                    withdrawals += 1;
                }
            }
        }
        assert!(reads > 300 && reads < 500, "{reads}");
        assert!(withdrawals > deposits, "{withdrawals} {deposits}");
        assert!(deposits > 500, "{deposits}");
    }
}
