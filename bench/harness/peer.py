"""The peer: VictoriaMetrics (Debian package `victoria-metrics`), fed the same
generated stream as ringflow, for ingest rate and bytes per point on disk.

Every run sends the same N points (`ringflow load --count N`, one seed) to a
fresh single-node VictoriaMetrics on a temporary -storageDataPath, over one
of three paths:

  tcp   InfluxDB line protocol on -influxListenAddr (TCP)
  udp   the same address, UDP (VictoriaMetrics listens on both)
  http  POST /write (VictoriaMetrics' InfluxDB endpoint): the stream is
        captured once from the generator into a file (capture_stream) and
        sent in batches of whole lines, several requests at a time
        (post_lines), as Telegraf and the InfluxDB clients do

It then waits until vm_rows_inserted_total{type="influx"} reaches N (or stops
moving once the sender is done: UDP drops), forces a flush, stops it with
SIGTERM and measures the allocated size of its data directory.
"""
import http.client
import json
import mmap
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.request

from engine import (du_bytes, free_port, proc_cpu_s, proc_status_kib, udp_socket_drops,
                    udp_socket_queue)

_NUM = r"(\d+(?:\.\d+)?(?:e[+-]?\d+)?)"
_DATA_SIZE = re.compile(r'^vm_data_size_bytes\{[^}]*\}\s+' + _NUM, re.M)
_ROWS = re.compile(r'^vm_rows_inserted_total\{type="influx"\}\s+' + _NUM, re.M)
_INVALID = re.compile(r'^vm_rows_invalid_total\{type="influx"\}\s+' + _NUM, re.M)
_READ_ERRORS = re.compile(r'^vm_protoparser_read_errors_total\{type="influx"\}\s+' + _NUM, re.M)

# What of the data directory is the stored data: parts, the index and the
# metadata. `cache` (query caches saved at shutdown), `tmp` and `snapshots`
# are not, and are reported apart.
VM_DATA_DIRS = ("data", "indexdb", "metadata")


def find_binary():
    for name in ("victoria-metrics", "victoria-metrics-prod", "victoriametrics"):
        p = shutil.which(name)
        if p:
            return p
    return None


def version(binary):
    """The Debian package version (Debian's build leaves -version empty)."""
    try:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "victoria-metrics"],
                           capture_output=True, text=True, timeout=10)
        if r.returncode == 0 and r.stdout.strip():
            return "VictoriaMetrics " + r.stdout.strip() + " (Debian)"
        r = subprocess.run([binary, "-version"], capture_output=True, text=True, timeout=10)
        out = (r.stdout + r.stderr).strip()
        return out.splitlines()[0] if out else "VictoriaMetrics (version unknown)"
    except Exception:  # noqa: BLE001 - informative only
        return "VictoriaMetrics (version unknown)"


class VictoriaMetrics:
    def __init__(self, binary, work):
        self.binary = binary
        self.data = os.path.join(work, "vmdata")
        self.log_path = os.path.join(work, "victoria-metrics.log")
        self.influx_port = free_port(both=True)
        self.http_port = free_port(both=True)
        self.proc = None

    def url(self, path):
        return f"http://127.0.0.1:{self.http_port}{path}"

    def get(self, path, timeout=5):
        with urllib.request.urlopen(self.url(path), timeout=timeout) as r:
            return r.read().decode(errors="replace")

    def start(self, timeout=30, extra_args=()):
        os.makedirs(self.data, exist_ok=True)
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [self.binary, f"-storageDataPath={self.data}",
             f"-influxListenAddr=127.0.0.1:{self.influx_port}",
             f"-httpListenAddr=127.0.0.1:{self.http_port}", "-retentionPeriod=100y",
             "-loggerLevel=WARN", *extra_args],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"victoria-metrics exited with {self.proc.returncode}; "
                                   f"log: {self.log_path}")
            try:
                if self.get("/health", 1).strip() == "OK":
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("victoria-metrics did not become healthy")

    def counters(self):
        text = self.get("/metrics")
        one = lambda rx: int(float(rx.search(text).group(1))) if rx.search(text) else 0  # noqa: E731
        return {"rows": one(_ROWS), "invalid": one(_INVALID), "read_errors": one(_READ_ERRORS),
                "data_size": sum(int(float(v)) for v in _DATA_SIZE.findall(text))}

    def rows(self):
        return self.counters()["rows"]

    def stop(self):
        """Graceful stop (SIGTERM: the peer flushes everything); idempotent."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and not self.log.closed:
            self.log.close()


class Sampler:
    """Samples a counter every `period` s from its own thread, so the moment
    the last row was counted is known to within a period (and interpolated)."""

    def __init__(self, read, period=0.1):
        self.read = read
        self.period = period
        self.samples = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                v = self.read()
                if v is not None:
                    self.samples.append((time.monotonic(), v))
            except OSError:
                pass
            self._stop.wait(self.period)

    def start(self):
        self._t.start()
        return self

    def latest(self, default=0):
        return self.samples[-1][1] if self.samples else default

    def stop(self):
        self._stop.set()
        self._t.join(5)


def time_reached(samples, t0, final):
    """Seconds after t0 at which the sampled counter reached `final`, linearly
    interpolated between the last sample below it and the first at or above
    it. None when no sample reached it."""
    prev = (t0, 0)
    for t, v in samples:
        if v >= final:
            (tp, vp) = prev
            if v == vp:
                return t - t0
            frac = (final - vp) / (v - vp)
            return max(0.0, tp + frac * (t - tp) - t0)
        prev = (t, v)
    return None


def wait_for(read, target, sender_done, idle=None, quiet_s=2.0, timeout=180.0, period=0.1):
    """Waits until read() >= target, or the sender is done, the receiver is
    idle (idle(): nothing left unread in its socket queues) and the value
    has not moved for quiet_s: what did not arrive by then was lost on the
    way. A receiver that falls behind (a loaded machine) is waited for, up
    to timeout. Returns (value, reached?)."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        v = read()
        if v >= target:
            return v, True
        now = time.monotonic()
        if v != last:
            last, since = v, now
        elif sender_done() and now - since >= quiet_s and (idle is None or idle()):
            return v, False
        time.sleep(period)
    return last, False


