"""The HTTP comparison (scripts/harness.sh --http-peer): the same points, as
InfluxDB `/write` bodies of 5,000 lines (plain, and gzip level 6) and as
Prometheus remote_write requests of 2,000 samples (snappy, protobuf), into a
fresh ringflowd and a fresh VictoriaMetrics for each path, one at a time.
For each: the ingest rate (points / time until the system has taken them
all, from the first request) and the server's CPU seconds per million points
(/proc, the server process only: the sender is this Python process).

The bodies are built once, before any timing, from the generator's own
stream (`ringflow load`, captured as for the TCP comparison), so both
systems get the same bytes. remote_write: each line becomes one sample,
__name__ = the measurement (`_<field>` appended unless the field is `value`),
the tags as labels, times 1 ms apart from the build time.
"""
import gzip
import os
import socket
import struct
import threading
import time

import engine
import peer
import probes

LINES_PER_BODY = 5000
SAMPLES_PER_RW = 2000  # Prometheus' max_samples_per_send default
PATHS = ("write", "write_gzip", "remote_write")


def _varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _ld(field, b):
    return _varint(field << 3 | 2) + _varint(len(b)) + b


def _split_unescaped(s, sep):
    """Splits at `sep` not preceded by a backslash."""
    parts, cur, i = [], [], 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            cur.append(s[i:i + 2])
            i += 2
            continue
        if c == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return parts


def _unescape(s):
    return s.replace("\\,", ",").replace("\\ ", " ").replace("\\=", "=").replace("\\\\", "\\")


def remote_write_bodies(lines, base_ms, compress=None):
    """Snappy-compressed WriteRequests of SAMPLES_PER_RW samples each, one
    TimeSeries per line. Returns [(body, samples)]."""
    if compress is None:
        import snappy  # noqa: PLC0415 - python3-snappy (Debian); only this path needs it
        compress = snappy.compress

    labels_of = {}  # series text -> encoded labels, built once per series
    out, cur, n = [], [], 0
    for i, line in enumerate(lines):
        series, fields = line.split(" ", 1)[0], line.split(" ", 1)[1].split(" ", 1)[0]
        fkey, fval = fields.split("=", 1)
        key = (series, fkey)
        lab = labels_of.get(key)
        if lab is None:
            parts = _split_unescaped(series, ",")
            name = _unescape(parts[0]) + ("" if fkey == "value" else "_" + _unescape(fkey))
            lab = _ld(1, _ld(1, b"__name__") + _ld(2, name.encode()))
            for t in parts[1:]:
                k, v = _split_unescaped(t, "=")[:2]
                lab += _ld(1, _ld(1, _unescape(k).encode()) + _ld(2, _unescape(v).encode()))
            labels_of[key] = lab
        v = float(fval.rstrip("iu")) if fval[-1:] in ("i", "u") else float(fval)
        sample = b"\x09" + struct.pack("<d", v) + b"\x10" + _varint(base_ms + i)
        cur.append(_ld(1, lab + _ld(2, sample)))
        n += 1
        if n == SAMPLES_PER_RW:
            out.append((compress(b"".join(cur)), n))
            cur, n = [], 0
    if cur:
        out.append((compress(b"".join(cur)), n))
    return out


def build_bodies(stream_file):
    """{path: (endpoint query, headers, [(body, points)])} from the captured
    stream."""
    with open(stream_file, "rb") as f:
        data = f.read()
    lines = data.decode().splitlines()
    plain = []
    for i in range(0, len(lines), LINES_PER_BODY):
        chunk = lines[i:i + LINES_PER_BODY]
        plain.append((("\n".join(chunk) + "\n").encode(), len(chunk)))
    gz = [(gzip.compress(b, 6), n) for b, n in plain]
    rw = remote_write_bodies(lines, int(time.time() * 1000))
    return {
        "write": ("/write?db=bench", {"Content-Type": "text/plain"}, plain),
        "write_gzip": ("/write?db=bench",
                       {"Content-Type": "text/plain", "Content-Encoding": "gzip"}, gz),
        "remote_write": ("/api/v1/write",
                         {"Content-Type": "application/x-protobuf",
                          "Content-Encoding": "snappy",
                          "X-Prometheus-Remote-Write-Version": "0.1.0"}, rw),
    }


