//! The proposer: drives each compare-and-set through phase 1, the decision, phase 2 and the
//! commit, with bounded, jittered retries.
//!
//! # An operation's life
//! `Preparing` (phase 1 at `instance`, building on `base`, the decision of `instance - 1`) →
//! on a majority of promises, the decision: re-propose the highest accepted proposal, or our own
//! proposal still possibly chosen, or else decide the compare-and-set against `base` → either a
//! definite "precondition failed", or `Accepting` (phase 2) → on a majority of `Accepted`, the
//! proposal is chosen: commit it to every acceptor; if it is the operation's, report `Ok`, if
//! not, move to the next instance and decide again. A `Nack` (a higher ballot) or a phase
//! timeout ends the attempt: `Backoff` for a seeded, jittered, exponentially growing delay, then
//! phase 1 again with a round above every ballot seen. A decision learned at or beyond the
//! operation's instance (an acceptor's `Commit`) moves it on at once.
//!
//! # Why an outcome is definite or not
//! `pending` is the operation's own proposal that may be chosen: set when it is first sent to
//! phase 2, cleared only when its instance's decision is learned and is another proposal (a
//! proposal lives in one instance: it is re-proposed only from promises of that instance).
//! While it is set the operation never decides afresh — with no accepted proposal reported, it
//! re-proposes `pending` itself, since a value accepted outside the quorum could still be
//! resurrected by a higher ballot — and a failure is indefinite. A decision learned *beyond*
//! `pending`'s instance cannot say whether it was chosen, so the operation ends indefinite.
//!
//! # Bounds and invariants (checked in debug builds after every input)
//! - at most `in_flight_max` operations; each makes at most `attempts_max` attempts (an attempt
//!   is one phase 1, whether it began after a backoff, a decision learned, or a re-proposal
//!   chosen) and then ends;
//! - every operation in a phase has a deadline no later than `phase_timeout_ms` (or the largest
//!   backoff) from now, so every operation ends in bounded time;
//! - every round issued is below `rounds_below`, which `take_durable` hands out to persist
//!   before any message carrying such a round is sent: a restarted proposer resumes above every
//!   round it ever used, so no ballot is issued twice.

use super::majority;
use super::msg::{Ballot, Counter, Decision, Msg, Proposal, ProposalId};
use crate::ReplicaId;
use crate::replica::{Key, Scalar};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Rounds reserved per durable write of the high-water mark: one write per this many ballots.
const ROUND_BLOCK: u64 = 64;

/// A proposer's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProposerConfig {
    /// This proposer's id, the second half of its ballots.
    pub me: ReplicaId,
    /// Every acceptor, sorted and distinct; a majority of them decides.
    pub acceptors: Vec<ReplicaId>,
    /// Operations in flight at most; more are refused with [`Refused::Busy`].
    pub in_flight_max: usize,
    /// Attempts (phase 1 rounds) per operation at most.
    pub attempts_max: u32,
    /// How long a phase waits for a majority before the attempt fails.
    pub phase_timeout_ms: u64,
    /// The first backoff after contention; it doubles per attempt up to `backoff_max_ms`.
    pub backoff_min_ms: u64,
    /// The largest backoff.
    pub backoff_max_ms: u64,
    /// The seed of the backoff jitter.
    pub seed: u64,
}

impl ProposerConfig {
    /// Defaults for `me` among `acceptors`: 64 operations in flight, 5 attempts, 500 ms per
    /// phase, backoff from 10 ms to 640 ms.
    pub fn new(me: ReplicaId, mut acceptors: Vec<ReplicaId>) -> ProposerConfig {
        acceptors.sort();
        acceptors.dedup();
        ProposerConfig {
            me,
            acceptors,
            in_flight_max: 64,
            attempts_max: 5,
            phase_timeout_ms: 500,
            backoff_min_ms: 10,
            backoff_max_ms: 640,
            seed: 0,
        }
    }
}

/// What a proposer persists: every round it issues is below `rounds_below`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ProposerDurable {
    /// The round high-water mark.
    pub rounds_below: u64,
}

/// One compare-and-set.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Cas {
    /// The key.
    pub key: Key,
    /// The value the key must hold for the set to happen; `None`: the key must be absent (set
    /// if absent, the seat reservation).
    pub from: Option<Scalar>,
    /// The new value.
    pub to: Scalar,
    /// A decision the caller knows (its own acceptor's), to start there rather than at the
    /// absent key; a stale one only costs a round trip.
    pub base: Option<Decision>,
}

