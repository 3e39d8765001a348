#!/usr/bin/env python3
"""Starts one etcd member for `converge certify --cluster examples/etcd/etcd.toml`, with its peer
traffic routed through the harness's per-link proxies.

Why a launcher at all. The harness owns the network between nodes by giving every directed link
(a -> b) its own TCP proxy, and it cuts a link by resetting that proxy's connections. A node is
told the proxy's address through `{to.K.addr.peer}`. etcd, however, learns its peers' addresses
from `--initial-cluster`, and that flag must be byte-for-byte the same on every member: member ids
are hashed from the peer URLs in it. So member a cannot simply be told "b is at proxy(a -> b)";
member c would be told a different URL for b and the cluster would not form.

The way around it uses names. Every member gets the same `--initial-cluster`, in which member K is
`http://nK:PORT_K` (PORT_K = K's real peer port). Each member then runs in a private mount
namespace (`unshare --mount`) where /etc/hosts is this launcher's own file, mapping each peer name
nK to a loopback address private to the link, 127.77.a.K. There, on PORT_K, the launcher listens
and relays each connection to the harness's proxy for (a -> K). So etcd's own dialer, resolving
`nK` through /etc/hosts as always, reaches K only through the harness's proxy; the URL strings stay
identical everywhere, and etcd is not modified.

The relay is a byte pump that mirrors the proxy's behaviour: when the harness resets the upstream
connection (a cut link), the relay resets the connection to etcd too (SO_LINGER 0), so etcd sees
the same abrupt failure it would see from the proxy itself. The relays run as threads of this
launcher, in the node's process group, so the harness's SIGSTOP/SIGKILL of the node's group pauses
and kills them together with etcd, as they should: they are part of member a's network stack.
(If the harness's proxies themselves listened on 127.77.a.K:PORT_K, the relay hop would be
unnecessary; see docs/certify-subjects.md.)

A restarted member (after the harness's kill) runs the same command with the same data directory:
etcd then ignores the --initial-cluster* flags and recovers from its write-ahead log.

Standard library only; Python 3.11.
"""

import argparse
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

# Loopback addresses 127.77.a.b carry the link a -> b. 127.0.0.0/8 is all loopback on Linux, so
# binding any of them needs no configuration.
LINK_NET = "127.77"
# How long one relay connection may take to reach the harness's proxy. A proxy on loopback
# answers at once; a longer wait would only mean the harness is gone.
UPSTREAM_CONNECT_TIMEOUT_S = 2.0
# How long etcd gets to exit on SIGTERM before it is killed.
STOP_GRACE_S = 10.0


def log(msg):
    sys.stderr.write(f"member: {msg}\n")
    sys.stderr.flush()


