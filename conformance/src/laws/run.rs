//! Running traces against a subject and checking each law.

use super::spec::{Record, causally_closed, expected, granted};
use super::trace::{Step, Trace, strategy};
use super::{Kind, Law, Observation, Subject};
use proptest::test_runner::{
    Config as ProptestConfig, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner,
};
use std::collections::BTreeSet;
use std::fmt::Debug;

/// How hard to look.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Random traces per law and subject.
    pub cases: u32,
    /// Seed of the trace generator: the same seed replays the same traces.
    pub seed: u64,
    /// Longest trace.
    pub max_steps: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cases: 256,
            seed: 0,
            max_steps: 40,
        }
    }
}

/// The outcome of checking one law on one subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LawVerdict {
    /// No trace broke the law.
    Pass {
        /// Traces run.
        cases: u32,
    },
    /// A trace broke the law; `trace` is the shrunk counterexample.
    Fail {
        /// The seed that found it.
        seed: u64,
        /// The minimal trace.
        trace: Trace,
        /// What went wrong on it, with the trace spelled out.
        message: String,
    },
    /// The law does not apply to this subject.
    NotApplicable {
        /// Why.
        reason: String,
    },
}

impl LawVerdict {
    /// Whether the law held (or did not apply).
    pub fn is_ok(&self) -> bool {
        !matches!(self, LawVerdict::Fail { .. })
    }
}

/// Checks `law` on `subject` over `config.cases` random traces, shrinking the first failure.
pub fn check<S: Subject>(subject: &S, law: Law, config: &Config) -> LawVerdict {
    if law == Law::Delta && !subject.has_deltas() {
        return LawVerdict::NotApplicable {
            reason: "the type has no δ-mutators; replicas exchange whole states".into(),
        };
    }
    if law == Law::Bound && subject.kind().bound().is_none() {
        return LawVerdict::NotApplicable {
            reason: format!("the {:?} kind claims no lower bound", subject.kind()),
        };
    }
    let proptest_config = ProptestConfig {
        cases: config.cases,
        // Failures are reported with their seed; nothing is written next to the caller's sources.
        failure_persistence: None,
        max_shrink_iters: 10_000,
        ..ProptestConfig::default()
    };
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&config.seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
    let mut runner = TestRunner::new_with_rng(proptest_config, rng);
    let result = runner.run(&strategy(config.max_steps), |trace| {
        check_trace(subject, law, &trace).map_err(TestCaseError::fail)
    });
    match result {
        Ok(()) => LawVerdict::Pass {
            cases: config.cases,
        },
        Err(TestError::Fail(reason, trace)) => {
            let (trace, message) = minimize(subject, law, trace, reason.message().to_string());
            LawVerdict::Fail {
                seed: config.seed,
                message: format!("{message}\non trace:\n{}", trace.describe(subject.kind())),
                trace,
            }
        }
        Err(TestError::Abort(reason)) => LawVerdict::Fail {
            seed: config.seed,
            trace: Trace {
                replicas: 0,
                steps: Vec::new(),
                picks: [0; 3],
            },
            message: format!("the checker gave up: {reason}"),
        },
    }
}

/// Most candidate traces [`minimize`] tries: a bound, though a trace of `n` steps needs far fewer.
const MINIMIZE_TRIES_MAX: usize = 20_000;

/// Greedy delta debugging after proptest's shrinking. Proptest removes steps before it simplifies
/// them and never returns to removal; and removing a step renumbers the operations after it and
/// moves the writer's later clock values, so a trace can stay long although a prefix of it fails.
/// This pass tries the shortest failing prefix, then removes single steps, resets the picks and
/// lowers the replica count, until no such change keeps the trace failing.
fn minimize<S: Subject>(subject: &S, law: Law, trace: Trace, message: String) -> (Trace, String) {
    let mut best = (trace, message);
    let mut tries = 0;
    let mut attempt = |candidate: Trace, best: &mut (Trace, String)| -> bool {
        tries += 1;
        if tries > MINIMIZE_TRIES_MAX {
            return false;
        }
        match check_trace(subject, law, &candidate) {
            Err(message) => {
                *best = (candidate, message);
                true
            }
            Ok(()) => false,
        }
    };
    loop {
        let mut changed = false;
        for len in 0..best.0.steps.len() {
            let mut candidate = best.0.clone();
            candidate.steps.truncate(len);
            if attempt(candidate, &mut best) {
                changed = true;
                break;
            }
        }
        let mut i = 0;
        while i < best.0.steps.len() {
            let mut candidate = best.0.clone();
            candidate.steps.remove(i);
            if attempt(candidate, &mut best) {
                changed = true;
            } else {
                i += 1;
            }
        }
        for slot in 0..3 {
            if best.0.picks[slot] != 0 {
                let mut candidate = best.0.clone();
                candidate.picks[slot] = 0;
                changed |= attempt(candidate, &mut best);
            }
        }
        if best.0.replica_count() > 2 {
            let mut candidate = best.0.clone();
            candidate.replicas = best.0.replica_count() - 3;
            changed |= attempt(candidate, &mut best);
        }
        if !changed {
            return best;
        }
    }
}

