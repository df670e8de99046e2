"""Harness output: PNG plots through gnuplot and the Markdown summary.

The summary is written so it can be pasted into docs/PERFORMANCE.md as is:
the machine, the exact command, one table per part, and what to keep in mind
when reading it.
"""
import os
import shutil
import subprocess


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


def _offered_label(run):
    return "max" if run["offered"] == 0 else _fmt_rate(run["offered"]).replace("/s", "")


def plots(results, out_dir, tmp_dir):
    """throughput.png and latency.png; returns the files written (gnuplot
    missing: none, said in the summary)."""
    gp = shutil.which("gnuplot")
    if not gp:
        return [], "gnuplot not found (install gnuplot-nox)"
    runs = [r for r in results["runs"] if r.get("ok")]
    if not runs:
        return [], "no successful run to plot"
    # x: the rate the generator really sent (for "max" that is its ceiling).
    dat = os.path.join(tmp_dir, "runs.dat")
    with open(dat, "w") as f:
        f.write("# label sent_ev_s delivered_ev_s p50_ms p99_ms p999_ms max_ms\n")
        for r in sorted(runs, key=lambda r: r["sent_events_per_s"]):
            lat = r.get("latency") or {}
            vals = [lat.get(k) for k in ("p50_ms", "p99_ms", "p999_ms", "max_ms")]
            vals = ["NaN" if v is None else f"{max(v, 1e-3):.6f}" for v in vals]
            f.write(f"\"{_offered_label(r)}\" {r['sent_events_per_s']:.0f} "
                    f"{r['delivered_events_per_s']:.0f} {' '.join(vals)}\n")
    written = []
    term = "pngcairo size 900,560 font 'sans,10'"
    if subprocess.run([gp, "-e", "set terminal pngcairo"], capture_output=True).returncode != 0:
        term = "png size 900,560"
    tp = os.path.join(out_dir, "throughput.png")
    script = f"""
set terminal {term}
set termoption noenhanced
set output '{tp}'
set title 'ringflow: delivered vs offered load'
set xlabel 'events/s sent by the generator'
set ylabel 'events/s processed by the engine'
set logscale xy
set grid
set key left top
set format x '%.0s%c'
set format y '%.0s%c'
plot '{dat}' using 2:3 with linespoints lw 2 pt 7 title 'delivered', \\
     '{dat}' using 2:2 with lines dt 2 title 'ideal (no loss)', \\
     '{dat}' using 2:3:1 with labels offset 0,1 notitle
"""
    lat_png = os.path.join(out_dir, "latency.png")
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
    has_latency = any(r.get("latency") for r in runs)
    if not has_latency:
        script = script[:script.index(f"set output '{lat_png}'")]
    sp = os.path.join(tmp_dir, "plots.gp")
    with open(sp, "w") as f:
        f.write(script)
    r = subprocess.run([gp, sp], capture_output=True, text=True)
    if r.returncode != 0:
        return [], f"gnuplot failed: {r.stderr.strip()[:300]}"
    written.append(tp)
    if has_latency:
        written.append(lat_png)
    return written, None


