//! Hand-written scenarios: one fault, topology or bug each, checked against what the
//! protocol promises.

use crate::pump::*;
use converge_core::ReplicaId;
use converge_core::replica::{
    Bug, ClientError, Config, Consistency, KeyKind, Op, Replica, Request, Scalar, SessionToken,
    Topology, Value,
};
use std::collections::{BTreeMap, BTreeSet};

#[test]
fn replicas_converge_after_a_partition_heals() {
    let mut sim = Sim::grid(3, 1, 7, CLEAN, |_| {});
    for i in 0..3 {
        sim.isolate(&[i as u64]);
    }
    for i in 0..3 {
        for n in 0..5 {
            sim.call(i, "hits", Op::Incr(1), L1, None);
            sim.call(i, "cart", Op::SetAdd(int((i * 10 + n) as i64)), L1, None);
        }
        sim.call(
            i,
            "name",
            Op::Put(Scalar::from(format!("r{i}").as_str())),
            L1,
            None,
        );
    }
    sim.run_for(500);
    assert!(!sim.converged());
    sim.heal();
    sim.settle(5_000);
    for i in 0..3 {
        assert_eq!(value(&sim, i, "hits"), Value::Counter(15));
        let Value::Set(cart) = value(&sim, i, "cart") else {
            panic!("set expected")
        };
        assert_eq!(cart.len(), 15);
    }
    // One register winner everywhere.
    assert_eq!(value(&sim, 0, "name"), value(&sim, 2, "name"));
}

#[test]
fn apply_is_idempotent_under_duplication_loss_and_reordering() {
    let net = Net {
        loss_pm: 100,
        dup_pm: 300,
        latency_min_ms: 1,
        latency_max_ms: 40,
    };
    let mut sim = Sim::grid(3, 1, 11, net, |c| c.batch_entries_max = 4);
    for n in 0..60 {
        sim.request(n % 3, "c", Op::Incr(1), L1, None);
        sim.run_for(3);
    }
    sim.net = CLEAN;
    sim.settle(20_000);
    for i in 0..3 {
        assert_eq!(value(&sim, i, "c"), Value::Counter(60));
    }
    let duplicates: u64 = (0..3)
        .map(|i| sim.node(i).stats().counters.entries_duplicate)
        .sum();
    assert!(duplicates > 0, "duplicates were delivered");
    let retransmits: u64 = (0..3)
        .map(|i| sim.node(i).stats().counters.retransmits)
        .sum();
    assert!(retransmits > 0, "losses were repaired by retransmission");
}

#[test]
fn the_apply_without_dedup_bug_over_counts_under_duplication() {
    let net = Net {
        loss_pm: 0,
        dup_pm: 500,
        latency_min_ms: 1,
        latency_max_ms: 20,
    };
    let mut sim = Sim::grid(3, 1, 3, net, |c| c.bug = Some(Bug::ApplyWithoutDedup));
    for n in 0..30 {
        sim.request(n % 3, "c", Op::Incr(1), L1, None);
        sim.run_for(2);
    }
    sim.run_for(3_000);
    let Value::Counter(v) = value(&sim, 0, "c") else {
        panic!("counter expected")
    };
    assert!(v > 30, "the bug must be observable: counter {v}");
}

