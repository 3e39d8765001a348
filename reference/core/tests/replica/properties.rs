//! Randomized schedules (proptest): convergence, sessions and GLOBAL_QUORUM registers under
//! seeded faults; a failing case prints its seed.

use crate::pump::*;
use converge_core::replica::{ClientError, Op, Scalar, SessionToken, Value};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

/// One step of a random schedule.
#[derive(Clone, Debug)]
enum Step {
    Write { at: usize, key: u8, op: u8, arg: i8 },
    Run(u16),
    Partition(u8),
    Heal,
    Crash(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0usize..4, 0u8..4, 0u8..5, any::<i8>())
            .prop_map(|(at, key, op, arg)| Step::Write { at, key, op, arg }),
        3 => (1u16..200).prop_map(Step::Run),
        1 => any::<u8>().prop_map(Step::Partition),
        1 => Just(Step::Heal),
        1 => (0usize..4).prop_map(Step::Crash),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever the interleaving, faults and crashes, once the network heals every replica ends
    /// with the same keyspace and frontier.
    #[test]
    fn random_schedules_converge(
        seed in any::<u64>(),
        topology in 0u8..4,
        steps in proptest::collection::vec(step(), 1..60),
    ) {
        let topology = crate::pump::topology(topology, 0);
        let net = Net { loss_pm: 100, dup_pm: 100, latency_min_ms: 1, latency_max_ms: 40 };
        let mut sim = Sim::grid(2, 2, seed, net, |c| {
            c.topology = topology;
            c.track_durable = true;
            c.oplog_entries_max = 16;
            c.ae_interval_ms = 300;
        });
        for s in steps {
            match s {
                Step::Write { at, key, op, arg } => {
                    if sim.nodes[at].is_none() {
                        sim.restart(at);
                    }
                    // Each key has one type, so every write is accepted.
                    let (name, op) = match (key, op) {
                        (0, _) => ("c", Op::Incr(u64::from(arg.unsigned_abs()))),
                        (1, 0..=2) => ("s", Op::SetAdd(int(i64::from(arg % 8)))),
                        (1, _) => ("s", Op::SetRemove(int(i64::from(arg % 8)))),
                        (2, _) => ("l", Op::Put(int(i64::from(arg)))),
                        _ => ("p", Op::PnAdd(i64::from(arg))),
                    };
                    sim.request(at, name, op, L1, None);
                }
                Step::Run(ms) => sim.run_for(u64::from(ms)),
                Step::Partition(mask) => {
                    let group: Vec<u64> = (0..4).filter(|i| mask & (1 << i) != 0).collect();
                    sim.isolate(&group);
                }
                Step::Heal => sim.heal(),
                Step::Crash(i) => sim.crash(i),
            }
        }
        for i in 0..4 {
            if sim.nodes[i].is_none() {
                sim.restart(i);
            }
        }
        sim.heal();
        sim.net = CLEAN;
        sim.settle(30_000);
    }
}

/// What a client does next in the session and register schedules.
#[derive(Clone, Debug)]
enum Act {
    /// Client `c` increments (or reads) key `k` at replica `at`.
    Session {
        c: usize,
        at: usize,
        k: u8,
        read: bool,
    },
    Run(u16),
    Partition(u8),
    Heal,
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        8 => (0usize..3, 0usize..6, 0u8..3, any::<bool>())
            .prop_map(|(c, at, k, read)| Act::Session { c, at, k, read }),
        2 => (1u16..300).prop_map(Act::Run),
        1 => any::<u8>().prop_map(Act::Partition),
        1 => Just(Act::Heal),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Three clients wander between six replicas (three regions of two) carrying their tokens,
    /// under loss, duplication, partitions, a tiny oplog (so anti-entropy claims frontiers) and
    /// every topology. A successful read never shows less than the session saw or wrote
    /// (monotonic reads, read-your-writes); failures are only the definite `SessionTimeout`.
    #[test]
    fn sessions_never_read_stale_under_faults(
        seed in any::<u64>(),
        topology in 0u8..4,
        acts in proptest::collection::vec(act(), 1..80),
    ) {
        let topology = crate::pump::topology(topology, 2);
        let net = Net { loss_pm: 100, dup_pm: 100, latency_min_ms: 1, latency_max_ms: 60 };
        let mut sim = Sim::grid(3, 2, seed, net, |c| {
            c.topology = topology;
            c.oplog_entries_max = 4;
            c.ae_interval_ms = 100;
            c.session_wait_ms = 400;
        });
        let mut tokens: Vec<Option<SessionToken>> = vec![None; 3];
        let mut seen: Vec<BTreeMap<u8, i128>> = vec![BTreeMap::new(); 3];
        for a in acts {
            match a {
                Act::Session { c, at, k, read } => {
                    let op = if read { Op::Get } else { Op::Incr(1) };
                    let r = sim.call(at, &format!("k{k}"), op, L1, tokens[c].clone());
                    match r.result {
                        Ok(done) => {
                            let n = match done.value {
                                Value::Counter(n) => n,
                                Value::Absent => 0,
                                other => panic!("unexpected {other:?}"),
                            };
                            let last = seen[c].get(&k).copied().unwrap_or(0);
                            prop_assert!(n >= last, "client {c} read {n} at {at} after seeing {last}");
                            if !read {
                                prop_assert!(n > last, "client {c}'s increment not visible");
                            }
                            seen[c].insert(k, n);
                            tokens[c] = Some(done.token);
                        }
                        Err(e) => prop_assert_eq!(e, ClientError::SessionTimeout),
                    }
                }
                Act::Run(ms) => sim.run_for(u64::from(ms)),
                Act::Partition(mask) => {
                    let group: Vec<u64> = (0..6).filter(|i| mask & (1 << i) != 0).collect();
                    sim.isolate(&group);
                }
                Act::Heal => sim.heal(),
            }
        }
        sim.heal();
        sim.net = CLEAN;
        sim.settle(30_000);
    }

