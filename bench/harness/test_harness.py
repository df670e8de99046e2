#!/usr/bin/env python3
"""Unit tests of the harness's own arithmetic and document handling (no
daemon, no VictoriaMetrics): the loss equation, the summary's loss table,
the ingest-time interpolation, the shutdown-summary parser and --update-doc.

    python3 bench/harness/test_harness.py     (also: meson test --suite harness)
"""
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import engine  # noqa: E402
import harness  # noqa: E402
import http_peer  # noqa: E402
import peer  # noqa: E402
import report  # noqa: E402

LOG = """\
ts=1 level=info component=engine msg="worker-0 final: events_parsed=600 from_peers=0 processed=590 sent_to_peers=0 dropped_ring_full=7 dropped_unknown_series=3 block_waits=0 critical_events=0 critical_from_peers=0"
ts=1 level=info component=pipeline msg="worker-0 final: processed=580 unknown_series=3 series_rejected=1 to_critical=0 to_standard=580 to_store=560 store_rejected=15 unrouted=5 series_rejected_shard_limit=0 series_rejected_measurement_limit=0"
ts=1 level=info component=pipeline msg="worker-0 sink probe_out final: accepted=4 lines_out=3 queue_full=1 disconnected=0 unsupported=0 oversize=0 io_error=0"
ts=1 level=info component=shard msg="worker-0 listener influx_line-udp final: datagrams=6 reads=0 bytes=2000 kernel_drops=4 lines_ok=590 lines_rejected=10 events=590 series_defs=10"
"""


def load(events=1000, probes=0, lines=1000, sends=9, errors=1):
    return {"events": events, "probes": probes, "lines": lines, "sends": sends,
            "errors": errors, "elapsed_s": 1.0, "events_per_s": float(events)}


class LossEquation(unittest.TestCase):
    def setUp(self):
        self.summ = engine.parse_final_summary(LOG)

    def test_summary_parsed(self):
        self.assertTrue(self.summ["found"])
        self.assertEqual(self.summ["pipeline"]["store_rejected"], 15)
        self.assertEqual(self.summ["listeners"]["influx_line-udp"]["kernel_drops"], 4)
        self.assertEqual(self.summ["sinks"]["probe_out"]["queue_full"], 1)

    def test_store_refusals_are_loss(self):
        # The audit's case: everything processed, the store refused some.
        eq = harness.loss_equation(load(), self.summ, stored=560, with_store=True)
        self.assertEqual(eq["end"], 560)
        self.assertEqual(eq["loss"], 1000 - 560)
        self.assertAlmostEqual(eq["loss_pct"], 44.0)
        self.assertEqual(eq["terms"]["store_refusals"]["count"], 15)
        self.assertEqual(eq["terms"]["unrouted"]["count"], 5)

    def test_equation_closes(self):
        # 10 datagrams attempted for 1000 events: 100 per datagram; 1 send
        # error and 4 kernel drops = 500 events; 10 rejected lines; 7 ring
        # drops, 3 unknown, 5 unrouted, 15 refused, 560 stored: 1105 > 1000,
        # so 105 too many are explained (a synthetic log), and it says so.
        eq = harness.loss_equation(load(), self.summ, stored=560, with_store=True)
        explained = sum(t["events"] for t in eq["terms"].values())
        self.assertAlmostEqual(explained, 100 + 400 + 10 + 7 + 3 + 5 + 15 + 0)
        self.assertAlmostEqual(eq["unaccounted"], 1000 - 560 - explained)
        self.assertAlmostEqual(eq["unaccounted_tolerance"], 0.01 * 510)

    def test_lost_in_store(self):
        eq = harness.loss_equation(load(), self.summ, stored=550, with_store=True)
        self.assertEqual(eq["terms"]["lost_in_store"]["count"], 10)

    def test_probe_lines_count_twice(self):
        eq = harness.loss_equation(load(events=1000, probes=20), self.summ, 560, True)
        self.assertEqual(eq["sent"], 1020)

    def test_without_store_ends_at_processed(self):
        eq = harness.loss_equation(load(), self.summ, stored=None, with_store=False)
        self.assertEqual(eq["end_point"], "processed")
        self.assertEqual(eq["end"], 580)
        self.assertNotIn("unrouted", eq["terms"])


