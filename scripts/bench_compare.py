#!/usr/bin/env python3
"""Ratios of Google Benchmark results, per benchmark, over alternated runs.

Two uses (both read the JSON that `ringflow-bench --benchmark_out=F
--benchmark_out_format=json` writes):

  bench_compare.py --old O1.json O2.json ... --new N1.json N2.json ...
      Two builds run in turn (scripts/bench.sh --compare): run i of the old
      build is paired with run i of the new one, and for each benchmark the
      ratio new/old of its figure is taken per pair. Prints the median ratio
      with its spread (min-max over the pairs).

  bench_compare.py --pair /rf/=/rte/ R1.json R2.json ...
      Two implementations within each run (ring/rf/8B/1 against
      ring/rte/8B/1): the ratio of each benchmark whose name contains the
      left part to the one named with the right part instead, per run.

A ratio of pairs rather than a ratio of medians: on a shared machine both
sides of a pair ran close in time, so the machine's drift cancels out.

Which figure of a benchmark is compared, the first it reports of:
  corun_items_per_second  (rate while both threads of a ring benchmark ran)
  ns_per_elem             (the ring hop benchmark's round trip per element)
  items_per_second, bytes_per_second
  real_time for benchmarks timed on the wall clock (name ends /real_time),
  else cpu_time
For a rate, a ratio above 1 means the new (left) side is faster; for a time
(ns_per_elem, real_time, cpu_time) below 1 means faster. The last column says
which.
"""
import argparse
import json
import statistics
import sys

RATES = ("corun_items_per_second",)
TIMES = ("ns_per_elem",)
LATER_RATES = ("items_per_second", "bytes_per_second")


def figure(entry):
    """(name of the figure, value, True when higher is better) of one result."""
    for key in RATES:
        if key in entry:
            return key, float(entry[key]), True
    for key in TIMES:
        if key in entry:
            return key, float(entry[key]), False
    for key in LATER_RATES:
        if key in entry:
            return key, float(entry[key]), True
    key = "real_time" if entry["name"].endswith("/real_time") else "cpu_time"
    return key, float(entry[key]), False


def load_run(path):
    """{benchmark name: (figure name, value, higher_is_better)} of one JSON file.
    Repetitions within the file are reduced to their median; aggregates and
    benchmarks that reported an error are left out."""
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    values = {}
    for entry in doc.get("benchmarks", []):
        if entry.get("run_type", "iteration") != "iteration" or entry.get("error_occurred"):
            continue
        name = entry.get("run_name", entry["name"])
        fig, value, higher = figure(entry)
        values.setdefault(name, (fig, [], higher))[1].append(value)
    return {n: (fig, statistics.median(v), higher) for n, (fig, v, higher) in values.items()}


def summarise(pairs):
    """pairs: {name: [(left, right, figure, higher)]} -> sorted rows of
    (name, figure, median left, median right, median ratio, min, max, n, higher)."""
    rows = []
    for name, items in pairs.items():
        ratios = [left / right for left, right, _, _ in items if right > 0]
        if not ratios:
            continue
        rows.append((
            name,
            items[0][2],
            statistics.median(left for left, _, _, _ in items),
            statistics.median(right for _, right, _, _ in items),
            statistics.median(ratios),
            min(ratios),
            max(ratios),
            len(ratios),
            items[0][3],
        ))
    return rows


def compare_builds(old_runs, new_runs):
    """Pairs run i of the new build with run i of the old one."""
    pairs = {}
    for old, new in zip(old_runs, new_runs):
        for name, (fig, new_value, higher) in new.items():
            if name in old and old[name][0] == fig:
                pairs.setdefault(name, []).append((new_value, old[name][1], fig, higher))
    return summarise(pairs)


def compare_within(runs, left, right):
    """In each run, benchmark X containing `left` against X with `right` instead."""
    pairs = {}
    for run in runs:
        for name, (fig, value, higher) in run.items():
            if left not in name:
                continue
            rival = name.replace(left, right, 1)
            if rival in run and run[rival][0] == fig:
                pairs.setdefault(name, []).append((value, run[rival][1], fig, higher))
    return summarise(pairs)


def fmt(value):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.3g}"


def print_rows(rows, left_label, right_label, out=None):
    out = out or sys.stdout
    width = max([len("benchmark")] + [len(r[0]) for r in rows])
    print(f"{'benchmark':<{width}}  {'figure':<22} {left_label:>9} {right_label:>9}  "
          f"{left_label + '/' + right_label:>9}  {'min-max':<13} runs  better",
          file=out)
    for name, fig, left, right, med, lo, hi, n, higher in rows:
        better = "higher" if higher else "lower"
        print(f"{name:<{width}}  {fig:<22} {fmt(left):>9} {fmt(right):>9}  {med:>9.3f}  "
              f"{lo:.3f}-{hi:.3f}   {n:>4}  {better}",
              file=out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", nargs="+", metavar="JSON", help="runs of the old build, in order")
    ap.add_argument("--new", nargs="+", metavar="JSON", help="runs of the new build, same order")
    ap.add_argument("--pair", metavar="LEFT=RIGHT",
                    help="within each run: names containing LEFT against RIGHT")
    ap.add_argument("runs", nargs="*", metavar="JSON", help="runs, with --pair")
    args = ap.parse_args(argv)
    if args.pair:
        if "=" not in args.pair or not args.runs or args.old or args.new:
            ap.error("--pair LEFT=RIGHT takes run files, and no --old/--new")
        left, right = args.pair.split("=", 1)
        rows = compare_within([load_run(p) for p in args.runs], left, right)
        print_rows(rows, left.strip("/") or "left", right.strip("/") or "right")
    else:
        if not args.old or not args.new or len(args.old) != len(args.new) or args.runs:
            ap.error("--old and --new take the same number of run files")
        rows = compare_builds([load_run(p) for p in args.old], [load_run(p) for p in args.new])
        print_rows(rows, "new", "old")
    if not rows:
        print("bench_compare: no benchmark found on both sides", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
