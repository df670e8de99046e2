#!/usr/bin/env python3
"""One client over every core (ingest.spread): one TCP client sends a
TSBS-like devops stream (`cpu` rows of 10 fields, 2-decimal random walks,
10 s apart; --hosts x --times rows, 4.32 M points by default) into a fresh
ringflowd with 2 pinned workers and the store, with ingest.spread on and
off in turn (A B A B ...). Each run times from the connect until the store
has taken every point (`show stages`: to_store), and reads the daemon's CPU
over the same span. Prints one JSON line per run, then the medians, the
on/off ratios pair by pair (median, min, max) and the load average.

Usage: bench/harness/spread_bench.py [--build-dir build] [--runs 5]
           [--hosts 100 --times 4320] [--workers 2] [--no-pin]
           [--buffers 8] [--min-chunk 4096]
"""
import argparse
import json
import os
import random
import socket
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine  # noqa: E402

FIELDS = ["usage_user", "usage_system", "usage_idle", "usage_nice", "usage_iowait",
          "usage_irq", "usage_softirq", "usage_steal", "usage_guest", "usage_guest_nice"]


def make_stream(path, hosts, times, seed=1):
    """TSBS-like `cpu` rows, hosts in turn within each 10 s step."""
    rnd = random.Random(seed)
    walk = [[rnd.randint(0, 10000) for _ in FIELDS] for _ in range(hosts)]
    tags = [f"cpu,hostname=host_{h},region=eu-west-{h % 3},datacenter=eu-west-{h % 3}{'abc'[h % 3]},"
            f"rack={h % 50},os=Ubuntu16.04LTS,arch=x64,team=SF,service={h % 20},"
            f"service_version={h % 2},service_environment=production " for h in range(hosts)]
    t0 = 1_700_000_000
    with open(path, "w") as f:
        for t in range(times):
            ts = f" {(t0 + 10 * t) * 1_000_000_000}\n"
            rows = []
            for h in range(hosts):
                w = walk[h]
                for i in range(len(FIELDS)):
                    w[i] = min(10000, max(0, w[i] + rnd.randint(-50, 50)))
                rows.append(tags[h] + ",".join(
                    f"{FIELDS[i]}={w[i] // 100}.{w[i] % 100:02d}" for i in range(len(FIELDS)))
                    + ts)
            f.write("".join(rows))


def stored(sock):
    st = engine.stats_json(sock, "stages")
    if not st:
        return None
    return sum(int(r.get("to_store", 0) or 0) for r in st.get("stages", []))


def spread_counters(sock):
    st = engine.stats_json(sock, "workers")
    if not st:
        return {}
    out = {}
    for r in st.get("workers", []):
        for k in ("spread_handed", "spread_local", "spread_taken", "spread_no_buffer"):
            out[k] = out.get(k, 0) + int(r.get(k, 0) or 0)
    return out


def one_run(args, stream, points, spread, root, tag):
    work = tempfile.mkdtemp(prefix=f"spread-{tag}-", dir=root)
    port = engine.free_port(socket.SOCK_STREAM, both=True)
    text = engine.config_yaml(work, port, engine.free_port(), args.workers, not args.no_pin)
    text += (f"ingest:\n  spread:\n    enabled: {'true' if spread else 'false'}\n"
             f"    buffers: {args.buffers}\n    min_chunk: {args.min_chunk}\n")
    cfg = os.path.join(work, "ringflow.yaml")
    with open(cfg, "w") as f:
        f.write(text)
    d = engine.Daemon(os.path.join(args.build_dir, "daemon", "ringflowd"), cfg,
                      os.path.join(work, "ringflowd.log"))
    d.start()
    try:
        sock = os.path.join(work, "run", "ringflow.sock")
        time.sleep(0.3)
        cpu0 = engine.proc_cpu_s(d.pid)
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", port)) as c, open(stream, "rb") as f:
            c.sendfile(f)
        t_sent = time.monotonic()
        deadline = t0 + 300
        n = 0
        while time.monotonic() < deadline:
            n = stored(sock) or 0
            if n >= points:
                break
            time.sleep(0.01)
        t1 = time.monotonic()
        cpu1 = engine.proc_cpu_s(d.pid)
        counters = spread_counters(sock)
    finally:
        d.stop()
    wall = t1 - t0
    return {"spread": spread, "points": n, "complete": n >= points, "wall_s": round(wall, 4),
            "send_s": round(t_sent - t0, 4), "cpu_s": round(cpu1 - cpu0, 4),
            "rate_mpts": round(n / wall / 1e6, 3), "ns_cpu_per_point": round((cpu1 - cpu0) / max(n, 1) * 1e9, 1),
            **counters}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build-dir", default="build")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--hosts", type=int, default=100)
    p.add_argument("--times", type=int, default=4320)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--no-pin", action="store_true")
    p.add_argument("--buffers", type=int, default=8, help="ingest.spread.buffers when on")
    p.add_argument("--min-chunk", type=int, default=4096, help="ingest.spread.min_chunk")
    p.add_argument("--stream", default=None, help="cache of the generated stream")
    args = p.parse_args()
    points = args.hosts * args.times * len(FIELDS)
    root = tempfile.mkdtemp(prefix="rf-spread-bench-")
    stream = args.stream or os.path.join(tempfile.gettempdir(),
                                         f"rf-spread-{args.hosts}x{args.times}.lp")
    if not os.path.exists(stream):
        make_stream(stream + ".tmp", args.hosts, args.times)
        os.replace(stream + ".tmp", stream)
    print(f"# stream {stream}: {points:,} points, {os.path.getsize(stream):,} bytes; "
          f"load average before: {os.getloadavg()}", flush=True)
    # A warm-up run, not counted: the first run after the stream was
    # written or evicted reads it from disk.
    print("# warm-up: " + json.dumps(one_run(args, stream, points, False, root, "warmup")),
          flush=True)
    runs = {True: [], False: []}
    for i in range(args.runs):
        for spread in (True, False):
            r = one_run(args, stream, points, spread, root, f"{i}-{'on' if spread else 'off'}")
            runs[spread].append(r)
            print(json.dumps(r), flush=True)
    summary = {}
    for spread in (True, False):
        rs = runs[spread]
        summary["on" if spread else "off"] = {
            k: statistics.median(r[k] for r in rs)
            for k in ("wall_s", "cpu_s", "rate_mpts", "ns_cpu_per_point")}
    ratios = [a["rate_mpts"] / b["rate_mpts"] for a, b in zip(runs[True], runs[False])]
    cpu_ratios = [a["ns_cpu_per_point"] / b["ns_cpu_per_point"]
                  for a, b in zip(runs[True], runs[False])]
    summary["rate_on_over_off"] = {"median": round(statistics.median(ratios), 3),
                                   "min": round(min(ratios), 3), "max": round(max(ratios), 3)}
    summary["cpu_per_point_on_over_off"] = {"median": round(statistics.median(cpu_ratios), 3),
                                            "min": round(min(cpu_ratios), 3),
                                            "max": round(max(cpu_ratios), 3)}
    summary["all_complete"] = all(r["complete"] for rs in runs.values() for r in rs)
    summary["loadavg_after"] = os.getloadavg()
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