/// What an operation asks of its key. A compare-and-set, an unconditional set and a read all
/// run through the same phases; they differ only in what the proposer does once a majority has
/// shown the key's current value (the `base`, with nothing accepted beyond it).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Want {
    /// Set `to` if the key holds `from` (`None`: if the key is absent); else fail definitely.
    Cas {
        /// The value the key must hold.
        from: Option<Scalar>,
        /// The new value.
        to: Scalar,
    },
    /// Set the value whatever the key holds: a write that is ordered with every
    /// compare-and-set of the key, which a plain replicated write is not.
    Set(Scalar),
    /// Learn the current value through a majority, proposing nothing: a linearizable read.
    /// A majority promised for instance `n` with nothing accepted there means nothing is chosen
    /// at `n` yet, so `n - 1`'s decision is current at some moment between the read's start and
    /// its reply; a proposal found accepted is finished first (chosen and committed), and the
    /// read moves on to the instance after it.
    Read,
}

impl Want {
    /// Whether the operation proposes a value (a read never does, so it is never indefinite).
    pub fn writes(&self) -> bool {
        !matches!(self, Want::Read)
    }
}

/// An operation's handle, in the order operations were submitted.
pub type OpId = u64;

/// Why an operation or a configuration was refused at once (nothing was sent).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// `in_flight_max` operations are in flight.
    #[error("{in_flight_max} compare-and-set operations are in flight already")]
    Busy {
        /// The configured limit.
        in_flight_max: usize,
    },
    /// The configuration cannot work.
    #[error("invalid proposer configuration: {0}")]
    InvalidConfig(&'static str),
    /// The caller's `base` is not a well-formed decision.
    #[error("the base decision is malformed")]
    InvalidBase,
}

/// A successful compare-and-set.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CasOk {
    /// The instance the operation's proposal decided; for a [`Want::Read`], the instance whose
    /// decision it read.
    pub instance: u64,
    /// The value it replaced (what `from` matched); for a read, the value read.
    pub previous: Option<Scalar>,
}

/// A failed compare-and-set.
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum CasError {
    /// Definite: a majority showed the key's current value, and it is not `from`.
    #[error("precondition failed: the key holds {current:?}")]
    PreconditionFailed {
        /// The current value, as decided.
        current: Option<Scalar>,
    },
    /// Definite: no majority answered, or contention outlasted the attempts, and none of the
    /// operation's proposals can be chosen.
    #[error("no majority after {attempts} attempts; nothing was applied")]
    Unavailable {
        /// Attempts made.
        attempts: u32,
    },
    /// Indefinite: a proposal of the operation went to phase 2 and its fate was not learned; it
    /// may be (or become) the decision.
    #[error("the outcome is unknown after {attempts} attempts: the set may have been applied")]
    Indefinite {
        /// Attempts made.
        attempts: u32,
    },
}