#[test]
fn local_quorum_acks_with_a_region_majority_and_fails_definitely_without_one() {
    let mut sim = Sim::grid(1, 3, 5, CLEAN, |_| {});
    let r = sim.call(0, "k", Op::Incr(1), LQ, None);
    assert_eq!(ok(&r).0, &Value::Counter(1));
    // One peer cut: a majority (2 of 3) still holds the write.
    sim.isolate(&[2]);
    let r = sim.call(0, "k", Op::Incr(1), LQ, None);
    assert!(r.result.is_ok());
    // Both peers cut: the level cannot be met; a definite error by the deadline.
    sim.isolate(&[1]);
    let id = sim.request(0, "k", Op::Incr(1), LQ, None);
    let r = sim.wait(id, 10_000).expect("answered by the deadline");
    assert_eq!(
        r.result,
        Err(ClientError::Unavailable {
            level: Consistency::LocalQuorum
        })
    );
    assert_eq!(sim.node(0).stats().counters.quorum_timeouts, 1);
    // Local-quorum reads need answers from a majority too.
    let r = sim.call(0, "k", Op::Get, LQ, None);
    assert!(matches!(r.result, Err(ClientError::Unavailable { .. })));
    sim.heal();
    let r = sim.call(1, "k", Op::Get, LQ, None);
    assert_eq!(ok(&r).0, &Value::Counter(3));
}

#[test]
fn global_quorum_needs_a_majority_of_regions() {
    let mut sim = Sim::grid(3, 2, 9, CLEAN, |_| {});
    let r = sim.call(0, "k", Op::Put(int(1)), GQ, None);
    assert_eq!(ok(&r).0, &Value::Written);
    // Region 0 alone (replicas 0 and 1) is not a majority of regions.
    sim.isolate(&[0, 1]);
    let r = sim.call(0, "k", Op::Put(int(2)), GQ, None);
    assert_eq!(
        r.result,
        Err(ClientError::Unavailable {
            level: Consistency::GlobalQuorum
        })
    );
    let r = sim.call(1, "k", Op::Get, GQ, None);
    assert!(matches!(r.result, Err(ClientError::Unavailable { .. })));
    // The majority side goes on.
    let r = sim.call(2, "k", Op::Put(int(3)), GQ, None);
    assert!(r.result.is_ok());
    let r = sim.call(5, "k", Op::Get, GQ, None);
    assert_eq!(ok(&r).0, &Value::Register(int(3)));
}

#[test]
fn a_global_quorum_read_sees_a_completed_global_quorum_write_through_any_quorum() {
    // Three regions of one replica. Replica 0 writes while cut from replica 2, so only 0 and 1
    // hold the write; replica 2 then reads while still cut from 0: its quorum {1, 2} meets the
    // write's quorum {0, 1} in replica 1.
    let mut sim = Sim::grid(3, 1, 13, CLEAN, |c| c.ae_interval_ms = 1_000_000);
    sim.cut_link(0, 2);
    let r = sim.call(0, "reg", Op::Put(int(42)), GQ, None);
    assert!(r.result.is_ok());
    assert_eq!(
        value(&sim, 2, "reg"),
        Value::Absent,
        "2 has not received it"
    );
    let r = sim.call(2, "reg", Op::Get, GQ, None);
    assert_eq!(ok(&r).0, &Value::Register(int(42)));
    // A later global-quorum write from 2 wins over 42 everywhere.
    let r = sim.call(2, "reg", Op::Put(int(43)), GQ, None);
    assert!(r.result.is_ok());
    let r = sim.call(1, "reg", Op::Get, GQ, None);
    assert_eq!(ok(&r).0, &Value::Register(int(43)));
}

#[test]
fn a_session_token_makes_a_read_wait_until_covered_never_stale() {
    let mut sim = Sim::grid(2, 1, 17, CLEAN, |c| c.session_wait_ms = 2_000);
    sim.isolate(&[0]);
    let r = sim.call(0, "k", Op::Put(int(1)), L1, None);
    let token = ok(&r).1.clone();
    // Replica 1 has not seen the write: the read waits instead of answering stale.
    let id = sim.request(1, "k", Op::Get, L1, Some(token.clone()));
    sim.run_for(500);
    assert!(
        !sim.replies.contains_key(&id),
        "no stale answer while waiting"
    );
    sim.heal();
    let r = sim.wait(id, 3_000).expect("answered once covered");
    assert_eq!(ok(&r).0, &Value::Register(int(1)));
    assert_eq!(sim.node(1).stats().counters.session_waits, 1);
}