/// Checks `law` on one trace. `Err` says how the law broke.
pub fn check_trace<S: Subject>(subject: &S, law: Law, trace: &Trace) -> Result<(), String> {
    if law == Law::Delta && !subject.has_deltas() {
        return Ok(());
    }
    if law == Law::Bound && subject.kind().bound().is_none() {
        return Ok(());
    }
    let mut sim = Sim::new(subject, trace.replica_count());
    for step in &trace.steps {
        sim.step(step, law)?;
    }
    match law {
        Law::Associative | Law::Commutative | Law::Idempotent | Law::Bottom | Law::Inflation => {
            sim.algebra(law, trace.picks)
        }
        Law::Delta => Ok(()),
        Law::Bound => sim.everything_within_bound(trace.picks),
        Law::Convergence | Law::Semantics => {
            sim.deliver_everything();
            if law == Law::Convergence {
                sim.converged()
            } else {
                (0..sim.states.len()).try_for_each(|r| sim.read_matches_spec(r))
            }
        }
    }
}

/// Checks every law on one trace: what a fuzzer calls.
pub fn check_trace_all<S: Subject>(subject: &S, trace: &Trace) -> Result<(), (Law, String)> {
    Law::ALL
        .into_iter()
        .try_for_each(|law| check_trace(subject, law, trace).map_err(|e| (law, e)))
}

/// Most states kept for the algebraic laws to draw from.
const POOL_MAX: usize = 96;

/// A trace in progress: replica states, the deltas each replica issued, and which operations
/// each replica has observed.
struct Sim<'a, S: Subject> {
    subject: &'a S,
    kind: Kind,
    states: Vec<S::State>,
    observed: Vec<BTreeSet<usize>>,
    deltas: Vec<Vec<(S::State, usize)>>,
    ops: Vec<Record>,
    clocks: Vec<u64>,
    pool: Vec<S::State>,
}

impl<'a, S: Subject> Sim<'a, S> {
    fn new(subject: &'a S, replicas: u8) -> Self {
        let n = usize::from(replicas);
        Sim {
            subject,
            kind: subject.kind(),
            states: vec![subject.bottom(); n],
            observed: vec![BTreeSet::new(); n],
            deltas: vec![Vec::new(); n],
            ops: Vec::new(),
            clocks: vec![0; n],
            pool: vec![subject.bottom()],
        }
    }

    fn replica(&self, raw: u8) -> usize {
        usize::from(raw) % self.states.len()
    }

    fn step(&mut self, step: &Step, law: Law) -> Result<(), String> {
        let changed = match *step {
            Step::Op { at, seed } => {
                let at = self.replica(at);
                self.catch_up(at);
                let id = self.ops.len();
                // `at` and the replica count are at most MAX_REPLICAS.
                let idx = u8::try_from(at).expect("replica index fits u8");
                let n = u8::try_from(self.states.len()).expect("replica count fits u8");
                let op = seed.to_op(self.kind, id as u64, idx, n, &mut self.clocks[at]);
                let before = self.states[at].clone();
                let delta = self.subject.apply(&mut self.states[at], idx, &op);
                // Happened-before is transitive: an operation's past is what its replica observed
                // plus the pasts of those operations, even the ones whose own effects have not
                // arrived (a delta can carry the news that an earlier write was superseded).
                let mut past = self.observed[at].clone();
                for &seen in &self.observed[at] {
                    past.extend(self.ops[seen].past.iter().copied());
                }
                // Decided on what `at` observed before the operation, which `catch_up` made
                // causally closed, so it is exactly what the subject's state reflects.
                let granted = granted(self.kind, &self.ops, &self.observed[at], idx, &op);
                self.ops.push(Record {
                    replica: idx,
                    op: op.clone(),
                    past,
                    granted,
                });
                self.observed[at].insert(id);
                match (delta, self.subject.has_deltas()) {
                    (Some(delta), true) => {
                        if law == Law::Delta {
                            self.check_delta(&before, &delta, at, &op)?;
                        }
                        self.remember(delta.clone());
                        self.deltas[at].push((delta, id));
                    }
                    (None, true) => {
                        return Err(format!(
                            "{op:?} at r{at} returned no delta, but the subject says it has δ-mutators"
                        ));
                    }
                    (_, false) => {}
                }
                at
            }
            Step::Delta { from, to, pick } if self.subject.has_deltas() => {
                let (from, to) = (self.replica(from), self.replica(to));
                let issued = &self.deltas[from];
                if issued.is_empty() {
                    return Ok(());
                }
                let (delta, id) = issued[usize::from(pick) % issued.len()].clone();
                self.subject.join(&mut self.states[to], &delta);
                self.observed[to].insert(id);
                to
            }
            Step::Delta { from, to, .. } | Step::State { from, to } => {
                let (from, to) = (self.replica(from), self.replica(to));
                let state = self.states[from].clone();
                self.subject.join(&mut self.states[to], &state);
                let seen = self.observed[from].clone();
                self.observed[to].extend(seen);
                to
            }
        };
        self.remember(self.states[changed].clone());
        if law == Law::Bound {
            self.within_bound(&self.states[changed], &format!("r{changed}"))?;
        }
        if law == Law::Semantics && causally_closed(&self.ops, &self.observed[changed]) {
            self.read_matches_spec(changed)?;
        }
        Ok(())
    }

