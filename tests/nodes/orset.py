#!/usr/bin/env python3
"""An add-wins OR-Set node for the `or-set` workload, written from docs/protocol.md alone.

Each element is kept alive by dots ("origin:counter"); a version vector records every dot seen,
so a dot that is seen but absent was removed. Whole-state gossip every 50 ms.

`--bug remove-wins`: removes leave permanent tombstones that beat every add, concurrent or later.
`--bug tagless`: a plain set; removes delete locally and the union merge brings elements back.
"""
import json
import sys
import threading
import time

BUG = sys.argv[sys.argv.index("--bug") + 1] if "--bug" in sys.argv else None
lock = threading.Lock()
out = threading.Lock()
node_id, node_ids = None, []
entries, vv = {}, {}  # element (str) -> set of dots ; origin -> counter
tombstones = set()


def send(dest, body):
    with out:
        sys.stdout.write(json.dumps({"src": node_id, "dest": dest, "body": body}) + "\n")
        sys.stdout.flush()


def seen(dot, ctx):
    origin, counter = dot.rsplit(":", 1)
    return ctx.get(origin, 0) >= int(counter)


def merge(theirs, their_vv, their_tombs):
    if BUG == "tagless":
        for e in theirs:
            entries.setdefault(e, {"x"})
        return
    for e in set(entries) | set(theirs):
        mine, other = entries.get(e, set()), set(theirs.get(e, []))
        keep = (mine & other) | {d for d in mine if not seen(d, their_vv)} | {d for d in other if not seen(d, vv)}
        if keep:
            entries[e] = keep
        else:
            entries.pop(e, None)
    for o, c in their_vv.items():
        vv[o] = max(vv.get(o, 0), c)
    tombstones.update(their_tombs)


def gossip():
    while True:
        time.sleep(0.05)
        with lock:
            if node_id is None:
                continue
            body = {"type": "gossip", "entries": {e: sorted(d) for e, d in entries.items()},
                    "vv": dict(vv), "tombstones": sorted(tombstones)}
        for peer in node_ids:
            if peer != node_id:
                send(peer, body)


def main():
    global node_id, node_ids
    threading.Thread(target=gossip, daemon=True).start()
    for line in sys.stdin:
        msg = json.loads(line)
        body = msg["body"]
        kind = body["type"]
        reply = None
        with lock:
            if kind == "init":
                node_id, node_ids = body["node_id"], body["node_ids"]
                reply = {"type": "init_ok"}
            elif kind == "gossip":
                merge(body["entries"], body["vv"], body["tombstones"])
            elif kind == "add":
                counter = vv.get(node_id, 0) + 1
                vv[node_id] = counter
                entries[str(body["element"])] = {f"{node_id}:{counter}"}
                reply = {"type": "add_ok"}
            elif kind == "remove":
                entries.pop(str(body["element"]), None)
                if BUG == "remove-wins":
                    tombstones.add(str(body["element"]))
                reply = {"type": "remove_ok"}
            elif kind == "read":
                live = [int(e) for e in entries if e not in tombstones]
                reply = {"type": "read_ok", "value": sorted(live)}
        if reply is not None:
            reply["in_reply_to"] = body["msg_id"]
            send(msg["src"], reply)


if __name__ == "__main__":
    main()
