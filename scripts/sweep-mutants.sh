#!/usr/bin/env bash
# Every classic bug of converge-mutants, certified with nothing but `--bin`, `--workload`,
# `--nemesis` and `--seed` (the harness's default timing), over several seeds: each line says
# whether the check named for the bug caught it. tests/mutants.rs runs one seed of each in CI;
# this is the sweep behind it, too long for every CI run.
#
#   scripts/sweep-mutants.sh [SEEDS] [JOBS]     # default: seeds 1..3, 2 runs at a time
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-3}
jobs=${2:-2}
cargo build --quiet --release --bin converge
cargo build --quiet --release -p converge-mutants --bins
out=$(mktemp -d)
# binary | workload | nemesis | node arguments | the check that must fail
cases='counter|g-counter|duplicate|--bug sum-merge|counter-bounds
counter|pn-counter||--bug net-merge|counter-bounds
counter|g-counter|partition,loss|--bug no-retransmit|counter-bounds
gset|g-set|partition,loss|--bug no-retransmit|set-full
gset|g-set||--bug read-local-only|set-full
broadcast|broadcast|partition,loss|--bug no-retry|set-full
session|session|partition|--bug ignore-token|read-your-writes
session|session|partition|--bug token-without-wait-on-add|monotonic-writes
session|session|partition|--bug fake-quorum|consistency-levels
counter|g-counter|kill,duplicate,reorder|--bug ack-before-replicate|counter-bounds
orset|or-set|partition|--bug remove-wins|add-wins
orset|or-set||--bug tagless|add-wins
register|lww-register||--mode lww --skew-ms 500 --bug wall-clock|lww-winner
register|mv-register|partition|--mode mv --bug keep-one|mv-siblings
antientropy|g-set||--bug ae-skips-keys|set-full'
run_one() {
  IFS='|' read -r bin workload nemesis node_args check seed <<<"$1"
  log="$out/$bin-$workload-${node_args// /_}-$seed"
  # shellcheck disable=SC2086 # node_args is a list of words
  target/release/converge certify --bin "target/release/$bin" --workload "$workload" \
    --nemesis "$nemesis" --seed "$seed" --no-shrink --log-dir "$log.logs" -- $node_args \
    >"$log.out" 2>/dev/null || true
  if grep -q "FAIL    $check" "$log.out"; then verdict=caught; else verdict=MISSED; fi
  printf '%-7s %-12s %-12s seed %s  %-24s %s\n' "$verdict" "$bin" "$workload" "$seed" \
    "${nemesis:-none}" "$node_args"
}
export -f run_one
export out
while IFS= read -r case; do
  for seed in $(seq 1 "$seeds"); do printf '%s|%s\n' "$case" "$seed"; done
done <<<"$cases" | xargs -P "$jobs" -I{} bash -c 'run_one "$@"' _ {} | sort -k2,3 -k5
rm -rf "$out"
