//! Randomized runs of the consensus core: several proposers race compare-and-sets on a few keys
//! over 3 or 5 acceptors, through a network that loses, duplicates and reorders, while
//! acceptors crash and recover from the durable records they handed out.
//!
//! Every run is one seed: the network's decisions, the clients' operations, the crash times and
//! the proposers' jitter all come from it, on a virtual clock, so a seed replays a run exactly.
//! A failure names its seed and the one command that replays it; `CONSENSUS_SEED=N` runs only
//! seed `N`, `CONSENSUS_SEEDS=N` runs `N` seeds per test instead of the default.
//!
//! A ghost observer outside the protocol watches every `Accepted` an acceptor sends (after its
//! record is on its disk, as a shell would send it) and every `Accept` a proposer sends (for the
//! values), and checks:
//! - at most one proposal is ever chosen (accepted by a majority at one ballot) per key and
//!   instance, and no ballot carries two proposals (a restarted proposer never reuses one);
//! - an operation reported `Ok` at instance `n` is the one chosen there, and the value it
//!   replaced is the one chosen at `n - 1`;
//! - a definite failure left no trace: none of the operation's proposals is chosen at the end
//!   of the run, once every message has been delivered or lost;
//! - a "precondition failed" reports a value that was chosen for the key;
//! - a read (`Want::Read`) proposes nothing and reports the value chosen at the instance it
//!   names, at or beyond every instance a set or compare-and-set on the key was reported `Ok`
//!   at before the read began (it never goes back in real time); a set (`Want::Set`) is checked
//!   as a compare-and-set is.

use converge_core::ReplicaId;
use converge_core::consensus::{
    Acceptor, AcceptorDurable, Ballot, Bug, CasError, Msg, OpId, Outcome, ProposalId, Proposer,
    ProposerConfig, ProposerDurable, Want, majority,
};
use converge_core::replica::{Key, Scalar};
use std::collections::{BTreeMap, BTreeSet};

/// Proposers' ids start here; acceptors are `0..n`.
const PROPOSER_BASE: u64 = 100;
const KEYS: [&[u8]; 2] = [b"seat-5a", b"balance"];

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What one run draws from its seed.
#[derive(Clone, Debug)]
struct Plan {
    acceptors: u64,
    proposers: u64,
    ops_per_proposer: u64,
    /// Per mille: message loss and duplication.
    loss_pm: u64,
    dup_pm: u64,
    latency_max_ms: u64,
    /// Acceptor crashes over the run (each followed by a recovery).
    crashes: u64,
    /// Proposer restarts over the run: the operations in flight are lost, and the proposer
    /// comes back at once from its round high-water mark.
    proposer_restarts: u64,
    bug: Option<Bug>,
    /// Whether clients also read and set (one operation in six each), or only compare-and-set.
    mixed: bool,
}

/// The ghost's view of one (key, instance).
#[derive(Default)]
struct Slot {
    /// Per ballot: the proposal accepted there and by whom.
    accepts: BTreeMap<Ballot, (ProposalId, BTreeSet<u64>)>,
    chosen: BTreeSet<ProposalId>,
}

struct Sim {
    rng: u64,
    now: u64,
    plan: Plan,
    acceptors: Vec<Option<Acceptor>>,
    disks: Vec<AcceptorDurable>,
    proposers: Vec<Proposer>,
    /// What each proposer persisted (its round high-water mark).
    proposer_disks: Vec<ProposerDurable>,
    /// Proposer restarts: (time, proposer).
    proposer_restarts: Vec<(u64, usize)>,
    /// Operations lost in a proposer restart (their clients never hear back).
    lost: usize,
    /// Messages in flight: (delivery time, sequence) → (from, to, message).
    flight: BTreeMap<(u64, u64), (u64, u64, Msg)>,
    seq: u64,
    /// Client operations not yet submitted: (time, proposer, key, what).
    clients: Vec<(u64, usize, Key, Want)>,
    /// Operations submitted and not yet ended: (proposer, op) → (what, when submitted). An op
    /// lost in a proposer restart stays until a later op of the restarted proposer reuses its id.
    submitted: BTreeMap<(usize, OpId), (Want, u64)>,
    /// Per ended operation (in `outcomes`' order): what it was, when submitted and when ended.
    ended: Vec<(Want, u64, u64)>,
    /// Acceptor crashes: (time, acceptor, down for ms).
    crashes: Vec<(u64, usize, u64)>,
    recoveries: Vec<(u64, usize)>,
    slots: BTreeMap<(Key, u64), Slot>,
    values: BTreeMap<ProposalId, Scalar>,
    outcomes: Vec<Outcome>,
}

