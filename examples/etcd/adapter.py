#!/usr/bin/env python3
"""Adapter between converge's harness and one etcd member: `converge certify --cluster
examples/etcd/etcd.toml --workload lin-kv`.

The harness writes Maelstrom client messages as JSON lines on stdin (`init`, and lin-kv's `read`,
`write` and `cas`); this adapter turns each into a call to etcd's v3 JSON gateway
(`POST http://ADDR/v3/kv/range|put|txn`, keys and values base64) and writes one reply line per
request on stdout. See docs/protocol.md (§ Errors, § lin-kv) and docs/certify-subjects.md.

    python3 adapter.py [--serializable] [--timeout-ms N] HOST:PORT

`--serializable` reads with etcd's serializable range option: the member answers from its own
store without asking the leader, so it may return a stale value. That variant exists to be
caught: under partitions it is not linearizable, and the harness must say so.

Error codes, as the checker reads them (docs/protocol.md § Errors):
- 11 (definite): the request never reached etcd (connection refused or not completed), or etcd
  refused it before proposing it (no leader, too many requests, request too large), or it was a
  read (a read that failed has no effect at all, so its failure is always definite);
- 20 / 22 (definite): read or cas of an absent key / cas whose value differs;
- 0 (indefinite): a write or cas that reached etcd and then timed out, lost its connection, or
  got an error after etcd may have proposed it: etcd may still commit it.

Standard library only; Python 3.11. Logs go to stderr.
"""

import argparse
import base64
import http.client
import json
import socket
import sys
import threading
import time

# The harness's request timeout is 1000 ms by default; answering after it has given up is
# useless, so by default every etcd call must end well before that.
DEFAULT_TIMEOUT_MS = 800
# init is answered once the member serves a linearizable read (a leader exists and this member
# reaches it). The harness fails a node that has not answered init within 10 s.
DEFAULT_INIT_TIMEOUT_MS = 9000
# Every key this adapter writes lives under this prefix, so a shared etcd is not trampled.
KEY_PREFIX = "converge/lin-kv/"

# etcd's error strings (server/etcdserver/api/v3rpc/rpctypes) that promise the request was
# refused before it was proposed to raft, so it can never take effect. Everything else that
# etcd answers to a write after accepting it is treated as indefinite: "request timed out"
# (and its "possibly due to leader failure / connection lost" variants) are returned while the
# proposal may still commit; "leader changed" and "server stopped" likewise come after the
# proposal may have entered the log. When unsure, indefinite is the safe answer: it costs the
# checker some search, never a false verdict.
DEFINITE_ETCD_ERRORS = (
    "etcdserver: no leader",
    "etcdserver: too many requests",
    "etcdserver: request is too large",
    "etcdserver: not capable",
    "raft proposal dropped",
    "etcdserver: unhealthy cluster",
)

# gRPC status codes that etcd's gateway may return and which, on their own, promise the request
# did nothing: InvalidArgument (3), NotFound (5), AlreadyExists (6), PermissionDenied (7),
# FailedPrecondition (9), OutOfRange (11), Unimplemented (12), Unauthenticated (16).
DEFINITE_GRPC_CODES = {3, 5, 6, 7, 9, 11, 12, 16}

# Maelstrom error codes (docs/protocol.md § Errors).
TIMEOUT = 0
NOT_SUPPORTED = 10
UNAVAILABLE = 11
MALFORMED = 12
KEY_DOES_NOT_EXIST = 20
PRECONDITION_FAILED = 22


def log(msg):
    sys.stderr.write(f"etcd-adapter: {msg}\n")
    sys.stderr.flush()


class Failed(Exception):
    """An etcd call that did not succeed, already classified as a Maelstrom error."""

    def __init__(self, code, text):
        super().__init__(text)
        self.code = code
        self.text = text


def b64(text):
    return base64.b64encode(text.encode()).decode()


def unb64(text):
    return base64.b64decode(text).decode()


def encode_key(key):
    # JSON text of the key: lin-kv's keys are integers, but any JSON key maps to one etcd key.
    return b64(KEY_PREFIX + json.dumps(key, sort_keys=True, separators=(",", ":")))


def encode_value(value):
    # Canonical JSON text, so a cas's `from` compares equal to what a write stored.
    return b64(json.dumps(value, sort_keys=True, separators=(",", ":")))


def decode_value(text):
    return json.loads(unb64(text))


