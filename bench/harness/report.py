"""Harness output: PNG plots through gnuplot, the Markdown summary, and the
marked section of docs/PERFORMANCE.md (--update-doc).

The summary says where every event went (the loss equation of
docs/RELIABILITY.md), then rates, latency and cost, then the comparison with
VictoriaMetrics; it is written into docs/PERFORMANCE.md between
DOC_BEGIN and DOC_END exactly as produced, so the doc's figures are the run's.
"""
import os
import shutil
import subprocess

DOC_BEGIN = "<!-- harness:begin -->"
DOC_END = "<!-- harness:end -->"

TRANSPORT_NAMES = {"tcp": "TCP", "http": "HTTP", "udp": "UDP"}


def _fmt_rate(v):
    if v is None:
        return "n/a"
    if v >= 1e6:
        return f"{v / 1e6:.2f} M/s"
    if v >= 1e3:
        return f"{v / 1e3:.0f} k/s"
    return f"{v:.0f}/s"


def _fmt(v, spec="{:.2f}", none="n/a"):
    return none if v is None else spec.format(v)


def _n(v):
    """A count with thousands separators; estimates (floats) rounded."""
    if v is None:
        return "n/a"
    return f"{int(round(v)):,}"


def _unaccounted_cell(r):
    u, tol = r["unaccounted_events"], r.get("unaccounted_tolerance") or 0
    if tol and abs(u) <= tol:
        return f"{_n(u)} (within ±{_n(tol)}: estimate)"
    return _n(u) if abs(u) < 0.5 else f"**{_n(u)}**"


def _offered_label(run):
    return "max" if run["offered"] == 0 else _fmt_rate(run["offered"]).replace("/s", "")


def _term_cell(term):
    """A loss term: events, and the counted unit when it is not events."""
    if term is None:
        return "n/a"
    if term["unit"] == "events" or term["count"] == 0:
        return _n(term["count"])
    unit = "dgrams" if term["unit"] == "datagrams" else term["unit"]
    return f"{_n(term['count'])} {unit} ≈ {_n(term['events'])}"


def _gnuplot_term():
    gp = shutil.which("gnuplot")
    if not gp:
        return None, None
    term = "pngcairo size 900,560 font 'sans,10'"
    if subprocess.run([gp, "-e", "set terminal pngcairo"], capture_output=True).returncode != 0:
        term = "png size 900,560"
    return gp, term


def plots(results, out_dir, tmp_dir):
    """throughput.png, latency.png and (with a peer run) peer.png; returns
    (files written, note on what was not plotted and why)."""
    gp, term = _gnuplot_term()
    if not gp:
        return [], "gnuplot not found (install gnuplot-nox)"
    written, notes = [], []
    runs = [r for r in results["runs"] if r.get("ok")]
    if runs:
        f, n = _plot_runs(gp, term, runs, out_dir, tmp_dir)
        written += f
        if n:
            notes.append(n)
    else:
        notes.append("no successful rate to plot")
    peer = results.get("peer")
    if peer and not peer.get("skipped") and (peer.get("ringflow") or peer.get("victoria_metrics")):
        f, n = _plot_peer(gp, term, peer, out_dir, tmp_dir)
        written += f
        if n:
            notes.append(n)
    return written, "; ".join(notes) or None