impl CasError {
    /// Whether the error guarantees the set was not applied and never will be.
    pub fn is_definite(&self) -> bool {
        !matches!(self, CasError::Indefinite { .. })
    }
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Outcome {
    /// The operation.
    pub op: OpId,
    /// Its key.
    pub key: Key,
    /// The result.
    pub result: Result<CasOk, CasError>,
    /// Every proposal of its own the operation sent to phase 2, with its instance, in order
    /// (at most `attempts_max`). On `Ok` the last is the chosen one; on a definite error none
    /// was chosen.
    pub proposals: Vec<(u64, ProposalId)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Phase {
    /// Phase 1: the promises so far, with what each acceptor accepted.
    Preparing(BTreeMap<ReplicaId, Option<(Ballot, Proposal)>>),
    /// Phase 2: the proposal and the acceptors that accepted it.
    Accepting(Proposal, BTreeSet<ReplicaId>),
    /// Waiting to retry.
    Backoff,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Op {
    key: Key,
    want: Want,
    attempts: u32,
    /// The instance worked on, and the decision of the one before.
    instance: u64,
    base: Decision,
    /// The current attempt's ballot.
    ballot: Ballot,
    /// The highest ballot a refusal named.
    higher_seen: Ballot,
    phase: Phase,
    /// When the phase times out or the backoff ends.
    deadline_ms: u64,
    /// The operation's own proposal that may be chosen, with its instance.
    pending: Option<(u64, Proposal)>,
    proposals: Vec<(u64, ProposalId)>,
}

/// What an operation's step needs of the proposer besides the operation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Ctx {
    now_ms: u64,
    rng: u64,
    next_round: u64,
    rounds_below: u64,
    durable_dirty: bool,
    outbox: VecDeque<(ReplicaId, Msg)>,
    outcomes: VecDeque<Outcome>,
}

/// A proposer: runs compare-and-set operations, each to a definite or indefinite end.
///
/// # Call protocol
/// - **Inputs**, each with the current time in ms (which only moves forward: an earlier time is
///   taken as the last one seen): [`cas`](Self::cas) (a client's operation),
///   [`handle`](Self::handle) (an acceptor's `Promise`, `Accepted`, `Nack` or `Commit`),
///   [`handle_timeout`](Self::handle_timeout).
/// - **Outputs**, after every input, in this order: [`take_durable`](Self::take_durable)
///   (persist it), [`poll_transmit`](Self::poll_transmit) until `None`,
///   [`poll_outcome`](Self::poll_outcome) until `None`, [`poll_timeout`](Self::poll_timeout).
///
/// Deterministic: the same configuration and inputs give the same outputs; the only randomness
/// is the backoff jitter, drawn from [`ProposerConfig::seed`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Proposer {
    config: ProposerConfig,
    cx: Ctx,
    ops: BTreeMap<OpId, Op>,
    next_op: OpId,
    ignored: Counter,
}

/// Whether an operation goes on after a step.
enum Step {
    Continue,
    Done,
}

impl Proposer {
    /// A proposer that has never run, at time `now_ms`.
    pub fn new(config: ProposerConfig, now_ms: u64) -> Result<Proposer, Refused> {
        Proposer::recover(config, ProposerDurable::default(), now_ms)
    }