class Report(unittest.TestCase):
    def run_result(self, **over):
        summ = engine.parse_final_summary(LOG)
        eq = harness.loss_equation(load(), summ, 560, True)
        r = {"offered": 1000, "ok": True, "sent_events": eq["sent"], "end_events": eq["end"],
             "end_point": "stored", "loss_events": eq["loss"], "loss_pct": eq["loss_pct"],
             "loss_terms": eq["terms"], "unaccounted_events": eq["unaccounted"],
             "unaccounted_tolerance": eq["unaccounted_tolerance"],
             "events_per_datagram": eq["events_per_datagram"], "sent_events_per_s": 1000.0,
             "end_events_per_s": 560.0, "probes_sent": 0, "probes_received": 0,
             "sink_drops": 1, "latency": None, "latency_note": "n/a", "latency_warmup": None,
             "cpu_s_per_m_events": 1.0, "peak_rss_mib": 100.0, "stored_by_measurement": {}}
        r.update(over)
        return r

    def results(self, runs):
        return {"started_utc": "2026-12-01 00:00 UTC", "run_id": "2026-12-01-0000",
                "command": "scripts/harness.sh --quick", "out_dir": "/tmp",
                "machine": {"cpus": 2, "cpu_model": "x", "kernel": "k", "commit": "c",
                            "loadavg_before": "0 0 0"},
                "options": {"workers": 2, "series": 1000, "tags": 3, "sockets": 16,
                            "duration": 2.0, "warmup": 1.0, "probe_note": "p", "store": True},
                "runs": runs}

    def test_loss_row_shows_store_refusals(self):
        md = report.summary_markdown(self.results([self.run_result()]), [], None, "/tmp")
        row = [ln for ln in md.splitlines() if ln.startswith("| 1 k |")][0]
        self.assertIn("440 (44.000 %)", row)
        self.assertIn("| 15 |", row)                   # store refusals
        self.assertIn("4 dgrams ≈ 400", row)           # kernel drops, unit kept
        self.assertIn("**", row)                       # unaccounted beyond the estimate

    def test_unaccounted_within_estimate(self):
        r = self.run_result(unaccounted_events=-3.0, unaccounted_tolerance=5.1)
        self.assertIn("within ±5", report._unaccounted_cell(r))
        r = self.run_result(unaccounted_events=0.0, unaccounted_tolerance=0.0)
        self.assertEqual(report._unaccounted_cell(r), "0")


class Interpolation(unittest.TestCase):
    def test_time_reached(self):
        s = [(1.0, 0), (2.0, 50), (3.0, 150)]
        self.assertAlmostEqual(peer.time_reached(s, 0.0, 100), 2.5)
        self.assertAlmostEqual(peer.time_reached(s, 0.0, 150), 3.0)
        self.assertIsNone(peer.time_reached(s, 0.0, 151))


