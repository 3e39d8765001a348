//! The replica's decoders on hostile input, and `KeyState`'s lattice laws.
//!
//! These stand in for a libFuzzer target until one is wired into `fuzz/` (see the replica
//! module's report): arbitrary and mutated bytes must never panic a decoder or a replica, and
//! what decodes must re-encode to a fixed point.

use converge_core::replica::{
    Config, Consistency, Durable, Entry, KeyState, Op, PeerMsg, Replica, Request, Scalar,
    SessionToken,
};
use converge_core::{Lattice, ReplicaId};
use proptest::prelude::*;

/// Real messages of every kind, from two replicas exchanging writes of every type (some under a
/// session token, so that their entries carry dependencies), a quorum read and an anti-entropy
/// round.
fn real_messages() -> Vec<Vec<u8>> {
    let mut nodes: Vec<Replica> = (0..2)
        .map(|i| {
            let mut c = Config::grid(i, 2, 1);
            c.compress_threshold_bytes = 64;
            Replica::new(c, 0).expect("valid config")
        })
        .collect();
    let ops = [
        Op::Incr(3),
        Op::PnAdd(-2),
        Op::SetAdd(Scalar::Int(5)),
        Op::SetAdd(Scalar::bytes("x")),
        Op::SetRemove(Scalar::Int(5)),
        Op::Put(Scalar::bytes("v")),
        Op::MvPut {
            value: Scalar::Int(1),
            seen: Default::default(),
        },
        Op::BoundedAdd(4),
    ];
    let mut id = 0;
    for round in 0..4u64 {
        for (k, op) in ops.iter().enumerate() {
            id += 1;
            nodes[(id % 2) as usize].handle_request(
                round,
                Request {
                    id,
                    key: format!("key{k}").into_bytes().into(),
                    op: op.clone(),
                    consistency: Consistency::LocalOne,
                    token: None,
                },
            );
        }
    }
    // A session that saw replica 0's writes writes at replica 1, which has not received them
    // yet: the write waits for the token, and its entry depends on replica 0's entries.
    let mut token = None;
    while let Some(reply) = nodes[0].poll_reply() {
        token = reply.result.ok().map(|done| done.token);
    }
    assert!(token.is_some(), "replica 0 answered its writes");
    nodes[1].handle_request(
        4,
        Request {
            id: 98,
            key: b"key0".as_slice().into(),
            op: Op::Incr(1),
            consistency: Consistency::LocalOne,
            token,
        },
    );
    nodes[1].handle_request(
        5,
        Request {
            id: 99,
            key: b"key0".as_slice().into(),
            op: Op::Get,
            consistency: Consistency::GlobalQuorum,
            token: None,
        },
    );
    nodes[0].start_anti_entropy(5, ReplicaId(1));
    let mut seen = Vec::new();
    for t in 6..60 {
        if t == 20 {
            // Both replicas deposited 8 on key7 and know the total of 16: withdrawing 12 at
            // replica 1 needs rights from replica 0, asked for and transferred.
            nodes[1].handle_request(
                t,
                Request {
                    id: 100,
                    key: b"key7".as_slice().into(),
                    op: Op::BoundedAdd(-12),
                    consistency: Consistency::LocalOne,
                    token: None,
                },
            );
        }
        for n in &mut nodes {
            n.handle_timeout(t);
        }
        let mut out = Vec::new();
        for (i, n) in nodes.iter_mut().enumerate() {
            while let Some(tx) = n.poll_transmit() {
                out.push((i, tx));
            }
        }
        for (from, tx) in out {
            seen.push(tx.payload.clone());
            nodes[tx.to.0 as usize].handle_message(t, ReplicaId(from as u64), &tx.payload);
        }
    }
    seen
}

