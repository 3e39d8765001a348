//! Data residency: keys pinned to a set of regions (`Config::residency`).
//!
//! Four replicas in three regions (`0, 1` in region 0, `2` in region 1, `3` in region 2), one
//! pin (`eu:` to region 0, or to regions 0 and 1), every topology, random writes at random
//! replicas under loss, duplication, partitions, crashes and a tiny oplog (so anti-entropy
//! repairs and claims frontiers). The pump checks every transmit (no message names a key its
//! destination may not hold); after every step each replica outside the pin's regions holds no
//! pinned key in its keyspace, its oplog or its disk, and every request for a pinned key there
//! is refused. After the heal, the pin's replicas agree on the pinned keys, every replica on the
//! others, and every frontier is the same: redacted entries kept the logs gap-free.

use crate::pump::*;
use converge_core::ReplicaId;
use converge_core::replica::{ClientError, Config, Op, Pin, RegionId, Topology};
use proptest::prelude::*;

const REGIONS: [u32; 4] = [0, 0, 1, 2];
const KEYS: [&str; 4] = ["eu:anna", "eu:bob", "c", "s"];

fn configs(topology: Topology, pinned: &[u32]) -> Vec<Config> {
    let replicas: Vec<(ReplicaId, RegionId)> = REGIONS
        .iter()
        .enumerate()
        .map(|(i, &g)| (ReplicaId(i as u64), RegionId(g)))
        .collect();
    (0..REGIONS.len())
        .map(|i| {
            let mut c = Config::new(ReplicaId(i as u64), replicas.clone());
            c.topology = topology;
            c.track_durable = true;
            c.oplog_entries_max = 4;
            c.ae_interval_ms = 100;
            c.residency = vec![Pin {
                prefix: b"eu:".to_vec(),
                regions: pinned.iter().map(|&g| RegionId(g)).collect(),
            }];
            c
        })
        .collect()
}

fn allowed(pinned: &[u32], i: usize) -> bool {
    pinned.contains(&REGIONS[i])
}

/// Every replica outside the pin's regions, up or down, holds no pinned key anywhere.
fn assert_resident(sim: &Sim, pinned: &[u32]) {
    for i in (0..REGIONS.len()).filter(|&i| !allowed(pinned, i)) {
        if let Some(node) = &sim.nodes[i] {
            let held = node.forbidden_keys();
            assert!(held.is_empty(), "replica {i} holds pinned keys {held:?}");
            assert!(node.get(b"eu:anna").is_none() && node.get(b"eu:bob").is_none());
        }
        let disk = &sim.disks[i];
        assert!(
            disk.keys.iter().all(|(k, _)| !k.starts_with(b"eu:")),
            "replica {i} stored a pinned key"
        );
        assert!(
            disk.oplog
                .iter()
                .all(|e| e.redacted || !e.key.starts_with(b"eu:")),
            "replica {i} logged a pinned entry"
        );
    }
}

