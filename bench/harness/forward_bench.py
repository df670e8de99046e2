#!/usr/bin/env python3
"""Forwarding throughput: ringflowd receives N line-protocol points over TCP
and forwards them to VictoriaMetrics (Debian package victoria-metrics) with a
prom_remote_write or influx_http sink and its disk buffer, or to a
nats-server (Debian package nats-server; JetStream, file storage) with a nats
sink (protocol `nats`: one stream, subjects by shard). Per run, a fresh
receiver and a fresh ringflowd:

  samples/s          N / (time from the first byte sent until the sinks'
                     `acked` reached N: the receiver answered 2xx for all)
  receiver CPU/sample VM's (or nats-server's) utime+stime over that time / N
                     (microseconds)
  sender CPU/sample  ringflowd's, the same way
  write amplification disk_written_bytes / acked_bytes (show forwarders):
                     bytes the disk buffer wrote (records, acks, sent
                     markers) per byte of lines acknowledged

Median of --runs (5) per protocol with min and max. With --baseline OTHER
(another ringflowd binary), each run is a pair, OTHER first then this one,
and the table adds the ratios this/OTHER pair by pair (median, min-max), so
a comparison holds while the shared machine's speed drifts. With --prometheus BINARY, --runs more runs of Prometheus' own remote write
for comparison (prometheus_run: agent mode scraping an exposition and
remote-writing to a fresh VM; its CPU per sample in the ringflowd column).
Usage:
  scripts/forward-bench.sh [--points N] [--runs R] [--protocols prom_remote_write,influx_http]
                           [--baseline PATH] [--prometheus /usr/bin/prometheus]
  scripts/forward-bench.sh --protocols nats --workers 1   # NATS per edge core
"""
import argparse
import http.server
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine  # noqa: E402
import peer  # noqa: E402