def parse_addr(text):
    """'HOST:PORT' -> (host, port); raises ValueError on anything else."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"not HOST:PORT: {text!r}")
    return host, int(port)


def parse_peer(text):
    """'ID=PORT@HOST:PORT' -> (id, real peer port, proxy address)."""
    ident, sep, rest = text.partition("=")
    port, sep2, via = rest.partition("@")
    if not sep or not sep2:
        raise ValueError(f"--peer wants ID=PEER_PORT@VIA_HOST:VIA_PORT, got {text!r}")
    return int(ident), int(port), parse_addr(via)


def link_ip(src, dst):
    if not (0 <= src <= 255 and 0 <= dst <= 255):
        raise ValueError("node ids above 255 do not fit a 127.77.a.b link address")
    return f"{LINK_NET}.{src}.{dst}"


class Link:
    """One relayed connection: etcd's socket and the harness proxy's, and how it ends.

    A thread blocked in recv() on a socket is not woken by another thread's close() of it (the
    kernel keeps the file open until the call returns), so a reset must first shutdown() both
    sockets: that wakes every blocked recv and send. The sockets are closed only once both pump
    threads are done, and with SO_LINGER 0 after a reset, so the peers get an RST as they would
    from a rejecting firewall."""

    def __init__(self, down, up):
        self.socks = (down, up)
        self.lock = threading.Lock()
        self.reset = False
        self.finished = 0

    def abort(self):
        with self.lock:
            if self.reset:
                return
            self.reset = True
        for s in self.socks:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def done(self):
        with self.lock:
            self.finished += 1
            last = self.finished == 2
        if last:
            for s in self.socks:
                try:
                    s.close()
                except OSError:
                    pass


def pump(src, dst, link):
    """Copies src to dst until EOF or an error. An orderly EOF is passed on as a half-close; an
    error (a reset from the harness's proxy, or from etcd) resets the whole connection."""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                if not link.reset:
                    dst.shutdown(socket.SHUT_WR)
                break
            dst.sendall(data)
    except OSError:
        link.abort()
    finally:
        link.done()


def serve_connection(downstream, via):
    try:
        upstream = socket.create_connection(via, timeout=UPSTREAM_CONNECT_TIMEOUT_S)
    except OSError as e:
        # The harness's proxy is unreachable: refuse the way a dead link would.
        log(f"relay to {via[0]}:{via[1]}: {e}")
        try:
            downstream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        downstream.close()
        return
    upstream.settimeout(None)
    downstream.settimeout(None)
    for s in (upstream, downstream):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    link = Link(downstream, upstream)
    threading.Thread(target=pump, args=(upstream, downstream, link), daemon=True).start()
    pump(downstream, upstream, link)


def relay(listener, via):
    while True:
        try:
            conn, _ = listener.accept()
        except OSError as e:
            log(f"relay accept: {e}")
            time.sleep(0.1)
            continue
        threading.Thread(target=serve_connection, args=(conn, via), daemon=True).start()


def listen(ip, port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A restarted member rebinds the same address while its old connections sit in TIME_WAIT.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    deadline = time.monotonic() + 5.0
    while True:
        try:
            sock.bind((ip, port))
            break
        except OSError as e:
            # The previous incarnation's listener may still be going away after a SIGKILL.
            if time.monotonic() > deadline:
                raise OSError(f"cannot listen on {ip}:{port} for the relay: {e}") from e
            time.sleep(0.1)
    sock.listen(64)
    return sock


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--id", type=int, required=True, help="this member's node index")
    ap.add_argument("--data", required=True, help="the node's data directory (kept on restart)")
    ap.add_argument("--client", required=True, help="HOST:PORT for etcd's client URL")
    ap.add_argument("--peer-port", type=int, required=True, help="this member's real peer port")
    ap.add_argument("--peer", action="append", default=[], type=parse_peer,
                    help="ID=PEER_PORT@VIA: another member, its real peer port, and the "
                         "harness's proxy address for the link from this member to it")
    ap.add_argument("--heartbeat-ms", type=int, default=100)
    ap.add_argument("--election-ms", type=int, default=1000)
    ap.add_argument("--etcd", default="etcd", help="the etcd binary")
    ap.add_argument("extra", nargs="*", help="more etcd flags, after --")
    args = ap.parse_args()

    me = args.id
    name = f"n{me}"
    members = {me: args.peer_port}
    for ident, port, _ in args.peer:
        if ident == me or ident in members:
            ap.error(f"--peer {ident} given twice or is this member")
        members[ident] = port

    os.makedirs(args.data, exist_ok=True)
    hosts_path = os.path.join(args.data, "hosts")
    lines = ["127.0.0.1 localhost", f"127.0.0.1 {name}"]
    for ident, _, _ in args.peer:
        lines.append(f"{link_ip(me, ident)} n{ident}")
    tmp = hosts_path + ".tmp"
    with open(tmp, "w") as f:
        f.write("# Written by examples/etcd/member.py: this member's private view of its peers.\n")
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, hosts_path)

    for ident, port, via in args.peer:
        listener = listen(link_ip(me, ident), port)
        threading.Thread(target=relay, args=(listener, via), daemon=True).start()
        log(f"n{ident}:{port} -> {via[0]}:{via[1]} via {link_ip(me, ident)}")

    # Sorted by id so every member builds the identical string.
    initial_cluster = ",".join(f"n{i}=http://n{i}:{p}" for i, p in sorted(members.items()))
    client_url = f"http://{args.client}"
    etcd = [
        args.etcd,
        "--name", name,
        # etcd's own state lives one level down, so the hosts file beside it is no stray file
        # in etcd's data directory.
        "--data-dir", os.path.join(args.data, "etcd"),
        "--listen-client-urls", client_url,
        "--advertise-client-urls", client_url,
        # Peers are served on the real loopback address: the harness's proxies forward there.
        "--listen-peer-urls", f"http://127.0.0.1:{args.peer_port}",
        "--initial-advertise-peer-urls", f"http://{name}:{args.peer_port}",
        "--initial-cluster", initial_cluster,
        "--initial-cluster-token", "converge-certify",
        # Ignored once the data directory holds a WAL, so a restart with the same command works.
        "--initial-cluster-state", "new",
        "--heartbeat-interval", str(args.heartbeat_ms),
        "--election-timeout", str(args.election_ms),
        # A member coming back from a partition with a higher term would otherwise depose a
        # healthy leader; pre-vote keeps fault windows from costing two elections instead of one.
        "--pre-vote=true",
        "--logger", "zap", "--log-outputs", "stderr",
    ] + args.extra

    # unshare without --fork execs its command, so etcd stays in this process group (the harness
    # signals the group). `mount --bind` of the hosts file is private to the new namespace.
    cmd = ["unshare", "--mount", "--propagation", "private", "--",
           "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', hosts_path] + etcd
    log("exec " + " ".join(etcd))
    child = subprocess.Popen(cmd)

    stop_asked = []

    def forward(signum, _frame):
        stop_asked.append(time.monotonic())
        try:
            child.send_signal(signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while True:
        try:
            code = child.wait(timeout=1.0)
            break
        except subprocess.TimeoutExpired:
            if stop_asked and time.monotonic() - stop_asked[0] > STOP_GRACE_S:
                log("etcd did not stop in time: killing it")
                child.kill()
    log(f"etcd exited with {code}")
    sys.exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main()
