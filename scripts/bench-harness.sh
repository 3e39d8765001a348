#!/usr/bin/env bash
# The harness's throughput goal (docs/perf.md): 3 nodes, 100k operations, partition nemesis,
# against the correct in-repo g-counter (mutants/src/bin/counter.rs), under 10 s of wall time on a
# 2-core machine. Prints each run's wall time and the harness's own per-message cost (a criterion
# bench with in-process nodes on virtual time, so node and pipe costs are out of the figure).
#
# Usage: scripts/bench-harness.sh [RUNS]   (default 3 runs; seeds 1..RUNS)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"
cargo build --locked --release -p converge -p converge-mutants
target="${CARGO_TARGET_DIR:-target}/release"
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
echo "run  seed  wall_s  main_s  ops  msgs_per_op  verdict"
for seed in $(seq 1 "$runs"); do
  start=$(date +%s.%N)
  set +e
  # Certification is time-driven by default (docs/protocol.md, "Timing"); this measures the
  # harness, so the clients run closed-loop (a rate no client can reach) until the operation cap,
  # and the quiet wait after the heal is short. main_s is the workload phase alone.
  "$target/converge" certify --bin "$target/counter" --workload g-counter --nodes 3 \
    --ops 100000 --rate 1000000 --time-limit 600 --nemesis partition --quiet-ms 200 \
    --seed "$seed" --log-dir "$logs" --report "$logs/report.json" >/dev/null
  code=$?
  set -e
  end=$(date +%s.%N)
  python3 - "$logs/report.json" "$seed" "$start" "$end" "$code" <<'PY'
import json, sys
report, seed, start, end, code = sys.argv[1:]
r = json.load(open(report))["runs"][0]
print(f"{seed:>3}  {seed:>4}  {float(end) - float(start):6.2f}  {r['main_ms'] / 1000:6.2f}  {r['ops']}  {r['msgs_per_op']:.3f}  exit {code}")
PY
done
cargo bench --locked -p converge-conformance --bench harness -- --noplot 2>/dev/null \
  | awk '/^harness\//{print; want=1; next} want && /thrpt/{print; want=0}'
