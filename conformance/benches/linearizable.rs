//! Throughput of the `lin-kv` linearizability checker on generated linearizable histories.
//!
//! Each history is a register store run one operation at a time by a few clients: every client
//! always has one operation in flight (the next is invoked as soon as the client is free), and
//! each operation takes effect at a point inside an interval that overlaps the other clients'
//! operations. The operation mix is Maelstrom's `lin-kv`: half reads, a third writes, the rest
//! cas, of small values (0..5), so values repeat and cas often fails. Histories are built once,
//! outside the timed loop, and checked to be linearizable before they are timed. Throughput is
//! reported in operations per second.
//!
//! Run with `cargo bench -p converge-conformance --bench linearizable`.

use converge_conformance::check::linearizable::{
    Budget, KvOp, KvOutcome, Linearizability, Operation, check,
};
use criterion::{Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;

/// SplitMix64: a small deterministic generator, so that every run times the same histories.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The shape of a generated history.
struct Shape {
    ops: usize,
    keys: u64,
    clients: usize,
    /// Per mille of writes and cas whose client never hears back; half of them took effect.
    unknown_per_mille: u64,
}

/// A linearizable history of `shape`, by construction: operations are applied to the registers
/// in the order of their linearization points, each inside its interval.
fn generate(shape: &Shape, seed: u64) -> Vec<Operation> {
    let mut rng = Rng(seed);
    let mut free = vec![0u64; shape.clients];
    let mut registers: Vec<Option<i64>> = vec![None; shape.keys as usize];
    let mut now = 0u64;
    let mut history = Vec::with_capacity(shape.ops);
    for _ in 0..shape.ops {
        // The client that has been free longest invokes next.
        let (client, _) = free
            .iter()
            .enumerate()
            .min_by_key(|&(_, t)| *t)
            .expect("at least one client");
        let pre = rng.below(100);
        let post = rng.below(100);
        now = (now + 1 + rng.below(20)).max(free[client] + 1);
        let invoke = now.saturating_sub(pre).max(free[client] + 1);
        let complete = now + post;
        free[client] = complete;
        let key = rng.below(shape.keys);
        let current = registers[key as usize];
        let value = |rng: &mut Rng| rng.below(5) as i64;
        let roll = rng.below(10);
        let op = if roll < 5 {
            KvOp::Read { key }
        } else if roll < 8 {
            KvOp::Write {
                key,
                value: value(&mut rng),
            }
        } else {
            KvOp::Cas {
                key,
                from: value(&mut rng),
                to: value(&mut rng),
            }
        };
        let unknown = !matches!(op, KvOp::Read { .. }) && rng.below(1000) < shape.unknown_per_mille;
        let happens = match op {
            KvOp::Read { .. } => true,
            _ if unknown && rng.below(2) == 0 => false,
            KvOp::Write { .. } => true,
            KvOp::Cas { from, .. } => current == Some(from),
        };
        match op {
            KvOp::Write { value, .. } | KvOp::Cas { to: value, .. } if happens => {
                registers[key as usize] = Some(value);
            }
            _ => {}
        }
        let outcome = match op {
            _ if unknown => KvOutcome::Unknown,
            KvOp::Read { .. } => KvOutcome::Ok(current),
            _ if happens => KvOutcome::Ok(None),
            _ => KvOutcome::Fail,
        };
        history.push(Operation {
            process: client as u64,
            invoke_ns: invoke,
            complete_ns: (!unknown).then_some(complete),
            op,
            outcome,
        });
    }
    history
}

fn bench_shape(c: &mut Criterion, name: &str, shape: &Shape) {
    let history = generate(shape, 0x5eed);
    let verdict = check(&history, Budget::default());
    assert_eq!(
        verdict,
        Linearizability::Linearizable,
        "the generated history must be linearizable"
    );
    let mut group = c.benchmark_group("linearizable");
    group.throughput(Throughput::Elements(shape.ops as u64));
    group.bench_function(name, |b| {
        b.iter(|| check(black_box(&history), Budget::default()));
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
}

// `criterion_group!` would generate an undocumented `pub fn`, which the workspace's `missing_docs`
// lint refuses; this is what it and `criterion_main!` expand to.
fn main() {
    let mut c = config().configure_from_args();
    let shapes = [
        (
            "100k_ops_100_keys_5_clients",
            Shape {
                ops: 100_000,
                keys: 100,
                clients: 5,
                unknown_per_mille: 0,
            },
        ),
        (
            "1m_ops_100_keys_5_clients",
            Shape {
                ops: 1_000_000,
                keys: 100,
                clients: 5,
                unknown_per_mille: 0,
            },
        ),
        (
            "100k_ops_1_key_5_clients",
            Shape {
                ops: 100_000,
                keys: 1,
                clients: 5,
                unknown_per_mille: 0,
            },
        ),
        (
            "100k_ops_100_keys_5_clients_5pct_unknown",
            Shape {
                ops: 100_000,
                keys: 100,
                clients: 5,
                unknown_per_mille: 50,
            },
        ),
        (
            "100k_ops_1_key_5_clients_5pct_unknown",
            Shape {
                ops: 100_000,
                keys: 1,
                clients: 5,
                unknown_per_mille: 50,
            },
        ),
    ];
    for (name, shape) in &shapes {
        bench_shape(&mut c, name, shape);
    }
    c.final_summary();
}
