#!/usr/bin/env python3
"""Self-test of examples/etcd: `python3 examples/etcd/adapter_test.py` (about 20 s).

1. One etcd member on free ports, the adapter driven over its stdin/stdout: init, read of an
   absent key (20), write, read, cas that fails (22) and succeeds, cas of an absent key (20),
   malformed requests (12 / 10, or skipped when there is no msg_id), concurrent requests from
   several clients, and, with etcd killed, definite errors (11) for requests never sent.
2. Three members started by member.py, each link through a small cuttable proxy in this file
   standing in for the harness's: the cluster forms through the proxies; with one member cut
   off, a linearizable read there fails (11), a serializable read there returns the stale
   value, and a write there is indefinite (0); after healing the member catches up; killed and
   restarted with the same command and data directory, it rejoins.

Part 2 needs root and `unshare` (member.py bind-mounts a private /etc/hosts); it is skipped
otherwise. Both need `etcd` on PATH (scripts/install-deps.sh). Standard library only. Every wait
is bounded; every process started here is stopped, also on failure.
"""

import json
import os
import queue
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ADAPTER = os.path.join(HERE, "adapter.py")
MEMBER = os.path.join(HERE, "member.py")
# How long a reply may take: the adapter's own deadline per etcd call is shorter.
REPLY_TIMEOUT_S = 5.0
# How long etcd members get to form a cluster or catch up.
CONVERGE_TIMEOUT_S = 20.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_tcp(port, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port} after {timeout_s} s")


def start_group(cmd, log_path):
    """Starts cmd in a process group of its own, as the harness does, logging to log_path."""
    log = open(log_path, "ab")
    try:
        return subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    finally:
        log.close()


def kill_group(proc):
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


class Adapter:
    """The adapter as a subprocess, with replies collected by msg_id."""

    def __init__(self, addr, *flags):
        self.proc = subprocess.Popen(
            [sys.executable, ADAPTER, *flags, "--timeout-ms", "800", addr],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.replies = queue.Queue()
        self.stderr = []
        self.readers = [threading.Thread(target=self._read, daemon=True),
                        threading.Thread(target=self._read_err, daemon=True)]
        for t in self.readers:
            t.start()
        self.next_id = 1000

    def _read(self):
        for line in self.proc.stdout:
            self.replies.put(json.loads(line))

    def _read_err(self):
        for line in self.proc.stderr:
            self.stderr.append(line)

    def send_raw(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def send(self, body, src="c1"):
        self.next_id += 1
        body = dict(body, msg_id=self.next_id)
        self.send_raw(json.dumps({"src": src, "dest": "n0", "body": body}))
        return self.next_id

    def wait(self, ids, timeout_s=REPLY_TIMEOUT_S):
        """The replies to the msg_ids `ids`, by msg_id; fails on a missing or duplicate one."""
        got = {}
        deadline = time.monotonic() + timeout_s
        while len(got) < len(ids):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no reply to {set(ids) - set(got)} in {timeout_s} s; "
                                     f"stderr: {''.join(self.stderr)[-2000:]}")
            try:
                msg = self.replies.get(timeout=left)
            except queue.Empty:
                continue
            rid = msg["body"].get("in_reply_to")
            assert rid in ids and rid not in got, f"unexpected reply {msg}"
            got[rid] = msg
        return got

    def call(self, body, src="c1", timeout_s=REPLY_TIMEOUT_S):
        mid = self.send(body, src)
        return self.wait([mid], timeout_s)[mid]["body"]

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        # The readers see EOF once the process is gone; then their pipes can be closed.
        for t in self.readers:
            t.join(timeout=5)
        self.proc.stdout.close()
        self.proc.stderr.close()


class CuttableProxy:
    """A stand-in for the harness's proxy of one link: forwards 127.0.0.1:listen_port to
    127.0.0.1:target_port; cut() shuts every connection and resets new ones until heal()."""

    def __init__(self, target_port):
        self.target = ("127.0.0.1", target_port)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.is_cut = False
        self.used = False
        self.conns = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @staticmethod
    def _shut(*socks):
        for s in socks:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _pump(self, a, b, ends):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    b.shutdown(socket.SHUT_WR)
                    return
                b.sendall(data)
        except OSError:
            self._shut(a, b)
        finally:
            # The second pump to end closes both sockets: closing one that the other pump is
            # blocked on would not wake it.
            with self.lock:
                ends.append(1)
                last = len(ends) == 2
            if last:
                a.close()
                b.close()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            if self.is_cut:
                self._shut(c)
                c.close()
                continue
            try:
                u = socket.create_connection(self.target, timeout=2)
            except OSError:
                self._shut(c)
                c.close()
                continue
            u.settimeout(None)
            with self.lock:
                self.conns.append((c, u))
                # Kept for the check that every link carried a connection.
                self.used = True
            ends = []
            threading.Thread(target=self._pump, args=(c, u, ends), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, ends), daemon=True).start()

    def cut(self):
        self.is_cut = True
        with self.lock:
            conns, self.conns = self.conns, []
        for c, u in conns:
            self._shut(c, u)

    def heal(self):
        self.is_cut = False

    def close(self):
        self.closed = True
        self.cut()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def etcd_missing():
    return shutil.which("etcd") is None


