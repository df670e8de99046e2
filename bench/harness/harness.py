#!/usr/bin/env python3
"""ringflow end-to-end harness: drives a real ringflowd with `ringflow load`
at a list of offered rates and reports, per rate, delivered events/s, loss by
place, critical-path latency percentiles, CPU per million events and peak
RSS; then feeds the same stream to VictoriaMetrics for a side-by-side ingest
rate and bytes-per-point comparison. Writes results.json, throughput.png,
latency.png and summary.md into the results directory and prints the summary.

Entry point: scripts/harness.sh (builds first). Run directly with
    python3 bench/harness/harness.py --build-dir BUILD [options]
"""
import argparse
import datetime
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import engine  # noqa: E402
import peer  # noqa: E402
import probes  # noqa: E402
import report  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def parse_rate(text):
    t = text.strip().lower()
    if t == "max":
        return 0
    mult = 1
    if t.endswith("k"):
        mult, t = 1_000, t[:-1]
    elif t.endswith("m"):
        mult, t = 1_000_000, t[:-1]
    v = float(t) * mult
    if v <= 0:
        raise argparse.ArgumentTypeError(f"rate must be > 0 or max: {text}")
    return int(v)


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="scripts/harness.sh",
        description="End-to-end benchmark of ringflowd (and VictoriaMetrics for comparison).")
    p.add_argument("--build-dir", default=os.path.join(REPO, "build"),
                   help="meson build directory with daemon/ringflowd and tools/ringflow")
    p.add_argument("--rates", default="50k,500k,1M,2M,max",
                   help="offered event rates, comma-separated (k, M suffixes; max = as fast "
                        "as the generator can)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of load per rate")
    p.add_argument("--quick", action="store_true",
                   help="CI-sized: rates 50k,500k,max, 2 s each, 2 s peer comparison")
    p.add_argument("--series", type=int, default=1000)
    p.add_argument("--tags", type=int, default=3)
    p.add_argument("--sockets", type=int, default=16,
                   help="generator sockets (source ports) so SO_REUSEPORT spreads the flows")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--no-pin", action="store_true", help="do not pin the engine's workers")
    p.add_argument("--probe-rate", type=float, default=2000.0,
                   help="probe lines per second the generator aims at (fraction = this / rate, "
                        "clamped to 0.0001..0.01)")
    p.add_argument("--warmup", type=float, default=1.0,
                   help="seconds at the start of each load whose probes are reported apart "
                        "(warm-up), not in the latency percentiles")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-store", action="store_true",
                   help="do not route data to the store (the default configuration does)")
    p.add_argument("--no-peer", action="store_true", help="skip the VictoriaMetrics comparison")
    p.add_argument("--peer-sockets", type=int, default=4,
                   help="TCP connections of the comparison (default 4: VictoriaMetrics serves "
                        "at most 4 x CPUs inserts at once and queues the rest, which would stall "
                        "a generator that writes to its connections in turn)")
    p.add_argument("--peer-duration", type=float, default=None,
                   help="seconds of load for the comparison (default: --duration)")
    p.add_argument("--out", default=os.path.join(REPO, "bench", "harness", "results"),
                   help="results directory")
    p.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    a = p.parse_args(argv)
    if a.quick:
        if "--rates" not in argv:
            a.rates = "50k,500k,max"
        if "--duration" not in argv:
            a.duration = 2.0
    a.rate_list = [parse_rate(x) for x in a.rates.split(",") if x.strip()]
    if a.peer_duration is None:
        a.peer_duration = a.duration
    if a.duration <= 0 or a.series < 1 or a.sockets < 1 or a.workers < 1:
        p.error("--duration, --series, --sockets and --workers must be positive")
    return a


def machine_info():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        commit = ""
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "kernel": os.uname().release,
        "commit": commit or "unknown",
        "loadavg_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def load_json(stdout):
    for line in reversed(stdout.strip().splitlines()):
        if line.strip().startswith("{"):
            return json.loads(line)
    return None