class UpdateDoc(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="harness-test-")
        self.doc = os.path.join(self.dir, "PERF.md")
        with open(self.doc, "w") as f:
            f.write("# Title\n\nbefore\n\n" + report.DOC_BEGIN + "\nold figures\n"
                    + report.DOC_END + "\n\nafter\n")
        self.out = os.path.join(self.dir, "out")
        os.makedirs(self.out)
        with open(os.path.join(self.out, "results.json"), "w") as f:
            f.write("{}\n")
        self.png = os.path.join(self.out, "throughput.png")
        with open(self.png, "wb") as f:
            f.write(b"\x89PNG")
        self.res = Report().results([Report().run_result()])

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def read(self):
        with open(self.doc) as f:
            return f.read()

    def test_replaces_only_the_marked_section(self):
        dest = report.update_doc(self.doc, self.res, self.out, [self.png], None)
        text = self.read()
        self.assertTrue(text.startswith("# Title\n\nbefore\n\n" + report.DOC_BEGIN))
        self.assertTrue(text.endswith(report.DOC_END + "\n\nafter\n"))
        self.assertNotIn("old figures", text)
        self.assertIn("### Where every event went", text)
        self.assertIn("](perf/harness-2026-12-01-0000/throughput.png)", text)
        self.assertTrue(os.path.exists(os.path.join(dest, "throughput.png")))
        self.assertTrue(os.path.exists(os.path.join(dest, "results.json")))
        # Twice: the same document (the section is replaced, not appended).
        report.update_doc(self.doc, self.res, self.out, [self.png], None)
        self.assertEqual(self.read(), text)

    def test_refuses_a_doc_without_markers(self):
        with open(self.doc, "w") as f:
            f.write("no markers\n")
        with self.assertRaises(ValueError):
            report.update_doc(self.doc, self.res, self.out, [], None)
        with open(self.doc, "w") as f:
            f.write(report.DOC_END + "\n" + report.DOC_BEGIN + "\n")
        with self.assertRaises(ValueError):
            report.check_doc_markers(self.doc)


def _pb_fields(b):
    """(field, wire type, value) of a protobuf message: varints, 8-byte and
    length-delimited values."""
    out, i = [], 0

    def varint():
        nonlocal i
        v, shift = 0, 0
        while True:
            c = b[i]
            i += 1
            v |= (c & 0x7F) << shift
            shift += 7
            if c < 0x80:
                return v
    while i < len(b):
        k = varint()
        wt = k & 7
        if wt == 0:
            val = varint()
        elif wt == 1:
            val, i = b[i:i + 8], i + 8
        else:
            n = varint()
            val, i = b[i:i + n], i + n
        out.append((k >> 3, wt, val))
    return out


class HttpPeerBodies(unittest.TestCase):
    def test_remote_write_from_lines(self):
        lines = ["load,series=s1,host=a\\,b value=1.5", "cpu,series=s2 usage=7i"]
        bodies = http_peer.remote_write_bodies(lines, 1000, compress=lambda b: b)
        self.assertEqual([n for _, n in bodies], [2])
        ts = [v for f, _, v in _pb_fields(bodies[0][0]) if f == 1]
        self.assertEqual(len(ts), 2)
        got = []
        for t in ts:
            labels, samples = {}, []
            for f, _, v in _pb_fields(t):
                if f == 1:
                    kv = {ff: vv.decode() for ff, _, vv in _pb_fields(v)}
                    labels[kv[1]] = kv[2]
                else:
                    samples.append({ff: vv for ff, _, vv in _pb_fields(v)})
            got.append((labels, samples))
        self.assertEqual(got[0][0], {"__name__": "load", "series": "s1", "host": "a,b"})
        self.assertEqual(got[1][0], {"__name__": "cpu_usage", "series": "s2"})
        import struct
        self.assertEqual(struct.unpack("<d", got[0][1][0][1])[0], 1.5)
        self.assertEqual(struct.unpack("<d", got[1][1][0][1])[0], 7.0)
        self.assertEqual([s[2] for _, (s,) in got], [1000, 1001])

    def test_summary_names_both_systems(self):
        r = {"points": 10, "rows": 10, "rows_per_s": 5.0, "cpu_s_per_m": 2.0, "wire_bytes": 99}
        res = {"connections": 2, "lines_per_body": 5000, "samples_per_remote_write": 2000,
               "victoria_metrics_version": "VM x",
               "paths": {"write": {"ringflow": r, "victoria_metrics": dict(r, rows_per_s=2.5),
                                   "ratio_rate": 2.0, "ratio_cpu": 1.0}}}
        md = http_peer.summary_markdown(res)
        self.assertIn("| write | ringflow | 10 | 10 | 5 | 2.000 | 99 |", md)
        self.assertIn("| write | VictoriaMetrics | 10 | 10 | 2 | 2.000 | 99 |", md)
        self.assertIn("| write | ringflow ÷ VM | | | 2.00 | 1.00 | |", md)


if __name__ == "__main__":
    unittest.main()
