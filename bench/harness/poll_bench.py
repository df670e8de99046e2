#!/usr/bin/env python3
"""The worker poll loop's costs, measured from outside: daemon CPU (idle, and
under a paced UDP stream) and the critical path from a client's send to the
alert datagram's receipt.

One ringflowd (2 pinned workers by default, no store) with a standard UDP
line listener fed by `ringflow load --rate R` and a `class: critical` UDP
listener fed by this script's probe client: rf_probe lines, each carrying
its CLOCK_MONOTONIC send time, sent from several source ports (so that
SO_REUSEPORT lands some on the worker that does not own the series: the
crossing case) and routed `class: critical` to a UDP line-protocol sink that
this script reads. With --alert the probes are the issue's critical path
instead: each probe socket sends a series of its own (rf_probe,sock=K v),
alternately above and below a threshold rule's limit, so every probe makes
the rule fire or resolve, and the alert datagram (routed `alert.>` class
critical to the sink) is matched to its probe by the value it carries.
Prints one JSON line per run:
  cpu_pct (daemon, % of one core over the window), cpu_s_per_M (CPU-seconds
  per million events offered; rate > 0), p50/p99/p999_us (send to receipt
  at this script), engine_p50/p99/p999_us (the engine's critical-path
  histogram, kernel receipt to the sink's send: `ringflow stat latency`),
  probes.

Usage: poll_bench.py --build-dir build --rate 50000 --duration 10
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import engine  # noqa: E402
import probes  # noqa: E402


def config(work, std_port, crit_port, sink_port, workers, alert=False):
    if alert:
        tail = """  sinks:
    - {name: probe_out, type: lp_udp, host: 127.0.0.1, port: %d}
    - {name: quiet, type: count_only}
  routes:
    - {name: alerts, subject: "alert.>", sinks: [probe_out], class: critical}
    - {name: probes, subject: "telemetry.rf_probe.>", sinks: [quiet]}
  alerts:
    - {name: probe_hot, type: threshold, match: {measurement: rf_probe, field: v}, op: ">", fire: 0}
""" % sink_port
        return config(work, std_port, crit_port, sink_port, workers).split("  sinks:\n")[0] + tail
    return f"""engine:
  workers: {workers}
  pin_workers: true
  data_dir: {work}/data
  run_dir: {work}/run
listeners:
  - {{name: std, transport: udp, protocol: influx_line, address: 127.0.0.1, port: {std_port}, rcvbuf: 16MiB}}
  - {{name: crit, transport: udp, protocol: influx_line, address: 127.0.0.1, port: {crit_port}, class: critical}}
stats:
  prometheus:
    enabled: false
pipeline:
  sinks:
    - {{name: probe_out, type: lp_udp, host: 127.0.0.1, port: {sink_port}}}
  routes:
    - {{name: probes, subject: "telemetry.rf_probe.>", sinks: [probe_out], class: critical}}
