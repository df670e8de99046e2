"""The query comparison (scripts/bench-query.sh): the same hour of data in
ringflow and in VictoriaMetrics (Debian `victoria-metrics`), the same
query_range expressions against both, alternated, with latency and the
serving process's peak memory per query.

Data: --series series (default 10,000) of one metric, `qb_v{host, grp}`
(measurement `qb`, field `v`: both systems name it qb_v), one point every
15 s for one hour ending 10 minutes ago (241 points a series), values a
per-series counter with seeded random increments. Sent as the same line
protocol `/write` bodies (5,000 lines, ns timestamps) to both.

Made visible the same way: each server is stopped (SIGTERM: ringflow cuts
and writes every block, VictoriaMetrics flushes) and started again on its
data, so every query reads from disk-backed storage, none from an ingest
buffer. VictoriaMetrics runs with -search.disableCache and every query
carries nocache=1: its rollup cache would otherwise answer repeated
queries from memory, which ringflow has no equivalent of.

Per run and expression, the two systems are queried one after the other
(the order alternates between runs): the wall time of the whole HTTP
exchange (request to the last byte of the response) and the server's peak
RSS during it (/proc/PID/clear_refs 5 resets VmHWM just before; VmHWM
after), with the RSS before, so the delta is what the query itself took.
Before timing, both answers of each expression are compared: same label
sets, same timestamps, values equal within 1e-9 relative.
"""
import argparse
import http.client
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine  # noqa: E402
import peer  # noqa: E402

STEP_S = 15
LINES_PER_BODY = 5000
EXPRESSIONS = ("qb_v", "sum by (grp) (qb_v)", "sum by (grp) (rate(qb_v[5m]))")
# MetricsQL's rate does not extrapolate to the window's edges (Prometheus'
# does): the values of this expression differ by design and are not compared.
NOT_COMPARED = {"sum by (grp) (rate(qb_v[5m]))": "MetricsQL's rate does not extrapolate"}


def make_bodies(n_series, end_s, groups):
    """[(body, lines)], times in ns, one body per 5,000 lines."""
    rnd = random.Random(18)
    start_s = end_s - 3600
    values = [rnd.uniform(0, 1000) for _ in range(n_series)]
    lines = []
    for t in range(start_s, end_s + 1, STEP_S):
        ns = t * 1_000_000_000
        for i in range(n_series):
            values[i] += rnd.uniform(0, 10)
            lines.append(f"qb,grp=g{i % groups:02d},host=h{i:05d} v={values[i]!r} {ns}")
    out = []
    for i in range(0, len(lines), LINES_PER_BODY):
        chunk = lines[i:i + LINES_PER_BODY]
        out.append((("\n".join(chunk) + "\n").encode(), len(chunk)))
    return out, len(lines)


def send(port, bodies):
    st = peer.post_bodies(port, len(bodies), bodies.__getitem__, 2, "/write?db=bench",
                          {"Content-Type": "text/plain"})
    if st["failed_posts"]:
        raise RuntimeError(f"{st['failed_posts']} POSTs failed: {st['errors']}")
    return st


def get(port, path, timeout=300):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def range_path(expr, start_s, end_s, extra=""):
    q = urllib.parse.urlencode({"query": expr, "start": start_s, "end": end_s, "step": STEP_S})
    return "/api/v1/query_range?" + q + extra


def status_kib(pid, key):
    return engine.proc_status_kib(pid, key) or 0