def _plot_runs(gp, term, runs, out_dir, tmp_dir):
    # x: the rate the generator really sent (for "max" that is its ceiling).
    dat = os.path.join(tmp_dir, "runs.dat")
    with open(dat, "w") as f:
        f.write("# label sent_ev_s end_ev_s p50_ms p99_ms p999_ms max_ms\n")
        for r in sorted(runs, key=lambda r: r["sent_events_per_s"]):
            lat = r.get("latency") or {}
            vals = [lat.get(k) for k in ("p50_ms", "p99_ms", "p999_ms", "max_ms")]
            vals = ["NaN" if v is None else f"{max(v, 1e-3):.6f}" for v in vals]
            f.write(f"\"{_offered_label(r)}\" {r['sent_events_per_s']:.0f} "
                    f"{max(r['end_events_per_s'], 1):.0f} {' '.join(vals)}\n")
    end = runs[0].get("end_point", "stored")
    tp = os.path.join(out_dir, "throughput.png")
    script = f"""
set terminal {term}
set termoption noenhanced
set output '{tp}'
set title 'ringflow: events {end} vs events sent (UDP, one fresh daemon per rate)'
set xlabel 'events/s sent by the generator'
set ylabel 'events/s {end}'
set logscale xy
set grid
set key left top
set format x '%.0s%c'
set format y '%.0s%c'
plot '{dat}' using 2:3 with linespoints lw 2 pt 7 title '{end}', \\
     '{dat}' using 2:2 with lines dt 2 title 'ideal (no loss)', \\
     '{dat}' using 2:3:1 with labels offset 0,1 notitle
"""
    lat_png = os.path.join(out_dir, "latency.png")
    has_latency = any(r.get("latency") for r in runs)
    if has_latency:
        script += f"""
set output '{lat_png}'
set title 'ringflow: critical-path latency (rf_probe, generator -> engine -> sink) vs load'
set ylabel 'latency, ms'
set format y '%g'
plot '{dat}' using 2:4 with linespoints lw 2 pt 7 title 'p50', \\
     '{dat}' using 2:5 with linespoints lw 2 pt 5 title 'p99', \\
     '{dat}' using 2:6 with linespoints lw 2 pt 9 title 'p99.9', \\
     '{dat}' using 2:7 with linespoints lw 1 pt 3 title 'max'
"""
    sp = os.path.join(tmp_dir, "plots.gp")
    with open(sp, "w") as f:
        f.write(script)
    r = subprocess.run([gp, sp], capture_output=True, text=True)
    if r.returncode != 0:
        return [], f"gnuplot failed: {r.stderr.strip()[:300]}"
    return [tp] + ([lat_png] if has_latency else []), None


def _plot_peer(gp, term, peer, out_dir, tmp_dir):
    """Two clustered bar charts side by side: ingest rate and bytes/point,
    ringflow beside VictoriaMetrics on each path."""
    rf, vm = peer.get("ringflow", {}), peer.get("victoria_metrics", {})
    dat = os.path.join(tmp_dir, "peer.dat")
    rows = 0
    with open(dat, "w") as f:
        f.write("# path rf_rate vm_rate rf_bpp vm_bpp\n")
        for t in peer.get("transports", []):
            a, b = rf.get(t) or {}, vm.get(t) or {}
            if not a and not b:
                continue
            cell = lambda x, k: "-" if x.get(k) is None else f"{x[k]:.6g}"  # noqa: E731
            f.write(f"\"{TRANSPORT_NAMES.get(t, t)}\" {cell(a, 'ingest_rows_per_s')} "
                    f"{cell(b, 'ingest_rows_per_s')} {cell(a, 'bytes_per_point')} "
                    f"{cell(b, 'bytes_per_point')}\n")
            rows += 1
    if not rows:
        return [], "no peer figures to plot"
    png = os.path.join(out_dir, "peer.png")
    wide = term.replace("900,560", "1100,500")
    udp_note = ("UDP at max rate" if not peer.get("udp_rate")
                else f"UDP paced at {_fmt_rate(peer['udp_rate'])}")
    script = f"""
set terminal {wide}
set termoption noenhanced
set output '{png}'
set datafile missing '-'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key below horizontal
set yrange [0:*]
set offsets graph 0, graph 0, graph 0.12, 0
rate(v) = v >= 1e6 ? sprintf('%.2fM', v / 1e6) : sprintf('%.0fk', v / 1e3)
set multiplot layout 1,2 title 'ringflow and VictoriaMetrics: the same {peer["count"]:,} points, one run (ringflow has no HTTP ingest; {udp_note})'
set title 'ingest rate, points/s (higher is better)'
set format y '%.0s%c'
plot '{dat}' using 2:xtic(1) title 'ringflow' lc rgb '#1f77b4', \\
     '' using 3 title 'VictoriaMetrics' lc rgb '#ff7f0e', \\
     '' using ($0-0.17):2:(rate($2)) with labels offset 0,0.7 notitle, \\
     '' using ($0+0.17):3:(rate($3)) with labels offset 0,0.7 notitle
set title 'bytes per point on disk (lower is better)'
set format y '%g'
plot '{dat}' using 4:xtic(1) title 'ringflow' lc rgb '#1f77b4', \\
     '' using 5 title 'VictoriaMetrics' lc rgb '#ff7f0e', \\
     '' using ($0-0.17):4:(sprintf('%.2f', $4)) with labels offset 0,0.7 notitle, \\
     '' using ($0+0.17):5:(sprintf('%.2f', $5)) with labels offset 0,0.7 notitle
unset multiplot
"""
    sp = os.path.join(tmp_dir, "peer.gp")
    with open(sp, "w") as f:
        f.write(script)
    r = subprocess.run([gp, sp], capture_output=True, text=True)
    if r.returncode != 0:
        return [], f"gnuplot failed on peer.png: {r.stderr.strip()[:300]}"
    return [png], None


