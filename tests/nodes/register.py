#!/usr/bin/env python3
"""Register nodes for the `lww-register` and `mv-register` workloads, written from
docs/protocol.md alone. Both gossip their whole state to every peer every 50 ms.

    register.py lww [--bug wall-clock]
    register.py mv  [--bug keep-one]

lww: the register holds (stamp, value), stamp = (hybrid logical clock, node index); the join keeps
the larger stamp. `--bug wall-clock` stamps with this node's own wall clock, which runs 300 ms
behind per node index (NTP-grade skew), and ignores what it has seen: a causally later write can
lose.

mv: siblings keyed by dot (origin, counter) plus a version vector of every dot seen; a write
replaces every sibling this node has. `--bug keep-one` keeps only the largest sibling.
"""
import json
import sys
import threading
import time

MODE = sys.argv[1]
BUG = sys.argv[sys.argv.index("--bug") + 1] if "--bug" in sys.argv else None
lock = threading.Lock()
out = threading.Lock()
node_id, node_ids, me = None, [], 0
# lww state
stamp, value = (0, 0, -1), None  # ((wall_ms, logical), node index) flattened as a tuple
# mv state
siblings, vv = {}, {}  # "origin:counter" -> value ; origin -> max counter


def send(dest, body):
    with out:
        sys.stdout.write(json.dumps({"src": node_id, "dest": dest, "body": body}) + "\n")
        sys.stdout.flush()


def now_ms():
    return int(time.time() * 1000)


def next_stamp():
    if BUG == "wall-clock":
        return (now_ms() - 300 * me, 0, me)
    wall = max(stamp[0], now_ms())
    logical = stamp[1] + 1 if wall == stamp[0] else 0
    return (wall, logical, me)


def mv_merge(their_sibs, their_vv):
    for dot in list(siblings):
        origin, counter = dot.rsplit(":", 1)
        if dot not in their_sibs and their_vv.get(origin, 0) >= int(counter):
            del siblings[dot]
    for dot, v in their_sibs.items():
        origin, counter = dot.rsplit(":", 1)
        if dot not in siblings and vv.get(origin, 0) < int(counter):
            siblings[dot] = v
    for o, c in their_vv.items():
        vv[o] = max(vv.get(o, 0), c)
    if BUG == "keep-one" and siblings:
        top = max(siblings, key=lambda d: siblings[d])
        for d in list(siblings):
            if d != top:
                del siblings[d]


def gossip():
    while True:
        time.sleep(0.05)
        with lock:
            if node_id is None:
                continue
            body = ({"type": "gossip", "stamp": stamp, "value": value} if MODE == "lww"
                    else {"type": "gossip", "siblings": dict(siblings), "vv": dict(vv)})
        for peer in node_ids:
            if peer != node_id:
                send(peer, body)


def main():
    global node_id, node_ids, me, stamp, value
    threading.Thread(target=gossip, daemon=True).start()
    for line in sys.stdin:
        msg = json.loads(line)
        body = msg["body"]
        kind = body["type"]
        reply = None
        with lock:
            if kind == "init":
                node_id, node_ids = body["node_id"], body["node_ids"]
                me = node_ids.index(node_id)
                reply = {"type": "init_ok"}
            elif kind == "gossip" and MODE == "lww":
                theirs = tuple(body["stamp"])
                if theirs > stamp:
                    stamp, value = theirs, body["value"]
            elif kind == "gossip":
                mv_merge(body["siblings"], body["vv"])
            elif kind == "write" and MODE == "lww":
                s = next_stamp()
                if s > stamp or BUG == "wall-clock":
                    if s > stamp:
                        stamp, value = s, body["value"]
                reply = {"type": "write_ok"}
            elif kind == "write":
                counter = vv.get(node_id, 0) + 1
                vv[node_id] = counter
                siblings.clear()
                siblings[f"{node_id}:{counter}"] = body["value"]
                reply = {"type": "write_ok"}
            elif kind == "read" and MODE == "lww":
                reply = {"type": "read_ok", "value": value}
            elif kind == "read":
                reply = {"type": "read_ok", "value": sorted(siblings.values())}
        if reply is not None:
            reply["in_reply_to"] = body["msg_id"]
            send(msg["src"], reply)


if __name__ == "__main__":
    main()
