//! Heap allocations per client operation on the replica's counter write path.
//!
//! Issue 4 asks for an apply path free of per-operation allocation where the CRDT allows. A
//! counter's join raises its counts in place (no temporary), and the request's key becomes the
//! oplog entry's key without a copy. What remains per operation: the counter's delta (a
//! one-entry vector clock) at the origin and at each receiver, the reply's session token, each
//! receiver decoding the entry's key into an owned key, and per batch the frame, the decoded
//! entry vector and the ack. The bound pins what was removed, so a regression fails here.
//!
//! This binary installs dhat's counting global allocator, so it holds this one test only: other tests
//! running on other threads would be counted too.

use converge_core::replica::{Config, Consistency, Op, Replica, Request};
use std::collections::VecDeque;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Blocks allocated so far (reallocations count as allocations).
fn allocs() -> u64 {
    dhat::HeapStats::get().total_blocks
}

/// Delivers every queued transmit until the network is quiet.
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
            let id = replicas[from].id();
            replicas[to].handle_message(now, id, &payload);
        }
    }
}

/// Runs `requests` (counter increments, issued at the replicas in turn, 1 ms of virtual time every
/// 64 operations) and returns how many allocations that took and how many replies came back.
fn run(replicas: &mut [Replica], requests: Vec<Request>, now: &mut u64) -> (u64, u64) {
    let mut wire = VecDeque::with_capacity(64);
    let mut replies = 0;
    let before = allocs();
    for (n, request) in requests.into_iter().enumerate() {
        let at = n % replicas.len();
        replicas[at].handle_request(*now, request);
        while replicas[at].poll_reply().is_some() {
            replies += 1;
        }
        if n % 64 == 63 {
            *now += 1;
            for r in replicas.iter_mut() {
                r.handle_timeout(*now);
            }
            pump(replicas, &mut wire, *now);
        }
    }
    (allocs() - before, replies)
}

/// Counter keys the writes are spread over.
const KEYS: u64 = 100;

fn requests(from: u64, n: u64) -> Vec<Request> {
    (from..from + n)
        .map(|id| Request {
            id,
            // Over 64 keys, so the debug builds' full Merkle check (which allocates) is skipped.
            key: format!("counter:{}", id % KEYS).into_bytes().into(),
            op: Op::Incr(1),
            consistency: Consistency::LocalOne,
            token: None,
        })
        .collect()
}

#[test]
fn a_counter_write_costs_few_allocations_across_three_replicas() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let mut replicas: Vec<Replica> = (0..3)
        .map(|i| Replica::new(Config::grid(i, 3, 1), 0).expect("valid config"))
        .collect();
    let mut now = 0;
    // Warm up: queues, the keyspace's slot and the scratch buffers reach their working size.
    let warm = requests(0, 6_400);
    let (_, replies) = run(&mut replicas, warm, &mut now);
    assert_eq!(replies, 6_400);
    // The requests (and their keys) are built before counting: they are the client's.
    const OPS: u64 = 32_000;
    let measured = requests(6_400, OPS);
    let (allocs, replies) = run(&mut replicas, measured, &mut now);
    assert_eq!(replies, OPS, "every LOCAL_ONE write is answered at once");
    let per_op = allocs as f64 / OPS as f64;
    println!("{allocs} allocations for {OPS} counter writes: {per_op:.2} per operation");
    // Measured 6.75: the counter's one-entry delta at the origin and at each of the two
    // receivers (decoded), the reply's session token, two owned keys decoded at the receivers,
    // plus each batch's frame (two blocks), decoded entry vector, ack and ack frontier, spread
    // over about 21 entries per batch. It was 9.75 before the in-place merge (a temporary per
    // counter join at each receiver) and the moved key (a copy per write). Keeping the delta
    // inline brought it to 3.84 but measured slower overall; see `VectorClock`.
    //
    // Debug builds add exactly three: the keyspace's cross-checks of its change witness clone a
    // small state once per apply, at the origin and at each receiver (`keyspace.rs`,
    // `small_clone`); release builds, which the bound is about, make none of them.
    let bound = if cfg!(debug_assertions) { 10.0 } else { 7.0 };
    assert!(
        per_op <= bound,
        "{per_op:.2} allocations per counter write (bound {bound:.1}; release was 9.75 before, 6.75 after)"
    );
    // Every replica saw every write.
    for r in &replicas {
        assert_eq!(r.frontier().total(), 6_400 + OPS as u128);
    }
}