# ---- the Markdown summary -------------------------------------------------

LOSS_COLUMNS = (
    ("send_errors", "send errors"),
    ("kernel_drops", "kernel drops"),
    ("parser_rejects", "parser rejects"),
    ("ring_drops", "ring drops"),
    ("unknown_series", "unknown series"),
    ("unrouted", "unrouted"),
    ("store_refusals", "store refusals"),
    ("lost_in_store", "lost in store"),
)


def summary_markdown(results, plot_files, plot_note, link_dir):
    """The run as Markdown; images are linked relative to link_dir."""
    m = results["machine"]
    o = results["options"]
    ok_runs = [r for r in results["runs"] if r.get("ok")]
    end = ok_runs[0]["end_point"] if ok_runs else "stored"
    L = []
    L.append(f"## End-to-end harness results ({results['started_utc']}, "
             f"{o['workers']} workers)")
    L.append("")
    L.append(f"Run {results['started_utc']} on {m['cpus']} × {m['cpu_model']} "
             f"(kernel {m['kernel']}), commit `{m['commit']}`, load average "
             f"{m['loadavg_before']} before the run. Generator and engine share the machine.")
    L.append("")
    L.append("Command:")
    L.append("")
    L.append(f"    {results['command']}")
    L.append("")
    L.append(f"Stream: InfluxDB line protocol over UDP, {o['series']} series, {o['tags']} tags, "
             f"1 field, random-walk values with 2 decimals, {o['sockets']} sender sockets "
             f"(SO_REUSEPORT spreads them over the {o['workers']} workers), "
             f"{o['duration']:g} s per rate, a fresh daemon per rate; probe lines "
             f"(`rf_probe`, routed `class: critical` to a UDP line-protocol sink the "
             f"harness reads) are {o['probe_note']}. Every event is routed to the store"
             + ("" if o.get("store", True) else " except with `--no-store` (this run: "
                "loss is counted up to the stages)") + "; stored times are kept to the "
             + {"auto": "nanosecond when the client sent them and to the millisecond when "
                "stamped at receipt", "ns": "nanosecond", "us": "microsecond",
                "ms": "millisecond", "s": "second"}.get(o.get("time_precision", "auto"),
                                                        "nanosecond")
             + f" (`storage.time_precision: {o.get('time_precision', 'auto')}`).")
    L.append("")
    L.append("### Where every event went")
    L.append("")
    L.append(f"| offered | sent | {end} | loss | "
             + " | ".join(name for _, name in LOSS_COLUMNS) + " | unaccounted |")
    L.append("|---" * (5 + len(LOSS_COLUMNS)) + "|")
    for r in results["runs"]:
        if not r.get("ok"):
            L.append(f"| {_offered_label(r)} | failed: {r.get('error', '?')} |"
                     + " |" * (3 + len(LOSS_COLUMNS)))
            continue
        terms = r["loss_terms"]
        L.append(f"| {_offered_label(r)} | {_n(r['sent_events'])} | {_n(r['end_events'])} "
                 f"| {_n(r['loss_events'])} ({r['loss_pct']:.3f} %) | "
                 + " | ".join(_term_cell(terms.get(k)) if k in terms else "—"
                              for k, _ in LOSS_COLUMNS)
                 + f" | {_unaccounted_cell(r)} |")
    L.append("")
    L.append("All in events (one per field; a probe line is two) unless a unit is given. "
             "`sent = " + " + ".join(name for _, name in LOSS_COLUMNS) + f" + {end} + "
             "unaccounted`, the loss equation of docs/RELIABILITY.md; *loss* = sent − "
             f"{end}, in % of sent.")
    L.append("")
    L.append("- *sent*: the generator's events plus one per probe line (`ringflow load "
             "--json`). *stored*: points in the store the daemon left on disk after its "
             "shutdown flush, counted by `ringflow query MEASUREMENT --agg count` "
             + ("(" + ", ".join(f"{_offered_label(r)}: "
                               + ", ".join(f"{k} {_n(v)}" for k, v in
                                           (r.get("stored_by_measurement") or {}).items())
                               for r in ok_runs) + ")" if ok_runs else "")
             + "; with `--no-store` the end point is *processed* (data events run through "
             "the stages).")
    L.append("- *send errors*: datagrams the generator's `sendmmsg` failed (ENOBUFS, ...); "
             "*kernel drops*: datagrams the engine's UDP sockets overflowed (SO_MEMINFO, "
             "/proc/net/udp); both in datagrams, ≈ events at the stream's events per "
             "datagram (" + ", ".join(f"{_offered_label(r)}: {r['events_per_datagram']:.0f}"
                                      for r in ok_runs) + "). *parser rejects*: lines "
             "(`lines_rejected`). *ring drops*: `dropped_ring_full`. *unknown series*: events "
             "of series the stages refused (cardinality limits). *unrouted*: no route took "
             "them. *store refusals*: points the storage shard refused (`store_rejected`, "
             "back-pressure). *lost in store*: appended (`to_store`) but not on disk. All "
             "from the daemon's shutdown summary (`worker-N final:` lines), after waiting "
             "on the stats socket until every event was accounted for.")
    L.append("- *unaccounted*: what no counter explains. The datagram and line terms are "
             "estimates (lines per datagram vary by a line or two), so at rates with drops "
             "up to 1 % of them either way is the estimate (\"within ±N\"); more, in bold, "
             "is a gap in the counters: for example datagrams still queued on a socket when "
             "the daemon was stopped, which the harness waits for and reports.")
    for r in results["runs"]:
        if r.get("warning"):
            L.append(f"- **{_offered_label(r)}: {r['warning']}**")
    L.append("")
    L.append("### Rates, latency, cost")
    L.append("")
    L.append(f"| offered | sent | {end} | probes back | probe sink drops | p50 | p99 | p99.9 "
             "| max | CPU s / M events | peak RSS |")
    L.append("|---" * 11 + "|")
    for r in results["runs"]:
        if not r.get("ok"):
            L.append(f"| {_offered_label(r)} | failed |" + " |" * 9)
            continue
        lat = r.get("latency")
        if lat:
            lat_cells = [f"{lat['p50_ms']:.2f} ms", f"{lat['p99_ms']:.2f} ms",
                         f"{lat['p999_ms']:.2f} ms", f"{lat['max_ms']:.2f} ms"]
        else:
            lat_cells = [r.get("latency_note", "n/a")] + ["n/a"] * 3
        pr = f"{r['probes_received']}/{r['probes_sent']}" if r["probes_sent"] else "-"
        L.append(f"| {_offered_label(r)} | {_fmt_rate(r['sent_events_per_s'])} "
                 f"| {_fmt_rate(r['end_events_per_s'])} | {pr} | {_n(r['sink_drops'])} "
                 f"| {' | '.join(lat_cells)} | {_fmt(r['cpu_s_per_m_events'])} "
                 f"| {_fmt(r['peak_rss_mib'], '{:.0f} MiB')} |")
    L.append("")
    L.append(f"- *sent*, *{end}*: per second of the generator's send time. *probes back*: "
             "probe lines the harness received from the critical sink / probe lines sent; "
             "*probe sink drops*: what that sink counted as dropped (`queue_full`, "
             "`disconnected`, `unsupported`, `oversize`, `io_error`; a probe is stored "
             "*and* sent to the sink, so these are not in the table above).")
    L.append("- *latency*: CLOCK_MONOTONIC at the harness's receipt of the sink's datagram "
             "minus the probe's `sent_mono_ns`: generator → kernel → engine (parse, route, "
             "critical sink) → kernel → harness. Nearest-rank percentiles over the probes "
             f"sent after the first {o['warmup']:g} s of each load (warm-up); the warm-up's "
             "own worst case: "
             + ", ".join(f"{_offered_label(r)}: "
                         + (f"{r['latency_warmup']['max_ms']:.1f} ms"
                            if r.get("latency_warmup") else "n/a")
                         for r in ok_runs) + ".")
    L.append("- *CPU s / M events*: the daemon's utime+stime from the start of the load "
             "until it had accounted for everything, per million events processed (idle "
             "polling included). *Peak RSS*: VmHWM.")
    L.append("")
    L += _images(plot_files, link_dir, ("throughput.png", "latency.png"))
    if plot_note:
        L.append(f"Plots: {plot_note}.")
        L.append("")
    L += _peer_markdown(results, o, plot_files, link_dir)
    L.append("")
    L.append("Reproduce: `scripts/harness.sh` (see its header for options). Figures on a "
             "shared 2-core VM swing by tens of percent between runs; compare runs, not "
             "single numbers.")
    return "\n".join(L) + "\n"