    /// A proposer restarted from what it persisted: its rounds resume at the high-water mark, so
    /// no ballot of the last run is issued again. Operations in flight at the crash are lost
    /// (their clients see no answer: indefinite).
    pub fn recover(
        config: ProposerConfig,
        durable: ProposerDurable,
        now_ms: u64,
    ) -> Result<Proposer, Refused> {
        if config.acceptors.is_empty() {
            return Err(Refused::InvalidConfig("no acceptors"));
        }
        if !config.acceptors.windows(2).all(|w| w[0] < w[1]) {
            return Err(Refused::InvalidConfig("acceptors not sorted and distinct"));
        }
        if config.attempts_max == 0 || config.in_flight_max == 0 {
            return Err(Refused::InvalidConfig("no attempt or no operation allowed"));
        }
        let rng = config.seed ^ config.me.0.rotate_left(17);
        Ok(Proposer {
            cx: Ctx {
                now_ms,
                rng,
                next_round: durable.rounds_below.max(1),
                rounds_below: durable.rounds_below,
                durable_dirty: false,
                outbox: VecDeque::new(),
                outcomes: VecDeque::new(),
            },
            config,
            ops: BTreeMap::new(),
            next_op: 0,
            ignored: Counter::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ProposerConfig {
        &self.config
    }

    /// Operations in flight.
    pub fn in_flight(&self) -> usize {
        self.ops.len()
    }

    /// The last time seen.
    pub fn now_ms(&self) -> u64 {
        self.cx.now_ms
    }

    /// Messages ignored: not for a proposer, stale, or malformed.
    pub fn ignored(&self) -> u64 {
        self.ignored.0
    }

    /// The durable state, as [`recover`](Self::recover) takes it.
    pub fn durable(&self) -> ProposerDurable {
        ProposerDurable {
            rounds_below: self.cx.rounds_below,
        }
    }

    // ----- inputs -----

    /// Input: starts a compare-and-set. Refused at once, with nothing sent, beyond
    /// `in_flight_max` operations.
    pub fn cas(&mut self, now_ms: u64, cas: Cas) -> Result<OpId, Refused> {
        let want = Want::Cas {
            from: cas.from,
            to: cas.to,
        };
        self.submit(now_ms, cas.key, want, cas.base)
    }

    /// Input: starts any operation on `key` (see [`Want`]), building on `base` if the caller
    /// knows a decision (its own acceptor's). Refused at once, with nothing sent, beyond
    /// `in_flight_max` operations or with a malformed `base`.
    pub fn submit(
        &mut self,
        now_ms: u64,
        key: Key,
        want: Want,
        base: Option<Decision>,
    ) -> Result<OpId, Refused> {
        self.advance(now_ms);
        if self.ops.len() >= self.config.in_flight_max {
            return Err(Refused::Busy {
                in_flight_max: self.config.in_flight_max,
            });
        }
        let base = base.unwrap_or_default();
        if !base.is_valid() {
            return Err(Refused::InvalidBase);
        }
        let id = self.next_op;
        self.next_op += 1;
        let mut op = Op {
            key,
            want,
            attempts: 0,
            instance: base.instance + 1,
            base,
            ballot: Ballot::ZERO,
            higher_seen: Ballot::ZERO,
            phase: Phase::Backoff,
            deadline_ms: now_ms,
            pending: None,
            proposals: Vec::new(),
        };
        if let Step::Continue = op.start_attempt(&self.config, &mut self.cx, id) {
            self.ops.insert(id, op);
        }
        self.debug_check();
        Ok(id)
    }

    /// Input: a message from acceptor `from`.
    pub fn handle(&mut self, now_ms: u64, from: ReplicaId, msg: Msg) {
        self.advance(now_ms);
        if self.config.acceptors.binary_search(&from).is_err() {
            self.ignored.0 += 1;
            return;
        }
        let (config, cx) = (&self.config, &mut self.cx);
        let mut done = Vec::new();
        let mut used = false;
        for (&id, op) in self.ops.iter_mut().filter(|(_, op)| op.key == *msg.key()) {
            let step = match &msg {
                Msg::Promise {
                    instance,
                    ballot,
                    accepted,
                    ..
                } if op.current(*instance, *ballot) => {
                    used = true;
                    op.on_promise(config, cx, id, from, accepted.clone())
                }
                Msg::Accepted {
                    instance,
                    ballot,
                    id: accepted_id,
                    ..
                } if op.current(*instance, *ballot) => {
                    used = true;
                    op.on_accepted(config, cx, id, from, *accepted_id)
                }
                Msg::Nack {
                    instance,
                    ballot,
                    higher,
                    ..
                } if op.current(*instance, *ballot) && *higher > *ballot => {
                    used = true;
                    op.higher_seen = op.higher_seen.max(*higher);
                    op.fail_attempt(config, cx, id)
                }
                Msg::Commit { decision, .. } if decision.is_valid() => {
                    used = true;
                    op.learn(config, cx, id, decision.clone())
                }
                _ => Step::Continue,
            };
            if let Step::Done = step {
                done.push(id);
            }
        }
        if !used {
            self.ignored.0 += 1;
        }
        for id in done {
            self.ops.remove(&id);
        }
        self.debug_check();
    }

    /// Input: time has reached (at least) what [`poll_timeout`](Self::poll_timeout) asked for.
    /// Calling it early is harmless.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        self.advance(now_ms);
        let (config, cx) = (&self.config, &mut self.cx);
        let mut done = Vec::new();
        for (&id, op) in self.ops.iter_mut() {
            if op.deadline_ms > cx.now_ms {
                continue;
            }
            let step = match op.phase {
                Phase::Backoff => op.start_attempt(config, cx, id),
                Phase::Preparing(_) | Phase::Accepting(..) => op.fail_attempt(config, cx, id),
            };
            if let Step::Done = step {
                done.push(id);
            }
        }
        for id in done {
            self.ops.remove(&id);
        }
        self.debug_check();
    }

    // ----- outputs -----

    /// Output: the round high-water mark, when it moved: persist it before sending anything.
    pub fn take_durable(&mut self) -> Option<ProposerDurable> {
        if !self.cx.durable_dirty {
            return None;
        }
        self.cx.durable_dirty = false;
        Some(self.durable())
    }

    /// Output: the next message, `(to, message)`. Call [`take_durable`](Self::take_durable)
    /// first (see the module documentation).
    pub fn poll_transmit(&mut self) -> Option<(ReplicaId, Msg)> {
        debug_assert!(
            !self.cx.durable_dirty || self.cx.outbox.is_empty(),
            "poll_transmit before take_durable: a ballot would leave above the persisted rounds"
        );
        self.cx.outbox.pop_front()
    }

    /// Output: the next finished operation.
    pub fn poll_outcome(&mut self) -> Option<Outcome> {
        self.cx.outcomes.pop_front()
    }

    /// Output: when to call [`handle_timeout`](Self::handle_timeout) next, if ever.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.ops.values().map(|op| op.deadline_ms).min()
    }

    fn advance(&mut self, now_ms: u64) {
        self.cx.now_ms = self.cx.now_ms.max(now_ms);
    }

    /// Checks the bounds and invariants of the module documentation (debug builds).
    fn debug_check(&self) {
        debug_assert!(self.ops.len() <= self.config.in_flight_max);
        debug_assert!(
            self.cx.next_round <= self.cx.rounds_below,
            "a round was issued above the persisted high-water mark"
        );
        let horizon = self.config.phase_timeout_ms.max(self.config.backoff_max_ms);
        for op in self.ops.values() {
            debug_assert!(op.attempts >= 1 && op.attempts <= self.config.attempts_max);
            debug_assert!(op.deadline_ms <= self.cx.now_ms.saturating_add(horizon));
            debug_assert!(op.ballot.round < self.cx.rounds_below);
            debug_assert!(
                op.pending.as_ref().is_none_or(|(i, _)| *i == op.instance),
                "an operation moved past the instance of its possibly chosen proposal"
            );
        }
    }
}

impl Op {
    /// Whether a reply about `instance` at `ballot` is for this operation's current attempt.
    fn current(&self, instance: u64, ballot: Ballot) -> bool {
        instance == self.instance && ballot == self.ballot && !matches!(self.phase, Phase::Backoff)
    }

