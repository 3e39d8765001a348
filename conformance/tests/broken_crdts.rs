//! The law checker must catch classic CRDT bugs. Each broken CRDT below is a small, deliberately
//! wrong implementation with one well-known bug; the verdict table over every law is pinned as a
//! snapshot, and the law each bug is famous for breaking is asserted to fail. (They are called
//! broken CRDTs, not mutants: "mutants" are the protocol nodes of `converge-mutants`.)

use converge_conformance::laws::{
    self, Config, Kind, Law, LawVerdict, Observation, Op, OpSeed, ReplicaIdx, Step, Subject, Trace,
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

/// A bounded counter's state as the two broken ones below keep it: increments `p`, decrements
/// `n` and transfers `t[giver][receiver]`, all running totals joined by maximum.
#[derive(Clone, Debug, Default, PartialEq)]
struct Escrow {
    p: [u64; REPLICAS],
    n: [u64; REPLICAS],
    t: [[u64; REPLICAS]; REPLICAS],
}

impl Escrow {
    fn value(&self) -> i128 {
        self.p.iter().map(|&x| i128::from(x)).sum::<i128>()
            - self.n.iter().map(|&x| i128::from(x)).sum::<i128>()
    }

    fn rights(&self, r: usize) -> i128 {
        let received: i128 = self.t.iter().map(|row| i128::from(row[r])).sum();
        let given: i128 = self.t[r].iter().map(|&x| i128::from(x)).sum();
        i128::from(self.p[r]) - i128::from(self.n[r]) + received - given
    }

    fn join(&mut self, other: &Escrow) {
        for r in 0..REPLICAS {
            self.p[r] = self.p[r].max(other.p[r]);
            self.n[r] = self.n[r].max(other.n[r]);
            for j in 0..REPLICAS {
                self.t[r][j] = self.t[r][j].max(other.t[r][j]);
            }
        }
    }
}

/// A bounded counter with one bug, named `name`: `may_spend` guards its decrements and
/// transfers, and its deltas are whole states if `whole`, else the changed total alone. The two
/// below share everything else.
struct BrokenEscrow {
    name: &'static str,
    may_spend: fn(&Escrow, usize, u64) -> bool,
    whole: bool,
}

/// A bounded counter that grants a decrement when the *value* it sees covers it, instead of the
/// rights the replica holds: two replicas that both see the last unit both withdraw it, and
/// once they merge the value is below zero. Its deltas are whole states, so the join and deltas
/// are lawful and the guard is the only bug.
const GLOBAL_CHECK: BrokenEscrow = BrokenEscrow {
    name: "global-check bounded",
    may_spend: |s, _, k| s.value() >= i128::from(k),
    whole: true,
};

/// A bounded counter with the right guard whose spend deltas carry only the changed total, not
/// the credit that paid for it: a decrement's delta that reaches a replica before the increment
/// it spent reads below zero there. Reads on causally closed states are right, so only the
/// bound law, which reads every state, can catch it.
const BARE_DELTA: BrokenEscrow = BrokenEscrow {
    name: "bare-delta bounded",
    may_spend: |s, r, k| s.rights(r) >= i128::from(k),
    whole: false,
};

/// Runs `op` at `r` on an [`Escrow`] with `may_spend` as the decrement guard; returns the new
/// state's delta: the whole state if `whole`, else the changed total alone.
fn escrow_apply(
    state: &mut Escrow,
    r: ReplicaIdx,
    op: &Op,
    may_spend: impl Fn(&Escrow, usize, u64) -> bool,
    whole: bool,
) -> Escrow {
    let r = usize::from(r);
    let mut delta = Escrow::default();
    match *op {
        Op::Inc(k) => {
            state.p[r] += k;
            delta.p[r] = state.p[r];
        }
        Op::Dec(k) if may_spend(state, r, k) => {
            state.n[r] += k;
            delta.n[r] = state.n[r];
        }
        Op::Transfer { to, amount } if state.rights(r) >= i128::from(amount) => {
            let to = usize::from(to);
            state.t[r][to] += amount;
            delta.t[r][to] = state.t[r][to];
        }
        // A refused spend has no effect.
        _ => return Escrow::default(),
    }
    if whole { state.clone() } else { delta }
}

impl Subject for BrokenEscrow {
    type State = Escrow;
    fn name(&self) -> String {
        self.name.into()
    }
    fn kind(&self) -> Kind {
        Kind::BoundedCounter
    }
    fn bottom(&self) -> Self::State {
        Escrow::default()
    }
    fn join(&self, into: &mut Self::State, other: &Self::State) {
        into.join(other);
    }
    fn has_deltas(&self) -> bool {
        true
    }
    fn apply(&self, state: &mut Self::State, replica: ReplicaIdx, op: &Op) -> Option<Self::State> {
        Some(escrow_apply(state, replica, op, self.may_spend, self.whole))
    }
    fn read(&self, state: &Self::State) -> Observation {
        Observation::Count(state.value())
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
        row(&GLOBAL_CHECK),
        row(&BARE_DELTA),
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
    assert!(
        fails(&rows[6], Law::Bound) && fails(&rows[6], Law::Semantics),
        "checking the global value instead of local rights lets two replicas spend one unit"
    );
    assert!(
        fails(&rows[7], Law::Bound),
        "a spend delta without its backing reads below zero where it arrives first"
    );
    assert!(
        !fails(&rows[7], Law::Semantics),
        "causally closed reads of the bare-delta counter are right: only the bound law sees it"
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

/// The classic escrow bug in five steps: the last unit is seen by two replicas, both withdraw
/// it, and the merge reads minus one. The bound law reports exactly that read.
#[test]
fn two_replicas_withdrawing_the_last_unit_break_the_bound() {
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
    assert_eq!(
        trace.describe(Kind::BoundedCounter),
        "2 replicas\n    0  r0: Inc(1)  (op #0)\n    1  r0 -> r1: whole state\n    2  r0: Dec(1)  (op #1)\n    3  r1: Dec(1)  (op #2)\n    4  r1 -> r0: whole state\n  picks a,b,c = [0, 0, 0]"
    );
    let err = laws::check_trace(&GLOBAL_CHECK, Law::Bound, &trace).unwrap_err();
    assert!(
        err.starts_with("r0 reads -1, below the BoundedCounter bound 0"),
        "{err}"
    );
    // The specification refuses the second withdrawal (r1 holds no rights), which the semantics
    // law reports at the step that granted it. `tests/laws.rs` runs this trace against the
    // reference bounded counter, which passes it.
    let err = laws::check_trace(&GLOBAL_CHECK, Law::Semantics, &trace).unwrap_err();
    assert!(
        err.starts_with("r1 reads Count(0) but the BoundedCounter specification"),
        "{err}"
    );
}