class Etcd:
    """One member's JSON gateway. Each call opens its own connection: that keeps concurrent
    requests independent, and tells apart the two ways a call can fail (before the request was
    sent, or after) without guessing about a reused connection's state."""

    def __init__(self, addr, timeout_s):
        host, _, port = addr.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"not HOST:PORT: {addr!r}")
        self.host = host
        self.port = int(port)
        self.timeout_s = timeout_s

    def call(self, path, body, mutating, timeout_s=None):
        """POSTs body to /v3/PATH and returns the decoded JSON answer, or raises Failed.
        `mutating` says whether an unknown outcome must be reported as indefinite."""
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout_s)
        try:
            try:
                conn.connect()
            except OSError as e:
                # Refused, or the handshake did not finish in time: not one byte of the request
                # left this process, so it cannot have taken effect.
                raise Failed(UNAVAILABLE, f"cannot connect to etcd: {e}") from e
            # Whatever happens from here on, etcd may have received the request.
            unknown = TIMEOUT if mutating else UNAVAILABLE
            try:
                payload = json.dumps(body).encode()
                conn.request("POST", "/v3/" + path, body=payload,
                             headers={"Content-Type": "application/json"})
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise socket.timeout("deadline passed while sending")
                conn.sock.settimeout(remaining)
                resp = conn.getresponse()
                raw = resp.read()
            except (OSError, http.client.HTTPException) as e:
                raise Failed(unknown, f"etcd {path}: {type(e).__name__}: {e}") from e
            try:
                answer = json.loads(raw)
            except ValueError:
                raise Failed(unknown, f"etcd {path}: HTTP {resp.status}, not JSON: {raw[:200]!r}")
            if resp.status != 200 or "error" in answer:
                raise self.classify(path, resp.status, answer, unknown)
            return answer
        finally:
            conn.close()

    @staticmethod
    def classify(path, status, answer, unknown):
        text = str(answer.get("error") or answer.get("message") or f"HTTP {status}")
        code = answer.get("code")
        if any(text.startswith(t) or t in text for t in DEFINITE_ETCD_ERRORS):
            return Failed(UNAVAILABLE, f"etcd {path}: {text}")
        if isinstance(code, int) and code in DEFINITE_GRPC_CODES:
            return Failed(UNAVAILABLE, f"etcd {path}: {text} (code {code})")
        return Failed(unknown, f"etcd {path}: {text} (code {code})")