@unittest.skipIf(etcd_missing(), "etcd is not installed (scripts/install-deps.sh)")
class OneMember(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="converge-etcd-test-")
        self.client = free_port()
        peer = free_port()
        self.etcd = start_group(
            ["etcd", "--name", "solo", "--data-dir", os.path.join(self.dir, "etcd"),
             "--listen-client-urls", f"http://127.0.0.1:{self.client}",
             "--advertise-client-urls", f"http://127.0.0.1:{self.client}",
             "--listen-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-cluster", f"solo=http://127.0.0.1:{peer}",
             "--logger", "zap", "--log-outputs", "stderr"],
            os.path.join(self.dir, "etcd.log"))
        wait_tcp(self.client, CONVERGE_TIMEOUT_S)
        self.adapter = Adapter(f"127.0.0.1:{self.client}")

    def tearDown(self):
        self.adapter.close()
        kill_group(self.etcd)
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_lin_kv_and_errors(self):
        a = self.adapter
        init = a.call({"type": "init", "node_id": "n0", "node_ids": ["n0"]}, src="c-init",
                      timeout_s=12)
        self.assertEqual(init["type"], "init_ok")
        self.assertEqual(a.call({"type": "read", "key": 1})["code"], 20)
        self.assertEqual(a.call({"type": "write", "key": 1, "value": 3})["type"], "write_ok")
        self.assertEqual(a.call({"type": "read", "key": 1}), {"type": "read_ok", "value": 3,
                                                              "in_reply_to": a.next_id})
        self.assertEqual(a.call({"type": "cas", "key": 1, "from": 2, "to": 4})["code"], 22)
        self.assertEqual(a.call({"type": "cas", "key": 1, "from": 3, "to": 4})["type"], "cas_ok")
        self.assertEqual(a.call({"type": "read", "key": 1})["value"], 4)
        self.assertEqual(a.call({"type": "cas", "key": 2, "from": 0, "to": 1})["code"], 20)
        # Malformed input: answered with 12 (or 10) when it has a msg_id, skipped otherwise;
        # the adapter keeps serving either way.
        self.assertEqual(a.call({"type": "write", "key": 1})["code"], 12)
        self.assertEqual(a.call({"key": 1})["code"], 12)
        self.assertEqual(a.call({"type": "add", "element": 1})["code"], 10)
        a.send_raw("not json at all")
        a.send_raw('{"src":"c1","dest":"n0","body":{"type":"read","key":1}}')
        a.send_raw("[]")
        self.assertEqual(a.call({"type": "read", "key": 1})["value"], 4)
        # Several clients at once, each with its own request outstanding.
        ids = [a.send({"type": "write", "key": 0, "value": i}, src=f"c{i}") for i in range(8)]
        replies = a.wait(ids)
        for mid in ids:
            self.assertEqual(replies[mid]["body"]["type"], "write_ok")
            self.assertEqual(replies[mid]["src"], "n0")
        self.assertEqual({r["dest"] for r in replies.values()}, {f"c{i}" for i in range(8)})
        # etcd gone: the connection is refused, nothing was sent, so errors are definite.
        kill_group(self.etcd)
        self.assertEqual(a.call({"type": "write", "key": 1, "value": 9})["code"], 11)
        self.assertEqual(a.call({"type": "read", "key": 1})["code"], 11)


def can_unshare():
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                           capture_output=True, timeout=10)
    return probe.returncode == 0


