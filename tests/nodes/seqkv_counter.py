#!/usr/bin/env python3
"""A Gossip-Glomers-style g-counter that keeps its state in Maelstrom's `seq-kv` service.

`add` is a read / compare-and-set loop on one key; `read` first writes a key of its own, which
moves this node's view of the sequentially consistent store to the present, then reads. Written
against Maelstrom's documented services only, to show that such nodes run unchanged.
"""
import itertools
import json
import sys
import threading

out_lock = threading.Lock()
waiting = {}
ids = itertools.count(1)
node_id = None


def send(dest, body):
    with out_lock:
        sys.stdout.write(json.dumps({"src": node_id, "dest": dest, "body": body}) + "\n")
        sys.stdout.flush()


def rpc(dest, body):
    msg_id = next(ids)
    done = threading.Event()
    waiting[msg_id] = [done, None]
    send(dest, dict(body, msg_id=msg_id))
    if not done.wait(1.0):
        waiting.pop(msg_id, None)
        return {"type": "error", "code": 0}
    return waiting.pop(msg_id)[1]


def current():
    reply = rpc("seq-kv", {"type": "read", "key": "counter"})
    return reply.get("value", 0) if reply["type"] == "read_ok" else 0


def handle(msg):
    body = msg["body"]
    if body["type"] == "add":
        while True:
            value = current()
            reply = rpc("seq-kv", {"type": "cas", "key": "counter", "from": value,
                                   "to": value + body["delta"], "create_if_not_exists": True})
            if reply["type"] == "cas_ok":
                break
        send(msg["src"], {"type": "add_ok", "in_reply_to": body["msg_id"]})
    elif body["type"] == "read":
        rpc("seq-kv", {"type": "write", "key": "sync-" + node_id, "value": next(ids)})
        send(msg["src"], {"type": "read_ok", "in_reply_to": body["msg_id"], "value": current()})


for line in sys.stdin:
    msg = json.loads(line)
    body = msg["body"]
    if "in_reply_to" in body and body["in_reply_to"] in waiting:
        entry = waiting[body["in_reply_to"]]
        entry[1] = body
        entry[0].set()
    elif body["type"] == "init":
        node_id = body["node_id"]
        send(msg["src"], {"type": "init_ok", "in_reply_to": body["msg_id"]})
    else:
        threading.Thread(target=handle, args=(msg,), daemon=True).start()