    /// Starts phase 1 with a fresh round above every ballot seen, or ends the operation if its
    /// attempts are spent.
    fn start_attempt(&mut self, config: &ProposerConfig, cx: &mut Ctx, id: OpId) -> Step {
        if self.attempts >= config.attempts_max {
            return self.give_up(cx, id);
        }
        self.attempts += 1;
        let round = cx.next_round.max(self.higher_seen.round + 1);
        cx.next_round = round + 1;
        if cx.next_round > cx.rounds_below {
            // Reserve a block of rounds at once, so that a write is needed once per block.
            cx.rounds_below = round + ROUND_BLOCK;
            cx.durable_dirty = true;
        }
        self.ballot = Ballot {
            round,
            proposer: config.me,
        };
        self.phase = Phase::Preparing(BTreeMap::new());
        self.deadline_ms = cx.now_ms.saturating_add(config.phase_timeout_ms);
        for &a in &config.acceptors {
            cx.outbox.push_back((
                a,
                Msg::Prepare {
                    key: self.key.clone(),
                    instance: self.instance,
                    ballot: self.ballot,
                    base: self.base.clone(),
                },
            ));
        }
        Step::Continue
    }

    /// The attempt failed (a higher ballot, or no majority in time): back off, or end the
    /// operation if no attempt is left.
    fn fail_attempt(&mut self, config: &ProposerConfig, cx: &mut Ctx, id: OpId) -> Step {
        if self.attempts >= config.attempts_max {
            return self.give_up(cx, id);
        }
        let shift = (self.attempts - 1).min(32);
        let cap = config
            .backoff_min_ms
            .saturating_mul(1u64 << shift)
            .min(config.backoff_max_ms);
        // "Equal jitter": at least half the cap, so a retry always waits, and a seeded random
        // rest, so that two proposers that collided do not collide again in step.
        let delay = cap / 2 + splitmix64(&mut cx.rng) % (cap - cap / 2 + 1);
        self.phase = Phase::Backoff;
        self.deadline_ms = cx.now_ms.saturating_add(delay);
        Step::Continue
    }