@unittest.skipIf(etcd_missing(), "etcd is not installed (scripts/install-deps.sh)")
@unittest.skipUnless(can_unshare(), "member.py needs root and unshare --mount")
class ThreeMembers(unittest.TestCase):
    N = 3

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="converge-etcd-test-")
        self.client = [free_port() for _ in range(self.N)]
        self.peer = [free_port() for _ in range(self.N)]
        # proxies[(a, b)]: the link a -> b, reaching b's peer port.
        self.proxies = {(a, b): CuttableProxy(self.peer[b])
                        for a in range(self.N) for b in range(self.N) if a != b}
        self.members = [None] * self.N
        self.adapters = []
        for i in range(self.N):
            self.start(i)

    def command(self, i):
        # What examples/etcd/etcd.toml expands to.
        cmd = [sys.executable, MEMBER, "--id", str(i), "--data", os.path.join(self.dir, f"n{i}"),
               "--client", f"127.0.0.1:{self.client[i]}", "--peer-port", str(self.peer[i])]
        for b in range(self.N):
            if b != i:
                cmd += ["--peer", f"{b}={self.peer[b]}@127.0.0.1:{self.proxies[(i, b)].port}"]
        return cmd

    def start(self, i):
        self.members[i] = start_group(self.command(i), os.path.join(self.dir, f"n{i}.log"))

    def tearDown(self):
        for a in self.adapters:
            a.close()
        for m in self.members:
            kill_group(m)
        for p in self.proxies.values():
            p.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def adapter(self, i, *flags):
        a = Adapter(f"127.0.0.1:{self.client[i]}", *flags)
        self.adapters.append(a)
        return a

    def isolate(self, i, cut=True):
        for (a, b), p in self.proxies.items():
            if i in (a, b):
                p.cut() if cut else p.heal()

    def eventually(self, what, fn, timeout_s=CONVERGE_TIMEOUT_S):
        deadline = time.monotonic() + timeout_s
        last = None
        while time.monotonic() < deadline:
            last = fn()
            if last:
                return last
            time.sleep(0.2)
        self.fail(f"{what}: not within {timeout_s} s (last: {last})")

    def test_partition_stale_reads_and_restart(self):
        lin = [self.adapter(i) for i in range(self.N)]
        for i, a in enumerate(lin):
            body = a.call({"type": "init", "node_id": f"n{i}", "node_ids": []}, src="c-init",
                          timeout_s=CONVERGE_TIMEOUT_S)
            self.assertEqual(body["type"], "init_ok", body)
        # Every peer connection goes through a proxy: the cluster formed through them.
        self.assertTrue(all(p.used for p in self.proxies.values()),
                        "some link carried no connection")
        self.assertEqual(lin[1].call({"type": "write", "key": 0, "value": 1})["type"], "write_ok")
        self.eventually("n0 sees the first write",
                        lambda: lin[0].call({"type": "read", "key": 0}).get("value") == 1)
        ser0 = self.adapter(0, "--serializable")

        self.isolate(0)
        # The majority (n1, n2) elects a leader if n0 led, and takes a second write.
        self.eventually("the majority takes a write while n0 is cut off",
                        lambda: lin[1].call({"type": "write", "key": 0, "value": 2})["type"]
                        == "write_ok")
        self.assertEqual(lin[2].call({"type": "read", "key": 0}).get("value"), 2)
        # n0, cut off: a linearizable read cannot be served (definite 11: a read has no effect);
        # a serializable read returns the stale value; a write's outcome is unknown (0).
        self.assertEqual(lin[0].call({"type": "read", "key": 0})["code"], 11)
        self.assertEqual(ser0.call({"type": "read", "key": 0}).get("value"), 1)
        self.assertEqual(lin[0].call({"type": "write", "key": 3, "value": 3})["code"], 0)

        self.isolate(0, cut=False)
        self.eventually("n0 catches up after the partition heals",
                        lambda: lin[0].call({"type": "read", "key": 0}).get("value") == 2)

        # kill -9 of n0's whole group, a write meanwhile, and a restart with the same command.
        kill_group(self.members[0])
        self.assertEqual(lin[0].call({"type": "read", "key": 0})["code"], 11)
        self.assertEqual(lin[1].call({"type": "write", "key": 0, "value": 4})["type"], "write_ok")
        self.start(0)
        self.eventually("n0 rejoins after a restart",
                        lambda: lin[0].call({"type": "read", "key": 0}).get("value") == 4)


if __name__ == "__main__":
    unittest.main(verbosity=2)