#[derive(Clone, Debug)]
enum Step {
    Write { at: usize, key: usize, arg: u8 },
    Run(u16),
    Partition(u8),
    Heal,
    Crash(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0usize..4, 0usize..4, any::<u8>()).prop_map(|(at, key, arg)| Step::Write { at, key, arg }),
        3 => (1u16..200).prop_map(Step::Run),
        1 => any::<u8>().prop_map(Step::Partition),
        1 => Just(Step::Heal),
        1 => (0usize..4).prop_map(Step::Crash),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn pinned_keys_never_reach_a_forbidden_region(
        seed in any::<u64>(),
        topology in 0u8..4,
        wide in any::<bool>(),
        steps in proptest::collection::vec(step(), 1..60),
    ) {
        let topology = crate::pump::topology(topology, 0);
        let pinned: &[u32] = if wide { &[0, 1] } else { &[0] };
        let net = Net { loss_pm: 100, dup_pm: 100, latency_min_ms: 1, latency_max_ms: 40 };
        let mut sim = Sim::new(configs(topology, pinned), seed, net);
        for s in steps {
            match s {
                Step::Write { at, key, arg } => {
                    if sim.nodes[at].is_none() {
                        sim.restart(at);
                    }
                    let name = KEYS[key];
                    let op = if name == "s" {
                        Op::SetAdd(int(i64::from(arg % 8)))
                    } else {
                        Op::Incr(u64::from(arg))
                    };
                    let id = sim.request(at, name, op, L1, None);
                    let reply = sim.replies.remove(&id).expect("a LOCAL_ONE write replies at once");
                    if name.starts_with("eu:") && !allowed(pinned, at) {
                        prop_assert_eq!(reply.result, Err(ClientError::NotResident));
                    } else {
                        prop_assert!(reply.result.is_ok(), "{:?}", reply);
                    }
                }
                Step::Run(ms) => sim.run_for(u64::from(ms)),
                Step::Partition(mask) => {
                    let group: Vec<u64> = (0..4).filter(|i| mask & (1 << i) != 0).collect();
                    sim.isolate(&group);
                }
                Step::Heal => sim.heal(),
                Step::Crash(i) => sim.crash(i),
            }
            assert_resident(&sim, pinned);
        }
        for i in 0..4 {
            if sim.nodes[i].is_none() {
                sim.restart(i);
            }
        }
        sim.heal();
        sim.net = CLEAN;
        let agreed = |sim: &Sim| {
            let frontier = sim.node(0).frontier().clone();
            (0..4).all(|i| sim.node(i).frontier() == &frontier)
                && KEYS.iter().all(|k| {
                    let holders: Vec<usize> = (0..4)
                        .filter(|&i| !k.starts_with("eu:") || allowed(pinned, i))
                        .collect();
                    let first = sim.node(holders[0]).get(k.as_bytes());
                    holders.iter().all(|&i| sim.node(i).get(k.as_bytes()) == first)
                })
        };
        let until = sim.now + 30_000;
        while !agreed(&sim) && sim.now < until {
            sim.run_for(50);
            assert_resident(&sim, pinned);
        }
        prop_assert!(agreed(&sim), "the replicas did not converge after the heal");
        assert_resident(&sim, pinned);
    }
}

/// A pinned key is refused, definitely, where it may not live, and where it may, so are the
/// operations that would carry it to every replica.
#[test]
fn requests_for_pinned_keys_are_refused_outside_their_regions() {
    let mut sim = Sim::new(configs(Topology::FullMesh, &[0]), 7, CLEAN);
    for (at, op, level, want) in [
        (3, Op::Incr(1), L1, Some(ClientError::NotResident)),
        (3, Op::Get, LQ, Some(ClientError::NotResident)),
        (0, Op::Get, GQ, Some(ClientError::ResidencyScope)),
        (0, Op::StrongGet, L1, Some(ClientError::ResidencyScope)),
        (0, Op::BoundedAdd(5), L1, Some(ClientError::ResidencyScope)),
        (0, Op::Incr(1), LQ, None),
    ] {
        let reply = sim.call(at, "eu:anna", op.clone(), level, None);
        match want {
            Some(err) => assert_eq!(reply.result, Err(err), "{op:?} at {at}"),
            None => assert!(reply.result.is_ok(), "{op:?} at {at}: {reply:?}"),
        }
    }
    sim.run_for(3_000);
    assert_eq!(
        value(&sim, 1, "eu:anna"),
        value(&sim, 0, "eu:anna"),
        "the pin's replicas share the key"
    );
    assert!(sim.node(3).get(b"eu:anna").is_none());
    assert!(
        sim.node(0).stats().counters.entries_redacted > 0,
        "the other regions got the entry redacted"
    );
    assert_eq!(sim.node(3).frontier(), sim.node(0).frontier());
}