def _images(plot_files, link_dir, names):
    out = []
    for p in plot_files:
        if os.path.basename(p) in names:
            out.append(f"![{os.path.splitext(os.path.basename(p))[0]}]"
                       f"({os.path.relpath(p, link_dir)})")
    if out:
        out.append("")
    return out


def _path_label(peer, system, t):
    if t == "tcp":
        return f"TCP, {peer['tcp_connections']} connections"
    if t == "udp":
        rate = "max rate" if not peer.get("udp_rate") else f"{_fmt_rate(peer['udp_rate'])}"
        return f"UDP, {peer['udp_sockets']} sockets, {rate}"
    return (f"HTTP POST /write, {peer['http_batch_bytes'] // 1024} KiB bodies, "
            f"{peer['http_connections']} at once")


def _peer_markdown(results, o, plot_files, link_dir):
    peer = results.get("peer")
    L = ["### Against VictoriaMetrics", ""]
    if not peer:
        L.append("Not run (`--no-peer`).")
        return L
    if peer.get("skipped"):
        L.append(f"Not run: {peer['skipped']}")
        return L
    rf, vm = peer["ringflow"], peer["victoria_metrics"]
    L.append(f"The same {peer['count']:,} points into each system and path, one run at a "
             f"time, a fresh instance each: `ringflow load --count {peer['count']} --seed "
             f"{peer['seed']} --rate 0` ({peer['series']} series, line protocol without "
             "timestamps, so each system stamps the time of receipt); for HTTP the "
             "generator's stream captured once to a file and POSTed in whole lines. "
             f"{peer['version']}, default settings (its UDP socket keeps the kernel's "
             "default receive buffer; ringflow's is 16 MiB). ringflow has no HTTP ingest: "
             "its best path is TCP.")
    L.append("")
    L.append("| system | path | points stored | lost | ingest time | ingest rate "
             "| bytes/point on disk | CPU s / M points | peak RSS |")
    L.append("|---" * 9 + "|")
    for t in peer.get("transports", []):
        for name, x in (("ringflow", rf.get(t)), ("VictoriaMetrics", vm.get(t))):
            if name == "ringflow" and t == "http":
                L.append("| ringflow | HTTP | n/a: ringflow has no HTTP ingest |" + " |" * 6)
                continue
            err = peer.get("errors", {}).get(
                f"{'ringflow' if name == 'ringflow' else 'victoria_metrics'}/{t}")
            if not x:
                L.append(f"| {name} | {TRANSPORT_NAMES[t]} | failed: {err or 'not run'} |"
                         + " |" * 6)
                continue
            lost = peer["count"] - (x.get("stored") or 0)
            why = ""
            if lost and t == "udp":
                kd = x.get("kernel_drops", x.get("udp_kernel_drops"))
                if kd is not None:
                    why = f" ({_n(kd)} dgrams dropped by the kernel)"
            L.append(f"| {name} | {_path_label(peer, name, t)} | {_n(x.get('stored'))} "
                     f"| {_n(lost)}{why} | {_fmt(x.get('ingest_s'), '{:.2f} s')} "
                     f"| {_fmt_rate(x.get('ingest_rows_per_s'))} "
                     f"| {_fmt(x.get('bytes_per_point'))} | {_fmt(x.get('cpu_s_per_m'))} "
                     f"| {_fmt(x.get('peak_rss_mib'), '{:.0f} MiB')} |")
    L.append("")
    ratios = peer.get("ratios", {})
    if ratios:
        L.append("Ratios, ringflow ÷ VictoriaMetrics (one run):")
        L.append("")
        L.append("| comparison | ingest rate | bytes/point | CPU per point |")
        L.append("|---|---|---|---|")
        udp_label = ("UDP ÷ UDP (what each stored)" if not peer.get("udp_rate") else
                     f"UDP ÷ UDP, paced at {_fmt_rate(peer['udp_rate'])}")
        for key, label in (("tcp", "TCP ÷ TCP"), ("udp", udp_label)):
            if key in ratios:
                x = ratios[key]
                rate_cell = (_fmt(x["ingest_rate"], "{:.2f}×") if x["ingest_rate"] is not None
                             or key != "udp" else "— (paced)")
                L.append(f"| {label} | {rate_cell} "
                         f"| {_fmt(x['bytes_per_point'], '{:.2f}×')} "
                         f"| {_fmt(x['cpu_per_point'], '{:.2f}×')} |")
        if "best" in ratios:
            x = ratios["best"]
            L.append(f"| best lossless path: ringflow TCP ÷ VictoriaMetrics "
                     f"{TRANSPORT_NAMES[x['victoria_metrics']]} "
                     f"| {_fmt(x['ingest_rate'], '{:.2f}×')} "
                     f"| {_fmt(x['bytes_per_point'], '{:.2f}×')} "
                     f"| {_fmt(x['cpu_per_point'], '{:.2f}×')} |")
        L.append("")
    L.append("- *points stored*: VictoriaMetrics: `vm_rows_inserted_total{type=\"influx\"}` "
             "once it stopped moving; ringflow: points on disk after its shutdown flush "
             "(`ringflow query load --agg count`), equal to what the storage shards took "
             "(`to_store`). *lost*: sent − stored (UDP: the receive queues overflowed; "
             "VictoriaMetrics' drops are its socket's `drops` in /proc/net/udp).")
    L.append("- *ingest time*: from the first byte sent until the last point was counted "
             "(VictoriaMetrics' /metrics sampled every 100 ms, ringflow's stats socket every "
             "25 ms, interpolated); *ingest rate* = points stored ÷ ingest time. The sender "
             "(`ringflow load`, or the harness's HTTP client) shares the 2 cores with the "
             "receiver and caps both.")
    L.append("- *bytes/point*: allocated size after a graceful stop (everything flushed) ÷ "
             "points stored: ringflow's data directory (segments); VictoriaMetrics' `data`, "
             "`indexdb` and `metadata` (its `cache` of query results, written at shutdown, "
             "left out: "
             + ", ".join(f"{TRANSPORT_NAMES[t]} {_n(x['disk_bytes_all'] - x['disk_bytes'])} B"
                         for t, x in vm.items() if x.get("disk_bytes_all") is not None)
             + "). *CPU*: the receiving process's utime+stime over the ingest time.")
    for t in peer.get("transports", []):
        for name, x in (("ringflow", rf.get(t)), ("VictoriaMetrics", vm.get(t))):
            if x and x.get("warning"):
                L.append(f"- **{name} over {TRANSPORT_NAMES[t]}: {x['warning']}**")
    for k, e in peer.get("errors", {}).items():
        L.append(f"- **{k}: {e}**")
    L.append("")
    L += _images(plot_files, link_dir, ("peer.png",))
    return L


