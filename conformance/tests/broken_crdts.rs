//! The law checker must catch classic CRDT bugs. Each broken CRDT below is a small, deliberately
//! wrong implementation with one well-known bug; the verdict table over every law is pinned as a
//! snapshot, and the law each bug is famous for breaking is asserted to fail. (They are called
//! broken CRDTs, not mutants: "mutants" are the protocol nodes of `converge-mutants`.)

use converge_conformance::laws::{
    self, Config, Kind, Law, LawVerdict, Observation, Op, ReplicaIdx, Subject,
};
use std::collections::BTreeSet;

const REPLICAS: usize = 4;

/// A grow-only counter whose join *adds* per-replica counts instead of taking the maximum: it
/// double-counts every increment it receives twice.
struct SumMergeCounter;

impl Subject for SumMergeCounter {
    type State = [u64; REPLICAS];
    fn name(&self) -> String {
        "sum-merge counter".into()
    }
    fn kind(&self) -> Kind {
        Kind::Counter
    }
    fn bottom(&self) -> Self::State {
        [0; REPLICAS]
    }
    fn join(&self, into: &mut Self::State, other: &Self::State) {
        for (a, b) in into.iter_mut().zip(other) {
            *a += b;
        }
    }
    fn has_deltas(&self) -> bool {
        true
    }
    fn apply(&self, state: &mut Self::State, replica: ReplicaIdx, op: &Op) -> Option<Self::State> {
        let Op::Inc(n) = *op else {
            return Some(self.bottom());
        };
        let mut delta = self.bottom();
        delta[usize::from(replica)] = n;
        state[usize::from(replica)] += n;
        Some(delta)
    }
    fn read(&self, state: &Self::State) -> Observation {
        Observation::Count(state.iter().map(|&n| i128::from(n)).sum())
    }
}

/// A PN-counter that keeps one net value per replica and merges by maximum: decrements are lost
/// whenever the larger net is the older one.
struct NetMaxPnCounter;

impl Subject for NetMaxPnCounter {
    type State = [Option<i64>; REPLICAS];
    fn name(&self) -> String {
        "net-max pn-counter".into()
    }
    fn kind(&self) -> Kind {
        Kind::PnCounter
    }
    fn bottom(&self) -> Self::State {
        [None; REPLICAS]
    }
    fn join(&self, into: &mut Self::State, other: &Self::State) {
        for (a, b) in into.iter_mut().zip(other) {
            *a = (*a).max(*b);
        }
    }
    fn has_deltas(&self) -> bool {
        true
    }
    fn apply(&self, state: &mut Self::State, replica: ReplicaIdx, op: &Op) -> Option<Self::State> {
        let change = match *op {
            Op::Inc(n) => n as i64,
            Op::Dec(n) => -(n as i64),
            _ => 0,
        };
        let slot = &mut state[usize::from(replica)];
        *slot = Some(slot.unwrap_or(0) + change);
        let mut delta = self.bottom();
        delta[usize::from(replica)] = *slot;
        Some(delta)
    }
    fn read(&self, state: &Self::State) -> Observation {
        Observation::Count(state.iter().flatten().map(|&n| i128::from(n)).sum())
    }
}

/// A set without tags: add inserts, remove deletes locally, join is union. Every remove is undone
/// by the next merge with a replica that still has the element.
struct TaglessSet;

impl Subject for TaglessSet {
    type State = BTreeSet<u8>;
    fn name(&self) -> String {
        "tagless set".into()
    }
    fn kind(&self) -> Kind {
        Kind::AddWinsSet
    }
    fn bottom(&self) -> Self::State {
        BTreeSet::new()
    }
    fn join(&self, into: &mut Self::State, other: &Self::State) {
        into.extend(other.iter().copied());
    }
    fn has_deltas(&self) -> bool {
        false
    }
    fn apply(&self, state: &mut Self::State, _replica: ReplicaIdx, op: &Op) -> Option<Self::State> {
        match *op {
            Op::Add(e) => state.insert(e),
            Op::Remove(e) => state.remove(&e),
            _ => false,
        };
        None
    }
    fn read(&self, state: &Self::State) -> Observation {
        Observation::Set(state.clone())
    }
}

/// A two-phase set: removes are permanent tombstones and win over every add, concurrent or later.
/// A lawful lattice with the wrong semantics for an add-wins set.
struct RemoveWinsSet;

impl Subject for RemoveWinsSet {
    type State = (BTreeSet<u8>, BTreeSet<u8>);
    fn name(&self) -> String {
        "remove-wins set".into()
    }
    fn kind(&self) -> Kind {
        Kind::AddWinsSet
    }
    fn bottom(&self) -> Self::State {
        (BTreeSet::new(), BTreeSet::new())
    }
    fn join(&self, into: &mut Self::State, other: &Self::State) {
        into.0.extend(other.0.iter().copied());
        into.1.extend(other.1.iter().copied());
    }
    fn leq(&self, a: &Self::State, b: &Self::State) -> Option<bool> {
        Some(a.0.is_subset(&b.0) && a.1.is_subset(&b.1))
    }
    fn has_deltas(&self) -> bool {
        true
    }
    fn apply(&self, state: &mut Self::State, _replica: ReplicaIdx, op: &Op) -> Option<Self::State> {
        let mut delta = self.bottom();
        match *op {
            Op::Add(e) => delta.0.insert(e),
            Op::Remove(e) => delta.1.insert(e),
            _ => false,
        };
        self.join(state, &delta);
        Some(delta)
    }
    fn read(&self, state: &Self::State) -> Observation {
        Observation::Set(state.0.difference(&state.1).copied().collect())
    }
}

