//! Simulated client operations per second of wall time: reference replicas behind the Maelstrom
//! face's typed entry points (no JSON text), in process on virtual time, driven by the
//! conformance harness (scheduler, history, every check, and dropping the report included).
//!
//! Counters only: their checks are linear in the history, so the figure is the simulator's. The
//! register and set checks grow faster than linearly with the history (they compare reads with
//! what each node could have known) and would measure the checker instead.
//!
//! Run: `cargo bench -p converge --bench sim`.

use converge::simulator::{Plan, run_seed};
use converge_conformance::harness::nemesis::Fault;
use criterion::{Criterion, Throughput};

/// The allocator the `converge` binary uses, so this bench measures what `converge sim` runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn plan(workload: &str, faults: &[Fault], ops: u64) -> Plan {
    Plan {
        workloads: vec![workload.to_string()],
        faults: faults.to_vec(),
        every_fault: true,
        regions: 3,
        replicas_per_region: 1,
        ops,
        skew_ms: 250,
        bug: None,
        residency: false,
        cancel: None,
    }
}

fn sim(c: &mut Criterion) {
    let mut group = c.benchmark_group("sim");
    group.sample_size(10);
    let ops = 20_000;
    for (name, workload, faults) in [
        ("g-counter, no faults", "g-counter", &[][..]),
        (
            "g-counter, partition+loss+duplicate",
            "g-counter",
            &[Fault::Partition, Fault::Loss, Fault::Duplicate][..],
        ),
        ("pn-counter, every fault", "pn-counter", &Fault::ALL[..]),
    ] {
        let plan = plan(workload, faults, ops);
        let first = run_seed(&plan, 1);
        assert!(first.passed(), "{}\n{}", first.summary(), first.details());
        group.throughput(Throughput::Elements(first.ops));
        group.bench_function(name, |b| b.iter(|| run_seed(&plan, 1)));
    }
    group.finish();
}

// `criterion_group!` would generate an undocumented `pub fn`, which the workspace's `missing_docs`
// lint refuses; this is what it and `criterion_main!` expand to.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    sim(&mut c);
    c.final_summary();
}
