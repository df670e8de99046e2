#!/usr/bin/env python3
"""Helpers of scripts/cluster.sh (the multi-host NATS deployment).

  gen HOST PORT EDGE RATE CTL T0   line-protocol load to one edge over TCP:
        "cl,edge=e<EDGE>,s=s<k> v=<seq> <T0 + seq us>", seq counting up from 0,
        RATE lines/s. CTL is a directory: while CTL/pause exists the sender
        closes its connection and writes CTL/paused (what it sent so far);
        CTL/stop ends it and writes CTL/sent. A refused or reset connection is
        retried (bounded): lines the edge never accepted are simply not
        counted by the edge; the edge's own counter is what the check uses.
  stat FILE SECTION FIELD [KEY=VALUE...]  the sum of FIELD over the rows of
        SECTION in a `ringflow stat --json` output whose keys match.
  jsz NAME=URL...   prints "<pending> <ack_pending> <redelivered> <stream msgs>"
        over the consumers and streams, each as its leader node says, then
        "<consumer>:<pending>/<ack pending>" of each consumer.
  store T0 FILE...  reads `ringflow query cl --format line` outputs and prints
        "rows unique duplicates foreign" (foreign: rows that are not a line the
        generator could have sent), then one line per edge "e<N> <unique>".
"""
import json
import os
import socket
import sys
import time
import urllib.request

SERIES = 64


def line(t0, edge, seq):
    return "cl,edge=e%d,s=s%d v=%d %d\n" % (edge, seq % SERIES, seq, t0 + seq * 1000)


def gen(host, port, edge, rate, ctl, t0):
    edge, rate, port, t0 = int(edge), int(rate), int(port), int(t0)
    seq, sock, fails = 0, None, 0
    tick = 0.02
    per_tick = max(1, int(rate * tick))
    next_t = time.monotonic()
    deadline = time.monotonic() + 3600  # bounded whatever the caller does
    while time.monotonic() < deadline:
        if os.path.exists(os.path.join(ctl, "stop")):
            break
        if os.path.exists(os.path.join(ctl, "pause")):
            if sock:
                sock.close()
                sock = None
            with open(os.path.join(ctl, "paused"), "w") as f:
                f.write("%d\n" % seq)
            time.sleep(0.05)
            next_t = time.monotonic()
            continue
        if sock is None:
            try:
                sock = socket.create_connection((host, port), timeout=2)
                fails = 0
            except OSError:
                fails += 1
                if fails > 600:  # 60 s without an edge
                    break
                time.sleep(0.1)
                continue
        data = "".join(line(t0, edge, seq + i) for i in range(per_tick)).encode()
        try:
            sock.sendall(data)
            seq += per_tick
        except OSError:
            sock.close()
            sock = None
            seq += per_tick  # some of them may have been accepted: never reuse
            continue
        next_t += tick
        delay = next_t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -1:
            next_t = time.monotonic()
    if sock:
        sock.close()
    with open(os.path.join(ctl, "sent"), "w") as f:
        f.write("%d\n" % seq)


def stat(path, section, field, *match):
    """Sums `field` over the rows of `section` of a `ringflow stat --json`
    output (the file `path`) whose keys equal every key=value of match."""
    try:
        with open(path) as f:
            j = json.load(f)
    except (OSError, ValueError):
        print(-1)
        return 1
    rows = j.get(section)
    rows = rows if isinstance(rows, list) else [rows] if isinstance(rows, dict) else []
    want = dict(m.split("=", 1) for m in match)
    total = 0
    for r in rows:
        if isinstance(r, dict) and all(str(r.get(k)) == v for k, v in want.items()):
            v = r.get(field, 0)
            total += v if isinstance(v, (int, float)) else 0
    print(int(total))
    return 0


def jsz(*servers):
    """servers: NAME=URL of every node. A replicated stream's or consumer's
    state is taken from the node that leads it (a follower's may lag)."""
    streams, consumers, detail = {}, {}, []
    for ns in servers:
        if ns == "--detail":
            continue
        name, url = ns.split("=", 1)
        try:
            with urllib.request.urlopen(url + "/jsz?consumers=true", timeout=2) as r:
                j = json.load(r)
        except (OSError, ValueError):
            continue
        for acct in j.get("account_details") or []:
            for st in acct.get("stream_detail") or []:
                if (st.get("cluster") or {}).get("leader", name) == name:
                    streams[st["name"]] = st.get("state", {}).get("messages", 0)
                for c in st.get("consumer_detail") or []:
                    if (c.get("cluster") or {}).get("leader", name) == name:
                        consumers[c["name"]] = (c.get("num_pending", 0),
                                                c.get("num_ack_pending", 0),
                                                c.get("num_redelivered", 0))
    if not streams:
        print("-1 -1 -1 -1")
        return 1
    tot = [sum(v[i] for v in consumers.values()) for i in range(3)]
    print(tot[0], tot[1], tot[2], sum(streams.values()))
    for n in sorted(consumers):
        detail.append("%s:%d/%d" % (n, consumers[n][0], consumers[n][1]))
    if len(sys.argv) > 2 and sys.argv[2] == "--detail":
        print(" ".join(detail))
    return 0


def store(t0, *files):
    t0 = int(t0)
    rows = dups = foreign = 0
    seen = set()
    per_edge = {}
    for path in files:
        with open(path) as f:
            for raw in f:
                rows += 1
                try:
                    key, field, ts = raw.split()
                    tags = dict(t.split("=", 1) for t in key.split(",")[1:])
                    edge = int(tags["edge"][1:])
                    seq = int(float(field.split("=", 1)[1].rstrip("i")))
                    ok = (key.startswith("cl,") and tags["s"] == "s%d" % (seq % SERIES)
                          and int(ts) == t0 + seq * 1000)
                except (KeyError, ValueError, IndexError):
                    ok = False
                if not ok:
                    foreign += 1
                    continue
                if (edge, seq) in seen:
                    dups += 1
                    continue
                seen.add((edge, seq))
                per_edge[edge] = per_edge.get(edge, 0) + 1
    print(rows, len(seen), dups, foreign)
    for e in sorted(per_edge):
        print("e%d %d" % (e, per_edge[e]))
    return 0


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    sys.exit({"gen": gen, "stat": stat, "jsz": jsz, "store": store}[cmd](*args) or 0)
