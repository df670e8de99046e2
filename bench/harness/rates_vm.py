#!/usr/bin/env python3
"""CPU per event and the critical path at everyday rates, ringflow beside
VictoriaMetrics on the same paced stream (issue 25, item 3).

For each run, rate and transport (UDP, TCP), one fresh ringflowd and one
fresh VictoriaMetrics (Debian package victoria-metrics) take the same
`ringflow load --rate R --duration D --seed S` stream, one after the
other (the order alternates run by run, so the shared machine's load falls
on both alike). For each:
  cpu_s_per_M  the server process's CPU (utime + stime of every thread,
               from /proc/PID/stat) from the generator's start until the
               server has ingested what it will (everything, or the
               sender is done and nothing moved for a second), per million
               points ingested (ringflow: `to_store` of the stages;
               VictoriaMetrics: vm_rows_inserted_total{type="influx"});
  ingested     the fraction of the points sent that were ingested.
ringflow stores every point (a store route), as VictoriaMetrics does, and
also has a `class: critical` UDP listener fed by probes.AlertProbe
(--probe-rate lines/s, threshold alert routed class critical to a UDP
sink): p50/p99/p99.9 are send-to-alert-receipt times during the load, so
the critical path is measured under the same stream. The probes are
ringflow's only extra work (100 lines/s by default, 1 % of the 10 k/s
stream) and their CPU is counted in ringflow's.

Prints one JSON line per system and run, then a table of medians over the
runs with their spread (min..max), with the 1-minute load average. --json
FILE writes every row.

Usage: rates_vm.py --build-dir build [--rates 10k,50k,200k,1M]
       [--transports udp,tcp] [--duration 5] [--runs 1]
(scripts/harness.sh --paced-vm runs it on a release build.)
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine  # noqa: E402
import peer  # noqa: E402
import probes  # noqa: E402


def parse_rate(text):
    t = text.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000}.get(t[-1:], 1)
    return int(float(t[:-1] if mult > 1 else t) * mult)


def config(work, port, crit_port, sink_port, workers, idle):
    """Influx line protocol on UDP and TCP at `port`, every point to the
    store; a critical UDP listener at crit_port whose rf_probe lines feed a
    threshold rule; alerts to a critical UDP sink at sink_port."""
    idle_line = f"  idle: {{{idle}}}\n" if idle else ""
    return f"""engine:
  workers: {workers}
  pin_workers: true
  data_dir: {work}/data
  run_dir: {work}/run
{idle_line}listeners:
  - {{name: udp, transport: udp, protocol: influx_line, address: 127.0.0.1, port: {port}, rcvbuf: 16MiB}}
  - {{name: tcp, transport: tcp, protocol: influx_line, address: 127.0.0.1, port: {port}}}
  - {{name: crit, transport: udp, protocol: influx_line, address: 127.0.0.1, port: {crit_port}, class: critical}}
stats:
  prometheus:
    enabled: false
pipeline:
  sinks:
    - {{name: probe_out, type: lp_udp, host: 127.0.0.1, port: {sink_port}}}
    - {{name: store, type: store}}
  routes:
    - {{name: alerts, subject: "alert.>", sinks: [probe_out], class: critical}}
    - {{name: data, subject: "telemetry.load.>", sinks: [store]}}
  alerts:
    - {{name: probe_hot, type: threshold, match: {{measurement: rf_probe, field: v}}, op: ">", fire: 0}}
