#!/usr/bin/env bash
# What a consensus register costs next to a replicated (CRDT) write, on a three-region loopback
# converge cluster (release build, durable: every node fsyncs before it acknowledges).
#
#   scripts/bench-cas.sh [-n OPS] [-c CLIENTS] [-d SECONDS]
#
# Latency: one client on us-east runs OPS sequential requests of each kind and prints p50 and p99
# in ms, and their ratio to the LOCAL_ONE SET of the same run (the machine may be shared and
# noisy, so only ratios within one run mean much):
#   SET k v                      a LOCAL_ONE CRDT write: no round trip, one local fsync
#   CAS.SET k v                  consensus: two round trips to a majority (prepare/promise,
#                                accept/accepted), each acceptor fsyncing its promise and its vote
#   WITH GLOBAL_QUORUM CAS.GET   a linearizable read: one round trip to a majority
#   WITH LOCAL_ONE CAS.GET       the last decision us-east learned: no round trip
# Throughput: CLIENTS clients, spread over the three regions, CAS-increment for SECONDS each
# (read at GLOBAL_QUORUM, then `CAS k v v+1`): first all on one key (contention: precondition
# failures, and proposers colliding and backing off), then each on its own keys. Prints
# successes/s, precondition failures/s and errors/s (named), and checks that the registers end
# at the number of successful increments (no increment lost or applied twice; a CAS answered
# TIMEOUT, of unknown outcome, may count or not).
#
# The client is a small Python RESP client (python3's standard library only), so its own cost is
# in every figure alike. Everything the script starts is stopped on exit, and its scratch
# directory removed.
set -euo pipefail

N=2000
C=6
D=10
while getopts "n:c:d:" opt; do
  case $opt in
    n) N=$OPTARG ;;
    c) C=$OPTARG ;;
    d) D=$OPTARG ;;
    *) echo "usage: $0 [-n OPS] [-c CLIENTS] [-d SECONDS]" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
cargo build --release --locked -p converge >&2
BIN="${CARGO_TARGET_DIR:-target}/release/converge"

