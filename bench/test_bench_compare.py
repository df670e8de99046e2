#!/usr/bin/env python3
"""Tests of scripts/bench_compare.py, the ratio arithmetic behind
`scripts/bench.sh --compare`, on fixed Google Benchmark JSON files
(bench/testdata/compare/: three runs of an old and a new build, made by hand
so that every ratio is known), and of bench.sh's argument checks.

    python3 bench/test_bench_compare.py     (also: meson test bench_compare)
"""
import io
import os
import subprocess
import sys
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import bench_compare  # noqa: E402

DATA = os.path.join(ROOT, "bench", "testdata", "compare")


def runs(side):
    return [bench_compare.load_run(os.path.join(DATA, f"{side}-{i}.json")) for i in (1, 2, 3)]


class LoadRun(unittest.TestCase):
    def test_figure_and_repetitions(self):
        run = bench_compare.load_run(os.path.join(DATA, "old-1.json"))
        # The ring's co-running rate beats Google Benchmark's wall-clock rate.
        self.assertEqual(run["ring/rf/8B/1/real_time"], ("corun_items_per_second", 100e6, True))
        # The hop benchmark is judged by its round trip per element (lower is better).
        self.assertEqual(run["ring/hop/rf/8B/1/real_time"], ("ns_per_elem", 600.0, False))
        self.assertEqual(run["parse/influx/10"], ("items_per_second", 10e6, True))
        # Three repetitions (100, 300, 200) reduce to their median; the
        # aggregate entry (1.0) is not a repetition.
        self.assertEqual(run["stages/route/3"], ("cpu_time", 200.0, False))
        # A benchmark that reported an error is left out.
        self.assertNotIn("store/append/1", run)


class CompareBuilds(unittest.TestCase):
    def test_known_ratios(self):
        rows = {r[0]: r[1:] for r in bench_compare.compare_builds(runs("old"), runs("new"))}
        # (figure, median new, median old, median ratio, min, max, pairs, higher is better)
        # rf: 150/100, 200/200, 200/100
        self.assertEqual(rows["ring/rf/8B/1/real_time"],
                         ("corun_items_per_second", 200e6, 100e6, 1.5, 1.0, 2.0, 3, True))
        # hop: 300/600, 500/500, 600/400
        self.assertEqual(rows["ring/hop/rf/8B/1/real_time"],
                         ("ns_per_elem", 500.0, 500.0, 1.0, 0.5, 1.5, 3, False))
        # parse: 30/10, 20/20, 15/10
        self.assertEqual(rows["parse/influx/10"][3:6], (1.5, 1.0, 3.0))
        # route, medians of repetitions first: 100/200, 200/100, 25/50
        self.assertEqual(rows["stages/route/3"][3:6], (0.5, 0.5, 2.0))
        self.assertNotIn("store/append/1", rows)

    def test_pairs_run_by_run(self):
        # Ratios are taken pair by pair, not as a ratio of medians: the old
        # side reversed gives other pairs and another median.
        rows = {r[0]: r[1:] for r in bench_compare.compare_builds(runs("old")[::-1], runs("new"))}
        # rf: 150/100, 200/200, 200/100 -> the same; hop: 300/400, 500/500, 600/600
        self.assertEqual(rows["ring/hop/rf/8B/1/real_time"][3:6], (1.0, 0.75, 1.0))


class CompareWithin(unittest.TestCase):
    def test_rf_against_rte(self):
        rows = bench_compare.compare_within(runs("old"), "/rf/", "/rte/")
        # Only names with a rival: the hop benchmark has no ring/hop/rte here.
        self.assertEqual([r[0] for r in rows], ["ring/rf/8B/1/real_time"])
        # 100/40, 200/50, 100/100
        self.assertEqual(rows[0][4:7], (2.5, 1.0, 4.0))


class CommandLine(unittest.TestCase):
    def test_table(self):
        out = io.StringIO()
        sys_stdout, sys.stdout = sys.stdout, out
        try:
            rc = bench_compare.main(
                ["--old"] + [os.path.join(DATA, f"old-{i}.json") for i in (1, 2, 3)] +
                ["--new"] + [os.path.join(DATA, f"new-{i}.json") for i in (1, 2, 3)])
        finally:
            sys.stdout = sys_stdout
        self.assertEqual(rc, 0)
        line = [x for x in out.getvalue().splitlines() if x.startswith("ring/rf/8B/1")][0]
        self.assertEqual(line.split()[1:], ["corun_items_per_second", "200M", "100M", "1.500",
                                            "1.000-2.000", "3", "higher"])

    def test_bench_sh_refuses_bad_arguments(self):
        script = os.path.join(ROOT, "scripts", "bench.sh")
        for args in (["--compare", "HEAD", "--runs", "0"], ["--new", "HEAD"]):
            p = subprocess.run(["bash", script] + args, capture_output=True, text=True,
                               timeout=30)
            self.assertEqual(p.returncode, 2, args)
            self.assertIn("bench.sh:", p.stderr)


if __name__ == "__main__":
    unittest.main()