impl Sim {
    fn new(seed: u64, plan: Plan) -> Sim {
        let mut rng = seed;
        let acceptor_ids: Vec<ReplicaId> = (0..plan.acceptors).map(ReplicaId).collect();
        let proposers = (0..plan.proposers)
            .map(|p| {
                let mut c = ProposerConfig::new(ReplicaId(PROPOSER_BASE + p), acceptor_ids.clone());
                c.phase_timeout_ms = 100;
                c.backoff_min_ms = 5;
                c.backoff_max_ms = 80;
                c.attempts_max = 6;
                c.seed = splitmix64(&mut rng);
                Proposer::new(c, 0).expect("a valid configuration")
            })
            .collect();
        let mut clients = Vec::new();
        for p in 0..plan.proposers as usize {
            for j in 0..plan.ops_per_proposer {
                let at = splitmix64(&mut rng) % 400;
                let key: Key = KEYS[(splitmix64(&mut rng) % 2) as usize].into();
                // Values are unique per operation, so a value names the operation that set it.
                let to = Scalar::Int((p as i64 + 1) * 1000 + j as i64);
                // Set-if-absent (the seat), or a compare against a value some operation sets
                // (which may or may not be the current one when it runs).
                let from = match splitmix64(&mut rng) % 3 {
                    0 => None,
                    _ => {
                        let q = splitmix64(&mut rng) % plan.proposers;
                        let k = splitmix64(&mut rng) % plan.ops_per_proposer;
                        Some(Scalar::Int((q as i64 + 1) * 1000 + k as i64))
                    }
                };
                // Mixed: one operation in six is a read, one a set, the rest compare-and-sets.
                let want = match plan.mixed.then(|| splitmix64(&mut rng) % 6) {
                    Some(0) => Want::Read,
                    Some(1) => Want::Set(to),
                    _ => Want::Cas { from, to },
                };
                clients.push((at, p, key, want));
            }
        }
        let mut crashes = Vec::new();
        for _ in 0..plan.crashes {
            let at = splitmix64(&mut rng) % 600;
            let who = (splitmix64(&mut rng) % plan.acceptors) as usize;
            let down = 1 + splitmix64(&mut rng) % 150;
            crashes.push((at, who, down));
        }
        let proposer_restarts = (0..plan.proposer_restarts)
            .map(|_| {
                let at = splitmix64(&mut rng) % 600;
                (at, (splitmix64(&mut rng) % plan.proposers) as usize)
            })
            .collect();
        Sim {
            proposer_disks: vec![ProposerDurable::default(); plan.proposers as usize],
            proposer_restarts,
            lost: 0,
            rng,
            now: 0,
            acceptors: (0..plan.acceptors)
                .map(|a| {
                    let acc = Acceptor::new(ReplicaId(a));
                    Some(match plan.bug {
                        Some(bug) => acc.with_bug(bug),
                        None => acc,
                    })
                })
                .collect(),
            disks: vec![AcceptorDurable::default(); plan.acceptors as usize],
            proposers,
            flight: BTreeMap::new(),
            seq: 0,
            clients,
            submitted: BTreeMap::new(),
            ended: Vec::new(),
            crashes,
            recoveries: Vec::new(),
            slots: BTreeMap::new(),
            values: BTreeMap::new(),
            outcomes: Vec::new(),
            plan,
        }
    }

    fn send(&mut self, from: u64, to: u64, msg: Msg) {
        if splitmix64(&mut self.rng) % 1000 < self.plan.loss_pm {
            return;
        }
        let copies = if splitmix64(&mut self.rng) % 1000 < self.plan.dup_pm {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let at = self.now + 1 + splitmix64(&mut self.rng) % self.plan.latency_max_ms;
            self.seq += 1;
            self.flight.insert((at, self.seq), (from, to, msg.clone()));
        }
    }

    /// Drains an acceptor the way a shell does: persist, then send.
    fn drain_acceptor(&mut self, a: usize) -> Result<(), String> {
        let Some(acc) = self.acceptors[a].as_mut() else {
            return Ok(());
        };
        if let Some(delta) = acc.take_durable() {
            self.disks[a].apply(delta);
        }
        let mut out = Vec::new();
        while let Some(t) = acc.poll_transmit() {
            out.push(t);
        }
        for (to, msg) in out {
            if let Msg::Accepted {
                key,
                instance,
                ballot,
                id,
            } = &msg
            {
                self.observe_accepted(a as u64, key, *instance, *ballot, *id)?;
            }
            self.send(a as u64, to.0, msg);
        }
        Ok(())
    }