# ---- docs/PERFORMANCE.md ---------------------------------------------------

def check_doc_markers(path):
    """Raises ValueError unless `path` holds exactly one DOC_BEGIN followed by
    one DOC_END, each on a line of its own."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    b = [i for i, ln in enumerate(lines) if ln.strip() == DOC_BEGIN]
    e = [i for i, ln in enumerate(lines) if ln.strip() == DOC_END]
    if len(b) != 1 or len(e) != 1 or b[0] > e[0]:
        raise ValueError(f"{path} needs one line '{DOC_BEGIN}' and, after it, one line "
                         f"'{DOC_END}' around the harness's section (found {len(b)} begin, "
                         f"{len(e)} end)")
    return b[0], e[0]


def update_doc(doc, results, out_dir, plot_files, plot_note):
    """Replaces the lines between the markers of `doc` with this run's summary.
    The plots and results.json are copied to perf/harness-<run id>/ beside
    the doc and linked from there. Returns that directory."""
    b, e = check_doc_markers(doc)
    doc_dir = os.path.dirname(os.path.abspath(doc))
    dest = os.path.join(doc_dir, "perf", f"harness-{results['run_id']}")
    os.makedirs(dest, exist_ok=True)
    copied = []
    for p in list(plot_files) + [os.path.join(out_dir, "results.json")]:
        if os.path.exists(p):
            q = os.path.join(dest, os.path.basename(p))
            shutil.copyfile(p, q)
            copied.append(q)
    plots_here = [q for q in copied if q.endswith(".png")]
    md = summary_markdown(results, plots_here, plot_note, doc_dir).rstrip("\n")
    md += (f"\n\nRaw figures: `{os.path.relpath(os.path.join(dest, 'results.json'), doc_dir)}` "
           "(every counter, the stats socket snapshot of each rate, the peer runs).")
    with open(doc, encoding="utf-8") as f:
        lines = f.read().split("\n")
    note = ("<!-- Written by scripts/harness.sh --update-doc: edits between the markers "
            "are replaced by the next run. -->")
    new = lines[:b + 1] + [note, ""] + md.split("\n") + [""] + lines[e:]
    tmp = doc + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(new))
    os.replace(tmp, doc)
    return dest