#[test]
fn a_session_token_never_covered_gives_a_definite_error() {
    let mut sim = Sim::grid(2, 1, 19, CLEAN, |c| c.session_wait_ms = 300);
    sim.isolate(&[0]);
    let r = sim.call(0, "k", Op::Put(int(1)), L1, None);
    let token = ok(&r).1.clone();
    let r = sim.call(1, "k", Op::Get, L1, Some(token));
    assert_eq!(r.result, Err(ClientError::SessionTimeout));
    assert_eq!(sim.node(1).stats().counters.session_timeouts, 1);
}

#[test]
fn the_read_ignores_token_bug_reads_stale() {
    let mut sim = Sim::grid(2, 1, 19, CLEAN, |c| c.bug = Some(Bug::ReadIgnoresToken));
    sim.isolate(&[0]);
    let r = sim.call(0, "k", Op::Put(int(1)), L1, None);
    let token = ok(&r).1.clone();
    let r = sim.call(1, "k", Op::Get, L1, Some(token));
    assert_eq!(ok(&r).0, &Value::Absent, "the bug must be observable");
}

#[test]
fn read_your_writes_and_monotonic_reads_hold_when_the_client_moves_regions() {
    let net = Net {
        loss_pm: 0,
        dup_pm: 0,
        latency_min_ms: 20,
        latency_max_ms: 80,
    };
    let mut sim = Sim::grid(3, 2, 23, net, |_| {});
    let mut token = None;
    let mut last_seen = 0i128;
    let mut state = 7u64;
    for step in 0..40 {
        let at = (splitmix(&mut state) % 6) as usize;
        let r = if step % 2 == 0 {
            sim.call(at, "views", Op::Incr(1), L1, token.clone())
        } else {
            sim.call(at, "views", Op::Get, L1, token.clone())
        };
        let (v, t) = ok(&r);
        let Value::Counter(n) = v else {
            panic!("counter expected")
        };
        // Monotonic reads and read-your-writes: never below what the session saw or did.
        assert!(
            *n >= last_seen,
            "step {step}: read {n} after seeing {last_seen}"
        );
        if step % 2 == 0 {
            assert!(
                *n > last_seen,
                "step {step}: the increment itself is visible"
            );
        }
        last_seen = *n;
        token = Some(t.clone());
        sim.run_for(1);
    }
}

#[test]
fn writes_follow_reads_orders_a_moved_write_after_what_the_session_read() {
    let mut sim = Sim::grid(3, 1, 29, CLEAN, |_| {});
    // A register written at 0; the session reads it at 0, then writes at 2 right away.
    sim.call(0, "r", Op::Put(int(1)), L1, None);
    let r = sim.call(0, "r", Op::Get, L1, None);
    let token = ok(&r).1.clone();
    let r = sim.call(2, "r", Op::Put(int(2)), L1, Some(token));
    assert!(r.result.is_ok());
    sim.settle(5_000);
    for i in 0..3 {
        assert_eq!(value(&sim, i, "r"), Value::Register(int(2)));
    }
}