    fn drain_proposer(&mut self, p: usize) {
        let prop = &mut self.proposers[p];
        if let Some(d) = prop.take_durable() {
            self.proposer_disks[p] = d;
        }
        let mut out = Vec::new();
        while let Some(t) = prop.poll_transmit() {
            out.push(t);
        }
        while let Some(o) = prop.poll_outcome() {
            let (want, at) = self
                .submitted
                .remove(&(p, o.op))
                .expect("an outcome of a submitted operation");
            self.ended.push((want, at, self.now));
            self.outcomes.push(o);
        }
        for (to, msg) in out {
            if let Msg::Accept { proposal, .. } = &msg {
                self.values.insert(proposal.id, proposal.value.clone());
            }
            self.send(PROPOSER_BASE + p as u64, to.0, msg);
        }
    }

    fn observe_accepted(
        &mut self,
        acceptor: u64,
        key: &Key,
        instance: u64,
        ballot: Ballot,
        id: ProposalId,
    ) -> Result<(), String> {
        let quorum = majority(self.plan.acceptors as usize);
        let slot = self.slots.entry((key.clone(), instance)).or_default();
        let (accepted_id, by) = slot
            .accepts
            .entry(ballot)
            .or_insert_with(|| (id, BTreeSet::new()));
        if *accepted_id != id {
            return Err(format!(
                "two proposals accepted at one ballot {ballot:?}: {accepted_id:?} and {id:?}"
            ));
        }
        by.insert(acceptor);
        if by.len() >= quorum {
            slot.chosen.insert(id);
        }
        if slot.chosen.len() > 1 {
            return Err(format!(
                "two proposals chosen for key {:?} instance {instance}: {:?}",
                String::from_utf8_lossy(key),
                slot.chosen
            ));
        }
        Ok(())
    }

    fn chosen(&self, key: &Key, instance: u64) -> Option<ProposalId> {
        self.slots
            .get(&(key.clone(), instance))
            .and_then(|s| s.chosen.iter().next().copied())
    }

    fn chosen_value(&self, key: &Key, instance: u64) -> Option<Scalar> {
        if instance == 0 {
            return None;
        }
        self.chosen(key, instance)
            .and_then(|id| self.values.get(&id).cloned())
    }

    /// The next event's time, if any.
    fn next_time(&self) -> Option<u64> {
        let msg = self.flight.keys().next().map(|k| k.0);
        let timer = self.proposers.iter().filter_map(|p| p.poll_timeout()).min();
        let client = self.clients.iter().map(|c| c.0).min();
        let crash = self.crashes.iter().map(|c| c.0).min();
        let recovery = self.recoveries.iter().map(|c| c.0).min();
        let restart = self.proposer_restarts.iter().map(|c| c.0).min();
        [msg, timer, client, crash, recovery, restart]
            .into_iter()
            .flatten()
            .min()
    }

    fn run(&mut self) -> Result<(), String> {
        let mut steps = 0u64;
        while let Some(t) = self.next_time() {
            steps += 1;
            if steps > 200_000 {
                return Err("the run did not end in 200,000 steps".into());
            }
            self.now = self.now.max(t);
            let now = self.now;
            // Clients, crashes and recoveries due now, then timers, then one message.
            if let Some(i) = self.clients.iter().position(|c| c.0 <= now) {
                let (_, p, key, want) = self.clients.swap_remove(i);
                let op = self.proposers[p]
                    .submit(now, key, want.clone(), None)
                    .map_err(|e| format!("an operation was refused: {e}"))?;
                self.submitted.insert((p, op), (want, now));
                self.drain_proposer(p);
                continue;
            }
            if let Some(i) = self.crashes.iter().position(|c| c.0 <= now) {
                let (_, a, down) = self.crashes.swap_remove(i);
                if self.acceptors[a].take().is_some() {
                    self.recoveries.push((now + down, a));
                }
                continue;
            }
            if let Some(i) = self.recoveries.iter().position(|c| c.0 <= now) {
                let (_, a) = self.recoveries.swap_remove(i);
                self.acceptors[a] = Some(Acceptor::recover(
                    ReplicaId(a as u64),
                    self.disks[a].clone(),
                    self.plan.bug,
                ));
                continue;
            }
            if let Some(i) = self.proposer_restarts.iter().position(|c| c.0 <= now) {
                let (_, p) = self.proposer_restarts.swap_remove(i);
                self.lost += self.proposers[p].in_flight();
                let config = self.proposers[p].config().clone();
                self.proposers[p] = Proposer::recover(config, self.proposer_disks[p], now)
                    .map_err(|e| format!("a proposer did not recover: {e}"))?;
                continue;
            }
            if let Some(p) = (0..self.proposers.len())
                .find(|&p| self.proposers[p].poll_timeout().is_some_and(|d| d <= now))
            {
                self.proposers[p].handle_timeout(now);
                self.drain_proposer(p);
                continue;
            }
            let Some((_, (from, to, msg))) = self.flight.pop_first() else {
                continue;
            };
            if to >= PROPOSER_BASE {
                let p = (to - PROPOSER_BASE) as usize;
                self.proposers[p].handle(now, ReplicaId(from), msg);
                self.drain_proposer(p);
            } else if let Some(acc) = self.acceptors[to as usize].as_mut() {
                acc.handle(ReplicaId(from), msg);
                self.drain_acceptor(to as usize)?;
            }
            // A message to a crashed acceptor is lost.
        }
        self.check_outcomes()
    }

