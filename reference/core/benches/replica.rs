//! Client operations per second of wall time through three replicas (full mesh, one region
//! each), with a trivial pump: no latency, no loss, every transmit delivered right away, virtual
//! time advancing 1 ms every 64 operations (so batches hold about 21 entries per peer).
//!
//! Each operation is a `LocalOne` write spread over 1,000 keys — counter increments and
//! last-writer-wins puts, alternately — issued at the replicas in turn; the measured time
//! covers the local apply, oplog, batching, encoding (LZ4 above the threshold), decoding,
//! remote apply at both peers, acks and truncation. The simulator's target is 500k ops/s on one
//! core.
//!
//! A second group times [`Durable::apply`] on a large stored log: what a persisting shell (the
//! simulator's disk) pays per delta.
//!
//! A third group, `sadd into one set`, measures the per-operation cost of `SADD` of a fresh
//! member into one set that already holds 0, 1,000 or 20,000 members, at a single replica: a
//! write must cost the same whatever the size of its key (the keyspace hashes a changed key
//! lazily, once per anti-entropy read, not once per write). Each iteration adds `SADD_OPS` fresh
//! members to a clone of the prepared replica; the clone is set-up, not measured.
//!
//! Run with `cargo bench -p converge-core --bench replica`.

use converge_core::replica::{
    Config, Consistency, Durable, DurableDelta, Entry, Key, KeyState, Op, Replica, Request, Scalar,
};
use converge_core::{GCounter, HlcTimestamp, ReplicaId, VectorClock};
use criterion::{BatchSize, Criterion, Throughput};
use std::collections::VecDeque;
use std::hint::black_box;
use std::time::Duration;

/// Operations per measured iteration.
const OPS: u64 = 20_000;
/// Distinct keys.
const KEYS: usize = 1_000;

fn run(keys: &[Key], ops: u64) -> u64 {
    let mut replicas: Vec<Replica> = (0..3)
        .map(|i| Replica::new(Config::grid(i, 3, 1), 0).expect("valid config"))
        .collect();
    let mut now = 0u64;
    let mut wire: VecDeque<(usize, usize, Vec<u8>)> = VecDeque::new();
    let mut replies = 0u64;
    for n in 0..ops {
        let at = (n % 3) as usize;
        let key = keys[(n as usize * 7919) % keys.len()].clone();
        let op = if n % 2 == 0 {
            Op::Incr(1)
        } else {
            Op::Put(Scalar::Int(n as i64))
        };
        // Counters and registers on disjoint keys, so no write is refused with WRONGTYPE.
        let key = if n % 2 == 0 {
            key
        } else {
            [&b"r"[..], &key].concat().into()
        };
        replicas[at].handle_request(
            now,
            Request {
                id: n,
                key,
                op,
                consistency: Consistency::LocalOne,
                token: None,
            },
        );
        while replicas[at].poll_reply().is_some() {
            replies += 1;
        }
        if n % 64 == 63 {
            now += 1;
            for r in &mut replicas {
                r.handle_timeout(now);
            }
            pump(&mut replicas, &mut wire, now);
        }
    }
    replies
}

fn pump(replicas: &mut [Replica], wire: &mut VecDeque<(usize, usize, Vec<u8>)>, now: u64) {
    loop {
        for (i, r) in replicas.iter_mut().enumerate() {
            while let Some(t) = r.poll_transmit() {
                wire.push_back((i, t.to.0 as usize, t.payload));
            }
        }
        if wire.is_empty() {
            return;
        }
        while let Some((from, to, payload)) = wire.pop_front() {
            replicas[to].handle_message(now, replicas[from].id(), &payload);
        }
    }
}

/// Entries stored per origin in the `durable_apply` group.
const STORED: u64 = 10_000;
/// Entries each delta appends (and truncates) at one origin.
const DELTA: u64 = 20;

fn entry(origin: u64, seq: u64) -> Entry {
    let mut delta = GCounter::new();
    let _ = delta.increment(ReplicaId(origin), seq);
    Entry {
        origin: ReplicaId(origin),
        seq,
        stamp: HlcTimestamp::new(seq, 0),
        deps: VectorClock::new(),
        key: b"counter".as_slice().into(),
        delta: KeyState::Counter(delta),
        redacted: false,
    }
}

/// Three origins of `STORED` entries each; every iteration appends `DELTA` entries to the middle
/// origin and truncates as many, so the stored log keeps its size.
fn bench_durable_apply(c: &mut Criterion) {
    let mut durable = Durable::new();
    durable.oplog = (0..3)
        .flat_map(|o| (1..=STORED).map(move |s| entry(o, s)))
        .collect();
    let mut next = STORED + 1;
    let mut group = c.benchmark_group("durable_apply");
    group.throughput(Throughput::Elements(DELTA));
    group.bench_function("30k stored entries, 20 appended and 20 truncated", |b| {
        b.iter(|| {
            let appended = (next..next + DELTA).map(|s| entry(1, s)).collect();
            next += DELTA;
            durable.apply(DurableDelta {
                appended,
                truncated: vec![(ReplicaId(1), next - STORED)],
                ..DurableDelta::default()
            });
            black_box(durable.oplog.len())
        })
    });
    group.finish();
    assert_eq!(durable.oplog.len() as u64, 3 * STORED);
}

/// `SADD`s measured per iteration of the one-set group.
const SADD_OPS: u64 = 200;

fn sadd(r: &mut Replica, now: u64, id: u64, member: u64) {
    r.handle_request(
        now,
        Request {
            id,
            key: (*b"set").into(),
            op: Op::SetAdd(Scalar::Int(member as i64)),
            consistency: Consistency::LocalOne,
            token: None,
        },
    );
    while r.poll_reply().is_some() {}
}

/// One replica alone whose key `set` holds `members` members.
fn prepared_set(members: u64) -> Replica {
    let mut r = Replica::new(Config::grid(0, 1, 1), 0).expect("valid config");
    for m in 0..members {
        sadd(&mut r, m / 64, m, m);
    }
    r
}

fn main() {
    let keys: Vec<Key> = (0..KEYS)
        .map(|i| format!("key:{i:05}").into_bytes().into_boxed_slice())
        .collect();
    let mut c = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(5));
    let mut group = c.benchmark_group("replica");
    group.throughput(Throughput::Elements(OPS));
    group.bench_function("3 replicas, LocalOne writes", |b| {
        b.iter(|| black_box(run(&keys, OPS)))
    });
    group.finish();
    bench_durable_apply(&mut c);

    let mut group = c.benchmark_group("sadd into one set");
    group.throughput(Throughput::Elements(SADD_OPS));
    for members in [0u64, 1_000, 20_000] {
        let base = prepared_set(members);
        group.bench_function(format!("{members} members"), |b| {
            b.iter_batched(
                || base.clone(),
                |mut r| {
                    for i in 0..SADD_OPS {
                        let m = members + i;
                        sadd(&mut r, members / 64 + 1, m, m);
                    }
                    r
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
    c.final_summary();
}