class NatsServer:
    """nats-server with JetStream on a loopback port of its own."""

    def __init__(self, binary, work):
        self.binary = binary
        self.work = work
        self.port = engine.free_port(socket.SOCK_STREAM)
        self.proc = None

    def start(self, timeout=30):
        self.log = open(os.path.join(self.work, "nats-server.log"), "w")
        self.proc = subprocess.Popen([self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-js",
                                      "-sd", os.path.join(self.work, "js")],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("nats-server did not listen")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and not self.log.closed:
            self.log.close()


def payload(n, series, t0_ms):
    """n points over `series` series, one millisecond apart per series."""
    out = []
    for i in range(n):
        out.append(f"fwdbench,host=h{i % series} v={i} {(t0_ms + i // series) * 1000000}\n")
    return "".join(out).encode()


def split_lines(data, parts):
    """data cut into `parts` pieces at line ends."""
    pieces, start = [], 0
    for k in range(1, parts + 1):
        end = len(data) if k == parts else data.index(b"\n", len(data) * k // parts) + 1
        pieces.append(data[start:end])
        start = end
    return pieces


def send_all(port, pieces):
    def one(piece):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(piece)
        s.close()
    threads = [threading.Thread(target=one, args=(p,)) for p in pieces]
    for t in threads:
        t.start()
    return threads


def forwarders(sock):
    """Column sums of `show forwarders json` over every worker's row."""
    j = engine.stats_json(sock, "forwarders")
    rows = j.get("forwarders", j) if isinstance(j, dict) else j
    if not isinstance(rows, list):
        return None
    tot = {}
    for r in rows:
        for k, v in r.items():
            if isinstance(v, (int, float)):
                tot[k] = tot.get(k, 0) + v
    return tot


def config(work, port, protocol, vm_port, args):
    url = (f"http://127.0.0.1:{vm_port}/api/v1/write" if protocol == "prom_remote_write"
           else f"http://127.0.0.1:{vm_port}/write")
    target = f'url: "{url}"'
    if protocol == "nats":
        target = (f'servers: ["nats://127.0.0.1:{vm_port}"]\n'
                  '      subject: "fb.{measurement}.{shard}"\n      shards: 8\n'
                  "      max_pending: 1024\n      stream: {name: FB}")
    return f"""# Generated by bench/harness/forward_bench.py
engine:
  workers: {args.workers}
  data_dir: {work}/data
  run_dir: {work}/run
listeners:
  - {{name: lp, transport: tcp, protocol: influx_line, address: 127.0.0.1, port: {port}}}
stats: {{prometheus: {{enabled: false}}}}
storage: {{enabled: false}}
pipeline:
  batch: {{max_events: 4096, interval: 20ms}}
  sinks:
    - name: fwd
      type: {protocol}
      {target}
      queue: 4MiB
      batch: {{max_samples: {args.max_samples}, max_bytes: {args.max_bytes}}}
      buffer: {{type: disk, path: {work}/fwdbuf, max_bytes: 4GiB}}
  routes:
    - {{subject: "telemetry.>", sinks: [fwd]}}
"""


def one_run(args, protocol, data, run_no, binary=None, tag=""):
    binary = binary or args.ringflowd
    work = tempfile.mkdtemp(prefix="rf-fwdbench-")
    vm = NatsServer(args.nats, work) if protocol == "nats" else peer.VictoriaMetrics(args.vm, work)
    vm.start()
    port = engine.free_port(socket.SOCK_STREAM)
    cfg = os.path.join(work, "ringflowd.yaml")
    with open(cfg, "w") as f:
        f.write(config(work, port, protocol, vm.port if protocol == "nats" else vm.http_port,
                       args))
    d = engine.Daemon(binary, cfg, os.path.join(work, "ringflowd.log"))
    d.start()
    sock = os.path.join(work, "run", "ringflow.sock")
    try:
        pieces = split_lines(data, args.connections)
        rf0, vm0 = engine.proc_cpu_s(d.pid), engine.proc_cpu_s(vm.proc.pid)
        t0 = time.monotonic()
        threads = send_all(port, pieces)
        deadline = t0 + args.timeout
        st = None
        while time.monotonic() < deadline:
            st = forwarders(sock)
            if st and st.get("acked", 0) >= args.points:
                break
            time.sleep(0.02)
        t1 = time.monotonic()
        rf1, vm1 = engine.proc_cpu_s(d.pid), engine.proc_cpu_s(vm.proc.pid)
        for t in threads:
            t.join()
        if not st or st.get("acked", 0) < args.points:
            raise RuntimeError(f"{protocol} run {run_no}: acked {st and st.get('acked')} of "
                               f"{args.points} after {args.timeout} s; work dir {work}")
        dropped = sum(v for k, v in st.items() if k.startswith("dropped"))
        r = {
            "protocol": protocol,
            "binary": tag,
            "samples_per_s": args.points / (t1 - t0),
            "seconds": t1 - t0,
            "vm_cpu_us_per_sample": (vm1 - vm0) * 1e6 / args.points,
            "rf_cpu_us_per_sample": (rf1 - rf0) * 1e6 / args.points,
            "write_amplification": st["disk_written_bytes"] / max(st["acked_bytes"], 1),
            "retries": st.get("retries", 0),
            "dropped": dropped,
        }
        print(f"  {protocol}{tag} run {run_no}: {r['samples_per_s'] / 1e6:.3f} M samples/s, "
              f"receiver {r['vm_cpu_us_per_sample']:.3f} us/sample, ringflowd "
              f"{r['rf_cpu_us_per_sample']:.3f} us/sample, write amp "
              f"{r['write_amplification']:.3f}, retries {r['retries']}, dropped {dropped}",
              flush=True)
        return r
    finally:
        d.stop()
        vm.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


class _Exposition(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        try:
            self.wfile.write(self.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # Prometheus gave up on a late scrape (scrape_timeout): counted by it

    def log_message(self, *a):
        pass


_PROM_SENT = re.compile(r"^prometheus_remote_storage_(?:succeeded_)?samples_total"
                        r"(?:\{[^}]*\})?\s+(\S+)", re.M)


def prometheus_run(args, run_no):
    """Prometheus (Debian `prometheus`, agent mode: scrape, WAL on disk,
    remote_write, no TSDB) scraping --prom-series series every 200 ms from an
    exposition served here, remote-writing them to a fresh VM with the
    batch size of the ringflowd runs. Over --points samples sent, once warm:
    Prometheus' and VM's CPU per sample. The rate is the scrape schedule's,
    so only the CPU figures mean anything."""
    work = tempfile.mkdtemp(prefix="rf-fwdbench-prom-")
    vm = peer.VictoriaMetrics(args.vm, work)
    vm.start()
    _Exposition.body = "".join(f'fwdbench_v{{host="h{i}"}} {i}\n'
                               for i in range(args.prom_series)).encode()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Exposition)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = engine.free_port(socket.SOCK_STREAM)
    cfg = os.path.join(work, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write(f"""global: {{scrape_interval: 200ms, scrape_timeout: 200ms}}
scrape_configs:
  - job_name: fwdbench
    static_configs: [{{targets: ["127.0.0.1:{srv.server_address[1]}"]}}]
remote_write:
  - url: http://127.0.0.1:{vm.http_port}/api/v1/write
    queue_config: {{max_samples_per_send: {args.max_samples}, capacity: {3 * args.max_samples}}}
""")
    log = open(os.path.join(work, "prometheus.log"), "w")
    prom = subprocess.Popen([args.prometheus, "--enable-feature=agent", f"--config.file={cfg}",
                             f"--storage.agent.path={work}/agent",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT)

    def sent():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                m = _PROM_SENT.findall(r.read().decode())
            return sum(float(x) for x in m) if m else 0.0
        except OSError:
            return 0.0
    try:
        deadline = time.monotonic() + args.timeout
        while sent() < 5 * args.prom_series and time.monotonic() < deadline:
            time.sleep(0.1)  # warm: a few scrapes sent
        s0, p0, v0, t0 = sent(), engine.proc_cpu_s(prom.pid), engine.proc_cpu_s(vm.proc.pid), \
            time.monotonic()
        while sent() - s0 < args.points and time.monotonic() < deadline:
            time.sleep(0.05)
        s1, p1, v1, t1 = sent(), engine.proc_cpu_s(prom.pid), engine.proc_cpu_s(vm.proc.pid), \
            time.monotonic()
        n = s1 - s0
        if n < args.points:
            raise RuntimeError(f"prometheus run {run_no}: {n} of {args.points} sent; work {work}")
        r = {"protocol": "prometheus_agent", "binary": "", "samples_per_s": n / (t1 - t0),
             "seconds": t1 - t0, "vm_cpu_us_per_sample": (v1 - v0) * 1e6 / n,
             "rf_cpu_us_per_sample": (p1 - p0) * 1e6 / n, "write_amplification": 0.0}
        print(f"  prometheus agent run {run_no}: {n:.0f} samples in {t1 - t0:.1f} s, VM "
              f"{r['vm_cpu_us_per_sample']:.3f} us/sample, Prometheus "
              f"{r['rf_cpu_us_per_sample']:.3f} us/sample", flush=True)
        return r
    finally:
        prom.terminate()
        try:
            prom.wait(timeout=20)
        except subprocess.TimeoutExpired:
            prom.kill()
        srv.shutdown()
        vm.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ringflowd", required=True)
    ap.add_argument("--vm", default="/usr/bin/victoria-metrics")
    ap.add_argument("--nats", default="/usr/sbin/nats-server")
    ap.add_argument("--points", type=int, default=2_000_000)
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--max-samples", type=int, default=20000)
    ap.add_argument("--max-bytes", default="4MiB")
    ap.add_argument("--protocols", default="prom_remote_write,influx_http")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--json", help="write every run's figures here")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--baseline", help="another ringflowd: alternate runs with it, print ratios")
    ap.add_argument("--prometheus", help="also Prometheus' own remote write of --points samples "
                    "(agent mode, scraping; this binary, e.g. /usr/bin/prometheus)")
    ap.add_argument("--prom-series", type=int, default=20000)
    args = ap.parse_args()
    t0_ms = int(time.time() * 1000) - 3600_000
    data = payload(args.points, args.series, t0_ms)
    print(f"{args.points} points, {len(data)} bytes of line protocol, {args.series} series, "
          f"{args.connections} TCP connections, {args.workers} workers", flush=True)
    runs, base = [], []
    for protocol in args.protocols.split(","):
        for i in range(args.runs):
            if args.baseline:
                base.append(one_run(args, protocol, data, i + 1, args.baseline, " (baseline)"))
            runs.append(one_run(args, protocol, data, i + 1))
    if args.prometheus:
        for i in range(args.runs):
            runs.append(prometheus_run(args, i + 1))
    print("\n| protocol | samples/s (median, min-max) | receiver us/sample | ringflowd us/sample "
          "| write amplification |")
    print("|---|---|---|---|---|")
    protocols = args.protocols.split(",") + (["prometheus_agent"] if args.prometheus else [])
    for protocol in protocols:
        rs = [r for r in runs if r["protocol"] == protocol]

        def fig(key, scale=1.0, fmt="{:.3f}"):
            v = [r[key] * scale for r in rs]
            return (fmt.format(statistics.median(v)) + " (" + fmt.format(min(v)) + "-" +
                    fmt.format(max(v)) + ")")
        print(f"| {protocol} | {fig('samples_per_s', 1e-6)} M | {fig('vm_cpu_us_per_sample')} | "
              f"{fig('rf_cpu_us_per_sample')} | {fig('write_amplification')} |")
    if args.baseline:
        print("\nbaseline " + args.baseline + ":\n")
        print("| protocol | samples/s | VM us/sample | ringflowd us/sample | ratio rate this/base "
              "| ratio ringflowd us/sample this/base |")
        print("|---|---|---|---|---|---|")
        for protocol in args.protocols.split(","):
            rs = [r for r in runs if r["protocol"] == protocol]
            bs = [r for r in base if r["protocol"] == protocol]

            def med(xs, key, scale=1.0):
                v = [x[key] * scale for x in xs]
                return f"{statistics.median(v):.3f} ({min(v):.3f}-{max(v):.3f})"

            def ratio(key):
                v = [a[key] / b[key] for a, b in zip(rs, bs)]
                return f"{statistics.median(v):.3f} ({min(v):.3f}-{max(v):.3f})"
            print(f"| {protocol} | {med(bs, 'samples_per_s', 1e-6)} M | "
                  f"{med(bs, 'vm_cpu_us_per_sample')} | {med(bs, 'rf_cpu_us_per_sample')} | "
                  f"{ratio('samples_per_s')} | {ratio('rf_cpu_us_per_sample')} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(runs + base, f, indent=1)


if __name__ == "__main__":
    main()
