#!/usr/bin/env python3
"""An echo node that routes every request through a leader, as Raft followers do.

Every node but n0 forwards a client's request to n0 unchanged, keeping the client's `src`; n0
answers the client directly. Maelstrom accepts such messages (any known node or client id may be
a `src`), so `--profile maelstrom` must pass it; converge's strict profile requires each node to
send as itself and calls the forwarded messages malformed.
"""
import json
import sys

node_id = None
for line in sys.stdin:
    msg = json.loads(line)
    body = msg["body"]
    if body["type"] == "init":
        node_id = body["node_id"]
        reply = {"type": "init_ok", "in_reply_to": body["msg_id"]}
        print(json.dumps({"src": node_id, "dest": msg["src"], "body": reply}), flush=True)
    elif body["type"] == "echo" and node_id != "n0":
        print(json.dumps({"src": msg["src"], "dest": "n0", "body": body}), flush=True)
    elif body["type"] == "echo":
        reply = {"type": "echo_ok", "echo": body["echo"], "in_reply_to": body["msg_id"]}
        print(json.dumps({"src": node_id, "dest": msg["src"], "body": reply}), flush=True)
