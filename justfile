# Recipes mirror .ci/run; `just ci` is exactly what CI runs.

# Everything CI runs.
ci:
    bash .ci/run

# The system packages the tests need (libfaketime, for `--nemesis clock`); CI runs it first.
install-deps:
    bash scripts/install-deps.sh

fmt:
    cargo fmt --all -- --check

clippy:
    cargo clippy --locked --workspace --all-targets -- -D warnings

# The core must stay sans-IO: no tokio, no OS clock, no OS randomness.
core-is-sans-io:
    cargo test --locked -p converge --test tidy

test:
    cargo test --locked --workspace

# Loom model checks of the node's shared pieces (clock, session waits, outbox, oplog cursors);
# a separate target dir, since `--cfg loom` rebuilds every dependency.
loom:
    RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --locked -p converge-node --test loom --release

# The law checker over every built-in type (add `--crdts` to include the crdts crate).
laws *ARGS:
    cargo run --locked --release -- laws {{ARGS}}

# converge vs crdts 7.3.2; figures go to docs/perf.md.
bench:
    cargo bench --locked -p converge-core --bench vs_crdts

# The stateright models (`just model list`, `just model check sessions --depth 10`,
# `just model explore sessions` for the explorer on 127.0.0.1:3000).
model *ARGS:
    cargo run --locked --release -- model {{ARGS}}

# The simulator: reference replicas on virtual time under seeded faults (`--seeds 1000` for more).
sim *ARGS:
    cargo run --locked --release -- sim {{ARGS}}

# The harness's throughput (100k ops against the Rust counter) and its per-message cost.
bench-harness:
    bash scripts/bench-harness.sh

# The reference node vs redis-server under redis-benchmark (figures go to docs/perf.md).
bench-redis REQUESTS="100000":
    bash scripts/bench-redis.sh {{REQUESTS}}

# One- and three-region clusters vs redis-server, with replication lag (docs/perf.md).
bench-cluster *ARGS:
    bash scripts/bench-cluster.sh {{ARGS}}

# Consensus registers (CAS.SET, CAS.GET, contended CAS) vs a LOCAL_ONE SET on three regions (docs/perf.md).
bench-cas *ARGS:
    bash scripts/bench-cas.sh {{ARGS}}

# libFuzzer on a target (merge_laws, decode, replica_msg, resp, peer_frame) for SECONDS; needs the nightly toolchain.
fuzz TARGET SECONDS="60":
    bash scripts/fuzz.sh {{TARGET}} {{SECONDS}}

# Every classic bug of the converge-mutants nodes at the harness's default timing over SEEDS seeds
# (a 20-minute sweep; tests/mutants.rs runs one seed of each).
sweep-mutants SEEDS="3" JOBS="2":
    bash scripts/sweep-mutants.sh {{SEEDS}} {{JOBS}}

# Deployed systems through `converge certify --cluster` (docs/certify.md): the reference TCP
# cluster on every RESP workload under every fault, a known bug, etcd, Redis, rolling upgrades.
certify-clusters SEED="1":
    cargo build --locked --release
    bash scripts/certify-clusters.sh {{SEED}}