/// A session adds e1 at A, then e2 (and an increment of another key) at B carrying A's token.
/// C hears from B before it hears from A: it must not show e2 — nor the other key's increment —
/// to a reader without the writer's token until it holds e1. Before causal delivery C applied
/// B's entries on arrival, and such a read showed {e2} (monotonic writes and writes-follow-reads
/// broken for every other client).
#[test]
fn a_write_is_not_visible_before_the_writes_its_session_depended_on() {
    let (a, b, c) = (0, 1, 2);
    let mut sim = Sim::grid(3, 1, 71, CLEAN, |c| c.ae_interval_ms = 1_000_000);
    // A's stream to C is cut, so C can learn of e1 only later.
    sim.cut_link(a as u64, c as u64);
    let r = sim.call(a, "s", Op::SetAdd(int(1)), L1, None);
    let t1 = ok(&r).1.clone();
    // B waits until it covers A:1, then applies e2 as its entry B:1, and the increment as B:2.
    let r = sim.call(b, "s", Op::SetAdd(int(2)), L1, Some(t1));
    let t2 = ok(&r).1.clone();
    let r = sim.call(b, "other", Op::Incr(1), L1, Some(t2));
    assert!(r.result.is_ok());
    sim.run_for(100);
    // A reader without a token at C sees neither e2 nor the increment.
    let r = sim.call(c, "s", Op::Get, L1, None);
    assert_eq!(ok(&r).0, &Value::Absent, "e2 shown before e1");
    let r = sim.call(c, "other", Op::Get, L1, None);
    assert_eq!(ok(&r).0, &Value::Absent, "B:2 shown before A:1");
    // Because B's entries arrived and wait, parked, for A:1.
    assert_eq!(
        sim.node(c).frontier().get(ReplicaId(b as u64)),
        0,
        "B's entries wait at C for A:1"
    );
    assert_eq!(sim.node(c).stats().parked, 2, "B:1 and B:2 are parked");
    assert!(sim.node(c).stats().counters.entries_parked >= 2);
    // Once A's stream gets through (go-back-N re-sends it), C applies A:1 and then B's parked
    // entries, in causal order.
    sim.heal();
    sim.settle(5_000);
    assert_eq!(set_at(&sim, c, "s"), BTreeSet::from([1, 2]));
    assert_eq!(value(&sim, c, "other"), Value::Counter(1));
    assert_eq!(sim.node(c).stats().parked, 0);
}

/// Through relays: outside the full mesh most entries are forwarded along their origin's
/// spanning tree, and the trees of two origins differ, so a write and the one it depends on reach
/// a replica over different paths and links. Whatever the loss, duplication and reordering, no
/// replica ever shows one of a session's writes before its earlier ones, and everything converges
/// (no replica waits forever on a dependency).
#[test]
fn causal_delivery_holds_through_forwarding_under_loss_and_reordering() {
    for topology in [
        Topology::Ring,
        Topology::HubSpoke {
            hub: converge_core::replica::RegionId(0),
        },
        Topology::Hierarchical,
    ] {
        let net = Net {
            loss_pm: 150,
            dup_pm: 100,
            latency_min_ms: 1,
            latency_max_ms: 80,
        };
        let mut sim = Sim::grid(4, 2, 73, net, |c| {
            c.topology = topology;
            c.ae_interval_ms = 1_000_000;
            c.retransmit_ms = 50;
            c.session_wait_ms = 10_000;
        });
        // One session writes 1, 2, 3, ... hopping between replicas; after each write every
        // replica is checked: it shows a prefix of the session's writes.
        let mut token = None;
        let mut state = 5u64;
        for n in 1..=24i64 {
            let at = (splitmix(&mut state) % 8) as usize;
            let r = sim.call(at, "s", Op::SetAdd(int(n)), L1, token.clone());
            token = Some(ok(&r).1.clone());
            for _ in 0..4 {
                sim.run_for(7);
                for i in 0..8 {
                    let shown = set_at(&sim, i, "s");
                    let prefix: BTreeSet<i64> = (1..=shown.len() as i64).collect();
                    assert_eq!(shown, prefix, "{topology:?}: replica {i} shows a gap");
                }
            }
        }
        sim.net = CLEAN;
        sim.settle(20_000);
        assert_eq!(set_at(&sim, 0, "s").len(), 24, "{topology:?}");
    }
}