WORK=$(mktemp -d)
BASE=$((25000 + RANDOM % 2000))
cleanup() {
  "$BIN" cluster down --dir "$WORK/cluster" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" cluster up --regions us-east,eu-west,apac --dir "$WORK/cluster" --base-port "$BASE" >&2
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "command: scripts/bench-cas.sh -n $N -c $C -d $D"

python3 - "$WORK/cluster/cluster.json" "$N" "$C" "$D" <<'PY'
import json, socket, sys, threading, time

nodes = {x["region"]: x["client_port"] for x in json.load(open(sys.argv[1]))["nodes"]}
n, clients, seconds = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
east = nodes["us-east"]
ports = [nodes["us-east"], nodes["eu-west"], nodes["apac"]]


class Conn:
    """A blocking RESP2 client; every read is bounded by the socket timeout."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.s.makefile("rb")

    def cmd(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.s.sendall(b"".join(out))
        return self.read()

    def read(self):
        line = self.f.readline()
        if not line:
            raise EOFError("connection closed")
        tag, rest = line[:1], line[1:-2]
        if tag == b"+":
            return rest.decode()
        if tag == b"-":
            return Exception(rest.decode())
        if tag == b":":
            return int(rest)
        if tag == b"$":
            k = int(rest)
            if k < 0:
                return None
            data = self.f.read(k + 2)
            return data[:-2]
        if tag == b"*":
            return [self.read() for _ in range(int(rest))]
        raise ValueError(f"bad reply {line!r}")


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))]


def latency(conn, args):
    """p50 and p99 of `n` sequential requests, and the errors met (each with its latency: an
    UNAVAILABLE after about 2.6 s is five attempts timing out, a quick one pre-emption)."""
    took, errors = [], []
    for i in range(n):
        a = [x.replace("{i}", str(i)) for x in args]
        t = time.perf_counter()
        r = conn.cmd(*a)
        took.append((time.perf_counter() - t) * 1000)
        if isinstance(r, Exception):
            errors.append(f"#{i} {str(r).split()[0]} after {took[-1]:.0f} ms")
    return pct(took, 0.5), pct(took, 0.99), errors


c = Conn(east)
assert c.cmd("CAS.SET", "lat:cas", "v") == "OK"
rows = [
    ("SET k v (LOCAL_ONE)", ["SET", "lat:crdt:{i}", "v"]),
    ("CAS.SET k v", ["CAS.SET", "lat:cas:{i}", "v"]),
    ("CAS.GET k (GLOBAL_QUORUM)", ["WITH", "GLOBAL_QUORUM", "CAS.GET", "lat:cas"]),
    ("CAS.GET k (LOCAL_ONE)", ["WITH", "LOCAL_ONE", "CAS.GET", "lat:cas"]),
    ("CAS k v v (one key)", ["CAS", "lat:cas", "v", "v"]),
]
print(f"latency, one client on us-east, {n} sequential requests each (ms)")
print(f"{'request':28} {'p50':>7} {'p99':>7} {'p50/SET':>8} {'p99/SET':>8}")
base = None
for name, args in rows:
    p50, p99, errors = latency(c, args)
    base = base or (p50, p99)
    print(
        f"{name:28} {p50:7.2f} {p99:7.2f} {p50 / base[0]:8.2f} {p99 / base[1]:8.2f}"
        + (f"   {len(errors)} errors: {', '.join(errors[:5])}" if errors else "")
    )


def incrementer(port, keys, stop, out, kinds):
    """CAS-increments `keys` in turn until `stop`: counts successes, precondition failures,
    errors (by their first word, in `kinds`) and CASes of unknown outcome (TIMEOUT)."""
    conn = Conn(port)
    ok = failed = errors = unknown = 0
    i = 0
    while not stop.is_set():
        key = keys[i % len(keys)]
        i += 1
        v = conn.cmd("WITH", "GLOBAL_QUORUM", "CAS.GET", key)
        if isinstance(v, Exception):
            errors += 1
            kinds["read " + str(v).split()[0]] = kinds.get("read " + str(v).split()[0], 0) + 1
            continue
        r = conn.cmd("CAS", key, v, str(int(v) + 1))
        if r == 1:
            ok += 1
        elif r == 0:
            failed += 1
        else:
            errors += 1
            word = str(r).split()[0]
            kinds["cas " + word] = kinds.get("cas " + word, 0) + 1
            unknown += word == "TIMEOUT"
    out.append((ok, failed, errors, unknown))


def throughput(name, keys_of):
    c = Conn(east)
    for keys in {tuple(keys_of(k)) for k in range(clients)}:
        for key in keys:
            assert c.cmd("CAS.SET", key, "0") == "OK"
    stop, out, kinds = threading.Event(), [], {}
    threads = [
        threading.Thread(target=incrementer, args=(ports[k % 3], keys_of(k), stop, out, kinds))
        for k in range(clients)
    ]
    start = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    took = time.perf_counter() - start
    ok, failed, errors, unknown = (sum(x[i] for x in out) for i in range(4))
    total = sum(
        int(c.cmd("WITH", "GLOBAL_QUORUM", "CAS.GET", key))
        for key in {key for k in range(clients) for key in keys_of(k)}
    )
    # A CAS of unknown outcome may or may not have incremented: the sum lies in between.
    check = "ok" if ok <= total <= ok + unknown else "MISMATCH"
    print(
        f"{name:30} {ok / took:9.1f} {failed / took:12.1f} {errors / took:8.1f}"
        f"   sum {total}, successes {ok}, unknown {unknown}: {check}"
        + (f"; errors {dict(sorted(kinds.items()))}" if kinds else "")
    )


print(f"\nCAS-increment throughput, {clients} clients over 3 regions, {seconds:g} s each (per second)")
print(f"{'':30} {'successes':>9} {'precond.fail':>12} {'errors':>8}")
throughput("one contended key", lambda k: ["hot"])
throughput("a key of its own per client", lambda k: [f"own:{k}:{j}" for j in range(16)])
PY
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