/// The anti-entropy claim guard. Replica 2 (outside the pin) applied replica 0's pinned write
/// redacted, so its frontier covers it; replica 1 (inside) has not received it (its link to 0 is
/// cut). A round 1 ← 2 compares no pinned key, so claiming 2's frontier would make 1 say it
/// holds a write whose data it never got: a read there with the writer's session token would
/// answer without the write. The claim is withheld, the read waits (and times out, definitely),
/// and after the heal it sees the write.
#[test]
fn a_claim_that_would_cover_pinned_writes_the_puller_lacks_is_withheld() {
    let replicas = vec![
        (ReplicaId(0), RegionId(0)),
        (ReplicaId(1), RegionId(0)),
        (ReplicaId(2), RegionId(1)),
    ];
    let configs = (0..3)
        .map(|i| {
            let mut c = Config::new(ReplicaId(i), replicas.clone());
            c.ae_interval_ms = 1_000_000_000;
            c.session_wait_ms = 300;
            c.residency = vec![Pin {
                prefix: b"eu:".to_vec(),
                regions: [RegionId(0)].into_iter().collect(),
            }];
            c
        })
        .collect();
    let mut sim = Sim::new(configs, 3, CLEAN);
    sim.cut_link(0, 1);
    let wrote = sim.call(0, "eu:x", Op::Incr(5), L1, None);
    let token = ok(&wrote).1.clone();
    sim.run_for(100);
    assert_eq!(
        sim.node(2).frontier().get(ReplicaId(0)),
        1,
        "2 applied it redacted"
    );
    assert!(sim.node(2).get(b"eu:x").is_none());
    let now = sim.now;
    sim.nodes[1]
        .as_mut()
        .expect("up")
        .start_anti_entropy(now, ReplicaId(2));
    sim.drain(1);
    sim.run_for(100);
    let stats = sim.node(1).stats().counters;
    assert!(stats.ae_rounds_completed >= 1, "the round completed");
    let read = sim.call(1, "eu:x", Op::Get, L1, Some(token.clone()));
    assert_eq!(
        read.result,
        Err(ClientError::SessionTimeout),
        "never a stale read"
    );
    assert_eq!(sim.node(1).frontier().get(ReplicaId(0)), 0);
    assert_eq!(stats.ae_claims_withheld, 1, "the claim was withheld");
    sim.heal();
    sim.run_for(1_000);
    let read = sim.call(1, "eu:x", Op::Get, L1, Some(token));
    assert_eq!(ok(&read).0, &value(&sim, 0, "eu:x"));
}

/// A replica whose pins changed since it stored a key they now forbid refuses to recover,
/// rather than keep serving and replicating data that must not be in its region.
#[test]
fn a_store_holding_a_key_the_pins_now_forbid_is_refused_at_recovery() {
    let unpinned = |i: u64| {
        let mut c = Config::grid(i, 2, 1);
        c.track_durable = true;
        c
    };
    let mut sim = Sim::new(vec![unpinned(0), unpinned(1)], 5, CLEAN);
    assert!(sim.call(1, "eu:x", Op::Incr(2), L1, None).result.is_ok());
    sim.run_for(100);
    let mut pinned = unpinned(1);
    pinned.residency = vec![Pin {
        prefix: b"eu:".to_vec(),
        regions: [RegionId(0)].into_iter().collect(),
    }];
    let refused = converge_core::replica::Replica::recover(pinned, sim.disks[1].clone(), 200);
    assert!(
        matches!(
            &refused,
            Err(converge_core::replica::RecoverError::Forbidden { count: 1, first }) if first == "eu:x"
        ),
        "{:?}",
        refused.map(|r| r.id())
    );
    // Replica 0 may hold it, and recovers with the pins.
    let mut zero = unpinned(0);
    zero.residency = vec![Pin {
        prefix: b"eu:".to_vec(),
        regions: [RegionId(0)].into_iter().collect(),
    }];
    assert!(converge_core::replica::Replica::recover(zero, sim.disks[0].clone(), 200).is_ok());
}