    fn on_promise(
        &mut self,
        config: &ProposerConfig,
        cx: &mut Ctx,
        id: OpId,
        from: ReplicaId,
        accepted: Option<(Ballot, Proposal)>,
    ) -> Step {
        let Phase::Preparing(promises) = &mut self.phase else {
            return Step::Continue;
        };
        promises.insert(from, accepted);
        if promises.len() < majority(config.acceptors.len()) {
            return Step::Continue;
        }
        let highest = promises
            .values()
            .flatten()
            .max_by_key(|(b, _)| *b)
            .map(|(_, p)| p.clone());
        let proposal = match (highest, &self.pending) {
            // Paxos: a proposal accepted at the highest ballot may be chosen; it must be ours.
            (Some(p), _) => p,
            // Our own proposal may be accepted outside this majority and be resurrected: we may
            // propose anything here, and proposing it again is the only choice that cannot
            // apply the operation twice.
            (None, Some((_, p))) => p.clone(),
            (None, None) => {
                // A majority promised with nothing accepted: nothing is chosen at this instance
                // yet, so `base` is the current value, learned through a quorum.
                let to = match &self.want {
                    Want::Read => {
                        let result = Ok(CasOk {
                            instance: self.base.instance,
                            previous: self.base.value.clone(),
                        });
                        return self.finish(cx, id, result);
                    }
                    Want::Set(to) => to.clone(),
                    Want::Cas { from, to } => {
                        if *from != self.base.value {
                            let result = Err(CasError::PreconditionFailed {
                                current: self.base.value.clone(),
                            });
                            return self.finish(cx, id, result);
                        }
                        to.clone()
                    }
                };
                let p = Proposal {
                    id: self.ballot,
                    value: to,
                };
                self.pending = Some((self.instance, p.clone()));
                self.proposals.push((self.instance, p.id));
                p
            }
        };
        for &a in &config.acceptors {
            cx.outbox.push_back((
                a,
                Msg::Accept {
                    key: self.key.clone(),
                    instance: self.instance,
                    ballot: self.ballot,
                    proposal: proposal.clone(),
                    base: self.base.clone(),
                },
            ));
        }
        self.phase = Phase::Accepting(proposal, BTreeSet::new());
        self.deadline_ms = cx.now_ms.saturating_add(config.phase_timeout_ms);
        Step::Continue
    }

    fn on_accepted(
        &mut self,
        config: &ProposerConfig,
        cx: &mut Ctx,
        id: OpId,
        from: ReplicaId,
        accepted_id: ProposalId,
    ) -> Step {
        let Phase::Accepting(proposal, acks) = &mut self.phase else {
            return Step::Continue;
        };
        if accepted_id != proposal.id {
            return Step::Continue;
        }
        acks.insert(from);
        if acks.len() < majority(config.acceptors.len()) {
            return Step::Continue;
        }
        // Chosen: a majority accepted it at one ballot. Teach every acceptor, then learn it.
        let decision = Decision::chosen(self.instance, proposal);
        for &a in &config.acceptors {
            cx.outbox.push_back((
                a,
                Msg::Commit {
                    key: self.key.clone(),
                    decision: decision.clone(),
                },
            ));
        }
        self.learn(config, cx, id, decision)
    }

    /// A decision is known (learned from an acceptor, or made by our phase 2): end the operation
    /// if it settles it, else move on to the instance after it.
    fn learn(&mut self, config: &ProposerConfig, cx: &mut Ctx, id: OpId, d: Decision) -> Step {
        if d.instance < self.instance {
            return Step::Continue;
        }
        if let Some((instance, p)) = &self.pending {
            if d.instance == *instance && d.id == Some(p.id) {
                let result = Ok(CasOk {
                    instance: d.instance,
                    previous: self.base.value.clone(),
                });
                return self.finish(cx, id, result);
            }
            if d.instance > *instance {
                // The decision of our proposal's instance was skipped over: whether it was ours
                // cannot be told any more.
                let result = Err(CasError::Indefinite {
                    attempts: self.attempts,
                });
                return self.finish(cx, id, result);
            }
            // Another proposal was chosen at our proposal's instance: ours never will be.
            self.pending = None;
        }
        self.instance = d.instance + 1;
        self.base = d;
        self.start_attempt(config, cx, id)
    }

    /// Ends the operation after its last attempt: indefinite if a proposal of it may be chosen.
    fn give_up(&mut self, cx: &mut Ctx, id: OpId) -> Step {
        let attempts = self.attempts;
        let result = if self.pending.is_some() {
            Err(CasError::Indefinite { attempts })
        } else {
            Err(CasError::Unavailable { attempts })
        };
        self.finish(cx, id, result)
    }

    fn finish(&mut self, cx: &mut Ctx, id: OpId, result: Result<CasOk, CasError>) -> Step {
        cx.outcomes.push_back(Outcome {
            op: id,
            key: self.key.clone(),
            result,
            proposals: std::mem::take(&mut self.proposals),
        });
        Step::Done
    }
}

/// SplitMix64: a tiny, well-mixed generator for the backoff jitter.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests;