/// An entry names only the dependencies its origin's earlier entries did not: none without a
/// token, the token's new part otherwise, and nothing that only repeats what was sent. The
/// dependencies are part of the durable image, and recovery refuses an entry whose dependencies
/// the replica does not hold.
#[test]
fn entries_name_only_dependencies_not_already_implied() {
    let mut sim = Sim::grid(3, 1, 79, CLEAN, |c| c.ae_interval_ms = 1_000_000);
    // Keep B's entries in its log: C is cut from B and never acknowledges them.
    sim.cut_link(1, 2);
    let r = sim.call(0, "k", Op::Incr(1), L1, None);
    let t = ok(&r).1.clone();
    let r = sim.call(1, "k", Op::Incr(1), L1, Some(t.clone()));
    let t = ok(&r).1.clone();
    sim.call(1, "k", Op::Incr(1), L1, Some(t));
    sim.call(1, "k", Op::Incr(1), L1, None);
    let r = sim.call(0, "k", Op::Incr(1), L1, None);
    let t0 = ok(&r).1.clone();
    sim.run_for(50);
    sim.call(1, "k", Op::Incr(1), L1, Some(t0));
    let log: Vec<(u64, Vec<(ReplicaId, u64)>)> = sim
        .node(1)
        .durable()
        .oplog
        .iter()
        .filter(|e| e.origin == ReplicaId(1))
        .map(|e| (e.seq, e.deps.iter().collect()))
        .collect();
    let a = ReplicaId(0);
    assert_eq!(
        log,
        vec![
            (1, vec![(a, 1)]),
            // B:1 already named A:1, and B's own writes are implied.
            (2, vec![]),
            (3, vec![]),
            // A second write of A's, newly observed by the session.
            (4, vec![(a, 2)]),
        ]
    );
    // The entries keep their dependencies through a crash and recovery.
    let mut durable = sim.node(1).durable();
    assert_eq!(
        Replica::recover(sim.configs[1].clone(), durable.clone(), sim.now)
            .expect("recovers")
            .durable()
            .oplog,
        durable.oplog
    );
    // An image whose retained entry depends on something its frontier does not hold is refused.
    let e = durable
        .oplog
        .iter_mut()
        .find(|e| e.origin == ReplicaId(1))
        .expect("retained");
    e.deps.raise(ReplicaId(2), 1);
    assert_eq!(
        Replica::recover(sim.configs[1].clone(), durable, sim.now).err(),
        Some(converge_core::replica::RecoverError::Inconsistent(
            "oplog entry depends on entries not held"
        ))
    );
}

#[test]
fn a_peer_behind_the_truncation_point_is_repaired_by_anti_entropy() {
    let mut sim = Sim::grid(3, 1, 31, CLEAN, |c| {
        c.oplog_entries_max = 8;
        c.ae_interval_ms = 200;
    });
    sim.isolate(&[2]);
    let mut token = None;
    for n in 0..50 {
        let r = sim.call(0, &format!("k{}", n % 20), Op::Incr(1), L1, None);
        token = Some(ok(&r).1.clone());
    }
    sim.run_for(100);
    let s0 = sim.node(0).stats();
    assert!(
        s0.counters.truncated_cap > 0,
        "the cap truncated entries 2 needs"
    );
    assert!(s0.oplog_len <= 8);
    sim.heal();
    sim.settle(10_000);
    let s2 = sim.node(2).stats().counters;
    assert!(s2.ae_keys_repaired > 0, "anti-entropy shipped the keys");
    assert!(
        s2.ae_frontier_claims > 0,
        "and the round claimed the frontier"
    );
    assert_eq!(sim.node(2).frontier().get(ReplicaId(0)), 50);
    // The session token from replica 0 is now covered at replica 2.
    let r = sim.call(2, "k0", Op::Get, L1, token);
    assert_eq!(ok(&r).0, &Value::Counter(3));
    // Once 2 acknowledged past the gap, 0 truncated what everyone has.
    assert!(
        sim.node(0)
            .stats()
            .peer_lag
            .iter()
            .all(|&(_, lag)| lag == 0)
    );
}