"""


def to_store(sock):
    st = engine.stats_json(sock, "stages")
    if not st:
        return 0
    return sum(int(r.get("to_store", 0) or 0) for r in st.get("stages", []))


def measure(pid, load_cmd, ingested, idle_check):
    """Runs the generator; returns (load summary, cpu seconds, points
    ingested, seconds) from its start until ingestion is complete or has
    stopped moving for a second after the sender is done."""
    out = {}
    done = threading.Event()

    def send():
        try:
            r = subprocess.run(load_cmd, capture_output=True, text=True)
            lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
            out["load"] = json.loads(lines[-1]) if lines else None
        finally:
            done.set()

    cpu0, t0 = engine.proc_cpu_s(pid), time.monotonic()
    th = threading.Thread(target=send, daemon=True)
    th.start()
    while not done.wait(0.2):
        pass
    load = out.get("load")
    if not load:
        raise RuntimeError("ringflow load printed no summary")
    target = load["events"]
    rows, _ = peer.wait_for(lambda: ingested() - base[0], target, lambda: True, idle_check,
                            quiet_s=1.0, timeout=60.0, period=0.05)
    return load, engine.proc_cpu_s(pid) - cpu0, rows, time.monotonic() - t0


base = [0]  # what the counter read before the generator started (probes, start-up)


def run_ringflow(a, rate, transport, sockets):
    work = tempfile.mkdtemp(prefix="rates_vm.rf.")
    port, crit_port = engine.free_port(both=True), engine.free_port()
    probe = probes.AlertProbe(crit_port, a.probe_rate, 4)
    path = os.path.join(work, "ringflowd.yaml")
    with open(path, "w") as f:
        f.write(config(work, port, crit_port, probe.port, a.workers, a.idle))
    d = engine.Daemon(os.path.join(a.build_dir, "daemon/ringflowd"), path,
                      os.path.join(work, "ringflowd.log"))
    d.start()
    sock = os.path.join(work, "run", "ringflow.sock")
    try:
        probe.start()
        time.sleep(1.0)
        probe.reset()
        base[0] = to_store(sock)
        cmd = load_cmd(a, rate, transport, sockets, port)
        load, cpu, rows, wall = measure(d.pid, cmd, lambda: to_store(sock),
                                        peer.udp_idle(port) if transport == "udp" else None)
        lat = sorted(probe.latencies_ns)
        probe.stop()
        row = result("ringflow", rate, transport, load, cpu, rows, wall)
        for q, k in ((50, "p50_us"), (99, "p99_us"), (99.9, "p999_us")):
            v = probes.percentile(lat, q)
            row[k] = round(v / 1e3, 1) if v is not None else None
        row["probes"] = len(lat)
        return row
    finally:
        d.stop()
        subprocess.run(["rm", "-rf", work])


def run_vm(a, binary, rate, transport, sockets):
    work = tempfile.mkdtemp(prefix="rates_vm.vm.")
    vm = peer.VictoriaMetrics(binary, work)
    vm.start()
    try:
        time.sleep(1.0)
        base[0] = vm.rows()
        cmd = load_cmd(a, rate, transport, sockets, vm.influx_port)
        load, cpu, rows, wall = measure(vm.proc.pid, cmd, vm.rows,
                                        peer.udp_idle(vm.influx_port)
                                        if transport == "udp" else None)
        return result("victoria-metrics", rate, transport, load, cpu, rows, wall)
    finally:
        vm.stop()
        subprocess.run(["rm", "-rf", work])


def load_cmd(a, rate, transport, sockets, port):
    return [os.path.join(a.build_dir, "tools/ringflow"), "load", "--target", f"127.0.0.1:{port}",
            "--transport", transport, "--rate", str(rate), "--duration", str(a.duration),
            "--series", str(a.series), "--seed", str(a.seed), "--sockets", str(sockets),
            "--json", "--quiet"]


def result(system, rate, transport, load, cpu, rows, wall):
    sent = load["events"]
    return {"system": system, "rate": rate, "transport": transport, "sent": sent,
            "ingested": round(rows / sent, 4) if sent else None, "cpu_s": round(cpu, 3),
            "wall_s": round(wall, 2), "cpu_pct": round(100 * cpu / wall, 1) if wall else None,
            "cpu_s_per_M": round(cpu / rows * 1e6, 3) if rows else None,
            "load1": round(os.getloadavg()[0], 2)}


def fmt(vals, digits=2):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "n/a"
    m = statistics.median(vals)
    if len(vals) == 1:
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ({min(vals):.{digits}f}..{max(vals):.{digits}f})"


def table(rows, runs):
    out = [f"medians over {runs} run(s) (min..max); cpu = CPU-seconds per million points ingested",
           "",
           "| rate | transport | ringflow cpu | VM cpu | ratio | ringflow ingested | VM ingested"
           " | critical p50 / p99 / p99.9 µs | load1 |",
           "|---|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["rate"], r["transport"]) for r in rows}, key=lambda k: (k[0], k[1] != "udp"))
    for rate, tr in keys:
        rf = [r for r in rows if (r["rate"], r["transport"], r["system"]) == (rate, tr, "ringflow")]
        vm = [r for r in rows
              if (r["rate"], r["transport"], r["system"]) == (rate, tr, "victoria-metrics")]
        ratios = [x["cpu_s_per_M"] / y["cpu_s_per_M"] for x, y in zip(rf, vm)
                  if x.get("cpu_s_per_M") and y.get("cpu_s_per_M")]
        lat = " / ".join(fmt([r.get(k) for r in rf], 0) for k in ("p50_us", "p99_us", "p999_us"))
        out.append(f"| {rate:,} | {tr} | {fmt([r['cpu_s_per_M'] for r in rf])} | "
                   f"{fmt([r['cpu_s_per_M'] for r in vm])} | {fmt(ratios)} | "
                   f"{fmt([r['ingested'] for r in rf], 3)} | {fmt([r['ingested'] for r in vm], 3)}"
                   f" | {lat} | {fmt([r['load1'] for r in rf + vm], 1)} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--rates", default="10k,50k,200k,1M")
    ap.add_argument("--transports", default="udp,tcp")
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--udp-sockets", type=int, default=16)
    ap.add_argument("--tcp-connections", type=int, default=4)
    ap.add_argument("--probe-rate", type=float, default=100.0)
    ap.add_argument("--idle", default="", help="engine.idle overrides for ringflow")
    ap.add_argument("--no-vm", action="store_true", help="ringflow only")
    ap.add_argument("--json", help="write every row to this file")
    a = ap.parse_args()
    binary = None if a.no_vm else peer.find_binary()
    if not a.no_vm and not binary:
        raise SystemExit("rates_vm: victoria-metrics is not installed (scripts/install-deps.sh)")
    rates = [parse_rate(r) for r in a.rates.split(",")]
    transports = a.transports.split(",")
    rows = []
    for run in range(a.runs):
        for rate in rates:
            for tr in transports:
                socks = a.udp_sockets if tr == "udp" else a.tcp_connections
                jobs = [lambda: run_ringflow(a, rate, tr, socks)]
                if binary:
                    jobs.append(lambda: run_vm(a, binary, rate, tr, socks))
                if run % 2:
                    jobs.reverse()
                for job in jobs:
                    try:
                        r = job()
                    except Exception as e:  # noqa: BLE001 - the other runs still go on
                        print(f"rates_vm: rate {rate} {tr}: {e}", file=sys.stderr)
                        continue
                    r["run"] = run
                    rows.append(r)
                    print(json.dumps(r), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    print(table(rows, a.runs))


if __name__ == "__main__":
    main()