def summary_markdown(results, plot_files, plot_note):
    m = results["machine"]
    o = results["options"]
    lines = []
    lines.append("## End-to-end harness results")
    lines.append("")
    lines.append(f"Run {results['started_utc']} on {m['cpus']} × {m['cpu_model']} "
                 f"(kernel {m['kernel']}), commit `{m['commit']}`, load average "
                 f"{m['loadavg_before']} before the run. Generator and engine share the machine.")
    lines.append("")
    lines.append("Command:")
    lines.append("")
    lines.append(f"    {results['command']}")
    lines.append("")
    lines.append(f"Stream: InfluxDB line protocol over UDP, {o['series']} series, {o['tags']} tags, "
                 f"1 field, random-walk values with 2 decimals, {o['sockets']} sender sockets "
                 f"(SO_REUSEPORT spreads them over the {o['workers']} workers), "
                 f"{o['duration']:g} s per rate, a fresh daemon per rate; probe lines "
                 f"(`rf_probe`, routed `class: critical` to a UDP line-protocol sink the "
                 f"harness reads) are {o['probe_note']}.")
    lines.append("")
    lines.append("| offered | sent | delivered | loss | kernel drops | ring drops | parser rejects "
                 "| store rejects | probes back | p50 | p99 | p99.9 | max | CPU s / M events "
                 "| peak RSS |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results["runs"]:
        if not r.get("ok"):
            lines.append(f"| {_offered_label(r)} | failed: {r.get('error', '?')} |" + " |" * 13)
            continue
        lat = r.get("latency")
        if lat:
            lat_cells = [f"{lat['p50_ms']:.2f} ms", f"{lat['p99_ms']:.2f} ms",
                         f"{lat['p999_ms']:.2f} ms", f"{lat['max_ms']:.2f} ms"]
        else:
            lat_cells = [r.get("latency_note", "n/a")] + ["n/a"] * 3
        probes = f"{r['probes_received']}/{r['probes_sent']}" if r["probes_sent"] else "-"
        lines.append(
            f"| {_offered_label(r)} | {_fmt_rate(r['sent_events_per_s'])} "
            f"| {_fmt_rate(r['delivered_events_per_s'])} | {r['loss_pct']:.3f} % "
            f"| {r['kernel_drops']} dgrams | {r['ring_drops']} | {r['parser_rejects']} "
            f"| {r['store_rejected']} | {probes} | {' | '.join(lat_cells)} "
            f"| {_fmt(r['cpu_s_per_m_events'])} | {_fmt(r['peak_rss_mib'], '{:.0f} MiB')} |")
    lines.append("")
    lines.append("- *sent*: events/s the generator really sent (`ringflow load` summary; a "
                 "probe line counts as its two fields, as the engine counts it); "
                 "*delivered*: data events the workers processed (sum of `processed` minus "
                 "series definitions, from the daemon's shutdown summary) per second of load.")
    lines.append("- *loss*: events sent but not delivered, in % of events sent. Where they went: "
                 "*kernel drops* (datagrams the socket buffer overflowed, SO_RXQ_OVFL and "
                 "/proc/net/udp), *ring drops* (`dropped_ring_full`), *parser rejects* "
                 "(`lines_rejected`), *store rejects* (points the storage shard refused, "
                 "`store_rejected`; stored: " + ", ".join(
                     f"{_offered_label(r)}: {r['to_store']}" for r in results["runs"]
                     if r.get("ok") and r.get("to_store") is not None) + "). Send errors of the generator (ENOBUFS, ...): "
                 + ", ".join(f"{_offered_label(r)}: {r['send_errors']}"
                             for r in results["runs"] if r.get("ok")) + ".")
    lines.append("- *latency*: CLOCK_MONOTONIC at the harness's receipt of the sink's datagram "
                 "minus the probe's `sent_mono_ns`: generator → kernel → engine (parse, route, "
                 "critical sink) → kernel → harness. Nearest-rank percentiles over the probes "
                 f"sent after the first {o['warmup']:g} s of each load (warm-up); the warm-up's "
                 "own worst case: "
                 + ", ".join(f"{_offered_label(r)}: "
                             + (f"{r['latency_warmup']['max_ms']:.1f} ms"
                                if r.get("latency_warmup") else "n/a")
                             for r in results["runs"] if r.get("ok")) + ".")
    lines.append("- *CPU s / M events*: the daemon's utime+stime during the load and its drain, "
                 "per million delivered events (idle polling included). *Peak RSS*: VmHWM.")
    for r in results["runs"]:
        if r.get("warning"):
            lines.append(f"- **{_offered_label(r)}: {r['warning']}**")
    lines.append("")
    if plot_files:
        for p in plot_files:
            lines.append(f"![{os.path.basename(p)}]({os.path.relpath(p, results['out_dir'])})")
        lines.append("")
    elif plot_note:
        lines.append(f"Plots: none ({plot_note}).")
        lines.append("")

    peer = results.get("peer")
    lines.append("### Against VictoriaMetrics")
    lines.append("")
    if not peer:
        lines.append("Not run (`--no-peer`).")
    elif peer.get("skipped"):
        lines.append(f"Not run: {peer['skipped']}")
    else:
        rf, vm = peer["ringflow"], peer["victoria_metrics"]
        lines.append(f"The same stream (`ringflow load` at max rate, seed {o['seed']}, "
                     f"{o['series']} series, over {peer.get('sockets', 1)} TCP connections so neither "
                     "side may drop) for "
                     f"{peer['duration']:g} s into each, one after the other; "
                     f"{vm['version']}.")
        lines.append("")
        if vm.get("rows_missing"):
            lines.append(f"**VictoriaMetrics did not ingest {vm['rows_missing']} of the "
                         f"{vm['load']['lines']} lines sent** (see its log; the generator "
                         f"reported {vm['load']['errors']} send errors).")
            lines.append("")
        if rf.get("warning"):
            lines.append(f"**ringflow run: {rf['warning']}: its figures cover a shorter run.**")
            lines.append("")
        lines.append(f"ringflow stored {rf.get('stored')} of them "
                     f"({rf.get('store_rejected') or 0} refused by the store).")
        lines.append("")
        lines.append("| system | points ingested | ingest rate | bytes/point on disk "
                     "| CPU s / M points | peak RSS |")
        lines.append("|---|---|---|---|---|---|")
        for name, x in (("ringflow", rf), ("VictoriaMetrics", vm)):
            bpp = x.get("bytes_per_point")
            lines.append(f"| {name} | {x['rows']} | {_fmt_rate(x['ingest_rows_per_s'])} "
                         f"| {_fmt(bpp) if bpp is not None else x.get('disk_note', 'n/a')} "
                         f"| {_fmt(x['cpu_s_per_m'])} | {_fmt(x['peak_rss_mib'], '{:.0f} MiB')} |")
        lines.append("")
        ratio = peer.get("ratios", {})
        lines.append(f"Ratios (ringflow ÷ VictoriaMetrics): ingest rate "
                     f"{_fmt(ratio.get('ingest_rate'), '{:.2f}×')}; bytes/point "
                     f"{_fmt(ratio.get('bytes_per_point'), '{:.2f}×')}; CPU per point "
                     f"{_fmt(ratio.get('cpu_per_point'), '{:.2f}×')}.")
        lines.append("")
        lines.append("- Ingest rate: points ingested (VictoriaMetrics: `vm_rows_inserted_total"
                     "{type=\"influx\"}`; ringflow: data events processed) divided by the "
                     "generator's send time. Over TCP the receiver's reading paces the sender "
                     "(back-pressure), so this is the rate each system took the stream at; "
                     f"VictoriaMetrics counted its last row {_fmt(vm.get('visible_after_s'), '{:.1f}')} s "
                     "after the first byte. Generator and receiver share 2 cores: the "
                     "generator's own ceiling caps both.")
        lines.append("- Bytes/point: allocated size of the data directory after a graceful "
                     "shutdown (everything flushed: VictoriaMetrics' data parts + indexdb; "
                     "ringflow: its segments) divided by points ingested.")
    lines.append("")
    lines.append("Reproduce: `scripts/harness.sh` (see its header for options). Figures on a "
                 "shared 2-core VM swing by tens of percent between runs; compare runs, not "
                 "single numbers.")
    return "\n".join(lines) + "\n"
