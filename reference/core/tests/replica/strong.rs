//! Consensus registers through `Replica`: the seat race, a minority that cannot decide, an
//! acceptor that crashes and recovers its votes, the keyspace refusals, and the broken "fast
//! path" that must be observable.

use crate::pump::*;
use converge_core::replica::{Bug, ClientError, Consistency, KeyKind, Op, Scalar, Value};

fn seat(name: &str) -> Op {
    Op::Cas {
        from: None,
        to: Scalar::from(name),
    }
}

fn durable(c: &mut converge_core::replica::Config) {
    c.track_durable = true;
}

/// Over many seeds of a lossy, duplicating, reordering network: two regions race to reserve one
/// seat; at most one succeeds, a loser's error is definite unless its outcome is unknown, and a
/// read through a majority shows the winner (or nobody, if both failed definitely).
#[test]
fn two_regions_racing_for_a_seat_never_both_get_it() {
    let net = Net {
        loss_pm: 150,
        dup_pm: 150,
        latency_min_ms: 1,
        latency_max_ms: 40,
    };
    for seed in 0..200 {
        let mut sim = Sim::grid(3, 1, seed, net, durable);
        let a = sim.request(0, "seat-5a", seat("alice"), GQ, None);
        let b = sim.request(1, "seat-5a", seat("bob"), GQ, None);
        let ra = sim.wait(a, 20_000).expect("alice is answered");
        let rb = sim.wait(b, 20_000).expect("bob is answered");
        let won: Vec<&str> = [(&ra, "alice"), (&rb, "bob")]
            .into_iter()
            .filter(|(r, _)| r.result.is_ok())
            .map(|(_, n)| n)
            .collect();
        assert!(
            won.len() <= 1,
            "seed {seed}: both got the seat: {ra:?} {rb:?} (reproduce: this test, seed {seed})"
        );
        let read = sim.call(2, "seat-5a", Op::StrongGet, GQ, None);
        match (won.first(), &read.result) {
            (Some(w), Ok(done)) => assert_eq!(
                done.value,
                Value::Register(Scalar::from(*w)),
                "seed {seed}: the winner is not what a majority reads"
            ),
            (Some(_), Err(e)) => panic!("seed {seed}: the read failed: {e:?}"),
            (None, _) => {
                for r in [&ra, &rb] {
                    assert!(
                        matches!(
                            r.result,
                            Err(ClientError::PreconditionFailed { .. }
                                | ClientError::Unavailable { .. }
                                | ClientError::Indefinite)
                        ),
                        "seed {seed}: {r:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_minority_fails_definitely_while_the_majority_decides() {
    let mut sim = Sim::grid(3, 1, 5, CLEAN, durable);
    sim.isolate(&[2]);
    let r = sim.call(2, "seat", seat("carol"), GQ, None);
    assert_eq!(
        r.result,
        Err(ClientError::Unavailable {
            level: Consistency::GlobalQuorum
        }),
        "nothing reached an accept phase, so the failure is definite"
    );
    let r = sim.call(0, "seat", seat("alice"), GQ, None);
    assert!(r.result.is_ok(), "{r:?}");
    // The isolated region's local read has not learned the decision; a majority read must.
    let r = sim.call(2, "seat", Op::StrongGet, L1, None);
    assert_eq!(ok(&r).0, &Value::Absent);
    sim.heal();
    let r = sim.call(2, "seat", Op::StrongGet, GQ, None);
    assert_eq!(ok(&r).0, &Value::Register(Scalar::from("alice")));
    let r = sim.call(2, "seat", seat("carol"), GQ, None);
    assert_eq!(
        r.result,
        Err(ClientError::PreconditionFailed {
            current: Some(Scalar::from("alice"))
        })
    );
    // Now that it learned the decision, the local read shows it too.
    let r = sim.call(2, "seat", Op::StrongGet, L1, None);
    assert_eq!(ok(&r).0, &Value::Register(Scalar::from("alice")));
}

#[test]
fn sets_and_compare_and_sets_are_ordered_and_survive_a_crash() {
    let mut sim = Sim::grid(3, 1, 9, CLEAN, durable);
    let r = sim.call(0, "x", Op::StrongSet(int(1)), GQ, None);
    assert_eq!(ok(&r).0, &Value::Written);
    let r = sim.call(
        1,
        "x",
        Op::Cas {
            from: Some(int(1)),
            to: int(2),
        },
        GQ,
        None,
    );
    assert_eq!(ok(&r).0, &Value::Written);
    let before = sim.node(1).consensus_record(b"x");
    assert_eq!(before.decided.value, Some(int(2)));
    // Every vote and decision was on the disk before anything left: a restart keeps them.
    sim.crash(1);
    sim.restart(1);
    assert_eq!(sim.node(1).consensus_record(b"x"), before);
    assert!(
        sim.node(1).durable().meta.rounds_below > 0,
        "the round mark survived"
    );
    let r = sim.call(
        1,
        "x",
        Op::Cas {
            from: Some(int(2)),
            to: int(3),
        },
        GQ,
        None,
    );
    assert!(r.result.is_ok(), "{r:?}");
    let r = sim.call(
        0,
        "x",
        Op::Cas {
            from: Some(int(2)),
            to: int(4),
        },
        GQ,
        None,
    );
    assert_eq!(
        r.result,
        Err(ClientError::PreconditionFailed {
            current: Some(int(3))
        })
    );
}

#[test]
fn crdt_and_consensus_operations_do_not_mix_under_one_name_where_a_replica_can_tell() {
    let mut sim = Sim::grid(3, 1, 2, CLEAN, durable);
    sim.call(0, "seat", seat("alice"), GQ, None);
    let r = sim.call(0, "seat", Op::Put(int(7)), L1, None);
    assert_eq!(r.result, Err(ClientError::ConsensusKey));
    sim.call(0, "cart", Op::SetAdd(int(1)), L1, None);
    let r = sim.call(0, "cart", seat("bob"), GQ, None);
    assert_eq!(r.result, Err(ClientError::NotConsensusKey(KeyKind::Set)));
    // The register's value never moved through any of it.
    let r = sim.call(1, "seat", Op::StrongGet, GQ, None);
    assert_eq!(ok(&r).0, &Value::Register(Scalar::from("alice")));
}

#[test]
fn the_local_fast_path_bug_grants_one_seat_twice() {
    let mut sim = Sim::grid(3, 1, 4, CLEAN, |c| {
        c.track_durable = true;
        c.bug = Some(Bug::CasDecidedLocally);
    });
    let a = sim.request(0, "seat", seat("alice"), GQ, None);
    let b = sim.request(1, "seat", seat("bob"), GQ, None);
    let ra = sim.wait(a, 10_000).expect("answered");
    let rb = sim.wait(b, 10_000).expect("answered");
    assert!(
        ra.result.is_ok() && rb.result.is_ok(),
        "the bug must be observable: {ra:?} {rb:?}"
    );
}