    /// One client, one register, global-quorum reads and writes at random replicas while a
    /// random region is cut off. A read never returns a value older than the last acknowledged
    /// write: it returns that write, or one of the writes that failed with `Unavailable` (which
    /// may take effect later, at any time, as a write whose reply never came may), or nothing
    /// before any write was acknowledged.
    #[test]
    fn global_quorum_registers_never_read_behind_an_acknowledged_write(
        seed in any::<u64>(),
        ops in proptest::collection::vec((0usize..6, any::<bool>(), any::<u8>()), 1..40),
    ) {
        let net = Net { loss_pm: 50, dup_pm: 50, latency_min_ms: 1, latency_max_ms: 30 };
        let mut sim = Sim::grid(3, 2, seed, net, |c| c.quorum_timeout_ms = 500);
        let mut acked: Option<i64> = None;
        let mut failed: BTreeSet<i64> = BTreeSet::new();
        let mut next = 0i64;
        let mut completed = 0;
        let mut on_majority_side = 0;
        for (at, read, cut) in ops {
            sim.heal();
            // Cutting one region off leaves a majority of regions; cutting none is fine too.
            let mut cut_region = None;
            if cut % 2 == 0 {
                let region = u64::from(cut / 2 % 3);
                sim.isolate(&[region * 2, region * 2 + 1]);
                cut_region = Some(region as usize);
            }
            if cut_region != Some(at / 2) {
                on_majority_side += 1;
            }
            if read {
                let r = sim.call(at, "reg", Op::Get, GQ, None);
                if let Ok(done) = r.result {
                    completed += 1;
                    match done.value {
                        Value::Absent => prop_assert!(acked.is_none(), "read nothing after {acked:?}"),
                        Value::Register(Scalar::Int(v)) => prop_assert!(
                            Some(v) == acked || failed.contains(&v),
                            "read {v}; last acknowledged {acked:?}, failed {failed:?}"
                        ),
                        other => panic!("unexpected {other:?}"),
                    }
                }
            } else {
                next += 1;
                let r = sim.call(at, "reg", Op::Put(int(next)), GQ, None);
                if r.result.is_ok() {
                    completed += 1;
                    acked = Some(next);
                } else {
                    failed.insert(next);
                }
            }
        }
        // Not vacuous: operations issued on the majority side complete despite loss (queries
        // and batches are retransmitted), so reads are checked against acknowledged writes.
        prop_assert!(completed >= on_majority_side / 2, "{completed} of {on_majority_side} completed");
    }
}

/// What a client of the set-session schedule does next.
#[derive(Clone, Debug)]
enum SetAct {
    /// Client `c` adds its next element to (or reads) the set at replica `at`, at a level.
    Session {
        c: usize,
        at: usize,
        read: bool,
        level: u8,
    },
    Run(u16),
    Partition(u8),
    Heal,
}

fn set_act() -> impl Strategy<Value = SetAct> {
    prop_oneof![
        8 => (0usize..3, 0usize..6, any::<bool>(), 0u8..6)
            .prop_map(|(c, at, read, level)| SetAct::Session { c, at, read, level }),
        2 => (1u16..300).prop_map(SetAct::Run),
        1 => any::<u8>().prop_map(SetAct::Partition),
        1 => Just(SetAct::Heal),
    ]
}

/// The four session guarantees as the conformance harness judges them on a grow-only set of
/// unique elements, over every read by anyone.
#[derive(Default)]
struct SessionJudge {
    /// Per client: its acknowledged adds, everything its reads returned, its last read.
    adds: Vec<BTreeSet<i64>>,
    read: Vec<BTreeSet<i64>>,
    last: Vec<BTreeSet<i64>>,
    /// Per element: what its client had added and read before adding it.
    before: BTreeMap<i64, BTreeSet<i64>>,
}

