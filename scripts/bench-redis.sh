#!/usr/bin/env bash
# The reference node against redis-server, with redis-benchmark, in one run.
#
#   scripts/bench-redis.sh [REQUESTS]
#
# Starts one region of the reference node (`converge node`, release build, one replica, on
# loopback) and a redis-server beside it, then runs redis-benchmark against each, alternating,
# for SET, GET, INCR and SADD, unpipelined and pipelined (-P 16), 50 clients; then a latency run
# of one client without pipelining (the LOCAL_ONE p99). Two pairings, so each peer is compared
# with the server doing the same work:
#   memory:  the node without --data-dir       vs redis-server with no persistence;
#   durable: the node with --data-dir (redb,   vs redis-server with appendonly yes and
#            group commit fsynced per batch)      appendfsync always (fsync per write batch).
# Prints one table per pairing: ops/s and p99 (ms) of each, and the ratio node / redis-server.
#
# REQUESTS (default 100000) is per test and pipelining mode; the latency run uses a fifth.
# BENCH_KEYSPACE (default 1000) is redis-benchmark's -r: how many distinct keys SET/GET/INCR use
# and how many distinct members SADD adds to its one set (`myset`), so it bounds that set's size.
# Installs redis-server and redis-tools with apt-get when missing. Ports come from
# BENCH_PORT_BASE (default 17380; it uses the next four).
set -euo pipefail
cd "$(dirname "$0")/.."

requests=${1:-100000}
[[ $requests =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [REQUESTS]" >&2; exit 2; }
base=${BENCH_PORT_BASE:-17380}
redis_port=$base
node_port=$((base + 1))
peer_port=$((base + 2))
metrics_port=$((base + 3))
keyspace=${BENCH_KEYSPACE:-1000}
clients=50
tests=set,get,incr,sadd

if ! command -v redis-benchmark >/dev/null || ! command -v redis-server >/dev/null; then
    echo "installing redis-server and redis-tools" >&2
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo=sudo
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq redis-server redis-tools
fi

cargo build --locked --release --quiet -p converge --bin converge
converge=${CARGO_TARGET_DIR:-target}/release/converge

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# Waits (at most 10 s) until the server on port $1 answers PING.
wait_ping() {
    for _ in $(seq 100); do
        if [[ $(redis-cli -p "$1" ping 2>/dev/null) == PONG ]]; then return 0; fi
        sleep 0.1
    done
    echo "nothing answers PING on port $1; logs in $work" >&2
    exit 1
}

# start_servers MODE: a fresh redis-server and node for the pairing MODE (memory or durable).
start_servers() {
    local mode=$1 redis_args=(--port "$redis_port" --bind 127.0.0.1 --save "" --dir "$work")
    local node_args=(node --id 1 --region bench --listen "127.0.0.1:$node_port"
        --peer-listen "127.0.0.1:$peer_port" --metrics-listen "127.0.0.1:$metrics_port"
        --insecure-peers)  # a single node: no peer links to secure
    if [[ $mode == durable ]]; then
        redis_args+=(--appendonly yes --appendfsync always)
        rm -rf "$work/node-data"
        node_args+=(--data-dir "$work/node-data")
    else
        redis_args+=(--appendonly no)
    fi
    redis-server "${redis_args[@]}" >"$work/redis-$mode.log" 2>&1 &
    pids+=($!)
    RUST_LOG=warn "$converge" "${node_args[@]}" >"$work/node-$mode.log" 2>&1 &
    pids+=($!)
    wait_ping "$redis_port"
    wait_ping "$node_port"
}

stop_servers() {
    cleanup_pids=("${pids[@]}")
    pids=()
    for pid in "${cleanup_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${cleanup_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}

# bench PORT ARGS...: redis-benchmark's CSV rows as "TEST RPS P99".
# Its CSV columns: test, rps, avg, min, p50, p95, p99, max latency (ms).
bench() {
    local port=$1; shift
    redis-benchmark -h 127.0.0.1 -p "$port" -r "$keyspace" --csv "$@" 2>/dev/null |
        tr -d '"' | awk -F, 'NR > 1 && NF >= 7 { print $1, $2, $7 }'
}

printf 'converge reference node vs redis-server %s, %s requests per test, keyspace %s, %s\n' \
    "$(redis-server --version | awk '{print $3}' | sed 's/v=//')" "$requests" "$keyspace" \
    "$(date -u +%Y-%m-%dT%H:%MZ)"
printf 'machine: %s cores, %s\n' "$(nproc)" "$(uname -sr)"

for mode in memory durable; do
    start_servers "$mode"
    printf '\n%s: node%s vs redis-server%s\n' "$mode" \
        "$([[ $mode == durable ]] && echo ' --data-dir (redb, group commit)' || echo ' in memory')" \
        "$([[ $mode == durable ]] && echo ' appendfsync always' || echo ' no persistence')"
    printf '%-8s %-14s %12s %12s %7s %10s %10s\n' test mode redis-ops/s node-ops/s ratio redis-p99 node-p99
    runs=("-P 1 -c $clients -n $requests" "-P 16 -c $clients -n $requests"
        "-P 1 -c 1 -n $((requests / 5))")
    labels=("P1 c$clients" "P16 c$clients" "P1 c1 latency")
    for i in "${!runs[@]}"; do
        # shellcheck disable=SC2086 # the run's flags are meant to split
        redis_rows=$(bench "$redis_port" -t "$tests" ${runs[$i]})
        # shellcheck disable=SC2086
        node_rows=$(bench "$node_port" -t "$tests" ${runs[$i]})
        join <(sort <<<"$redis_rows") <(sort <<<"$node_rows") |
            awk -v label="${labels[$i]}" '{
                printf "%-8s %-14s %12.0f %12.0f %7.2f %10.3f %10.3f\n",
                    $1, label, $2, $4, ($2 > 0 ? $4 / $2 : 0), $3, $5 }'
    done
    stop_servers
done
