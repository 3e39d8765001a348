#!/usr/bin/env bash
# What mutual TLS between regions costs: redis-benchmark against two three-region loopback
# converge clusters (release build, durable, LOCAL_ONE), one started by `converge cluster up` as
# is (peer links over mutual TLS) and one with `--insecure-peers` (plaintext peer links).
#
#   scripts/bench-tls.sh [-n REQUESTS] [-c CLIENTS]
#
# Every write is sent to us-east and replicated by it to eu-west and apac over the peer links, all
# on the same cores, so the figures include the encryption of every replication frame (and its
# decryption by two receivers). Runs SET, INCR and SADD (writes, which replicate) and GET (a read,
# which does not: the control), unpipelined (-P 1) and pipelined (-P 16), alternating the two
# clusters test by test so a drift in the machine's load hits both alike, and prints ops/s, p99
# latency and the ratio TLS / plaintext. The client port is plaintext in both: only the links
# between regions differ.
#
# Installs redis-tools with apt-get if redis-benchmark is missing. Everything it starts is stopped
# on exit, and its scratch directory removed.
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
if ! command -v redis-benchmark >/dev/null; then
  echo "installing redis-tools (apt-get)" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get install -y redis-tools >/dev/null
fi

cargo build --release --locked -p converge >&2
BIN="${CARGO_TARGET_DIR:-target}/release/converge"

WORK=$(mktemp -d)
BASE=$((27000 + RANDOM % 2000))
TLS_PORT=$BASE
PLAIN_PORT=$((BASE + 10))

cleanup() {
  "$BIN" cluster down --dir "$WORK/tls" >/dev/null 2>&1 || true
  "$BIN" cluster down --dir "$WORK/plain" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" cluster up --regions us-east,eu-west,apac --dir "$WORK/tls" --base-port "$TLS_PORT" >&2
"$BIN" cluster up --regions us-east,eu-west,apac --dir "$WORK/plain" --base-port "$PLAIN_PORT" \
  --insecure-peers >&2

# run PORT PIPELINE TEST -> "rps p99"
run() {
  redis-benchmark -p "$1" -P "$2" -t "$3" -n "$N" -c "$C" --csv 2>/dev/null |
    awk -F'"' 'NR==2 { print $4, $14 }'
}

echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "redis-benchmark -n $N -c $C against us-east of a three-region cluster; ops/s and p99 ms"
FMT='%-5s %-3s %10s %7s %10s %7s %9s\n'
printf "$FMT" test P mtls p99 plain p99 mtls/plain
for P in 1 16; do
  for T in set incr sadd get; do
    read -r t_rps t_p99 < <(run "$TLS_PORT" "$P" "$T")
    read -r p_rps p_p99 < <(run "$PLAIN_PORT" "$P" "$T")
    printf "$FMT" "$T" "$P" "${t_rps%.*}" "$t_p99" "${p_rps%.*}" "$p_p99" \
      "$(awk -v a="$t_rps" -v b="$p_rps" 'BEGIN { printf "%.2f", a / b }')"
  done
done
# The links were TLS, and carried the writes: the frames apac read from us-east, per cluster.
for c in tls plain; do
  port=$(( $([ "$c" = tls ] && echo "$TLS_PORT" || echo "$PLAIN_PORT") + 202 ))
  frames=$(curl -s "http://127.0.0.1:$port/metrics" |
    awk '/^converge_peer_frames_total\{peer="0",direction="in"\}/ { print $2 }')
  echo "$c: apac read $frames frames from us-east"
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