#[test]
fn real_messages_round_trip() {
    let msgs = real_messages();
    let mut kinds = std::collections::BTreeSet::new();
    for bytes in &msgs {
        let m = PeerMsg::decode(bytes).expect("own messages decode");
        kinds.insert(bytes[2]);
        assert_eq!(PeerMsg::decode(&m.encode()).as_ref(), Ok(&m));
    }
    assert!(
        kinds.len() >= 6,
        "batches, acks, acked batches, routed and AE messages were all seen: {kinds:?}"
    );
    assert!(
        msgs.iter().any(|b| matches!(
            PeerMsg::decode(b),
            Ok(PeerMsg::Routed(converge_core::replica::Routed {
                body: converge_core::replica::RoutedBody::RightsAsk { .. },
                ..
            }))
        )),
        "a withdrawal beyond its rights asked for some"
    );
    assert!(
        kinds.contains(&7),
        "some batch carried an ack (the batch delay leaves acks owed until the next batch)"
    );
    // `encode` never compresses, so a message that re-encodes longer was compressed.
    assert!(
        msgs.iter()
            .any(|m| PeerMsg::decode(m).is_ok_and(|d| d.encode().len() > m.len())),
        "some batch was compressed"
    );
    assert!(
        msgs.iter().any(|m| matches!(
            PeerMsg::decode(m),
            Ok(PeerMsg::Batch(entries) | PeerMsg::AckedBatch { entries, .. })
                if entries.iter().any(|e| !e.deps.is_empty())
        )),
        "some entry carried dependencies"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The entry and batch encodings, pinned: version 2 of the message format added each entry's
/// dependencies (flagged in the low bit of the logical counter, then a vector clock; nothing
/// more when there are none).
#[test]
fn entry_encodings_are_pinned() {
    let plain = Entry {
        origin: ReplicaId(1),
        seq: 3,
        stamp: converge_core::HlcTimestamp::new(1_000, 2),
        deps: converge_core::VectorClock::new(),
        key: b"k".as_slice().into(),
        delta: KeyState::Counter({
            let mut c = converge_core::GCounter::new();
            c.increment(ReplicaId(1), 5).expect("small");
            c
        }),
        redacted: false,
    };
    let mut dependent = plain.clone();
    dependent.seq = 4;
    dependent.deps = [(ReplicaId(0), 7), (ReplicaId(2), 300)]
        .into_iter()
        .collect();
    let batch = PeerMsg::Batch(vec![plain.clone(), dependent.clone()]).encode();
    assert_eq!(
        PeerMsg::decode(&batch),
        Ok(PeerMsg::Batch(vec![plain.clone(), dependent.clone()]))
    );
    let out = format!(
        "entry:           {}\nentry with deps: {}\nbatch:           {}\n",
        hex(&plain.encode()),
        hex(&dependent.encode()),
        hex(&batch),
    );
    insta::assert_snapshot!(out);
}

#[test]
fn malformed_dependencies_and_old_versions_are_refused() {
    let mut e = Entry {
        origin: ReplicaId(1),
        seq: 2,
        stamp: converge_core::HlcTimestamp::new(5, 0),
        deps: [(ReplicaId(1), 1)].into_iter().collect(),
        key: b"k".as_slice().into(),
        delta: KeyState::Counter(converge_core::GCounter::new()),
        redacted: false,
    };
    // An entry may not name its own origin: that is implied, and would make two encodings.
    assert!(Entry::decode(&e.encode()).is_err());
    e.deps = [(ReplicaId(0), 1)].into_iter().collect();
    let good = PeerMsg::Batch(vec![e.clone()]).encode();
    assert!(PeerMsg::decode(&good).is_ok());
    // A version-1 frame (entries without dependencies) is refused, never misread.
    let mut old = good.clone();
    old[1] = 1;
    assert_eq!(
        PeerMsg::decode(&old),
        Err(converge_core::replica::DecodeError::UnsupportedVersion(1))
    );
    // So is a version-1 durable image.
    let mut image = Durable::new().encode();
    image[0] = 1;
    assert_eq!(
        Durable::decode(&image),
        Err(converge_core::replica::DecodeError::UnsupportedVersion(1))
    );
    // A replica refuses, whole, a batch whose entry depends on a replica outside the cluster or
    // on one of its own writes it never issued.
    e.origin = ReplicaId(0);
    e.seq = 1;
    for deps in [[(ReplicaId(9), 1)], [(ReplicaId(1), 1)]] {
        e.deps = deps.into_iter().collect();
        let mut r = Replica::new(Config::grid(1, 2, 1), 0).unwrap();
        r.handle_message(1, ReplicaId(0), &PeerMsg::Batch(vec![e.clone()]).encode());
        assert_eq!(r.stats().counters.invalid_messages, 1);
        assert_eq!(r.stats().parked, 0);
    }
}

#[test]
fn tokens_and_durable_images_round_trip() {
    let t = SessionToken::from_frontier(
        [(ReplicaId(0), 3), (ReplicaId(7), 1 << 40)]
            .into_iter()
            .collect(),
    );
    assert_eq!(SessionToken::decode(&t.encode()), Ok(t.clone()));
    assert!(t.encode().len() <= 12);
    let mut r = Replica::new(Config::grid(0, 1, 1), 0).unwrap();
    for i in 0..10 {
        r.handle_request(
            i,
            Request {
                id: i,
                key: format!("k{}", i % 3).into_bytes().into(),
                op: Op::Incr(i),
                consistency: Consistency::LocalOne,
                token: None,
            },
        );
    }
    let d = r.durable();
    assert_eq!(Durable::decode(&d.encode()), Ok(d.clone()));
    // With entries that carry dependencies too.
    let mut with_deps = d.clone();
    with_deps.oplog = vec![Entry {
        origin: ReplicaId(0),
        seq: 1,
        stamp: converge_core::HlcTimestamp::new(1, 0),
        deps: [(ReplicaId(3), 2)].into_iter().collect(),
        key: b"k".as_slice().into(),
        delta: KeyState::Counter(converge_core::GCounter::new()),
        redacted: false,
    }];
    assert_eq!(Durable::decode(&with_deps.encode()), Ok(with_deps));
    let back = Replica::recover(Config::grid(0, 1, 1), d, 100).unwrap();
    assert_eq!(back.root_hash(), r.root_hash());
}

/// Reachable key states: a few random operations at three replicas, some states joined.
fn state() -> impl Strategy<Value = KeyState> {
    let op = (0u8..3, 0u8..4, 0i64..4);
    (0u8..6, proptest::collection::vec(op, 0..8)).prop_map(|(kind, ops)| {
        let mut states: Vec<KeyState> = (0..3)
            .map(|_| KeyState::empty(converge_core::replica::KeyKind::ALL[kind as usize]))
            .collect();
        for (at, what, x) in ops {
            let r = ReplicaId(u64::from(at));
            let s = &mut states[at as usize];
            match s {
                KeyState::Counter(c) => {
                    c.increment(r, x as u64).expect("small counts");
                }
                KeyState::PnCounter(c) => {
                    c.decrement(r, x as u64).expect("small counts");
                }
                KeyState::Set(set) => {
                    if what < 2 {
                        set.add(r, Scalar::Int(x));
                    } else {
                        set.remove(&Scalar::Int(x));
                    }
                }
                KeyState::Lww(l) => {
                    l.set(
                        r,
                        converge_core::HlcTimestamp::new(x as u64, 0),
                        Scalar::Int(x),
                    );
                }
                KeyState::Mv(m) => {
                    m.write(r, Scalar::Int(x));
                }
                KeyState::Bounded(c) => {
                    // Deposits, withdrawals and transfers to the next replica; the refused ones
                    // (too few rights) change nothing, which is part of what is reachable.
                    let next = ReplicaId((u64::from(at) + 1) % 3);
                    let _ = match what {
                        0 | 1 => c.increment(r, x as u64),
                        2 => c.decrement(r, x as u64),
                        _ => c.transfer(r, next, x as u64),
                    };
                }
            }
            if what == 3 {
                let other = states[(at as usize + 1) % 3].clone();
                states[at as usize].join(other);
            }
        }
        states.swap_remove(0)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_and_what_decodes_is_a_fixed_point(
        bytes in proptest::collection::vec(any::<u8>(), 0..256)
    ) {
        if let Ok(m) = PeerMsg::decode(&bytes) {
            prop_assert_eq!(PeerMsg::decode(&m.encode()), Ok(m));
        }
        if let Ok(s) = KeyState::decode(&bytes) {
            prop_assert_eq!(s.encode(), bytes.clone());
        }
        if let Ok(e) = Entry::decode(&bytes) {
            prop_assert_eq!(e.encode(), bytes.clone());
        }
        if let Ok(t) = SessionToken::decode(&bytes) {
            prop_assert_eq!(t.encode(), bytes.clone());
        }
        let _ = Durable::decode(&bytes);
    }

    /// Real messages with one byte changed, cut short or extended: decoding never panics, and a
    /// replica fed them keeps its invariants (checked by its debug assertions).
    #[test]
    fn mutated_messages_never_panic_a_replica(
        pick in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        how in 0u8..3,
    ) {
        let msgs = real_messages();
        let mut bytes = pick.get(&msgs).clone();
        let i = at.index(bytes.len());
        match how {
            0 => bytes[i] = byte,
            1 => bytes.truncate(i),
            _ => bytes.insert(i, byte),
        }
        let mut r = Replica::new(Config::grid(1, 2, 1), 0).unwrap();
        r.handle_message(1, ReplicaId(0), &bytes);
        r.handle_timeout(10_000);
    }

    #[test]
    fn key_states_form_a_join_semilattice(a in state(), b in state(), c in state()) {
        prop_assert_eq!(a.clone().joined(b.clone()), b.clone().joined(a.clone()));
        prop_assert_eq!(
            a.clone().joined(b.clone()).joined(c.clone()),
            a.clone().joined(b.clone().joined(c.clone()))
        );
        prop_assert_eq!(a.clone().joined(a.clone()), a.clone());
        prop_assert!(a.leq(&a.clone().joined(b.clone())));
        prop_assert!(KeyState::bottom().leq(&a));
        let enc = a.encode();
        prop_assert_eq!(KeyState::decode(&enc), Ok(a));
    }
}

fn incr(id: u64) -> Request {
    Request {
        id,
        key: b"k".as_slice().into(),
        op: Op::Incr(1),
        consistency: Consistency::LocalOne,
        token: None,
    }
}

fn transmits(r: &mut Replica) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| r.poll_transmit().map(|t| t.payload)).collect()
}

fn pair(batch_delay_ms: u64) -> (Replica, Replica) {
    let node = |i| {
        let mut c = Config::grid(i, 2, 1);
        c.batch_delay_ms = batch_delay_ms;
        Replica::new(c, 0).expect("valid config")
    };
    (node(0), node(1))
}

/// The message tags of `frames`, in order (the byte after magic and version).
fn tags(frames: &[Vec<u8>]) -> Vec<u8> {
    frames.iter().map(|f| f[2]).collect()
}

#[test]
fn an_owed_ack_rides_on_the_next_batch_or_goes_alone_at_the_flush() {
    let (mut r0, mut r1) = pair(1);
    r0.handle_request(0, incr(1));
    r0.handle_timeout(1);
    let batch = transmits(&mut r0);
    assert_eq!(tags(&batch), [1], "a plain batch: r0 owes r1 nothing");
    // r1 applies it and owes r0 an ack, which waits for r1's flush.
    r1.handle_message(2, ReplicaId(0), &batch[0]);
    assert!(transmits(&mut r1).is_empty(), "no ack before the flush");
    assert_eq!(r1.poll_timeout(), Some(3), "the owed ack armed the flush");
    // r1 writes before its flush: the ack rides on that batch, and nothing goes alone.
    r1.handle_request(2, incr(2));
    r1.handle_timeout(3);
    let acked = transmits(&mut r1);
    assert_eq!(tags(&acked), [7]);
    match PeerMsg::decode(&acked[0]) {
        Ok(PeerMsg::AckedBatch { ack, entries }) => {
            assert_eq!(ack.frontier.get(ReplicaId(0)), 1, "acks r0's write");
            assert_eq!(entries.len(), 1);
        }
        other => panic!("expected an acked batch, got {other:?}"),
    }
    let c1 = r1.stats().counters;
    assert_eq!((c1.acks_sent, c1.acks_piggybacked), (1, 1));
    // r0 takes both halves; it has nothing to send back, so its ack goes alone at its flush.
    r0.handle_message(4, ReplicaId(1), &acked[0]);
    let c0 = r0.stats().counters;
    assert_eq!((c0.batches_received, c0.acks_received), (1, 1));
    assert_eq!(
        r0.stats().peer_lag,
        vec![(ReplicaId(1), 0)],
        "r1 acknowledged"
    );
    assert!(transmits(&mut r0).is_empty());
    r0.handle_timeout(5);
    assert_eq!(tags(&transmits(&mut r0)), [2]);
    assert_eq!(r0.stats().counters.acks_piggybacked, 0);
}

#[test]
fn without_a_batch_delay_every_batch_is_acked_at_once() {
    let (mut r0, mut r1) = pair(0);
    r0.handle_request(0, incr(1));
    let batch = transmits(&mut r0);
    assert_eq!(tags(&batch), [1]);
    r1.handle_message(1, ReplicaId(0), &batch[0]);
    assert_eq!(tags(&transmits(&mut r1)), [2]);
}

#[test]
fn an_acked_batch_with_a_forged_ack_is_refused_whole() {
    let (mut r0, mut r1) = pair(1);
    r0.handle_request(0, incr(1));
    r0.handle_timeout(1);
    let Ok(PeerMsg::Batch(entries)) = PeerMsg::decode(&transmits(&mut r0)[0]) else {
        panic!("expected a batch");
    };
    // Claims r1's write number 9, which r1 never issued.
    let forged = PeerMsg::AckedBatch {
        ack: converge_core::replica::Ack {
            frontier: [(ReplicaId(1), 9)].into_iter().collect(),
            table: vec![],
        },
        entries,
    };
    let bytes = forged.encode();
    assert_eq!(
        PeerMsg::decode(&bytes).as_ref(),
        Ok(&forged),
        "it round-trips"
    );
    r1.handle_message(2, ReplicaId(0), &bytes);
    assert_eq!(r1.stats().counters.invalid_messages, 1);
    assert_eq!(
        r1.frontier().get(ReplicaId(0)),
        0,
        "its valid entries were not applied"
    );
}

#[test]
fn a_rights_ask_round_trips_and_one_for_nothing_is_refused() {
    use converge_core::replica::{Routed, RoutedBody};
    let ask = |amount| {
        PeerMsg::Routed(Routed {
            src: ReplicaId(1),
            dst: ReplicaId(0),
            ttl: 3,
            body: RoutedBody::RightsAsk {
                key: b"stock".as_slice().into(),
                amount,
                seen: 7,
            },
        })
    };
    assert_eq!(PeerMsg::decode(&ask(3).encode()), Ok(ask(3)));
    assert!(matches!(
        PeerMsg::decode(&ask(0).encode()),
        Err(converge_core::replica::DecodeError::Invalid(_))
    ));
}