/// A last-writer-wins register that compares times only: on equal times the receiver keeps its
/// own value, so the join depends on which side is on the left.
struct LwwWithoutTiebreak;

impl Subject for LwwWithoutTiebreak {
    type State = Option<(u64, u64)>;
    fn name(&self) -> String {
        "lww without tie-break".into()
    }
    fn kind(&self) -> Kind {
        Kind::LwwRegister
    }
    fn bottom(&self) -> Self::State {
        None
    }
    fn join(&self, into: &mut Self::State, other: &Self::State) {
        if other.map(|o| o.0) > into.map(|i| i.0) {
            *into = *other;
        }
    }
    fn has_deltas(&self) -> bool {
        true
    }
    fn apply(&self, state: &mut Self::State, _replica: ReplicaIdx, op: &Op) -> Option<Self::State> {
        let Op::Write { value, time } = *op else {
            return None;
        };
        let delta = Some((time, value));
        self.join(state, &delta);
        Some(delta)
    }
    fn read(&self, state: &Self::State) -> Observation {
        Observation::Values(state.map(|s| s.1).into_iter().collect())
    }
}

/// A multi-value register that keeps only the value with the largest write id: concurrent writes
/// are silently collapsed instead of kept as siblings.
struct MvKeepsOne;

impl Subject for MvKeepsOne {
    type State = Option<u64>;
    fn name(&self) -> String {
        "mv keeps one value".into()
    }
    fn kind(&self) -> Kind {
        Kind::MvRegister
    }
    fn bottom(&self) -> Self::State {
        None
    }
    fn join(&self, into: &mut Self::State, other: &Self::State) {
        *into = (*into).max(*other);
    }
    fn has_deltas(&self) -> bool {
        true
    }
    fn apply(&self, state: &mut Self::State, _replica: ReplicaIdx, op: &Op) -> Option<Self::State> {
        let Op::Write { value, .. } = *op else {
            return None;
        };
        self.join(state, &Some(value));
        Some(Some(value))
    }
    fn read(&self, state: &Self::State) -> Observation {
        Observation::Values(state.iter().copied().collect())
    }
}

/// Runs every law on `subject` and renders one table row.
fn row<S: Subject>(subject: &S) -> (String, Vec<(Law, LawVerdict)>) {
    let config = Config {
        cases: 256,
        seed: 7,
        max_steps: 40,
    };
    let verdicts = Law::ALL
        .into_iter()
        .map(|law| (law, laws::check(subject, law, &config)))
        .collect();
    (subject.name(), verdicts)
}

fn cell(v: &LawVerdict) -> &'static str {
    match v {
        LawVerdict::Pass { .. } => "pass",
        LawVerdict::Fail { .. } => "FAIL",
        LawVerdict::NotApplicable { .. } => "n/a",
    }
}

fn fails(row: &(String, Vec<(Law, LawVerdict)>), law: Law) -> bool {
    row.1
        .iter()
        .any(|(l, v)| *l == law && matches!(v, LawVerdict::Fail { .. }))
}

#[test]
fn every_broken_crdt_is_caught_by_the_law_its_bug_breaks() {
    let rows = [
        row(&SumMergeCounter),
        row(&NetMaxPnCounter),
        row(&TaglessSet),
        row(&RemoveWinsSet),
        row(&LwwWithoutTiebreak),
        row(&MvKeepsOne),
    ];
    assert!(
        fails(&rows[0], Law::Idempotent),
        "sum-merge is not idempotent"
    );
    assert!(fails(&rows[1], Law::Semantics), "net-max loses decrements");
    assert!(
        fails(&rows[2], Law::Semantics),
        "tagless set resurrects removed elements"
    );
    assert!(
        fails(&rows[3], Law::Semantics),
        "remove-wins is not add-wins"
    );
    assert!(
        fails(&rows[4], Law::Commutative),
        "no tie-break is not commutative"
    );
    assert!(
        fails(&rows[5], Law::Semantics),
        "collapsing siblings breaks MV semantics"
    );
    let table: String = rows
        .iter()
        .map(|(name, verdicts)| {
            let cells: Vec<String> = verdicts
                .iter()
                .map(|(law, v)| format!("{}={}", law.name(), cell(v)))
                .collect();
            format!("{name:24} {}\n", cells.join(" "))
        })
        .collect();
    insta::assert_snapshot!(table);
}

#[test]
fn a_failure_is_reported_with_its_seed_and_a_minimal_trace() {
    let config = Config {
        cases: 256,
        seed: 7,
        max_steps: 40,
    };
    let LawVerdict::Fail {
        seed,
        trace,
        message,
    } = laws::check(&SumMergeCounter, Law::Idempotent, &config)
    else {
        panic!("sum-merge counter must fail idempotence");
    };
    assert_eq!(seed, 7);
    // One increment is enough to show a ⊔ a != a; the minimizer must get there.
    assert_eq!(trace.steps.len(), 1, "not minimal:\n{message}");
    insta::assert_snapshot!(message);
}