    /// The run is over: every message delivered or lost, every operation ended.
    fn check_outcomes(&self) -> Result<(), String> {
        let submitted = (self.plan.proposers * self.plan.ops_per_proposer) as usize;
        if self.outcomes.len() + self.lost != submitted {
            return Err(format!(
                "{} operations submitted, {} ended, {} lost in proposer restarts",
                submitted,
                self.outcomes.len(),
                self.lost
            ));
        }
        for (o, (want, began, _)) in self.outcomes.iter().zip(&self.ended) {
            match &o.result {
                Ok(ok) if *want == Want::Read => {
                    if !o.proposals.is_empty() {
                        return Err(format!("read op {} proposed {:?}", o.op, o.proposals));
                    }
                    let value = self.chosen_value(&o.key, ok.instance);
                    if value != ok.previous {
                        return Err(format!(
                            "read op {} returned {:?} at instance {} where {value:?} was chosen",
                            o.op, ok.previous, ok.instance
                        ));
                    }
                    let newest_before = self
                        .outcomes
                        .iter()
                        .zip(&self.ended)
                        .filter(|(w, (kind, _, ended))| {
                            w.key == o.key && *kind != Want::Read && ended < began
                        })
                        .filter_map(|(w, _)| w.result.as_ref().ok().map(|ok| ok.instance))
                        .max();
                    if newest_before.is_some_and(|n| n > ok.instance) {
                        return Err(format!(
                            "read op {} (begun at {began} ms) read instance {}, older than \
                             instance {newest_before:?} reported Ok before it began",
                            o.op, ok.instance
                        ));
                    }
                }
                Ok(ok) => {
                    let last = o.proposals.last().map(|(_, id)| *id);
                    let chosen = self.chosen(&o.key, ok.instance);
                    if last.is_none() || chosen != last {
                        return Err(format!(
                            "op {} reported Ok at instance {} but {chosen:?} was chosen there \
                             (its proposals: {:?})",
                            o.op, ok.instance, o.proposals
                        ));
                    }
                    let previous = self.chosen_value(&o.key, ok.instance - 1);
                    if previous != ok.previous {
                        return Err(format!(
                            "op {} replaced {:?} but instance {} decided {previous:?}",
                            o.op,
                            ok.previous,
                            ok.instance - 1
                        ));
                    }
                }
                Err(e) if e.is_definite() => {
                    for (instance, id) in &o.proposals {
                        if self.chosen(&o.key, *instance) == Some(*id) {
                            return Err(format!(
                                "op {} failed definitely ({e}) but its proposal {id:?} was \
                                 chosen at instance {instance}",
                                o.op
                            ));
                        }
                    }
                    if let CasError::PreconditionFailed { current } = e {
                        let decided = current.is_none()
                            || self
                                .slots
                                .iter()
                                .filter(|((k, _), _)| *k == o.key)
                                .any(|((k, i), _)| self.chosen_value(k, *i) == *current);
                        if !decided {
                            return Err(format!(
                                "op {} saw {current:?}, which was never chosen",
                                o.op
                            ));
                        }
                    }
                }
                Err(_) => {}
            }
        }
        Ok(())
    }

    fn tally(&self) -> [usize; 4] {
        let mut t = [0; 4];
        for o in &self.outcomes {
            let i = match &o.result {
                Ok(_) => 0,
                Err(CasError::PreconditionFailed { .. }) => 1,
                Err(CasError::Unavailable { .. }) => 2,
                Err(CasError::Indefinite { .. }) => 3,
            };
            t[i] += 1;
        }
        t
    }
}

