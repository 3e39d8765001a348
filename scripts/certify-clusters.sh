#!/usr/bin/env bash
# Certifies deployed systems through the cluster backend (`converge certify --cluster`), and
# fails unless each gets the verdict its documentation predicts (docs/certify.md):
#
#   1. converge's own TCP node, three regions (examples/converge-tcp.toml), on every workload its
#      RESP client maps, under every fault the cluster backend deals: must pass; the same node
#      with every chunk delayed 150 ms (a correct but slow network) must pass; a build with a
#      known bug (--bug apply-without-dedup) must be caught by counter-bounds;
#   2. etcd 3.4 (examples/etcd/): linearizable reads must pass lin-kv under partitions, kills and
#      pauses; serializable reads must be caught by linearizable under partitions;
#   3. redis-server, a primary and a replica serving reads (examples/redis-replica.toml): the
#      session workload must catch read-your-writes (Redis replicates asynchronously);
#   4. rolling upgrades of the reference cluster (scripts/build-upgrade-builds.sh builds the two
#      test builds): to a build with an add-only wire change (wire-next) must pass; to one that
#      bumps the framing version (wire-breaking) must be caught by convergence.
#
# Usage: scripts/certify-clusters.sh [SEED]   (default 1; CONVERGE=path/to/converge to choose the
# binary, default target/release/converge). Needs scripts/install-deps.sh's packages; etcd's
# members need root and unshare (examples/etcd/member.py). Every run is bounded (about 15 s).
set -euo pipefail
cd "$(dirname "$0")/.."

converge=${CONVERGE:-target/release/converge}
seed=${1:-1}
logs="${TMPDIR:-/tmp}/converge-cluster-logs"
timing=(--time-limit 6 --settle 2 --no-shrink --log-dir "$logs")
every_fault=partition,loss,duplicate,reorder,kill,pause,clock
failures=0

# Runs `converge certify ARGS...`; expects exit 0.
expect_pass() {
    local what=$1
    shift
    echo "--- $what: must pass"
    if "$converge" certify "${timing[@]}" "$@" 2>&1 | grep -v '^progress' | tee /tmp/converge-cluster-run.txt; then
        :
    fi
    if ! grep -q '^verdict: pass' /tmp/converge-cluster-run.txt; then
        echo "!!! $what: expected a pass"
        failures=$((failures + 1))
    fi
}

# Runs `converge certify ARGS...` on up to five consecutive seeds; expects the check named
# CHECK to fail on one of them (a race that needs the right interleaving may miss a seed).
expect_caught() {
    local what=$1 check=$2
    shift 2
    echo "--- $what: must be caught by $check"
    for s in "$seed" $((seed + 1)) $((seed + 2)) $((seed + 3)) $((seed + 4)); do
        "$converge" certify "${timing[@]}" --seed "$s" "$@" 2>&1 | grep -v '^progress' | tee /tmp/converge-cluster-run.txt || true
        if grep -q "^  FAIL    $check" /tmp/converge-cluster-run.txt; then
            echo "--- $what: caught by $check on seed $s"
            return
        fi
    done
    echo "!!! $what: $check did not fail on seeds $seed to $((seed + 4))"
    failures=$((failures + 1))
}

reference=examples/converge-tcp.toml
for workload in echo g-counter pn-counter g-set or-set broadcast session lww-register mv-register lin-kv; do
    expect_pass "reference TCP cluster, $workload, every fault" \
        --cluster "$reference" --workload "$workload" --nemesis "$every_fault" --seed "$seed"
done
expect_pass "reference TCP cluster, or-set, partitions with 150 ms links (correct but slow)" \
    --cluster "$reference" --workload or-set --nemesis partition,kill --latency 150 --seed "$seed"
expect_caught "reference TCP cluster built with --bug apply-without-dedup" counter-bounds \
    --cluster "$reference" --workload g-counter --nemesis partition,loss -- --bug apply-without-dedup

expect_pass "etcd, linearizable reads" \
    --cluster examples/etcd/etcd.toml --workload lin-kv --nemesis partition,kill,pause --seed "$seed"
# A stale read needs a read at the cut-off member of a key the majority wrote meanwhile, and
# indefinite writes (values 0-4 repeat) can explain some away: a longer run gives it more chances.
timing=(--time-limit 12 --settle 2 --no-shrink --log-dir "$logs")
expect_caught "etcd, serializable reads" linearizable \
    --cluster examples/etcd/etcd-serializable.toml --workload lin-kv --nemesis partition
timing=(--time-limit 6 --settle 2 --no-shrink --log-dir "$logs")

expect_caught "redis-server primary + replica serving reads" read-your-writes \
    --cluster examples/redis-replica.toml --workload session --nemesis partition

bash scripts/build-upgrade-builds.sh
expect_pass "reference TCP cluster upgraded to an add-only wire change (wire-next)" \
    --cluster "$reference" --workload or-set --nemesis partition,kill --seed "$seed" \
    --upgrade-bin target/upgrade/converge-wire-next
expect_caught "reference TCP cluster upgraded to a framing-version bump (wire-breaking)" convergence \
    --cluster "$reference" --workload or-set --nemesis partition \
    --upgrade-bin target/upgrade/converge-wire-breaking

if [ "$failures" -ne 0 ]; then
    echo "certify-clusters: $failures verdict(s) differ from what the subjects' documentation predicts"
    exit 1
fi
echo "certify-clusters: every subject got the verdict its documentation predicts"