class Setup:
    """Binaries and one run's generated configuration."""

    def __init__(self, args, work_root):
        self.args = args
        self.ringflowd = os.path.join(args.build_dir, "daemon", "ringflowd")
        self.ringflow = os.path.join(args.build_dir, "tools", "ringflow")
        for b in (self.ringflowd, self.ringflow):
            if not os.access(b, os.X_OK):
                raise SystemExit(f"harness: {b} not found: build first (scripts/harness.sh does)")
        self.work_root = work_root
        self.pipeline_ok = None  # decided on the first run

    def start_daemon(self, name, sink_port):
        work = os.path.join(self.work_root, name)
        os.makedirs(work, exist_ok=True)
        port = engine.free_port(both=True)
        cfg = os.path.join(work, "ringflowd.yaml")
        note = None
        if self.pipeline_ok is not False:
            with open(cfg, "w") as f:
                f.write(engine.config_yaml(work, port, sink_port, self.args.workers,
                                           not self.args.no_pin, with_pipeline=True,
                                           with_store=not self.args.no_store))
            ok, msg = engine.check_config(self.ringflowd, cfg)
            if not ok:
                print(f"harness: the daemon refuses the pipeline section ({msg}); running without "
                      f"it: latency is n/a", file=sys.stderr)
                self.pipeline_ok = False
            else:
                self.pipeline_ok = True
        if self.pipeline_ok is False:
            note = "n/a (pipeline not wired)"
            with open(cfg, "w") as f:
                f.write(engine.config_yaml(work, port, sink_port, self.args.workers,
                                           not self.args.no_pin, with_pipeline=False))
            ok, msg = engine.check_config(self.ringflowd, cfg)
            if not ok:
                raise RuntimeError(f"generated configuration refused: {msg}")
        d = engine.Daemon(self.ringflowd, cfg, os.path.join(work, "ringflowd.log"))
        d.start()
        return d, work, port, note

    def load_cmd(self, rate, duration, critical, transport="udp", sockets=None):
        a = self.args
        cmd = [self.ringflow, "load", "--rate", str(rate), "--duration", str(duration),
               "--series", str(a.series), "--tags", str(a.tags), "--seed", str(a.seed),
               "--sockets", str(sockets or a.sockets), "--transport", transport,
               "--json", "--quiet"]
        if critical > 0:
            cmd += ["--critical", f"{critical:.6f}"]
        return cmd


def probe_fraction(args, rate):
    # For "max" assume ~1 M/s so the receiver is not swamped.
    r = rate if rate > 0 else 1_000_000
    return min(0.01, max(0.0001, args.probe_rate / r))


def run_rate(setup, rate):
    args = setup.args
    label = "max" if rate == 0 else str(rate)
    rx = probes.ProbeReceiver().start()
    res = {"offered": rate, "ok": False}
    d = None
    try:
        d, work, port, note = setup.start_daemon(f"rate-{label}", rx.port)
        time.sleep(0.3)  # listeners armed on every worker
        pid = d.pid
        cpu0 = engine.proc_cpu_s(pid)
        frac = probe_fraction(args, rate)
        cmd = setup.load_cmd(rate, args.duration, frac) + ["--target", f"127.0.0.1:{port}"]
        t0 = time.monotonic()
        t0_ns = time.monotonic_ns()
        r = subprocess.run(cmd, capture_output=True, text=True)
        load = load_json(r.stdout)
        if r.returncode != 0 or not load:
            raise RuntimeError(f"ringflow load failed ({r.returncode}): {r.stderr.strip()[:300]}")
        hwm_load = engine.proc_status_kib(pid, "VmHWM")
        time.sleep(1.0)  # drain: rings, sinks, the probes' way back
        wall = time.monotonic() - t0
        cpu_s = engine.proc_cpu_s(pid) - cpu0
        hwm = engine.proc_status_kib(pid, "VmHWM") or hwm_load
        early_exit = d.proc.poll() is not None
        stats = engine.stats_socket_json(os.path.join(work, "run", "ringflow.sock"))
        try:
            stats = json.loads(stats) if stats else None
        except ValueError:
            pass  # kept as text: the reply is not JSON (yet)
        rc = d.stop()
        d = None
        time.sleep(0.2)
        rx.stop()
        summ = engine.parse_final_summary(
            open(os.path.join(work, "ringflowd.log"), errors="replace").read())
        if not summ["found"]:
            raise RuntimeError(f"no shutdown summary in the daemon log (exit {rc})")
        w, ls = summ["workers"], summ["listeners"]
        tot = lambda k: sum(v.get(k, 0) for v in ls.values())  # noqa: E731
        series_defs = tot("series_defs")
        delivered = w.get("processed", 0) - series_defs
        # A probe line carries two fields (seq, sent_mono_ns): two events to
        # the engine, one to the generator's count.
        expected = load["events"] + load["probes"]
        # Probes of the warm-up (first --warmup s) apart: a fresh daemon's
        # first events pay one-time costs (first touch of tables and rings,
        # series definitions) that are not the steady state.
        warm_until = t0_ns + int(args.warmup * 1e9)
        steady = [lat for sent, lat in zip(rx.sent_ns, rx.latencies_ns) if sent >= warm_until]
        warm = [lat for sent, lat in zip(rx.sent_ns, rx.latencies_ns) if sent < warm_until]
        lat = probes.summarize(steady)
        res.update({
            "ok": True,
            "daemon_exit": rc,
            "load": load,
            # In the engine's units (a probe line is two events), so sent and
            # delivered compare directly.
            "sent_events_per_s": expected / load["elapsed_s"] if load["elapsed_s"] else 0,
            "generator_events_per_s": load["events_per_s"],
            "delivered_events": delivered,
            "delivered_events_per_s": delivered / load["elapsed_s"] if load["elapsed_s"] else 0,
            "expected_events": expected,
            "loss_pct": max(0.0, 100.0 * (1 - delivered / expected)) if expected else 0.0,
            "lines_sent": load["lines"],
            "lines_ok": tot("lines_ok"),
            "lines_lost_before_parse": load["lines"] - tot("lines_ok") - tot("lines_rejected"),
            "kernel_drops": tot("kernel_drops"),
            "datagrams_received": tot("datagrams"),
            "ring_drops": w.get("dropped_ring_full", 0),
            "to_store": summ["pipeline"].get("to_store"),
            "store_rejected": summ["pipeline"].get("store_rejected", 0),
            "unrouted": summ["pipeline"].get("unrouted"),
            "sink_drops": sum(v.get(k, 0) for v in summ["sinks"].values()
                              for k in ("queue_full", "disconnected", "oversize", "io_error")),
            "unknown_series_drops": w.get("dropped_unknown_series", 0),
            "parser_rejects": tot("lines_rejected"),
            "send_errors": load["errors"],
            "probes_sent": load["probes"],
            "probes_received": rx.seqs,
            "probe_fraction": frac,
            "latency": lat,
            "latency_warmup": probes.summarize(warm),
            "cpu_s": cpu_s,
            "wall_s": wall,
            "cpu_s_per_m_events": cpu_s / (delivered / 1e6) if delivered else None,
            "peak_rss_mib": hwm / 1024 if hwm else None,
            "workers": w,
            "listeners": ls,
            "pipeline": summ["pipeline"],
            "sinks": summ["sinks"],
            "stats_socket": stats,
        })
        if early_exit:
            # Not the harness's SIGTERM: something else stopped the daemon
            # (its log says what); the figures cover a shorter run.
            reason = [ln for ln in open(os.path.join(work, "ringflowd.log"), errors="replace")
                      if "draining and stopping" in ln or "level=error" in ln]
            res["warning"] = ("ringflowd stopped before the harness stopped it: "
                              + (reason[-1].strip()[:200] if reason else f"exit {rc}"))
            print(f"harness: warning: {res['warning']}", file=sys.stderr)
        if not lat:
            res["latency_note"] = note or ("n/a (no probe came back)" if load["probes"]
                                           else "n/a (no probes sent)")
    except Exception as e:  # noqa: BLE001 - one failed rate must not end the sweep
        res["error"] = str(e)
        print(f"harness: rate {label}: {e}", file=sys.stderr)
    finally:
        if d:
            d.stop()
        rx.stop()
    return res


