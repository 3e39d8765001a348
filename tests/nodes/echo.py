#!/usr/bin/env python3
"""Maelstrom's echo node, in plain Python."""
import json
import sys

node_id = None
for line in sys.stdin:
    msg = json.loads(line)
    body = msg["body"]
    reply = None
    if body["type"] == "init":
        node_id = body["node_id"]
        reply = {"type": "init_ok"}
    elif body["type"] == "echo":
        reply = {"type": "echo_ok", "echo": body["echo"]}
    if reply is not None:
        reply["in_reply_to"] = body["msg_id"]
        print(json.dumps({"src": node_id, "dest": msg["src"], "body": reply}), flush=True)