impl SessionJudge {
    fn new(clients: usize) -> Self {
        SessionJudge {
            adds: vec![BTreeSet::new(); clients],
            read: vec![BTreeSet::new(); clients],
            last: vec![BTreeSet::new(); clients],
            before: BTreeMap::new(),
        }
    }

    fn adding(&mut self, c: usize, x: i64) {
        let seen = self.adds[c].union(&self.read[c]).copied().collect();
        self.before.insert(x, seen);
    }

    /// Monotonic writes and writes-follow-reads: a set showing an add shows what its client
    /// had added and read before it.
    fn shown(&self, shown: &BTreeSet<i64>) -> Result<(), String> {
        for x in shown {
            if let Some(before) = self.before.get(x)
                && !before.is_subset(shown)
            {
                let missing: Vec<_> = before.difference(shown).collect();
                return Err(format!("shows {x} but not {missing:?}, observed before it"));
            }
        }
        Ok(())
    }

    /// Read-your-writes and monotonic reads for client `c`'s read.
    fn client_read(&mut self, c: usize, shown: BTreeSet<i64>) -> Result<(), String> {
        self.shown(&shown)?;
        if !self.adds[c].is_subset(&shown) || !self.last[c].is_subset(&shown) {
            return Err(format!("client {c} read {shown:?}, older than its session"));
        }
        self.read[c].extend(shown.iter().copied());
        self.last[c] = shown;
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// The session workload, judged on every read: three clients add unique elements to one set
    /// and read it at random replicas and levels, carrying their tokens, and after every step
    /// every replica's state is read as a token-less client would — under loss, duplication,
    /// partitions, a tiny oplog (so anti-entropy ships keys and claims frontiers), global-quorum
    /// reads that write back, and every topology. No read shows an add without its client's
    /// earlier adds and reads (causal delivery, and per-key closure of state joined whole).
    #[test]
    fn every_read_shows_an_add_with_everything_its_session_observed_before(
        seed in any::<u64>(),
        topology in 0u8..4,
        acts in proptest::collection::vec(set_act(), 1..80),
    ) {
        let topology = crate::pump::topology(topology, 1);
        let net = Net { loss_pm: 100, dup_pm: 100, latency_min_ms: 1, latency_max_ms: 60 };
        let mut sim = Sim::grid(3, 2, seed, net, |c| {
            c.topology = topology;
            c.oplog_entries_max = 4;
            c.ae_interval_ms = 100;
            c.session_wait_ms = 400;
            c.quorum_timeout_ms = 500;
        });
        let mut judge = SessionJudge::new(3);
        let mut tokens: Vec<Option<SessionToken>> = vec![None; 3];
        let mut next = 0i64;
        for a in acts {
            match a {
                SetAct::Session { c, at, read, level } => {
                    let level = match level {
                        0..=2 => L1,
                        3 | 4 => LQ,
                        _ => GQ,
                    };
                    let op = if read {
                        Op::Get
                    } else {
                        next += 1;
                        judge.adding(c, next);
                        Op::SetAdd(int(next))
                    };
                    let r = sim.call(at, "s", op, level, tokens[c].clone());
                    if let Ok(done) = r.result {
                        tokens[c] = Some(done.token);
                        if read {
                            let shown = match done.value {
                                Value::Absent => BTreeSet::new(),
                                Value::Set(v) => v.into_iter().map(|x| match x {
                                    Scalar::Int(n) => n,
                                    other => panic!("unexpected {other:?}"),
                                }).collect(),
                                other => panic!("unexpected {other:?}"),
                            };
                            let verdict = judge.client_read(c, shown);
                            prop_assert!(verdict.is_ok(), "{:?}", verdict);
                        } else {
                            judge.adds[c].insert(next);
                        }
                    }
                }
                SetAct::Run(ms) => sim.run_for(u64::from(ms)),
                SetAct::Partition(mask) => {
                    let group: Vec<u64> = (0..6).filter(|i| mask & (1 << i) != 0).collect();
                    sim.isolate(&group);
                }
                SetAct::Heal => sim.heal(),
            }
            for i in 0..6 {
                let verdict = judge.shown(&set_at(&sim, i, "s"));
                prop_assert!(verdict.is_ok(), "replica {}: {:?}", i, verdict);
            }
        }
        sim.heal();
        sim.net = CLEAN;
        sim.settle(30_000);
        for i in 0..6 {
            let verdict = judge.shown(&set_at(&sim, i, "s"));
            prop_assert!(verdict.is_ok(), "replica {}: {:?}", i, verdict);
        }
    }
}
