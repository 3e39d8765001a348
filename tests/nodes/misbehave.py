#!/usr/bin/env python3
"""A node that answers init, then misbehaves as its argument says:

- `garbage`: answers every request with a line that is not JSON;
- `crash`: exits on the first request;
- `silent`: never answers a request.
"""
import json
import sys

mode = sys.argv[1]
for line in sys.stdin:
    msg = json.loads(line)
    body = msg["body"]
    if body["type"] == "init":
        reply = {"type": "init_ok", "in_reply_to": body["msg_id"]}
        print(json.dumps({"src": body["node_id"], "dest": msg["src"], "body": reply}), flush=True)
    elif mode == "garbage":
        print("this is not a message", flush=True)
    elif mode == "crash":
        sys.exit(3)
