#!/usr/bin/env python3
"""A Maelstrom broadcast node in plain Python, written only from the protocol.

Each node talks only to its neighbours in the `topology` the harness sends (every node if the
map leaves it out). A message new to a node is relayed to each neighbour (except the one it came
from) and stays pending for that neighbour until the neighbour acknowledges it; every 100 ms all
pending messages are sent again. A node acknowledges everything it receives, even messages it
already had, so duplicated, reordered or lost relays and acknowledgements only cost a retry, and
after a partition heals every message reaches every node. Used by converge's tests as a
third-party implementation in another language.

`--bug no-retry` relays each new message to the neighbours once and never again: a relay lost to
loss or a partition is never repaired, and every node behind that link misses the message. The
harness must catch it.
"""
import json
import sys
import threading
import time

BUG = sys.argv[sys.argv.index("--bug") + 1] if "--bug" in sys.argv else None
lock = threading.Lock()
node_id = None
node_ids = []
neighbours = []
messages = set()
# Per neighbour: messages it has not acknowledged yet.
pending = {}


def send(dest, body):
    sys.stdout.write(json.dumps({"src": node_id, "dest": dest, "body": body}) + "\n")
    sys.stdout.flush()


def learn(new, source):
    """Adds `new` messages (already known ones excluded) and relays them to every neighbour but
    `source`."""
    messages.update(new)
    for peer in neighbours:
        if peer == source:
            continue
        if BUG != "no-retry":
            pending.setdefault(peer, set()).update(new)
        send(peer, {"type": "relay", "messages": sorted(new)})


def retry():
    while BUG != "no-retry":
        time.sleep(0.1)
        with lock:
            for peer, unacked in pending.items():
                if unacked:
                    send(peer, {"type": "relay", "messages": sorted(unacked)})


def main():
    global node_id, node_ids, neighbours
    threading.Thread(target=retry, daemon=True).start()
    for line in sys.stdin:
        msg = json.loads(line)
        body = msg["body"]
        kind = body["type"]
        with lock:
            if kind == "init":
                node_id = body["node_id"]
                node_ids = body["node_ids"]
                neighbours = [p for p in node_ids if p != node_id]
                send(msg["src"], {"type": "init_ok", "in_reply_to": body["msg_id"]})
            elif kind == "topology":
                neighbours = [p for p in body["topology"].get(node_id, neighbours) if p != node_id]
                send(msg["src"], {"type": "topology_ok", "in_reply_to": body["msg_id"]})
            elif kind == "broadcast":
                message = body["message"]
                if message not in messages:
                    learn({message}, None)
                send(msg["src"], {"type": "broadcast_ok", "in_reply_to": body["msg_id"]})
            elif kind == "read":
                send(msg["src"], {"type": "read_ok", "in_reply_to": body["msg_id"],
                                  "messages": sorted(messages)})
            elif kind == "relay":
                received = set(body["messages"])
                new = received - messages
                if new:
                    learn(new, msg["src"])
                if BUG != "no-retry":
                    send(msg["src"], {"type": "relay_ok", "messages": sorted(received)})
            elif kind == "relay_ok":
                pending.get(msg["src"], set()).difference_update(body["messages"])


if __name__ == "__main__":
    main()