    /// Causal delivery before an operation: `r` receives the delta of every operation in the
    /// past of what it has observed but has not received itself. Without this, a replica that got
    /// a later delta before an earlier one would run operations on a state that is not causally
    /// consistent, and no specification over happened-before could say what they should do.
    /// Deliveries *between* operations stay arbitrary: that is where duplication and reordering
    /// are exercised.
    fn catch_up(&mut self, r: usize) {
        if causally_closed(&self.ops, &self.observed[r]) {
            return;
        }
        let mut missing = BTreeSet::new();
        for &seen in &self.observed[r] {
            missing.extend(self.ops[seen].past.difference(&self.observed[r]).copied());
        }
        for id in missing {
            // Only subjects with deltas can be missing anything: whole states carry their past.
            if let Some((delta, _)) = self.deltas.iter().flatten().find(|(_, i)| *i == id) {
                let delta = delta.clone();
                self.subject.join(&mut self.states[r], &delta);
                self.observed[r].insert(id);
            }
        }
    }

    fn remember(&mut self, state: S::State) {
        if self.pool.len() < POOL_MAX {
            self.pool.push(state);
        }
    }

    fn check_delta(
        &self,
        before: &S::State,
        delta: &S::State,
        at: usize,
        op: &crate::laws::Op,
    ) -> Result<(), String> {
        let after = &self.states[at];
        let via_delta = self.join(before, delta);
        if &via_delta != after {
            return Err(format!(
                "{op:?} at r{at}: joining its delta into the old state differs from the new state\n  old:   {before:?}\n  delta: {delta:?}\n  old ⊔ delta: {via_delta:?}\n  new:   {after:?}"
            ));
        }
        let absorbed = self.join(after, delta);
        if &absorbed != after {
            return Err(format!(
                "{op:?} at r{at}: the new state does not absorb its own delta\n  new:   {after:?}\n  delta: {delta:?}\n  new ⊔ delta: {absorbed:?}"
            ));
        }
        Ok(())
    }

    fn join(&self, a: &S::State, b: &S::State) -> S::State {
        let mut out = a.clone();
        self.subject.join(&mut out, b);
        out
    }

    /// The algebraic laws, on the picked states and on every pair and triple of final states.
    fn algebra(&self, law: Law, picks: [u16; 3]) -> Result<(), String> {
        let pick = |i: usize| &self.pool[usize::from(picks[i]) % self.pool.len()];
        self.algebra_on(law, pick(0), pick(1), pick(2))?;
        for a in &self.states {
            for b in &self.states {
                for c in &self.states {
                    self.algebra_on(law, a, b, c)?;
                }
            }
        }
        Ok(())
    }