def run_peer(setup):
    args = setup.args
    binary = peer.find_binary()
    if not binary:
        return {"skipped": "the `victoria-metrics` binary is not installed "
                           "(Debian package victoria-metrics; scripts/install-deps.sh installs it)"}
    dur = args.peer_duration
    # ringflow: the same stream over TCP (lossless: back-pressure instead of drops).
    rx = probes.ProbeReceiver().start()
    d = None
    try:
        d, work, port, _ = setup.start_daemon("peer-ringflow", rx.port)
        time.sleep(0.3)
        pid = d.pid
        cpu0 = engine.proc_cpu_s(pid)
        cmd = setup.load_cmd(0, dur, 0, transport="tcp", sockets=args.peer_sockets)
        r = subprocess.run(cmd + ["--target", f"127.0.0.1:{port}"], capture_output=True, text=True)
        load = load_json(r.stdout)
        if r.returncode != 0 or not load:
            raise RuntimeError(f"ringflow load failed: {r.stderr.strip()[:300]}")
        hwm_load = engine.proc_status_kib(pid, "VmHWM")
        time.sleep(1.0)
        cpu_s = engine.proc_cpu_s(pid) - cpu0
        hwm = engine.proc_status_kib(pid, "VmHWM") or hwm_load
        early_exit = d.proc.poll() is not None
        d.stop()
        d = None
        summ = engine.parse_final_summary(
            open(os.path.join(work, "ringflowd.log"), errors="replace").read())
        defs = sum(v.get("series_defs", 0) for v in summ["listeners"].values())
        rows = summ["workers"].get("processed", 0) - defs
        stored = summ["pipeline"].get("to_store")
        segs = engine.segment_files(os.path.join(work, "data"))
        disk = engine.du_bytes(os.path.join(work, "data")) if segs else None
        rf = {
            "system": "ringflow", "load": load, "rows": rows, "stored": stored,
            "store_rejected": summ["pipeline"].get("store_rejected"),
            "ingest_s": load["elapsed_s"],
            "ingest_rows_per_s": rows / load["elapsed_s"] if load["elapsed_s"] else None,
            "disk_bytes": disk,
            "bytes_per_point": disk / (stored or rows) if disk and (stored or rows) else None,
            "cpu_s": cpu_s, "cpu_s_per_m": cpu_s / (rows / 1e6) if rows else None,
            "peak_rss_mib": hwm / 1024 if hwm else None,
        }
        if disk is None:
            rf["disk_note"] = "n/a (no segments written: storage not wired)"
        if early_exit or load["errors"]:
            rf["warning"] = ("ringflowd stopped before the harness stopped it" if early_exit
                             else f"the generator had {load['errors']} send errors")
            print(f"harness: warning: peer run: {rf['warning']}", file=sys.stderr)
    finally:
        if d:
            d.stop()
        rx.stop()
    vm_work = os.path.join(setup.work_root, "peer-vm")
    os.makedirs(vm_work, exist_ok=True)
    vm = peer.run_peer(binary, vm_work, setup.load_cmd(0, dur, 0, transport="tcp", sockets=args.peer_sockets))
    ratios = {}
    if rf["ingest_rows_per_s"] and vm["ingest_rows_per_s"]:
        ratios["ingest_rate"] = rf["ingest_rows_per_s"] / vm["ingest_rows_per_s"]
    if rf["bytes_per_point"] and vm["bytes_per_point"]:
        ratios["bytes_per_point"] = rf["bytes_per_point"] / vm["bytes_per_point"]
    if rf["cpu_s_per_m"] and vm["cpu_s_per_m"]:
        ratios["cpu_per_point"] = rf["cpu_s_per_m"] / vm["cpu_s_per_m"]
    return {"duration": dur, "sockets": args.peer_sockets, "ringflow": rf, "victoria_metrics": vm, "ratios": ratios}