class Adapter:
    def __init__(self, etcd, serializable, init_timeout_s):
        self.etcd = etcd
        self.serializable = serializable
        self.init_timeout_s = init_timeout_s
        self.out_lock = threading.Lock()
        self.node_id = None

    # -- output --------------------------------------------------------------------------------

    def send(self, msg):
        line = json.dumps(msg, separators=(",", ":"))
        with self.out_lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def reply(self, req, body):
        body["in_reply_to"] = req["body"]["msg_id"]
        src = req.get("dest") if isinstance(req.get("dest"), str) else self.node_id
        self.send({"src": src or self.node_id or "n?", "dest": req.get("src"), "body": body})

    def error(self, req, code, text):
        self.reply(req, {"type": "error", "code": code, "text": text})

    # -- requests ------------------------------------------------------------------------------

    def handle_line(self, line):
        """Parses one input line; never raises. Requests are served on their own thread."""
        line = line.strip()
        if not line:
            return
        try:
            req = json.loads(line)
        except ValueError as e:
            log(f"skipping a line that is not JSON ({e}): {line[:200]!r}")
            return
        body = req.get("body") if isinstance(req, dict) else None
        msg_id = body.get("msg_id") if isinstance(body, dict) else None
        if not isinstance(msg_id, int) or isinstance(msg_id, bool):
            log(f"skipping a message without an integer body.msg_id: {line[:200]!r}")
            return
        if not isinstance(req.get("src"), str):
            log(f"skipping a message without a string src: {line[:200]!r}")
            return
        threading.Thread(target=self.serve, args=(req,), daemon=True).start()

    def serve(self, req):
        try:
            body = req["body"]
            kind = body.get("type")
            if kind == "init":
                self.init(req)
            elif kind == "read":
                self.read(req)
            elif kind == "write":
                self.write(req)
            elif kind == "cas":
                self.cas(req)
            elif isinstance(kind, str):
                self.error(req, NOT_SUPPORTED, f"this adapter serves lin-kv; not {kind!r}")
            else:
                self.error(req, MALFORMED, "body.type is missing or not a string")
        except Failed as f:
            self.error(req, f.code, f.text)
        except Exception as e:  # A bug here must not take the adapter down with it.
            log(f"request {req.get('body')!r} failed: {type(e).__name__}: {e}")
            # Unknown whether it reached etcd: indefinite for writes, and harmless for reads.
            self.error(req, TIMEOUT, f"adapter error: {type(e).__name__}: {e}")

    @staticmethod
    def field(req, name):
        body = req["body"]
        if name not in body:
            raise Failed(MALFORMED, f"{body.get('type')} without {name}")
        return body[name]

    def init(self, req):
        node_id = req["body"].get("node_id")
        if isinstance(node_id, str):
            self.node_id = node_id
        # Ready means a linearizable read succeeds: the member is up, has a leader and reaches
        # it. The key is never written; absent is an answer like any other.
        deadline = time.monotonic() + self.init_timeout_s
        last = None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                log(f"init: etcd not ready in time: {last}")
                raise Failed(UNAVAILABLE, f"etcd not ready: {last}")
            try:
                self.etcd.call("kv/range", {"key": b64(KEY_PREFIX + "init")}, False,
                               timeout_s=min(self.etcd.timeout_s, left))
                break
            except Failed as f:
                last = f.text
                time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        log(f"init: {self.node_id} ready")
        self.reply(req, {"type": "init_ok"})

    def read(self, req):
        key = self.field(req, "key")
        rng = {"key": encode_key(key)}
        if self.serializable:
            rng["serializable"] = True
        answer = self.etcd.call("kv/range", rng, False)
        kvs = answer.get("kvs") or []
        if not kvs:
            raise Failed(KEY_DOES_NOT_EXIST, f"key {key!r} does not exist")
        self.reply(req, {"type": "read_ok", "value": decode_value(kvs[0].get("value", ""))})

    def write(self, req):
        key = self.field(req, "key")
        value = self.field(req, "value")
        self.etcd.call("kv/put", {"key": encode_key(key), "value": encode_value(value)}, True)
        self.reply(req, {"type": "write_ok"})

    def cas(self, req):
        key = self.field(req, "key")
        old = self.field(req, "from")
        new = self.field(req, "to")
        k = encode_key(key)
        # One transaction: if the value equals `from`, put `to`; otherwise read the key, so the
        # failure says whether the key was absent (20) or held another value (22) as of the same
        # revision as the comparison. etcd fails a VALUE comparison on an absent key.
        txn = {
            "compare": [{"key": k, "result": "EQUAL", "target": "VALUE",
                         "value": encode_value(old)}],
            "success": [{"request_put": {"key": k, "value": encode_value(new)}}],
            "failure": [{"request_range": {"key": k}}],
        }
        answer = self.etcd.call("kv/txn", txn, True)
        if answer.get("succeeded"):
            self.reply(req, {"type": "cas_ok"})
            return
        responses = answer.get("responses") or []
        rng = {}
        if responses:
            first = responses[0]
            rng = first.get("response_range") or first.get("responseRange") or {}
        kvs = rng.get("kvs") or []
        if not kvs:
            raise Failed(KEY_DOES_NOT_EXIST, f"key {key!r} does not exist")
        current = decode_value(kvs[0].get("value", ""))
        raise Failed(PRECONDITION_FAILED, f"expected {old!r}, found {current!r}")


def main():
    ap = argparse.ArgumentParser(description="converge adapter for etcd's v3 JSON gateway")
    ap.add_argument("addr", help="the member's client address, HOST:PORT")
    ap.add_argument("--serializable", action="store_true",
                    help="serializable (local, possibly stale) reads: expected to fail lin-kv")
    ap.add_argument("--timeout-ms", type=int, default=DEFAULT_TIMEOUT_MS,
                    help="deadline of each etcd call (keep it under the harness's request "
                         "timeout)")
    ap.add_argument("--init-timeout-ms", type=int, default=DEFAULT_INIT_TIMEOUT_MS,
                    help="how long init waits for the member to serve a linearizable read")
    args = ap.parse_args()
    if args.timeout_ms <= 0 or args.init_timeout_ms <= 0:
        ap.error("timeouts must be positive")
    try:
        etcd = Etcd(args.addr, args.timeout_ms / 1000)
    except ValueError as e:
        ap.error(str(e))
    adapter = Adapter(etcd, args.serializable, args.init_timeout_ms / 1000)
    log(f"serving {args.addr} ({'serializable' if args.serializable else 'linearizable'} reads, "
        f"{args.timeout_ms} ms per call)")
    for line in sys.stdin:
        adapter.handle_line(line)
    # stdin closed: the harness is done. Give requests in flight their deadline to answer.
    end = time.monotonic() + max(args.timeout_ms, args.init_timeout_ms) / 1000 + 1
    for t in threading.enumerate():
        if t is not threading.current_thread():
            t.join(timeout=max(0.0, end - time.monotonic()))


if __name__ == "__main__":
    main()