#[test]
fn the_ae_skips_subtree_bug_claims_a_frontier_it_does_not_hold() {
    let mut sim = Sim::grid(2, 1, 37, CLEAN, |c| {
        c.oplog_entries_max = 4;
        c.ae_interval_ms = 200;
        c.bug = Some(Bug::AeSkipsSubtree);
    });
    sim.isolate(&[1]);
    let mut token = None;
    for n in 0..20 {
        let r = sim.call(0, &format!("k{n}"), Op::Incr(1), L1, None);
        token = Some(ok(&r).1.clone());
    }
    sim.heal();
    sim.run_for(2_000);
    // Replica 1 claims 0's frontier, so the token is "covered" — and the read is stale.
    let r = sim.call(1, "k0", Op::Get, L1, token);
    assert_eq!(ok(&r).0, &Value::Absent, "the bug must be observable");
}

#[test]
fn every_topology_delivers_every_write_to_every_replica() {
    for topology in [
        Topology::FullMesh,
        Topology::HubSpoke {
            hub: converge_core::replica::RegionId(1),
        },
        Topology::Ring,
        Topology::Hierarchical,
    ] {
        let mut sim = Sim::grid(4, 2, 41, CLEAN, |c| {
            c.topology = topology;
            c.ae_interval_ms = 1_000_000;
        });
        for i in 0..8 {
            sim.call(i, "all", Op::SetAdd(int(i as i64)), L1, None);
        }
        sim.settle(5_000);
        for i in 0..8 {
            assert_eq!(
                value(&sim, i, "all"),
                Value::Set((0..8).map(int).collect()),
                "{topology:?} at replica {i}"
            );
        }
        // Quorum levels work through relays too.
        let r = sim.call(7, "g", Op::Put(int(5)), GQ, None);
        assert!(r.result.is_ok(), "{topology:?}: {:?}", r.result);
        let r = sim.call(2, "g", Op::Get, GQ, None);
        assert_eq!(ok(&r).0, &Value::Register(int(5)), "{topology:?}");
        let r = sim.call(3, "g2", Op::Incr(1), LQ, None);
        assert!(r.result.is_ok(), "{topology:?}");
    }
}

#[test]
fn a_replica_recovered_from_durable_state_loses_no_acknowledged_write() {
    let net = Net {
        loss_pm: 50,
        dup_pm: 50,
        latency_min_ms: 1,
        latency_max_ms: 30,
    };
    let mut sim = Sim::grid(3, 1, 43, net, |c| c.track_durable = true);
    let mut acked: BTreeMap<String, i128> = BTreeMap::new();
    let mut state = 99u64;
    for step in 0..200 {
        let i = (splitmix(&mut state) % 3) as usize;
        if sim.nodes[i].is_none() {
            sim.restart(i);
            continue;
        }
        let key = format!("c{}", splitmix(&mut state) % 5);
        let level = if step % 4 == 0 { LQ } else { L1 };
        let id = sim.request(i, &key, Op::Incr(1), level, None);
        if let Some(r) = sim.wait(id, 3_000)
            && r.result.is_ok()
        {
            *acked.entry(key).or_default() += 1;
        }
        if splitmix(&mut state).is_multiple_of(10) {
            sim.crash(i);
        }
    }
    for i in 0..3 {
        if sim.nodes[i].is_none() {
            sim.restart(i);
        }
    }
    sim.net = CLEAN;
    sim.settle(20_000);
    for (key, n) in &acked {
        for i in 0..3 {
            let Value::Counter(v) = value(&sim, i, key) else {
                panic!("counter expected")
            };
            assert!(
                v >= *n,
                "replica {i} lost acknowledged increments of {key}: {v} < {n}"
            );
        }
    }
    // And the recovered replicas' durable images match their live state.
    for i in 0..3 {
        let live = sim.node(i).durable();
        assert_eq!(live.keys, sim.disks[i].keys, "replica {i} keys");
        assert_eq!(live.meta, sim.disks[i].meta, "replica {i} meta");
        assert_eq!(live.oplog, sim.disks[i].oplog, "replica {i} oplog");
    }
}