def measure(pid, port, rows_fn, target, headers, bodies, connections):
    """Sends, waits until rows_fn() reaches the body's points (or nothing
    moves for 2 s once sent), and returns the figures."""
    count = sum(n for _, n in bodies)
    cpu0 = engine.proc_cpu_s(pid)
    sampler = peer.Sampler(rows_fn, period=0.02).start()
    done = threading.Event()
    out = {}

    def send():
        try:
            out["post"] = peer.post_bodies(port, len(bodies), bodies.__getitem__, connections,
                                           target, headers)
        finally:
            done.set()

    t0 = time.monotonic()
    th = threading.Thread(target=send, daemon=True)
    th.start()
    _, complete = peer.wait_for(sampler.latest, count, done.is_set)
    th.join(600)
    sampler.stop()
    t_end = time.monotonic()
    cpu_s = engine.proc_cpu_s(pid) - cpu0
    rows = rows_fn() or 0
    ingest_s = peer.time_reached(sampler.samples + [(t_end, rows)], t0, rows) or (t_end - t0)
    res = {"points": count, "rows": rows, "complete": complete, "ingest_s": ingest_s,
           "rows_per_s": rows / ingest_s if ingest_s else None, "cpu_s": cpu_s,
           "cpu_s_per_m": cpu_s / (rows / 1e6) if rows else None,
           "wire_bytes": sum(len(b) for b, _ in bodies), "post": out.get("post")}
    if out.get("post", {}).get("failed_posts"):
        res["warning"] = f"{out['post']['failed_posts']} POSTs failed: {out['post']['errors']}"
    return res


def _vm_rows(vm):
    text = vm.get("/metrics")
    total = 0
    for line in text.splitlines():
        if line.startswith("vm_rows_inserted_total{"):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def run(setup, stream_file, connections, stages_to_store):
    """Every path into each system; returns {"paths": {path: {"ringflow",
    "victoria_metrics", "ratio_rate", "ratio_cpu"}}, ...}. stages_to_store(sock):
    the points ringflow's store has taken (harness.py's)."""
    bodies = build_bodies(stream_file)
    binary = peer.find_binary()
    res = {"lines_per_body": LINES_PER_BODY, "samples_per_remote_write": SAMPLES_PER_RW,
           "connections": connections, "paths": {},
           "victoria_metrics_version": peer.version(binary) if binary else None}
    for path in PATHS:
        target, headers, bl = bodies[path]
        row = {}
        rx = probes.ProbeReceiver().start()
        d = None
        try:
            http_port = engine.free_port(kind=socket.SOCK_STREAM)
            d, work, _, _ = setup.start_daemon(f"http-peer-ringflow-{path}", rx.port,
                                               http_port=http_port)
            time.sleep(0.3)
            sock = os.path.join(work, "run", "ringflow.sock")
            row["ringflow"] = measure(d.pid, http_port, lambda: stages_to_store(sock), target,
                                      headers, bl, connections)
        except Exception as e:  # noqa: BLE001 - the other paths still run
            row["ringflow"] = {"error": str(e)}
        finally:
            if d:
                d.stop()
            rx.stop()
        if binary:
            vm_work = os.path.join(setup.work_root, f"http-peer-vm-{path}")
            os.makedirs(vm_work, exist_ok=True)
            vm = peer.VictoriaMetrics(binary, vm_work)
            try:
                vm.start()
                row["victoria_metrics"] = measure(vm.proc.pid, vm.http_port,
                                                  lambda: _vm_rows(vm), target, headers, bl,
                                                  connections)
            except Exception as e:  # noqa: BLE001
                row["victoria_metrics"] = {"error": str(e)}
            finally:
                vm.stop()
        rf, vmr = row.get("ringflow", {}), row.get("victoria_metrics", {})
        if rf.get("rows_per_s") and vmr.get("rows_per_s"):
            row["ratio_rate"] = rf["rows_per_s"] / vmr["rows_per_s"]
        if rf.get("cpu_s_per_m") and vmr.get("cpu_s_per_m"):
            row["ratio_cpu"] = rf["cpu_s_per_m"] / vmr["cpu_s_per_m"]
        res["paths"][path] = row
    return res


def summary_markdown(res):
    """The comparison as a Markdown table."""
    out = [f"HTTP ingest, {res['connections']} connections; `/write` bodies of "
           f"{res['lines_per_body']:,} lines, remote_write requests of "
           f"{res['samples_per_remote_write']:,} samples; "
           f"{res.get('victoria_metrics_version') or 'VictoriaMetrics not installed'}.", "",
           "| path | system | points | stored | rate (points/s) | CPU s / M points | "
           "wire bytes |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for path, row in res["paths"].items():
        for sysname, key in (("ringflow", "ringflow"), ("VictoriaMetrics", "victoria_metrics")):
            r = row.get(key)
            if not r:
                continue
            if "error" in r:
                out.append(f"| {path} | {sysname} | failed: {r['error'][:80]} | | | | |")
                continue
            out.append(f"| {path} | {sysname} | {r['points']:,} | {r['rows']:,} | "
                       f"{r['rows_per_s']:,.0f} | {r['cpu_s_per_m']:.3f} | "
                       f"{r['wire_bytes']:,} |")
        if "ratio_rate" in row or "ratio_cpu" in row:
            out.append(f"| {path} | ringflow ÷ VM | | | {row.get('ratio_rate', 0):.2f} | "
                       f"{row.get('ratio_cpu', 0):.2f} | |")
    return "\n".join(out) + "\n"