def timed_query(pid, port, path):
    """(seconds, peak RSS KiB during it, RSS KiB before, CPU s, body)."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
    rss0 = status_kib(pid, "VmRSS")
    cpu0 = engine.proc_cpu_s(pid)
    t0 = time.monotonic()
    status, body = get(port, path)
    dt = time.monotonic() - t0
    hwm = status_kib(pid, "VmHWM")
    cpu = engine.proc_cpu_s(pid) - cpu0
    if status != 200:
        raise RuntimeError(f"HTTP {status}: {body[:300]!r}")
    return dt, hwm, rss0, cpu, body


def canonical(body):
    """{labels tuple: [(t, v)]} of a matrix answer."""
    doc = json.loads(body)
    if doc.get("status") != "success" or doc["data"]["resultType"] != "matrix":
        raise RuntimeError(f"unexpected answer: {body[:300]!r}")
    out = {}
    for s in doc["data"]["result"]:
        out[tuple(sorted(s["metric"].items()))] = [(float(t), float(v)) for t, v in s["values"]]
    return out


def compare(a, b):
    """None when equal, else the first difference."""
    if a.keys() != b.keys():
        only_a, only_b = sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys())
        return (f"label sets differ: {len(only_a)} only in ringflow (e.g. {only_a[:1]}), "
                f"{len(only_b)} only in VictoriaMetrics (e.g. {only_b[:1]})")
    for k in a:
        pa, pb = a[k], b[k]
        if [t for t, _ in pa] != [t for t, _ in pb]:
            return f"{k}: timestamps differ ({len(pa)} vs {len(pb)} points)"
        for (t, va), (_, vb) in zip(pa, pb):
            if abs(va - vb) > 1e-9 * max(abs(va), abs(vb)):
                return f"{k} at {t}: {va!r} vs {vb!r}"
    return None


def median_spread(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


class RingflowServer:
    name = "ringflow"

    def __init__(self, ringflowd, work):
        self.work = work
        os.makedirs(work, exist_ok=True)
        self.port = engine.free_port(kind=socket.SOCK_STREAM)
        cfg = engine.config_yaml(work, engine.free_port(both=True), engine.free_port(), 1,
                                 False, http_port=self.port, time_precision="ms")
        self.cfg = os.path.join(work, "ringflow.yaml")
        with open(self.cfg, "w") as f:
            f.write(cfg)
        self.ringflowd = ringflowd
        self.d = None

    def start(self):
        self.d = engine.Daemon(self.ringflowd, self.cfg, os.path.join(self.work, "ringflowd.log"))
        self.d.start()

    @property
    def pid(self):
        return self.d.pid

    def flush_restart(self):
        self.d.stop(120)
        self.start()

    def stop(self):
        if self.d:
            self.d.stop()


class VMServer:
    name = "VictoriaMetrics"

    def __init__(self, binary, work):
        self.vm = peer.VictoriaMetrics(binary, work)
        self.port = self.vm.http_port

    def start(self):
        self.vm.start(extra_args=["-search.disableCache"])

    @property
    def pid(self):
        return self.vm.proc.pid

    def flush_restart(self):
        self.vm.get("/internal/force_flush", 60)
        self.vm.stop()
        self.start()

    def stop(self):
        self.vm.stop()


def wait_count(srv, expr_count, end_s, want, timeout=60):
    """Waits until count(...) at end_s answers `want` (the data is visible)."""
    q = "/api/v1/query?" + urllib.parse.urlencode({"query": expr_count, "time": end_s}) + (
        "&nocache=1" if srv.name != "ringflow" else "")
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            status, body = get(srv.port, q, 30)
            if status == 200:
                res = json.loads(body)["data"]["result"]
                last = float(res[0]["value"][1]) if res else 0
                if last == want:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{srv.name}: {expr_count} at {end_s} is {last}, expected {want}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--series", type=int, default=10000)
    ap.add_argument("--groups", type=int, default=10)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--json", help="write the results here too")
    a = ap.parse_args()

    ringflowd = os.path.abspath(os.path.join(a.build_dir, "daemon", "ringflowd"))
    binary = peer.find_binary()
    if not binary:
        sys.exit("bench-query: victoria-metrics is not installed (scripts/install-deps.sh)")
    work = tempfile.mkdtemp(prefix="rf-bench-query-")
    end_s = (int(time.time()) - 600) // STEP_S * STEP_S
    start_s = end_s - 3600
    print(f"work {work}; {a.series} series x {3600 // STEP_S + 1} points, "
          f"{start_s}..{end_s} step {STEP_S}s", flush=True)
    bodies, n_lines = make_bodies(a.series, end_s, a.groups)
    servers = [RingflowServer(ringflowd, os.path.join(work, "rf")),
               VMServer(binary, os.path.join(work, "vm"))]
    res = {"series": a.series, "points": n_lines, "step_s": STEP_S, "start": start_s,
           "end": end_s, "runs": a.runs, "victoria_metrics_version": peer.version(binary),
           "expressions": {}}
    try:
        for s in servers:
            s.start()
            t0 = time.monotonic()
            send(s.port, bodies)
            print(f"{s.name}: {n_lines} points sent in {time.monotonic() - t0:.1f} s",
                  flush=True)
            s.flush_restart()
            wait_count(s, "count(qb_v)", end_s, a.series)
            wait_count(s, "sum(count_over_time(qb_v[2h]))", end_s, n_lines)
        answers = {}
        for expr in EXPRESSIONS:  # warm-up and the correctness check
            path = range_path(expr, start_s, end_s)
            bodies_of = [get(s.port, path + ("&nocache=1" if s.name != "ringflow" else ""))
                         for s in servers]
            for s, (status, body) in zip(servers, bodies_of):
                if status != 200:
                    raise RuntimeError(f"{s.name}: {expr}: HTTP {status}: {body[:300]!r}")
            ca, cb = canonical(bodies_of[0][1]), canonical(bodies_of[1][1])
            diff = None if expr in NOT_COMPARED else compare(ca, cb)
            answers[expr] = {"series": len(ca), "vm_series": len(cb),
                             "equal": None if expr in NOT_COMPARED else diff is None,
                             "difference": diff or NOT_COMPARED.get(expr)}
            print(f"{expr}: {len(ca)} series; "
                  f"{'not compared: ' + NOT_COMPARED[expr] if expr in NOT_COMPARED else ('same answer' if diff is None else 'MISMATCH: ' + diff)}",
                  flush=True)
        samples = {e: {s.name: [] for s in servers} for e in EXPRESSIONS}
        for run in range(a.runs):
            for expr in EXPRESSIONS:
                order = servers if run % 2 == 0 else servers[::-1]
                for s in order:
                    path = range_path(expr, start_s, end_s,
                                      "&nocache=1" if s.name != "ringflow" else "")
                    dt, hwm, rss0, cpu, body = timed_query(s.pid, s.port, path)
                    samples[expr][s.name].append(
                        {"s": dt, "peak_rss_kib": hwm, "rss_before_kib": rss0, "cpu_s": cpu,
                         "bytes": len(body)})
                    print(f"run {run + 1} {s.name:15s} {expr:32s} {dt * 1000:8.1f} ms  "
                          f"peak RSS {hwm / 1024:7.1f} MiB (+{(hwm - rss0) / 1024:.1f})  "
                          f"CPU {cpu:.2f} s", flush=True)
        for expr in EXPRESSIONS:
            row = dict(answers[expr])
            for s in servers:
                xs = samples[expr][s.name]
                row[s.name] = {
                    "latency_s": median_spread([x["s"] for x in xs]),
                    "peak_rss_mib": median_spread([x["peak_rss_kib"] / 1024 for x in xs]),
                    "delta_rss_mib": median_spread(
                        [(x["peak_rss_kib"] - x["rss_before_kib"]) / 1024 for x in xs]),
                    "cpu_s": median_spread([x["cpu_s"] for x in xs]),
                    "bytes": xs[0]["bytes"]}
            rf, vm = row["ringflow"], row["VictoriaMetrics"]
            row["latency_ratio"] = rf["latency_s"]["median"] / vm["latency_s"]["median"]
            row["peak_rss_ratio"] = rf["peak_rss_mib"]["median"] / vm["peak_rss_mib"]["median"]
            res["expressions"][expr] = row
    finally:
        for s in servers:
            s.stop()
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(summary(res))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    bad = [e for e, r in res["expressions"].items() if r["equal"] is False]
    return 1 if bad else 0


def fmt(ms):
    return f"{ms['median']:.{ms.get('p', 1)}f} ({ms['min']:.1f}–{ms['max']:.1f})"


def summary(res):
    out = [f"{res['series']:,} series x {res['points'] // res['series']} points, query_range "
           f"over 1 h at step {res['step_s']} s, {res['runs']} runs each, alternated; "
           f"{res['victoria_metrics_version']}.", "",
           "| expression | system | latency ms, median (min–max) | peak RSS MiB | "
           "RSS growth MiB | CPU s | same answer |",
           "|---|---|---:|---:|---:|---:|---|"]
    for expr, row in res["expressions"].items():
        same = ("yes" if row["equal"] else "no: " + row["difference"]) if row["equal"] is not None \
            else "not compared: " + row["difference"]
        for name in ("ringflow", "VictoriaMetrics"):
            r = row[name]
            lat = {k: (v * 1000 if k != "n" else v) for k, v in r["latency_s"].items()}
            out.append(f"| `{expr}` | {name} | {fmt(lat)} | {fmt(r['peak_rss_mib'])} | "
                       f"{fmt(r['delta_rss_mib'])} | {r['cpu_s']['median']:.2f} | "
                       f"{same if name == 'ringflow' else ''} |")
        out.append(f"| `{expr}` | ringflow ÷ VM | {row['latency_ratio']:.2f} | "
                   f"{row['peak_rss_ratio']:.2f} | | | |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
