#!/usr/bin/env bash
# A converge cluster (one region, and one of three regions) against redis-server, with
# redis-benchmark, in one run on one machine; and the replication lag under load.
# (scripts/bench-redis.sh compares one lone node with redis-server in more pairings.)
#
#   scripts/bench-cluster.sh [-n REQUESTS] [-c CLIENTS]
#
# Starts two converge clusters on loopback (release build, durable, LOCAL_ONE): a single region
# ("conv-1") and three regions ("conv-3", benchmarked on us-east while eu-west and apac replicate
# every write on the same cores), and two redis-servers: one as durable as the node (appendonly
# yes, appendfsync always: every acknowledged write is on disk, as the node's group commit
# guarantees) and one in memory (no persistence at all). Runs redis-benchmark's SET, GET, INCR
# and SADD against each, unpipelined (-P 1) and pipelined (-P 16), and prints ops/s, p99 latency
# and the ratios of converge to redis-server. While the pipelined SET runs against conv-3's
# us-east it samples apac's replication lag (the /metrics gauge `converge_replication_lag_ms`:
# apac's clock minus the stamp us-east put on the frame when it queued it; every 50 ms) and prints
# its p99 and max. Last, one client alone (-c 1) gives the latency of a lone SET and GET.
#
# Installs redis-tools and redis-server with apt-get if they are missing. Everything it starts is
# stopped on exit, and its scratch directory removed.
set -euo pipefail

N=100000
C=50
while getopts "n:c:" opt; do
  case $opt in
    n) N=$OPTARG ;;
    c) C=$OPTARG ;;
    *) echo "usage: $0 [-n REQUESTS] [-c CLIENTS]" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
if ! command -v redis-benchmark >/dev/null || ! command -v redis-server >/dev/null; then
  echo "installing redis-tools and redis-server (apt-get)" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get install -y redis-tools redis-server >/dev/null
fi

cargo build --release --locked -p converge >&2
BIN="${CARGO_TARGET_DIR:-target}/release/converge"

WORK=$(mktemp -d)
BASE=$((23000 + RANDOM % 2000))
SOLO_PORT=$BASE
CONVERGE_PORT=$((BASE + 10))
REDIS_DURABLE_PORT=$((BASE + 50))
REDIS_MEMORY_PORT=$((BASE + 51))
LAG_PORT=$((BASE + 212))   # apac's /metrics: the lag of what it receives from us-east (peer 0)

cleanup() {
  "$BIN" cluster down --dir "$WORK/solo" >/dev/null 2>&1 || true
  "$BIN" cluster down --dir "$WORK/cluster" >/dev/null 2>&1 || true
  for p in "$REDIS_DURABLE_PORT" "$REDIS_MEMORY_PORT"; do
    redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" cluster up --regions solo --dir "$WORK/solo" --base-port "$SOLO_PORT" >&2
"$BIN" cluster up --regions us-east,eu-west,apac --dir "$WORK/cluster" --base-port "$CONVERGE_PORT" >&2
mkdir -p "$WORK/redis-durable" "$WORK/redis-memory"
redis-server --port "$REDIS_DURABLE_PORT" --dir "$WORK/redis-durable" --save '' \
  --appendonly yes --appendfsync always --daemonize yes --logfile "$WORK/redis-durable.log"
redis-server --port "$REDIS_MEMORY_PORT" --dir "$WORK/redis-memory" --save '' \
  --appendonly no --daemonize yes --logfile "$WORK/redis-memory.log"
for p in "$REDIS_DURABLE_PORT" "$REDIS_MEMORY_PORT"; do
  for _ in $(seq 50); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
done

# run PORT PIPELINE TEST -> "rps p99"
run() {
  redis-benchmark -p "$1" -P "$2" -t "$3" -n "$N" -c "$C" --csv 2>/dev/null |
    awk -F'"' 'NR==2 { print $4, $14 }'
}

sample_lag() {
  while :; do
    curl -s "http://127.0.0.1:$LAG_PORT/metrics" 2>/dev/null |
      awk '/^converge_replication_lag_ms\{peer="0"/ { print $2 }'
    sleep 0.05
  done
}

echo "redis-benchmark -n $N -c $C on $(nproc) cores; ops/s and p99 ms"
FMT='%-5s %-3s %10s %7s %10s %7s %10s %7s %10s %7s %7s %7s %7s\n'
printf "$FMT" test P conv-1 p99 conv-3 p99 redis-aof p99 redis-mem p99 1/aof 1/mem 3/aof
for P in 1 16; do
  for T in set get incr sadd; do
    lag_pid=""
    if [ "$T" = set ] && [ "$P" = 16 ]; then
      sample_lag >"$WORK/lag.txt" & lag_pid=$!
    fi
    read -r s_rps s_p99 < <(run "$SOLO_PORT" "$P" "$T")
    read -r c_rps c_p99 < <(run "$CONVERGE_PORT" "$P" "$T")
    [ -n "$lag_pid" ] && kill "$lag_pid" 2>/dev/null && wait "$lag_pid" 2>/dev/null || true
    read -r d_rps d_p99 < <(run "$REDIS_DURABLE_PORT" "$P" "$T")
    read -r m_rps m_p99 < <(run "$REDIS_MEMORY_PORT" "$P" "$T")
    ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
    printf "$FMT" "$T" "$P" "${s_rps%.*}" "$s_p99" "${c_rps%.*}" "$c_p99" "${d_rps%.*}" "$d_p99" \
      "${m_rps%.*}" "$m_p99" "$(ratio "$s_rps" "$d_rps")" "$(ratio "$s_rps" "$m_rps")" \
      "$(ratio "$c_rps" "$d_rps")"
  done
done
echo "one client, unpipelined (-c 1 -P 1 -n 5000): the latency of a lone request"
for T in set get; do
  read -r s_rps s_p99 < <(redis-benchmark -p "$SOLO_PORT" -t "$T" -n 5000 -c 1 --csv 2>/dev/null |
    awk -F'"' 'NR==2 { print $4, $14 }')
  read -r d_rps d_p99 < <(redis-benchmark -p "$REDIS_DURABLE_PORT" -t "$T" -n 5000 -c 1 --csv 2>/dev/null |
    awk -F'"' 'NR==2 { print $4, $14 }')
  printf '%-5s conv-1 %8s ops/s p99 %6s ms   redis-aof %8s ops/s p99 %6s ms\n' "$T" "${s_rps%.*}" \
    "$s_p99" "${d_rps%.*}" "$d_p99"
done
if [ -s "$WORK/lag.txt" ]; then
  sort -n "$WORK/lag.txt" | awk '{ v[NR] = $1 } END {
    i = int(NR * 0.99); if (i < 1) i = 1;
    printf "replication lag us-east -> apac during SET -P 16: p99 %d ms, max %d ms (%d samples)\n", v[i], v[NR], NR }'
fi
