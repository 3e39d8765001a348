#!/usr/bin/env python3
"""A Maelstrom g-counter / pn-counter node in plain Python, written only from the protocol.

Each node keeps per-node increment and decrement totals (a PN-counter CRDT) and gossips its whole
state to every peer every 50 ms, so lost, duplicated or reordered gossip is harmless and a healed
partition converges. Used by converge's tests as a third-party implementation in another language.

`--bug sum-merge` makes the merge add instead of taking the maximum (not idempotent: duplicated or
repeated gossip over-counts); `--bug once` sends each add to peers once, as an operation, instead
of gossiping state (a lost message is never repaired). The harness must catch both.
"""
import json
import sys
import threading
import time

BUG = sys.argv[sys.argv.index("--bug") + 1] if "--bug" in sys.argv else None
lock = threading.Lock()
node_id = None
node_ids = []
incs = {}
decs = {}


def send(dest, body):
    sys.stdout.write(json.dumps({"src": node_id, "dest": dest, "body": body}) + "\n")
    sys.stdout.flush()


def merge(mine, theirs):
    for k, v in theirs.items():
        if BUG == "sum-merge" and k != node_id:
            mine[k] = mine.get(k, 0) + v
        elif v > mine.get(k, 0):
            mine[k] = v


def gossip():
    while BUG != "once":
        time.sleep(0.05)
        with lock:
            if node_id is None:
                continue
            state = {"type": "gossip", "incs": dict(incs), "decs": dict(decs)}
            for peer in node_ids:
                if peer != node_id:
                    send(peer, state)


def main():
    global node_id, node_ids
    threading.Thread(target=gossip, daemon=True).start()
    for line in sys.stdin:
        msg = json.loads(line)
        body = msg["body"]
        kind = body["type"]
        with lock:
            if kind == "init":
                node_id = body["node_id"]
                node_ids = body["node_ids"]
                send(msg["src"], {"type": "init_ok", "in_reply_to": body["msg_id"]})
            elif kind == "add":
                delta = body["delta"]
                target = incs if delta >= 0 else decs
                target[node_id] = target.get(node_id, 0) + abs(delta)
                if BUG == "once":
                    for peer in node_ids:
                        if peer != node_id:
                            send(peer, {"type": "delta", "delta": delta})
                send(msg["src"], {"type": "add_ok", "in_reply_to": body["msg_id"]})
            elif kind == "read":
                value = sum(incs.values()) - sum(decs.values())
                send(msg["src"], {"type": "read_ok", "in_reply_to": body["msg_id"], "value": value})
            elif kind == "delta":
                # The broken mode's op-based update: applied once, never repaired if lost.
                d = body["delta"]
                target = incs if d >= 0 else decs
                target[msg["src"]] = target.get(msg["src"], 0) + abs(d)
            elif kind == "gossip":
                merge(incs, body["incs"])
                merge(decs, body["decs"])


if __name__ == "__main__":
    main()
