#!/usr/bin/env python3
"""The critical path from outside, two builds alternated: poll_bench.py --alert
(a client times each critical send until the threshold alert's datagram
arrives) at each routine rate, the builds taking turns run by run so that
the shared machine's load falls on both alike. Prints one JSON line per run
and, at the end, per build and rate the median of each figure over the runs
with its spread (min..max).

Usage: critical_ab.py --build A=build-main --build B=build --rates 0,10000,50000
       [--runs 5] [--duration 5]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
FIGURES = ("p50_us", "p99_us", "p999_us", "engine_p50_us", "engine_p99_us", "engine_p999_us",
           "cpu_pct", "load1")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", action="append", required=True, help="NAME=BUILD_DIR (repeat)")
    ap.add_argument("--rates", default="0,10000,50000,200000,1000000")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--probe-rate", type=float, default=200.0)
    a = ap.parse_args()
    builds = [b.split("=", 1) for b in a.build]
    rates = [int(r) for r in a.rates.split(",")]
    results = {}
    for run in range(a.runs):
        for rate in rates:
            order = builds if run % 2 == 0 else list(reversed(builds))
            for name, bdir in order:
                r = subprocess.run([sys.executable, os.path.join(HERE, "poll_bench.py"),
                                    "--build-dir", bdir, "--alert", "--rate", str(rate),
                                    "--duration", str(a.duration), "--probe-rate",
                                    str(a.probe_rate)], capture_output=True, text=True)
                line = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else "{}"
                try:
                    res = json.loads(line)
                except ValueError:
                    res = {}
                res.update({"build": name, "run": run})
                print(json.dumps(res), flush=True)
                results.setdefault((name, rate), []).append(res)
    print("# medians over runs (min..max)")
    for rate in rates:
        for name, _ in builds:
            rs = results.get((name, rate), [])
            parts = []
            for f in FIGURES:
                v = [x[f] for x in rs if x.get(f) is not None]
                if v:
                    parts.append(f"{f} {statistics.median(v):.1f} ({min(v):.1f}..{max(v):.1f})")
            print(f"rate {rate} {name} runs {len(rs)}: " + ", ".join(parts))


if __name__ == "__main__":
    main()