fn plan(seed: u64, acceptors: u64, bug: Option<Bug>) -> Plan {
    let mut rng = seed ^ 0x5eed;
    Plan {
        acceptors,
        proposers: 2 + splitmix64(&mut rng) % 2,
        ops_per_proposer: 2 + splitmix64(&mut rng) % 3,
        loss_pm: splitmix64(&mut rng) % 200,
        dup_pm: splitmix64(&mut rng) % 200,
        latency_max_ms: 1 + splitmix64(&mut rng) % 40,
        crashes: splitmix64(&mut rng) % 4,
        proposer_restarts: splitmix64(&mut rng) % 3,
        bug,
        mixed: true,
    }
}

/// The seeds to run: `CONSENSUS_SEED` alone, or `CONSENSUS_SEEDS` (default `default`) from 0.
fn seeds(default: u64) -> Vec<u64> {
    if let Some(seed) = std::env::var("CONSENSUS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return vec![seed];
    }
    let n = std::env::var("CONSENSUS_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    (0..n).collect()
}

/// Runs every seed on `acceptors` acceptors; panics at the first failure with its seed, its
/// plan and the command that replays it.
fn run_seeds(test: &str, acceptors: u64) -> [usize; 4] {
    let mut total = [0; 4];
    for seed in seeds(1000) {
        let plan = plan(seed, acceptors, None);
        // A panic (a debug assertion of the core) is a failure of this seed like any other, and
        // must name the seed too.
        let run = std::panic::catch_unwind(|| {
            let mut sim = Sim::new(seed, plan.clone());
            sim.run().map(|()| sim.tally())
        });
        let failure = match run {
            Ok(Ok(tally)) => {
                for (t, n) in total.iter_mut().zip(tally) {
                    *t += n;
                }
                continue;
            }
            Ok(Err(e)) => e,
            Err(panic) => panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .map_or_else(|| "panicked".to_string(), |m| format!("panicked: {m}")),
        };
        panic!(
            "seed {seed} ({plan:?}): {failure}\nreproduce: CONSENSUS_SEED={seed} cargo test -p \
             converge-core --test consensus {test}"
        );
    }
    total
}

#[test]
fn at_most_one_value_is_chosen_per_instance_on_three_acceptors() {
    let [ok, precondition, unavailable, indefinite] = run_seeds(
        "at_most_one_value_is_chosen_per_instance_on_three_acceptors",
        3,
    );
    println!(
        "ok {ok}, precondition failed {precondition}, unavailable {unavailable}, indefinite {indefinite}"
    );
    // The runs exercise every outcome, so the checks above judged each kind.
    if seeds(1000).len() >= 300 {
        assert!(ok > 0 && precondition > 0 && unavailable + indefinite > 0);
    }
}

#[test]
fn at_most_one_value_is_chosen_per_instance_on_five_acceptors() {
    let [ok, precondition, unavailable, indefinite] = run_seeds(
        "at_most_one_value_is_chosen_per_instance_on_five_acceptors",
        5,
    );
    println!(
        "ok {ok}, precondition failed {precondition}, unavailable {unavailable}, indefinite {indefinite}"
    );
    if seeds(1000).len() >= 300 {
        assert!(ok > 0 && precondition > 0);
    }
}

#[test]
fn an_acceptor_that_forgets_its_promise_on_restart_lets_two_values_be_chosen() {
    // The same runs with the broken acceptor: some seed must break "at most one chosen" (or
    // another check), which shows that the checks can fail and that persisting the promise is
    // what keeps them.
    let found = (0..2000).find_map(|seed| {
        // Contention and many restarts: the bug needs a restart between a promise and a lower
        // ballot's accept at the acceptor that two majorities share.
        let mut p = plan(seed, 3, Some(Bug::ForgetsPromiseOnRestart));
        p.proposers = 3;
        p.ops_per_proposer = 4;
        p.crashes = 12;
        p.proposer_restarts = 0;
        // Compare-and-sets only: the contention the bug needs (reads and sets thin it out).
        p.mixed = false;
        Sim::new(seed, p).run().err().map(|e| (seed, e))
    });
    let Some((seed, e)) = found else {
        panic!("no seed of 2000 caught an acceptor that forgets its promises");
    };
    println!("seed {seed}: {e}");
    // The failure is the safety violation itself, not a run that merely stalled.
    assert!(e.contains("two proposals chosen"), "seed {seed}: {e}");
}