def udp_idle(port):
    """idle() for wait_for: nothing queued on the UDP socket(s) at port."""
    return lambda: not udp_socket_queue(port)


def capture_stream(load_cmd, path, timeout=600):
    """Runs the generator (load_cmd, TCP, one connection; --target is
    appended) against a local listener that writes every byte it receives to
    `path`. Returns {"bytes", "lines", "load"}: the exact stream the other
    runs send, for the HTTP path."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    srv.settimeout(timeout)
    port = srv.getsockname()[1]
    got = {"bytes": 0, "error": None}

    def accept_one():
        try:
            conn, _ = srv.accept()
            with conn, open(path, "wb") as f:
                while True:
                    chunk = conn.recv(1 << 20)
                    if not chunk:
                        break
                    f.write(chunk)
                    got["bytes"] += len(chunk)
        except OSError as e:
            got["error"] = str(e)

    t = threading.Thread(target=accept_one, daemon=True)
    t.start()
    r = subprocess.run(load_cmd + ["--target", f"127.0.0.1:{port}"], capture_output=True,
                       text=True, timeout=timeout)
    t.join(timeout)
    srv.close()
    if r.returncode != 0 or got["error"]:
        raise RuntimeError(f"capturing the stream failed: {got['error'] or r.stderr.strip()[:300]}")
    lines = 0
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 22)
            if not b:
                break
            lines += b.count(b"\n")
    return {"bytes": got["bytes"], "lines": lines, "load": _json_line(r.stdout)}


def post_lines(port, path, batch_bytes=1 << 20, connections=4, endpoint="/write"):
    """POSTs the lines of `path` to 127.0.0.1:port in bodies of at most
    batch_bytes (cut after a '\\n'), over `connections` keep-alive
    connections at once. Returns {"posts", "bytes", "lines", "failed_posts",
    "failed_lines", "elapsed_s", "errors": [first few]}."""
    size = os.path.getsize(path)
    f = open(path, "rb")
    mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else None
    chunks = []
    off = 0
    while off < size:
        end = min(size, off + batch_bytes)
        if end < size:
            nl = mm.rfind(b"\n", off, end)
            end = nl + 1 if nl >= off else end
        chunks.append((off, end - off))
        off = end

    def body(i):
        o, n = chunks[i]
        b = mm[o:o + n]
        return b, b.count(b"\n")

    st = post_bodies(port, len(chunks), body, connections, endpoint,
                     {"Content-Type": "text/plain"})
    if mm:
        mm.close()
    f.close()
    return st


def post_bodies(port, n, body, connections, endpoint, headers):
    """POSTs body(i) -> (bytes, points) for i in range(n) to 127.0.0.1:port,
    each once, over `connections` keep-alive connections at once. Returns
    {"posts", "bytes", "lines", "failed_posts", "failed_lines", "elapsed_s",
    "errors": [first few]}."""
    lock = threading.Lock()
    st = {"next": 0, "posts": 0, "bytes": 0, "lines": 0, "failed_posts": 0, "failed_lines": 0,
          "errors": []}

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            while True:
                with lock:
                    i = st["next"]
                    st["next"] += 1
                if i >= n:
                    return
                data, nlines = body(i)
                try:
                    conn.request("POST", endpoint, body=data, headers=headers)
                    resp = conn.getresponse()
                    msg = resp.read()
                    ok = 200 <= resp.status < 300
                    err = None if ok else f"HTTP {resp.status}: {msg[:200]!r}"
                except (OSError, http.client.HTTPException) as e:
                    ok, err = False, str(e)
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                with lock:
                    st["posts"] += 1
                    st["bytes"] += len(data)
                    st["lines"] += nlines
                    if not ok:
                        st["failed_posts"] += 1
                        st["failed_lines"] += nlines
                        if len(st["errors"]) < 5:
                            st["errors"].append(err)
        finally:
            conn.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, connections))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    st["elapsed_s"] = time.monotonic() - t0
    del st["next"]
    return st


def run_peer(binary, work, transport, count, load_cmd=None, stream_file=None,
             http_batch_bytes=1 << 20, http_connections=4):
    """Sends `count` points to a fresh VictoriaMetrics over `transport` (tcp
    or udp: load_cmd gets --target appended; http: stream_file is POSTed)
    and measures it. Returns a dict of figures."""
    vm = VictoriaMetrics(binary, work)
    vm.start()
    try:
        pid = vm.proc.pid
        cpu0 = proc_cpu_s(pid)
        sampler = Sampler(vm.rows, period=0.1).start()
        done = threading.Event()
        out = {}

        def send():
            try:
                if transport == "http":
                    out["http"] = post_lines(vm.http_port, stream_file, http_batch_bytes,
                                             http_connections)
                else:
                    r = subprocess.run(load_cmd + ["--target", f"127.0.0.1:{vm.influx_port}"],
                                       capture_output=True, text=True)
                    out["load"] = _json_line(r.stdout)
                    if r.returncode != 0 or not out["load"]:
                        out["error"] = f"ringflow load failed ({r.returncode}): {r.stderr.strip()[:300]}"
            finally:
                done.set()

        t0 = time.monotonic()
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        rows, complete = wait_for(sampler.latest, count, done.is_set,
                                  udp_idle(vm.influx_port) if transport == "udp" else None)
        sender.join(600)
        sampler.stop()
        t_end = time.monotonic()
        cpu_s = proc_cpu_s(pid) - cpu0
        hwm = proc_status_kib(pid, "VmHWM")
        if out.get("error"):
            raise RuntimeError(out["error"])
        ctr = vm.counters()
        rows = ctr["rows"]
        ingest_s = time_reached(sampler.samples + [(t_end, rows)], t0, rows) or (t_end - t0)
        udp_drops = udp_socket_drops(vm.influx_port) if transport == "udp" else None
        unread = udp_socket_queue(vm.influx_port) if transport == "udp" else None
        flush_error = None
        try:
            vm.get("/internal/force_flush", 60)
        except OSError as e:
            flush_error = str(e)
        # Bytes on disk after a graceful stop: only then has everything
        # (in-memory parts, index) reached the data directory.
        vm.stop()
        disk_all = du_bytes(vm.data)
        disk = sum(du_bytes(os.path.join(vm.data, d)) for d in VM_DATA_DIRS)
        sender_info = out.get("http") or out.get("load") or {}
        send_s = sender_info.get("elapsed_s")
        res = {
            "system": "VictoriaMetrics",
            "version": version(binary),
            "transport": transport,
            "count": count,
            "sender": sender_info,
            "send_s": send_s,
            "rows": rows,
            "stored": rows,
            "complete": complete,
            "rows_missing": count - rows,
            "rows_invalid": ctr["invalid"],
            "read_errors": ctr["read_errors"],
            "udp_kernel_drops": udp_drops,
            "udp_unread_bytes_at_stop": unread,
            "ingest_s": ingest_s,
            "ingest_rows_per_s": rows / ingest_s if ingest_s else None,
            "disk_bytes": disk,
            "disk_bytes_all": disk_all,
            "vm_data_size_bytes": ctr["data_size"],
            "bytes_per_point": disk / rows if rows else None,
            "cpu_s": cpu_s,
            "cpu_s_per_m": cpu_s / (rows / 1e6) if rows else None,
            "peak_rss_mib": hwm / 1024 if hwm else None,
        }
        if flush_error:
            res["warning"] = f"force_flush failed: {flush_error}"
        if transport == "http":
            res["http_batch_bytes"] = http_batch_bytes
            res["http_connections"] = http_connections
            if sender_info.get("failed_posts"):
                res["warning"] = (f"{sender_info['failed_posts']} POSTs failed "
                                  f"({sender_info['failed_lines']} lines): "
                                  f"{sender_info['errors'][:2]}")
        return res
    finally:
        vm.stop()


def _json_line(text):
    for line in reversed((text or "").strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    return None
