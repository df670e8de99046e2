#!/usr/bin/env python3
"""ringflow end-to-end harness: drives a real ringflowd with `ringflow load`
at a list of offered rates and reports, per rate, where every event sent went
(stored in the store, or dropped: generator send errors, kernel drops, parser
rejects, ring drops, unknown series, unrouted, store refusals), critical-path
latency percentiles, CPU per million events and peak RSS; then sends the same
N points to ringflow and to VictoriaMetrics over TCP, UDP and (VictoriaMetrics)
HTTP for a side-by-side ingest rate and bytes-per-point comparison. Writes
results.json, throughput.png, latency.png, peer.png and summary.md into the
results directory, prints the summary and (--update-doc) puts it into the
marked section of docs/PERFORMANCE.md.

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
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import engine  # noqa: E402
import http_peer  # noqa: E402
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


def parse_count(text):
    v = parse_rate(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"a count must be > 0: {text}")
    return v


PEER_TRANSPORTS = ("tcp", "http", "udp")


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
                   help="CI-sized: rates 50k,500k,max, 2 s each, 1 M points to each peer run")
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
    p.add_argument("--time-precision", choices=["auto", "ns", "us", "ms", "s"], default="auto",
                   help="the daemon's storage.time_precision (default auto, the daemon's default: "
                        "client times exact, receipt times to the ms, as VictoriaMetrics keeps them)")
    p.add_argument("--no-store", action="store_true",
                   help="do not route data to the store (the default configuration does); "
                        "loss is then counted up to the stages (processed)")
    p.add_argument("--settle-timeout", type=float, default=20.0,
                   help="seconds to wait after the load for the engine to account for every "
                        "event (stats socket) before it is stopped")
    p.add_argument("--no-peer", action="store_true", help="skip the VictoriaMetrics comparison")
    p.add_argument("--http-peer", action="store_true",
                   help="only the HTTP comparison (http_peer.py): --peer-count points as "
                        "/write bodies of 5,000 lines (plain, gzip) and remote_write requests "
                        "into ringflow and VictoriaMetrics; no rate sweep")
    p.add_argument("--http-peer-connections", type=int, default=2,
                   help="POSTs in flight in the HTTP comparison (default 2)")
    p.add_argument("--peer-count", type=parse_count, default=None,
                   help="points sent to each system on each path (k, M suffixes; default 5M, "
                        "--quick 1M)")
    p.add_argument("--peer-transports", default=",".join(PEER_TRANSPORTS),
                   help="paths of the comparison: tcp, http (VictoriaMetrics only: ringflow "
                        "has no HTTP ingest), udp")
    p.add_argument("--peer-sockets", type=int, default=4,
                   help="TCP connections of the comparison (default 4: VictoriaMetrics serves "
                        "at most 4 x CPUs inserts at once and queues the rest, which would stall "
                        "a generator that writes to its connections in turn)")
    p.add_argument("--peer-udp-rate", type=parse_rate, default=200_000,
                   help="events/s of the UDP comparison (default 200k; max = as fast as the "
                        "generator can: VictoriaMetrics' socket, with the kernel's default "
                        "receive buffer, then drops nearly everything); what each side drops is "
                        "counted")
    p.add_argument("--peer-http-batch", type=int, default=256 << 10,
                   help="bytes per POST /write body, cut at a line end (default 256 KiB, about "
                        "6,800 lines; Telegraf sends 1,000 lines, the InfluxDB clients 5,000)")
    p.add_argument("--peer-http-connections", type=int, default=4,
                   help="POSTs in flight at once (default 4)")
    p.add_argument("--out", default=os.path.join(REPO, "bench", "harness", "results"),
                   help="results directory")
    p.add_argument("--update-doc", nargs="?", const=os.path.join(REPO, "docs", "PERFORMANCE.md"),
                   default=None, metavar="FILE",
                   help="replace the section between <!-- harness:begin --> and "
                        "<!-- harness:end --> of FILE (default docs/PERFORMANCE.md) with this "
                        "run's summary; the plots and results.json are copied to "
                        "perf/harness-<UTC time>/ next to FILE and linked from there")
    p.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    a = p.parse_args(argv)
    if a.quick:
        if "--rates" not in argv:
            a.rates = "50k,500k,max"
        if "--duration" not in argv:
            a.duration = 2.0
    if a.peer_count is None:
        a.peer_count = 1_000_000 if a.quick else 5_000_000
    a.rate_list = [parse_rate(x) for x in a.rates.split(",") if x.strip()]
    a.peer_transport_list = [x.strip().lower() for x in a.peer_transports.split(",") if x.strip()]
    bad = [x for x in a.peer_transport_list if x not in PEER_TRANSPORTS]
    if bad:
        p.error(f"--peer-transports: unknown {', '.join(bad)} (tcp, http, udp)")
    if a.duration <= 0 or a.series < 1 or a.sockets < 1 or a.workers < 1:
        p.error("--duration, --series, --sockets and --workers must be positive")
    if a.update_doc:
        # Checked before the run, so a missing marker does not cost a run.
        try:
            report.check_doc_markers(a.update_doc)
        except (OSError, ValueError) as e:
            p.error(f"--update-doc: {e}")
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

    def start_daemon(self, name, sink_port, http_port=None):
        work = os.path.join(self.work_root, name)
        os.makedirs(work, exist_ok=True)
        port = engine.free_port(both=True)
        cfg = os.path.join(work, "ringflowd.yaml")
        note = None
        if self.pipeline_ok is not False:
            with open(cfg, "w") as f:
                f.write(engine.config_yaml(work, port, sink_port, self.args.workers,
                                           not self.args.no_pin, with_pipeline=True,
                                           with_store=not self.args.no_store,
                                           time_precision=self.args.time_precision,
                                           http_port=http_port))
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
                                           not self.args.no_pin, with_pipeline=False,
                                           http_port=http_port))
            ok, msg = engine.check_config(self.ringflowd, cfg)
            if not ok:
                raise RuntimeError(f"generated configuration refused: {msg}")
        d = engine.Daemon(self.ringflowd, cfg, os.path.join(work, "ringflowd.log"))
        d.start()
        return d, work, port, note

    def load_cmd(self, rate, duration, critical, transport="udp", sockets=None, count=None):
        """The generator's command line (--target is appended by the caller):
        bounded by `count` events when given, else by `duration` seconds."""
        a = self.args
        cmd = [self.ringflow, "load", "--rate", str(rate),
               "--series", str(a.series), "--tags", str(a.tags), "--seed", str(a.seed),
               "--sockets", str(sockets or a.sockets), "--transport", transport,
               "--json", "--quiet"]
        cmd += ["--count", str(count)] if count else ["--duration", str(duration)]
        if critical > 0:
            cmd += ["--critical", f"{critical:.6f}"]
        return cmd


def probe_fraction(args, rate):
    # For "max" assume ~1 M/s so the receiver is not swamped.
    r = rate if rate > 0 else 1_000_000
    return min(0.01, max(0.0001, args.probe_rate / r))


STORE_MEASUREMENTS = ("load", "rf_probe")  # what `ringflow load` sends


def loss_equation(load, summ, stored, with_store):
    """Every event sent, and where it went (docs/RELIABILITY.md, "The loss
    equation"), in events (the engine's unit: one per field; a probe line
    carries two fields, seq and sent_mono_ns, but counts once in the
    generator's `events`):

        sent = send errors + kernel drops + parser rejects      (before the workers)
             + ring drops + unknown series + unrouted + store refusals
             + lost in the store (appended, not on disk) + stored + unaccounted

    Send errors and kernel drops are counted in datagrams and parser rejects
    in lines; they are turned into events with the stream's own averages
    (events per datagram attempted, events per line), so `unaccounted` may
    differ from zero by that estimate. Without the store (--no-store) the end
    point is the stages (`processed`) and unrouted events are not loss."""
    w, ls, pl = summ["workers"], summ["listeners"], summ["pipeline"]
    tot = lambda k: sum(v.get(k, 0) for v in ls.values())  # noqa: E731
    sent = load["events"] + load["probes"]
    dgrams = load["sends"] + load["errors"]
    ev_per_dgram = sent / dgrams if dgrams else 0.0
    ev_per_line = sent / load["lines"] if load["lines"] else 0.0
    t = {
        "send_errors": {"count": load["errors"], "unit": "datagrams",
                        "events": load["errors"] * ev_per_dgram},
        "kernel_drops": {"count": tot("kernel_drops"), "unit": "datagrams",
                         "events": tot("kernel_drops") * ev_per_dgram},
        "parser_rejects": {"count": tot("lines_rejected"), "unit": "lines",
                           "events": tot("lines_rejected") * ev_per_line},
        "ring_drops": {"count": w.get("dropped_ring_full", 0), "unit": "events"},
        "unknown_series": {"count": pl.get("unknown_series", 0), "unit": "events"},
    }
    processed = pl.get("processed", 0)
    if with_store:
        to_store = pl.get("to_store", 0)
        t["unrouted"] = {"count": pl.get("unrouted", 0), "unit": "events"}
        t["store_refusals"] = {"count": pl.get("store_rejected", 0), "unit": "events"}
        lost = to_store - stored if stored is not None else 0
        t["lost_in_store"] = {"count": max(0, lost), "unit": "events"}
        end, end_name = (stored if stored is not None else to_store), "stored"
    else:
        end, end_name = processed, "processed"
    for v in t.values():
        v.setdefault("events", float(v["count"]))
    dropped = sum(v["events"] for v in t.values())
    # Lines per datagram vary by a line or two around ~190 (8 KiB datagrams
    # filled to within 1 KiB), lines per event not at all: 1 % of the
    # estimated terms bounds the estimate's error.
    estimated = sum(t[k]["events"] for k in ("send_errors", "kernel_drops", "parser_rejects"))
    return {
        "sent": sent,
        "end_point": end_name,
        "end": end,
        "loss": sent - end,
        "loss_pct": 100.0 * (sent - end) / sent if sent else 0.0,
        "terms": t,
        "dropped_counted": dropped,
        "unaccounted": sent - end - dropped,
        "unaccounted_tolerance": 0.01 * estimated,
        "events_per_datagram": ev_per_dgram,
        "events_per_line": ev_per_line,
    }


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
        sock = os.path.join(work, "run", "ringflow.sock")
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
        # Drain: wait until the engine has accounted for every event it will
        # (rings empty, counters still), then give the probes' way back a
        # moment before the daemon is stopped.
        progress, settled, _ = engine.wait_settled(sock, timeout=args.settle_timeout,
                                                   udp_port=port)
        unread = engine.udp_socket_queue(port)
        time.sleep(0.2)
        wall = time.monotonic() - t0
        cpu_s = engine.proc_cpu_s(pid) - cpu0
        hwm = engine.proc_status_kib(pid, "VmHWM") or hwm_load
        early_exit = d.proc.poll() is not None
        stats = engine.stats_json(sock, "stats")
        rc = d.stop()
        d = None
        time.sleep(0.2)
        rx.stop()
        summ = engine.parse_final_summary(
            open(os.path.join(work, "ringflowd.log"), errors="replace").read())
        if not summ["found"]:
            raise RuntimeError(f"no shutdown summary in the daemon log (exit {rc})")
        with_store = not args.no_store and setup.pipeline_ok is not False
        stored, store_err = None, None
        if with_store:
            counts, store_err = engine.store_point_count(
                setup.ringflow, os.path.join(work, "data", "store"), STORE_MEASUREMENTS)
            if store_err is None:
                stored = sum(counts.values())
            res["stored_by_measurement"] = counts
        eq = loss_equation(load, summ, stored, with_store)
        w, ls = summ["workers"], summ["listeners"]
        tot = lambda k: sum(v.get(k, 0) for v in ls.values())  # noqa: E731
        processed = summ["pipeline"].get("processed", 0)
        # Probes of the warm-up (first --warmup s) apart: a fresh daemon's
        # first events pay one-time costs (first touch of tables and rings,
        # series definitions) that are not the steady state.
        warm_until = t0_ns + int(args.warmup * 1e9)
        steady = [lat for sent, lat in zip(rx.sent_ns, rx.latencies_ns) if sent >= warm_until]
        warm = [lat for sent, lat in zip(rx.sent_ns, rx.latencies_ns) if sent < warm_until]
        lat = probes.summarize(steady)
        el = load["elapsed_s"]
        res.update({
            "ok": True,
            "daemon_exit": rc,
            "load": load,
            "settled": settled,
            "settle_progress": progress,
            "udp_unread_bytes_at_stop": unread,
            # In the engine's units (a probe line is two events), so sent and
            # stored compare directly.
            "sent_events": eq["sent"],
            "sent_events_per_s": eq["sent"] / el if el else 0,
            "generator_events_per_s": load["events_per_s"],
            "with_store": with_store,
            "stored_events": stored,
            "store_count_error": store_err,
            "end_point": eq["end_point"],
            "end_events": eq["end"],
            "end_events_per_s": eq["end"] / el if el else 0,
            "processed_events": processed,
            "loss_events": eq["loss"],
            "loss_pct": eq["loss_pct"],
            "loss_terms": eq["terms"],
            "unaccounted_events": eq["unaccounted"],
            "unaccounted_tolerance": eq["unaccounted_tolerance"],
            "events_per_datagram": eq["events_per_datagram"],
            "lines_sent": load["lines"],
            "lines_ok": tot("lines_ok"),
            "datagrams_received": tot("datagrams"),
            "to_store": summ["pipeline"].get("to_store"),
            "sink_drops": sum(v.get(k, 0) for v in summ["sinks"].values()
                              for k in ("queue_full", "disconnected", "unsupported", "oversize",
                                        "io_error")),
            "sink_lines_out": sum(v.get("lines_out", 0) for v in summ["sinks"].values()),
            "probes_sent": load["probes"],
            "probes_received": rx.seqs,
            "probe_fraction": frac,
            "latency": lat,
            "latency_warmup": probes.summarize(warm),
            "cpu_s": cpu_s,
            "wall_s": wall,
            "cpu_s_per_m_events": cpu_s / (processed / 1e6) if processed else None,
            "peak_rss_mib": hwm / 1024 if hwm else None,
            "workers": w,
            "listeners": ls,
            "pipeline": summ["pipeline"],
            "sinks": summ["sinks"],
            "stats_socket": stats,
        })
        if store_err:
            res["warning"] = f"could not count the stored points ({store_err}): to_store used"
        if not settled:
            msg = (f"the engine had not accounted for every event {args.settle_timeout:g} s "
                   f"after the load (stopped anyway"
                   + (f", {unread} bytes still unread on its UDP sockets, lost uncounted at "
                      "the stop" if unread else "") + ")")
            res["warning"] = (res.get("warning", "") + "; " if res.get("warning") else "") + msg
        if early_exit:
            # Not the harness's SIGTERM: something else stopped the daemon
            # (its log says what); the figures cover a shorter run.
            reason = [ln for ln in open(os.path.join(work, "ringflowd.log"), errors="replace")
                      if "draining and stopping" in ln or "level=error" in ln]
            res["warning"] = ("ringflowd stopped before the harness stopped it: "
                              + (reason[-1].strip()[:200] if reason else f"exit {rc}"))
        if res.get("warning"):
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


def stages_to_store(sock):
    """Points the storage shards have taken so far (`to_store`, summed over
    workers), or None while the stats socket does not answer."""
    st = engine.stats_json(sock, "stages")
    if not st:
        return None
    return sum(int(r.get("to_store", 0) or 0) for r in st.get("stages", []))


def run_ringflow_peer(setup, transport, count):
    """The comparison's stream into a fresh ringflowd over TCP or UDP: waits
    until the store has taken all `count` points (or, once the generator is
    done, nothing is left unread on the UDP sockets and nothing moves for
    2 s: UDP drops), stops it (everything is flushed at SIGTERM), counts the
    points on disk and measures the store's size."""
    args = setup.args
    rx = probes.ProbeReceiver().start()  # the generated configuration names a probe sink
    d = None
    try:
        d, work, port, _ = setup.start_daemon(f"peer-ringflow-{transport}", rx.port)
        time.sleep(0.3)
        pid = d.pid
        sock = os.path.join(work, "run", "ringflow.sock")
        cpu0 = engine.proc_cpu_s(pid)
        rate = args.peer_udp_rate if transport == "udp" else 0
        sockets = args.sockets if transport == "udp" else args.peer_sockets
        cmd = setup.load_cmd(rate, 0, 0, transport=transport, sockets=sockets, count=count)
        sampler = peer.Sampler(lambda: stages_to_store(sock), period=0.025).start()
        done = threading.Event()
        out = {}

        def send():
            try:
                r = subprocess.run(cmd + ["--target", f"127.0.0.1:{port}"], capture_output=True,
                                   text=True)
                out["load"] = load_json(r.stdout)
                if r.returncode != 0 or not out["load"]:
                    out["error"] = f"ringflow load failed ({r.returncode}): {r.stderr.strip()[:300]}"
            finally:
                done.set()

        t0 = time.monotonic()
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        idle = peer.udp_idle(port) if transport == "udp" else None
        _, complete = peer.wait_for(sampler.latest, count, done.is_set, idle)
        sender.join(600)
        sampler.stop()
        t_end = time.monotonic()
        cpu_s = engine.proc_cpu_s(pid) - cpu0
        hwm = engine.proc_status_kib(pid, "VmHWM")
        if out.get("error"):
            raise RuntimeError(out["error"])
        load = out["load"]
        progress = engine.engine_progress(sock)
        unread = engine.udp_socket_queue(port) if transport == "udp" else None
        rows = stages_to_store(sock) or 0
        ingest_s = peer.time_reached(sampler.samples + [(t_end, rows)], t0, rows) or (t_end - t0)
        early_exit = d.proc.poll() is not None
        d.stop()
        d = None
        summ = engine.parse_final_summary(
            open(os.path.join(work, "ringflowd.log"), errors="replace").read())
        counts, store_err = engine.store_point_count(
            setup.ringflow, os.path.join(work, "data", "store"), ("load",))
        stored = counts.get("load")
        disk = engine.du_bytes(os.path.join(work, "data"))
        eq = loss_equation(load, summ, stored, True) if summ["found"] else None
        rf = {
            "system": "ringflow", "transport": transport, "count": count, "sender": load,
            "send_s": load["elapsed_s"], "complete": complete,
            "rows": rows, "stored": stored, "rows_missing": count - (stored or 0),
            "store_rejected": summ["pipeline"].get("store_rejected"),
            "kernel_drops": sum(v.get("kernel_drops", 0) for v in summ["listeners"].values()),
            "loss_terms": eq["terms"] if eq else None,
            "unaccounted": eq["unaccounted"] if eq else None,
            "progress": progress,
            "udp_unread_bytes_at_stop": unread,
            "ingest_s": ingest_s,
            "ingest_rows_per_s": rows / ingest_s if ingest_s else None,
            "disk_bytes": disk,
            "bytes_per_point": disk / stored if disk and stored else None,
            "cpu_s": cpu_s, "cpu_s_per_m": cpu_s / (rows / 1e6) if rows else None,
            "peak_rss_mib": hwm / 1024 if hwm else None,
        }
        warn = []
        if store_err:
            warn.append(f"could not count the stored points: {store_err}")
        if stored is not None and stored != rows:
            warn.append(f"the store took {rows} points but {stored} are on disk")
        if unread:
            warn.append(f"{unread} bytes were still unread on its UDP sockets when it was "
                        "stopped (the workers had fallen behind; a stop discards them uncounted)")
        if early_exit:
            warn.append("ringflowd stopped before the harness stopped it")
        if load["errors"]:
            warn.append(f"the generator had {load['errors']} send errors")
        if warn:
            rf["warning"] = "; ".join(warn)
            print(f"harness: warning: peer run ringflow/{transport}: {rf['warning']}",
                  file=sys.stderr)
        return rf
    finally:
        if d:
            d.stop()
        rx.stop()


def run_peer(setup):
    """The same `count` points (one seed) into ringflow and VictoriaMetrics,
    one run at a time, a fresh instance each, on every path of
    --peer-transports. Ratios are ringflow / VictoriaMetrics of one run."""
    args = setup.args
    binary = peer.find_binary()
    if not binary:
        return {"skipped": "the `victoria-metrics` binary is not installed "
                           "(Debian package victoria-metrics; scripts/install-deps.sh installs it)"}
    count = args.peer_count
    res = {"count": count, "seed": args.seed, "series": args.series,
           "tcp_connections": args.peer_sockets, "udp_sockets": args.sockets,
           "udp_rate": args.peer_udp_rate, "http_batch_bytes": args.peer_http_batch,
           "http_connections": args.peer_http_connections,
           "transports": args.peer_transport_list, "version": peer.version(binary),
           "ringflow": {}, "victoria_metrics": {}, "errors": {}}
    stream_file = None
    if "http" in args.peer_transport_list:
        # The HTTP path sends the generator's exact stream, captured once.
        stream_file = os.path.join(setup.work_root, "peer-stream.lp")
        cap = peer.capture_stream(setup.load_cmd(0, 0, 0, transport="tcp", sockets=1,
                                                 count=count), stream_file)
        res["http_stream"] = {"bytes": cap["bytes"], "lines": cap["lines"]}
        if cap["lines"] != count:
            res["errors"]["capture"] = f"captured {cap['lines']} lines, expected {count}"
    for transport in args.peer_transport_list:
        if transport != "http":
            print(f"harness:   ringflow over {transport} ...", file=sys.stderr)
            try:
                res["ringflow"][transport] = run_ringflow_peer(setup, transport, count)
            except Exception as e:  # noqa: BLE001 - the other paths still run
                res["errors"][f"ringflow/{transport}"] = str(e)
                print(f"harness: peer run ringflow/{transport} failed: {e}", file=sys.stderr)
        print(f"harness:   VictoriaMetrics over {transport} ...", file=sys.stderr)
        vm_work = os.path.join(setup.work_root, f"peer-vm-{transport}")
        os.makedirs(vm_work, exist_ok=True)
        try:
            rate = args.peer_udp_rate if transport == "udp" else 0
            sockets = args.sockets if transport == "udp" else args.peer_sockets
            res["victoria_metrics"][transport] = peer.run_peer(
                binary, vm_work, transport, count,
                load_cmd=setup.load_cmd(rate, 0, 0, transport=transport, sockets=sockets,
                                        count=count) if transport != "http" else None,
                stream_file=stream_file, http_batch_bytes=args.peer_http_batch,
                http_connections=args.peer_http_connections)
        except Exception as e:  # noqa: BLE001
            res["errors"][f"victoria_metrics/{transport}"] = str(e)
            print(f"harness: peer run VictoriaMetrics/{transport} failed: {e}", file=sys.stderr)
    if stream_file and os.path.exists(stream_file):
        os.unlink(stream_file)  # can be hundreds of MB
    res["ratios"] = peer_ratios(res)
    return res


def _ratio(a, b):
    return a / b if a and b else None


def peer_ratios(res):
    """ringflow / VictoriaMetrics per path both have, and for each system's
    best lossless path: ringflow over TCP (it has no HTTP ingest) against the
    faster of VictoriaMetrics' TCP and HTTP."""
    rf, vm = res["ringflow"], res["victoria_metrics"]
    out = {}
    for t in ("tcp", "udp"):
        if t in rf and t in vm:
            # Paced UDP: both take it at the sender's rate, or lose some; the
            # rate ratio would only say who lost more (the table says that).
            paced = t == "udp" and res.get("udp_rate")
            out[t] = {"ingest_rate": None if paced else
                      _ratio(rf[t]["ingest_rows_per_s"], vm[t]["ingest_rows_per_s"]),
                      "bytes_per_point": _ratio(rf[t]["bytes_per_point"], vm[t]["bytes_per_point"]),
                      "cpu_per_point": _ratio(rf[t]["cpu_s_per_m"], vm[t]["cpu_s_per_m"])}
    vm_best = [t for t in ("tcp", "http") if t in vm and vm[t].get("complete")]
    if "tcp" in rf and rf["tcp"].get("complete") and vm_best:
        best = max(vm_best, key=lambda t: vm[t]["ingest_rows_per_s"] or 0)
        out["best"] = {"ringflow": "tcp", "victoria_metrics": best,
                       "ingest_rate": _ratio(rf["tcp"]["ingest_rows_per_s"],
                                             vm[best]["ingest_rows_per_s"]),
                       "bytes_per_point": _ratio(rf["tcp"]["bytes_per_point"],
                                                 vm[best]["bytes_per_point"]),
                       "cpu_per_point": _ratio(rf["tcp"]["cpu_s_per_m"], vm[best]["cpu_s_per_m"])}
    return out


def run_http_peer_only(setup, results):
    """--http-peer: the stream captured once, then http_peer.run; the table
    printed and written to summary.md, everything to results.json."""
    args = setup.args
    stream_file = os.path.join(setup.work_root, "peer-stream.lp")
    print(f"harness: HTTP comparison, {args.peer_count:,} points per path ...", file=sys.stderr)
    cap = peer.capture_stream(setup.load_cmd(0, 0, 0, transport="tcp", sockets=1,
                                             count=args.peer_count), stream_file)
    if cap["lines"] != args.peer_count:
        raise SystemExit(f"harness: captured {cap['lines']} lines, expected {args.peer_count}")
    results["http_peer"] = http_peer.run(setup, stream_file, args.http_peer_connections,
                                             stages_to_store)
    md = (f"# HTTP ingest: ringflow and VictoriaMetrics\n\n{results['started_utc']}, "
          f"`{results['command']}`\n\n" + http_peer.summary_markdown(results["http_peer"]))
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(md)
    print(md)
    bad = [p for p, row in results["http_peer"]["paths"].items()
           if not row.get("ringflow", {}).get("complete")]
    return 1 if bad else 0


def main(argv):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    work_root = tempfile.mkdtemp(prefix="ringflow-harness-")
    now = datetime.datetime.now(datetime.timezone.utc)
    started = now.strftime("%Y-%m-%d %H:%M UTC")
    results = {
        "started_utc": started,
        "run_id": now.strftime("%Y-%m-%d-%H%M"),
        "command": "scripts/harness.sh " + " ".join(shlex.quote(x) for x in argv),
        "machine": machine_info(),
        "out_dir": os.path.abspath(args.out),
        "options": {
            "rates": args.rate_list, "duration": args.duration, "warmup": args.warmup, "series": args.series,
            "tags": args.tags, "sockets": args.sockets, "workers": args.workers,
            "pin": not args.no_pin, "seed": args.seed, "probe_rate": args.probe_rate,
            "probe_note": (f"about {args.probe_rate:g}/s (fraction {args.probe_rate:g}/rate, "
                           f"0.01 %..1 % of lines)"),
            "store": not args.no_store,
            "time_precision": args.time_precision,
            "peer_count": args.peer_count, "peer_transports": args.peer_transport_list,
        },
        "runs": [],
    }
    try:
        setup = Setup(args, work_root)
        if args.http_peer:
            return run_http_peer_only(setup, results)
        for rate in args.rate_list:
            label = "max" if rate == 0 else f"{rate:,} events/s"
            print(f"harness: offered {label} for {args.duration:g} s ...", file=sys.stderr)
            res = run_rate(setup, rate)
            results["runs"].append(res)
            if res.get("ok"):
                lat = res.get("latency")
                print(f"harness:   sent {res['sent_events_per_s']:,.0f}/s, {res['end_point']} "
                      f"{res['end_events_per_s']:,.0f}/s, loss {res['loss_pct']:.3f} % "
                      f"(unaccounted {res['unaccounted_events']:,.0f}), "
                      + (f"p99 {lat['p99_ms']:.2f} ms" if lat
                         else f"latency {res.get('latency_note')}"), file=sys.stderr)
        if not args.no_peer:
            print(f"harness: peer comparison, {args.peer_count:,} points per run over "
                  f"{', '.join(args.peer_transport_list)} ...", file=sys.stderr)
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
        md = report.summary_markdown(results, plot_files, plot_note, args.out)
        with open(os.path.join(args.out, "summary.md"), "w") as f:
            f.write(md)
        print(md)
        print(f"harness: wrote {args.out}/results.json, summary.md"
              + "".join(f", {os.path.basename(p)}" for p in plot_files), file=sys.stderr)
        if args.update_doc:
            where = report.update_doc(args.update_doc, results, args.out, plot_files, plot_note)
            print(f"harness: updated {args.update_doc} (marked section); plots and results.json "
                  f"copied to {where}", file=sys.stderr)
    finally:
        if args.keep:
            print(f"harness: work directory kept: {work_root}", file=sys.stderr)
        else:
            shutil.rmtree(work_root, ignore_errors=True)
    ok = results["runs"] and all(r.get("ok") for r in results["runs"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