#[test]
fn wrong_types_are_refused_and_concurrent_type_conflicts_resolve_everywhere() {
    let mut sim = Sim::grid(2, 1, 47, CLEAN, |_| {});
    sim.call(0, "k", Op::Incr(1), L1, None);
    let r = sim.call(0, "k", Op::SetAdd(int(1)), L1, None);
    assert_eq!(
        r.result,
        Err(ClientError::WrongType {
            key: KeyKind::Counter,
            op: KeyKind::Set
        })
    );
    // Concurrent creation with two types: the later kind wins at every replica.
    sim.isolate(&[0]);
    sim.call(0, "t", Op::Incr(1), L1, None);
    sim.call(1, "t", Op::Put(int(9)), L1, None);
    sim.heal();
    sim.settle(5_000);
    assert_eq!(value(&sim, 0, "t"), Value::Register(int(9)));
    assert_eq!(value(&sim, 1, "t"), Value::Register(int(9)));
}

#[test]
fn multi_value_writes_supersede_what_the_client_read_even_elsewhere() {
    let mut sim = Sim::grid(2, 1, 53, CLEAN, |_| {});
    sim.isolate(&[0]);
    sim.call(
        0,
        "m",
        Op::MvPut {
            value: int(1),
            seen: Default::default(),
        },
        L1,
        None,
    );
    sim.call(
        1,
        "m",
        Op::MvPut {
            value: int(2),
            seen: Default::default(),
        },
        L1,
        None,
    );
    sim.heal();
    sim.settle(5_000);
    let r = sim.call(0, "m", Op::Get, L1, None);
    let (Value::Siblings { values, context }, token) = ok(&r) else {
        panic!("siblings expected")
    };
    assert_eq!(values, &vec![int(1), int(2)]);
    let seen = context.clone();
    let r = sim.call(
        1,
        "m",
        Op::MvPut {
            value: int(3),
            seen,
        },
        L1,
        Some(token.clone()),
    );
    assert!(r.result.is_ok());
    sim.settle(5_000);
    for i in 0..2 {
        let Value::Siblings { values, .. } = value(&sim, i, "m") else {
            panic!("siblings expected")
        };
        assert_eq!(values, vec![int(3)]);
    }
}

#[test]
fn overload_and_bad_tokens_are_typed_errors() {
    let mut sim = Sim::grid(3, 1, 59, CLEAN, |c| c.pending_max = 2);
    sim.isolate(&[0]);
    let a = sim.request(0, "k", Op::Incr(1), GQ, None);
    let b = sim.request(0, "k", Op::Incr(1), GQ, None);
    let c = sim.request(0, "k", Op::Incr(1), GQ, None);
    assert_eq!(sim.replies[&c].result, Err(ClientError::Overloaded));
    assert!(sim.wait(a, 5_000).is_some_and(|r| r.result.is_err()));
    assert!(sim.wait(b, 5_000).is_some_and(|r| r.result.is_err()));
    let bogus = SessionToken::from_frontier([(ReplicaId(77), 1)].into_iter().collect());
    let r = sim.call(0, "k", Op::Get, L1, Some(bogus));
    assert_eq!(r.result, Err(ClientError::BadToken));
}

