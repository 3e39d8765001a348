#!/usr/bin/env python3
"""A `lin-kv` node that forwards every request to one of Maelstrom's KV services and relays the
answer: `kv_proxy.py lin-kv` is linearizable because the service is; `kv_proxy.py lww-kv` (or
`seq-kv`) serves stale reads, which the linearizability checker must catch.
"""
import itertools
import json
import sys

service = sys.argv[1]
ids = itertools.count(1)
waiting = {}  # our msg_id -> (client, client's msg_id)
node_id = None
for line in sys.stdin:
    msg = json.loads(line)
    body = msg["body"]
    if body["type"] == "init":
        node_id = body["node_id"]
        out = {"src": node_id, "dest": msg["src"], "body": {"type": "init_ok", "in_reply_to": body["msg_id"]}}
    elif msg["src"] == service:
        client, client_msg = waiting.pop(body["in_reply_to"])
        reply = dict(body, in_reply_to=client_msg)
        out = {"src": node_id, "dest": client, "body": reply}
    else:
        mine = next(ids)
        waiting[mine] = (msg["src"], body["msg_id"])
        out = {"src": node_id, "dest": service, "body": dict(body, msg_id=mine)}
    print(json.dumps(out), flush=True)