    fn algebra_on(&self, law: Law, a: &S::State, b: &S::State, c: &S::State) -> Result<(), String> {
        let fail = |what: &str, lhs: &dyn Debug, rhs: &dyn Debug| {
            Err(format!(
                "{what}\n  a = {a:?}\n  b = {b:?}\n  c = {c:?}\n  left  = {lhs:?}\n  right = {rhs:?}"
            ))
        };
        match law {
            Law::Associative => {
                let left = self.join(&self.join(a, b), c);
                let right = self.join(a, &self.join(b, c));
                if left != right {
                    return fail("(a ⊔ b) ⊔ c != a ⊔ (b ⊔ c)", &left, &right);
                }
            }
            Law::Commutative => {
                let (ab, ba) = (self.join(a, b), self.join(b, a));
                if ab != ba {
                    return fail("a ⊔ b != b ⊔ a", &ab, &ba);
                }
            }
            Law::Idempotent => {
                let aa = self.join(a, a);
                if &aa != a {
                    return fail("a ⊔ a != a", &aa, a);
                }
            }
            Law::Bottom => {
                let bottom = self.subject.bottom();
                let (left, right) = (self.join(&bottom, a), self.join(a, &bottom));
                if &left != a {
                    return fail("⊥ ⊔ a != a", &left, a);
                }
                if &right != a {
                    return fail("a ⊔ ⊥ != a", &right, a);
                }
            }
            Law::Inflation => {
                let ab = self.join(a, b);
                match self.subject.leq(a, &ab) {
                    Some(a_below) => {
                        if !a_below || self.subject.leq(b, &ab) != Some(true) {
                            return fail(
                                "a ⊔ b is not above both a and b in the type's order",
                                &ab,
                                &"",
                            );
                        }
                        let leq_ab = self.subject.leq(a, b) == Some(true);
                        if leq_ab != (ab == *b) {
                            return fail(
                                &format!(
                                    "the order disagrees with the join: a ≤ b is {leq_ab} but (a ⊔ b == b) is {}",
                                    ab == *b
                                ),
                                &ab,
                                b,
                            );
                        }
                    }
                    None => {
                        let again = self.join(a, &ab);
                        if again != ab {
                            return fail(
                                "a ⊔ (a ⊔ b) != a ⊔ b: the join is not an inflation",
                                &again,
                                &ab,
                            );
                        }
                    }
                }
            }
            Law::Delta | Law::Convergence | Law::Semantics | Law::Bound => {}
        }
        Ok(())
    }

    /// Every delta reaches every replica, newest first and then oldest first, so each arrives
    /// twice and removes arrive before the adds they removed. Subjects without deltas exchange
    /// states twice around a ring instead.
    fn deliver_everything(&mut self) {
        let n = self.states.len();
        if self.subject.has_deltas() {
            let all: Vec<(S::State, usize)> = self.deltas.iter().flatten().cloned().collect();
            for to in 0..n {
                for (delta, id) in all.iter().rev().chain(all.iter()) {
                    self.subject.join(&mut self.states[to], delta);
                    self.observed[to].insert(*id);
                }
            }
        } else {
            for i in 0..2 * n {
                let (from, to) = (i % n, (i + 1) % n);
                let state = self.states[from].clone();
                self.subject.join(&mut self.states[to], &state);
                let seen = self.observed[from].clone();
                self.observed[to].extend(seen);
            }
        }
    }

    /// The `bound` law at the end of a trace: every state and delta kept for the algebraic laws,
    /// the join of the three picked ones (a replica that received those, in any order), and every
    /// replica once everything has reached everyone.
    fn everything_within_bound(&mut self, picks: [u16; 3]) -> Result<(), String> {
        for (i, state) in self.pool.iter().enumerate() {
            self.within_bound(state, &format!("reached state #{i}"))?;
        }
        let pick = |i: usize| &self.pool[usize::from(picks[i]) % self.pool.len()];
        let joined = self.join(&self.join(pick(0), pick(1)), pick(2));
        self.within_bound(&joined, "the join of the picked states")?;
        self.deliver_everything();
        for r in 0..self.states.len() {
            self.within_bound(&self.states[r], &format!("r{r} after every delivery"))?;
        }
        Ok(())
    }

    /// Whether a read of `state` (`what` names it) respects the kind's lower bound.
    fn within_bound(&self, state: &S::State, what: &str) -> Result<(), String> {
        let Some(bound) = self.kind.bound() else {
            return Ok(());
        };
        match self.subject.read(state) {
            Observation::Count(value) if value < bound => Err(format!(
                "{what} reads {value}, below the {:?} bound {bound}\n  state = {state:?}",
                self.kind
            )),
            _ => Ok(()),
        }
    }

    fn converged(&self) -> Result<(), String> {
        let first = &self.states[0];
        match self.states.iter().position(|s| s != first) {
            None => Ok(()),
            Some(r) => Err(format!(
                "after every update reached every replica, r0 and r{r} differ\n  r0 = {first:?}\n  r{r} = {:?}",
                self.states[r]
            )),
        }
    }

    fn read_matches_spec(&self, r: usize) -> Result<(), String> {
        let got = self.subject.read(&self.states[r]);
        let want = expected(self.kind, &self.ops, &self.observed[r]);
        if got == want {
            return Ok(());
        }
        Err(format!(
            "r{r} reads {got:?} but the {:?} specification over the operations it observed {:?} gives {want:?}\n  state = {:?}",
            self.kind, self.observed[r], self.states[r]
        ))
    }
}