def main(argv):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    work_root = tempfile.mkdtemp(prefix="ringflow-harness-")
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    results = {
        "started_utc": started,
        "command": "scripts/harness.sh " + " ".join(shlex.quote(x) for x in argv),
        "machine": machine_info(),
        "out_dir": os.path.abspath(args.out),
        "options": {
            "rates": args.rate_list, "duration": args.duration, "warmup": args.warmup, "series": args.series,
            "tags": args.tags, "sockets": args.sockets, "workers": args.workers,
            "pin": not args.no_pin, "seed": args.seed, "probe_rate": args.probe_rate,
            "probe_note": (f"about {args.probe_rate:g}/s (fraction {args.probe_rate:g}/rate, "
                           f"0.01 %..1 % of lines)"),
        },
        "runs": [],
    }
    try:
        setup = Setup(args, work_root)
        for rate in args.rate_list:
            label = "max" if rate == 0 else f"{rate:,} events/s"
            print(f"harness: offered {label} for {args.duration:g} s ...", file=sys.stderr)
            res = run_rate(setup, rate)
            results["runs"].append(res)
            if res.get("ok"):
                lat = res.get("latency")
                print(f"harness:   sent {res['sent_events_per_s']:,.0f}/s, delivered "
                      f"{res['delivered_events_per_s']:,.0f}/s, loss {res['loss_pct']:.3f} %, "
                      f"p99 {lat['p99_ms']:.2f} ms" if lat else
                      f"harness:   sent {res['sent_events_per_s']:,.0f}/s, delivered "
                      f"{res['delivered_events_per_s']:,.0f}/s, loss {res['loss_pct']:.3f} %, "
                      f"latency {res.get('latency_note')}", file=sys.stderr)
        if not args.no_peer:
            print(f"harness: peer comparison, {args.peer_duration:g} s each ...", file=sys.stderr)
            try:
                results["peer"] = run_peer(setup)
            except Exception as e:  # noqa: BLE001
                results["peer"] = {"skipped": f"failed: {e}"}
                print(f"harness: peer comparison failed: {e}", file=sys.stderr)
        plot_files, plot_note = report.plots(results, args.out, work_root)
        results["plots"] = [os.path.basename(p) for p in plot_files]
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump(results, f, indent=2)
            f.write("\n")
        md = report.summary_markdown(results, plot_files, plot_note)
        with open(os.path.join(args.out, "summary.md"), "w") as f:
            f.write(md)
        print(md)
        print(f"harness: wrote {args.out}/results.json, summary.md"
              + "".join(f", {os.path.basename(p)}" for p in plot_files), file=sys.stderr)
    finally:
        if args.keep:
            print(f"harness: work directory kept: {work_root}", file=sys.stderr)
        else:
            shutil.rmtree(work_root, ignore_errors=True)
    ok = results["runs"] and all(r.get("ok") for r in results["runs"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
