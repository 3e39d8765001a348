#!/usr/bin/env python3
"""A Maelstrom g-set node in plain Python, written only from the protocol.

Each node keeps the set of elements it has seen and gossips the whole set to every peer every
50 ms. Merging is set union, so lost, duplicated or reordered gossip is harmless and a healed
partition converges. Used by converge's tests as a third-party implementation in another language.

`--bug once` sends each added element to every peer once, when it is added, and never gossips: a
message lost to loss or a partition is never repaired, so acknowledged elements go missing on the
nodes that missed it. The harness must catch it.
"""
import json
import sys
import threading
import time

BUG = sys.argv[sys.argv.index("--bug") + 1] if "--bug" in sys.argv else None
lock = threading.Lock()
node_id = None
node_ids = []
elements = set()


def send(dest, body):
    sys.stdout.write(json.dumps({"src": node_id, "dest": dest, "body": body}) + "\n")
    sys.stdout.flush()


def peers():
    return [p for p in node_ids if p != node_id]


def gossip():
    while BUG != "once":
        time.sleep(0.05)
        with lock:
            if node_id is None:
                continue
            state = {"type": "gossip", "elements": sorted(elements)}
            for peer in peers():
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
                element = body["element"]
                elements.add(element)
                if BUG == "once":
                    for peer in peers():
                        send(peer, {"type": "gossip", "elements": [element]})
                send(msg["src"], {"type": "add_ok", "in_reply_to": body["msg_id"]})
            elif kind == "read":
                send(msg["src"], {"type": "read_ok", "in_reply_to": body["msg_id"],
                                  "value": sorted(elements)})
            elif kind == "gossip":
                elements.update(body["elements"])


if __name__ == "__main__":
    main()
