#!/usr/bin/env python3
"""A session-guarantee set node in plain Python, written from docs/protocol.md alone.

Each node keeps, per origin node, the list of elements added there (a grow-only set whose version
vector is the list lengths) and gossips its whole state every 50 ms. A session token is that
version vector. A request carrying a token waits (at most 500 ms) until this node covers it, and
is refused with error 11 (temporarily-unavailable, definite) otherwise; adds wait too, so an add
is only ever stored together with everything its session had seen. It runs no quorums, so a
request naming GLOBAL_QUORUM is refused with error 11, as the protocol asks of a level a node
cannot meet; every node is its own region, so LOCAL_QUORUM is met locally.

`--bug ignore-token` answers at once whatever the token says: the harness must catch it.
"""
import json
import sys
import threading
import time

BUG = sys.argv[sys.argv.index("--bug") + 1] if "--bug" in sys.argv else None
cond = threading.Condition()
out = threading.Lock()
node_id = None
node_ids = []
log = {}  # origin -> [elements]


def send(dest, body):
    with out:
        sys.stdout.write(json.dumps({"src": node_id, "dest": dest, "body": body}) + "\n")
        sys.stdout.flush()


def vv():
    return {o: len(es) for o, es in log.items()}


def covers(token):
    return all(len(log.get(o, [])) >= n for o, n in (token or {}).items())


def gossip():
    while True:
        time.sleep(0.05)
        with cond:
            if node_id is None:
                continue
            state = {o: list(es) for o, es in log.items()}
        for peer in node_ids:
            if peer != node_id:
                send(peer, {"type": "gossip", "log": state})


def handle(msg):
    body = msg["body"]
    token = body.get("token")
    if body.get("consistency") == "GLOBAL_QUORUM":
        send(msg["src"], {"type": "error", "in_reply_to": body["msg_id"], "code": 11,
                          "text": "this node runs no quorums"})
        return
    with cond:
        if BUG != "ignore-token" and not cond.wait_for(lambda: covers(token), timeout=0.5):
            send(msg["src"], {"type": "error", "in_reply_to": body["msg_id"], "code": 11,
                              "text": "token not covered yet"})
            return
        if body["type"] == "add":
            log.setdefault(node_id, []).append(body["element"])
            reply = {"type": "add_ok"}
        else:
            reply = {"type": "read_ok", "value": sorted(e for es in log.values() for e in es)}
        reply["token"] = vv()
    reply["in_reply_to"] = body["msg_id"]
    send(msg["src"], reply)


def main():
    global node_id, node_ids
    threading.Thread(target=gossip, daemon=True).start()
    for line in sys.stdin:
        msg = json.loads(line)
        body = msg["body"]
        if body["type"] == "init":
            with cond:
                node_id, node_ids = body["node_id"], body["node_ids"]
            send(msg["src"], {"type": "init_ok", "in_reply_to": body["msg_id"]})
        elif body["type"] == "gossip":
            with cond:
                for origin, elements in body["log"].items():
                    if len(elements) > len(log.get(origin, [])):
                        log[origin] = elements
                cond.notify_all()
        else:
            threading.Thread(target=handle, args=(msg,), daemon=True).start()


if __name__ == "__main__":
    main()