"""


def pct(sorted_v, q):
    if not sorted_v:
        return None
    return sorted_v[min(len(sorted_v) - 1, int(q * len(sorted_v)))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--rate", type=int, default=0, help="routine events/s (0: idle)")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--probe-rate", type=float, default=200.0)
    ap.add_argument("--probe-sockets", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sockets", type=int, default=16, help="load generator source ports")
    ap.add_argument("--idle", default="", help="engine.idle overrides, e.g. 'sleep: 5ms'")
    ap.add_argument("--alert", action="store_true",
                    help="time each probe to the threshold alert it raises (fire or resolve)")
    a = ap.parse_args()

    ringflowd = os.path.join(a.build_dir, "daemon/ringflowd")
    ringflow = os.path.join(a.build_dir, "tools/ringflow")
    work = tempfile.mkdtemp(prefix="poll_bench.")
    std_port, crit_port = engine.free_port(), engine.free_port()
    # --alert: the probe client of probes.AlertProbe (its own sink socket).
    probe = probes.AlertProbe(crit_port, a.probe_rate, a.probe_sockets) if a.alert else None
    if probe:
        sink_port = probe.port
    else:
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(0.2)
        sink_port = rx.getsockname()[1]
    cfg = config(work, std_port, crit_port, sink_port, a.workers, a.alert)
    if a.idle:
        cfg = cfg.replace("  pin_workers: true\n",
                          "  pin_workers: true\n  idle: {" + a.idle + "}\n")
    path = os.path.join(work, "ringflowd.yaml")
    with open(path, "w") as f:
        f.write(cfg)
    d = engine.Daemon(ringflowd, path, os.path.join(work, "ringflowd.log"))
    d.start()
    lat = []
    stop = threading.Event()

    def receive():
        while not stop.is_set():
            try:
                data = rx.recv(65536)
            except socket.timeout:
                continue
            now = time.monotonic_ns()
            for tok in data.split():
                if tok.startswith(b"sent_mono_ns="):
                    lat.append(now - int(tok[13:].rstrip(b"i")))

    def send():
        socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(a.probe_sockets)]
        period = 1.0 / a.probe_rate
        nxt = time.monotonic()
        seq = 0
        while not stop.is_set():
            nxt += period
            dt = nxt - time.monotonic()
            if dt > 0:
                time.sleep(dt)
            line = f"rf_probe,gen=poll seq={seq}i,sent_mono_ns={time.monotonic_ns()}i\n"
            socks[seq % len(socks)].sendto(line.encode(), ("127.0.0.1", crit_port))
            seq += 1

    try:
        time.sleep(1.0)  # start-up work done
        if probe:
            threads = []
            probe.start()
        else:
            threads = [threading.Thread(target=receive, daemon=True),
                       threading.Thread(target=send, daemon=True)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        lat.clear()
        if probe:
            probe.reset()
        cpu0, t0 = engine.proc_cpu_s(d.proc.pid), time.monotonic()
        events = 0
        if a.rate > 0:
            r = subprocess.run([ringflow, "load", "--target", f"127.0.0.1:{std_port}",
                                "--rate", str(a.rate), "--duration", str(a.duration),
                                "--sockets", str(a.sockets), "--json", "--quiet"],
                               capture_output=True, text=True, check=True)
            events = json.loads(r.stdout.strip().splitlines()[-1]).get("events", 0)
        else:
            time.sleep(a.duration)
        cpu1, t1 = engine.proc_cpu_s(d.proc.pid), time.monotonic()
        stop.set()
        if probe:
            probe.stop()
            lat = probe.latencies_ns
        st = subprocess.run([ringflow, "stat", "--socket", f"{work}/run/ringflow.sock", "latency"],
                            capture_output=True, text=True)
        with open(os.path.join(work, "latency.txt"), "w") as f:
            f.write(st.stdout + st.stderr)
        # The engine's own critical path (kernel receipt to the sink's send),
        # from the worker that recorded the most.
        engine_path = max(([int(c[2])] + [float(v) for v in c[3:7]]
                           for c in (ln.split() for ln in st.stdout.splitlines())
                           if c and c[0] == "ringflow_critical_path_seconds"), default=None)
        for t in threads:
            t.join(1.0)
    finally:
        d.stop()
    lat_us = sorted(v / 1000.0 for v in lat)
    out = {"rate": a.rate, "alert": a.alert, "load1": round(os.getloadavg()[0], 2), "wall_s": round(t1 - t0, 2), "cpu_pct": round(100 * (cpu1 - cpu0) / (t1 - t0), 2),
           "cpu_s_per_M": round((cpu1 - cpu0) / events * 1e6, 3) if events else None,
           "events": events, "probes": len(lat_us),
           "p50_us": pct(lat_us, 0.5), "p99_us": pct(lat_us, 0.99), "p999_us": pct(lat_us, 0.999)}
    for k in ("p50_us", "p99_us", "p999_us"):
        if out[k] is not None:
            out[k] = round(out[k], 1)
    if engine_path:
        out["engine_p50_us"], out["engine_p99_us"], out["engine_p999_us"] = (
            engine_path[1], engine_path[3], engine_path[4])
    out["work"] = work
    print(json.dumps(out))


if __name__ == "__main__":
    main()