#[test]
fn bad_peer_input_is_counted_and_changes_nothing() {
    let mut sim = Sim::grid(2, 1, 61, CLEAN, |_| {});
    sim.call(0, "k", Op::Incr(1), L1, None);
    sim.settle(1_000);
    let before = sim.node(1).clone();
    let node = sim.nodes[1].as_mut().expect("up");
    node.handle_message(10_000, ReplicaId(0), &[0xC7, 1, 99]);
    node.handle_message(10_000, ReplicaId(0), b"");
    node.handle_message(
        10_000,
        ReplicaId(0),
        &[0xC7, 1, 1, 1, 200, 200, 200, 200, 200],
    );
    // Decodes, but claims replica 1's own write number 9, never issued.
    let forged = converge_core::replica::PeerMsg::Ack(converge_core::replica::Ack {
        frontier: [(ReplicaId(1), 9)].into_iter().collect(),
        table: vec![],
    });
    node.handle_message(10_000, ReplicaId(0), &forged.encode());
    // From a replica outside the cluster.
    node.handle_message(10_000, ReplicaId(5), &forged.encode());
    let c = node.stats().counters;
    assert_eq!(c.decode_errors, 3);
    assert_eq!(c.invalid_messages, 2);
    assert_eq!(node.root_hash(), before.root_hash());
    assert_eq!(node.frontier(), before.frontier());
}

#[test]
fn time_going_backwards_is_clamped_and_counted() {
    let config = Config::grid(0, 1, 1);
    let mut r = Replica::new(config, 1_000).expect("valid");
    r.handle_request(
        500,
        Request {
            id: 1,
            key: b"k".as_slice().into(),
            op: Op::Put(int(1)),
            consistency: L1,
            token: None,
        },
    );
    assert_eq!(r.now_ms(), 1_000);
    assert_eq!(r.stats().counters.time_regressions, 1);
    assert!(r.poll_reply().is_some_and(|x| x.result.is_ok()));
}

#[test]
fn same_inputs_give_the_same_outputs() {
    let run = || {
        let net = Net {
            loss_pm: 100,
            dup_pm: 100,
            latency_min_ms: 1,
            latency_max_ms: 50,
        };
        let mut sim = Sim::grid(3, 1, 67, net, |_| {});
        for n in 0..40u64 {
            sim.request(
                (n % 3) as usize,
                &format!("k{}", n % 7),
                Op::SetAdd(int(n as i64)),
                L1,
                None,
            );
            sim.run_for(7);
        }
        sim.run_for(2_000);
        (sim.roots(), sim.delivered, sim.nodes.clone())
    };
    assert_eq!(run(), run());
}

#[test]
fn a_counter_operation_past_the_64_bit_range_is_refused_before_it_applies() {
    let mut sim = Sim::grid(2, 1, 67, CLEAN, |_| {});
    // Each kind of counter taken to the edge of i64, then one step past it.
    let cases = [
        ("g", Op::Incr(i64::MAX as u64), Op::Incr(1)),
        ("pn", Op::PnAdd(i64::MAX), Op::PnAdd(1)),
        ("pn-down", Op::PnAdd(-i64::MAX), Op::PnAdd(-2)),
        ("bounded", Op::BoundedAdd(i64::MAX), Op::BoundedAdd(1)),
    ];
    for (key, edge, _) in &cases {
        assert!(sim.call(0, key, edge.clone(), L1, None).result.is_ok());
    }
    sim.settle(2_000);
    let before: Vec<Value> = cases.iter().map(|(k, ..)| value(&sim, 0, k)).collect();
    let (root, frontier) = (sim.node(0).root_hash(), sim.node(0).frontier().clone());
    for (key, _, past) in &cases {
        let r = sim.call(0, key, past.clone(), L1, None);
        assert_eq!(
            r.result.map(|d| d.value),
            Err(ClientError::Overflow),
            "{key}"
        );
    }
    // Nothing was applied or logged locally (the frontier counts this replica's own writes),
    // so nothing can replicate: the peer still reads the values from before.
    assert_eq!(sim.node(0).root_hash(), root);
    assert_eq!(sim.node(0).frontier(), &frontier);
    sim.settle(2_000);
    for (i, (key, ..)) in cases.iter().enumerate() {
        assert_eq!(value(&sim, 0, key), before[i], "{key} at the writer");
        assert_eq!(value(&sim, 1, key), before[i], "{key} at the peer");
    }
    // A step back inside the range still applies.
    assert!(sim.call(0, "pn", Op::PnAdd(-1), L1, None).result.is_ok());
}
