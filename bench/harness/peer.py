"""The peer: VictoriaMetrics (Debian package `victoria-metrics`), fed the same
generated stream as ringflow, for ingest rate and bytes per point on disk.

It runs single-node from a temporary -storageDataPath, with its InfluxDB line
protocol listener (-influxListenAddr, UDP and TCP) and HTTP API on free
loopback ports. Rows ingested come from its own /metrics
(vm_rows_inserted_total{type="influx"}); bytes on disk are measured after
/internal/force_flush as the allocated size of the data directory (data +
index + metadata: what the store really costs).
"""
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.request

from engine import du_bytes, free_port, proc_cpu_s, proc_status_kib

_DATA_SIZE = re.compile(r'^vm_data_size_bytes\{[^}]*\}\s+(\d+(?:\.\d+)?(?:e[+-]?\d+)?)', re.M)
_ROWS = re.compile(r'^vm_rows_inserted_total\{type="influx"\}\s+(\d+(?:\.\d+)?(?:e[+-]?\d+)?)',
                   re.M)


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

    def start(self, timeout=30):
        os.makedirs(self.data, exist_ok=True)
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [self.binary, f"-storageDataPath={self.data}",
             f"-influxListenAddr=127.0.0.1:{self.influx_port}",
             f"-httpListenAddr=127.0.0.1:{self.http_port}", "-retentionPeriod=100y",
             "-loggerLevel=WARN"],
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

    def rows(self):
        m = _ROWS.search(self.get("/metrics"))
        return int(float(m.group(1))) if m else 0

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


class RowSampler:
    """Samples a counter every `period` s so the time the last row arrived is
    known (ingest can lag the sender: its rate is rows / time to ingest)."""

    def __init__(self, read, period=0.25):
        self.read = read
        self.period = period
        self.samples = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic(), self.read()))
            except OSError:
                pass
            self._stop.wait(self.period)

    def start(self):
        self._t.start()
        return self

    def stop(self):
        self._stop.set()
        self._t.join(5)


def run_peer(binary, work, load_cmd, settle_timeout=60.0):
    """Sends the stream (load_cmd gets --target appended) to VictoriaMetrics
    over TCP and measures it. Returns a dict of figures."""
    vm = VictoriaMetrics(binary, work)
    vm.start()
    try:
        pid = vm.proc.pid
        cpu0 = proc_cpu_s(pid)
        sampler = RowSampler(vm.rows).start()
        t0 = time.monotonic()
        r = subprocess.run(load_cmd + ["--target", f"127.0.0.1:{vm.influx_port}"],
                           capture_output=True, text=True)
        load = _json_line(r.stdout)
        # Wait until the row count stops moving.
        deadline = time.monotonic() + settle_timeout
        last, stable_since = -1, None
        while time.monotonic() < deadline:
            cur = vm.rows()
            if cur != last:
                last, stable_since = cur, time.monotonic()
            elif time.monotonic() - stable_since >= 1.5:
                break
            time.sleep(0.25)
        sampler.stop()
        rows = vm.rows()
        t_last = t0
        for t, v in sampler.samples:
            if v >= rows:
                t_last = t
                break
        else:
            t_last = time.monotonic()
        # TCP back-pressure paces the sender to what the peer reads, so the
        # generator's elapsed time is the ingest time once every row it sent
        # is counted; rows becoming visible later (the peer's own buffering)
        # is reported beside it, not charged.
        load_s = load.get("elapsed_s", 0) if load else 0
        visible_s = t_last - t0
        ingest_s = max(load_s, 1e-9)
        cpu_s = proc_cpu_s(pid) - cpu0
        hwm = proc_status_kib(pid, "VmHWM")
        data_size = None
        try:
            vm.get("/internal/force_flush", 30)
            data_size = sum(int(float(v)) for v in _DATA_SIZE.findall(vm.get("/metrics")))
        except OSError as e:
            print(f"harness: victoria-metrics force_flush failed: {e}")
        # Bytes on disk after a graceful stop: only then has everything
        # (in-memory parts, index) reached the data directory.
        vm.stop()
        disk = du_bytes(vm.data)
        sent = load.get("lines") if load else None
        return {
            "system": "VictoriaMetrics",
            "version": version(binary),
            "load": load,
            "rows": rows,
            "rows_missing": (sent - rows) if sent is not None else None,
            "ingest_s": ingest_s,
            "visible_after_s": visible_s,
            "ingest_rows_per_s": rows / ingest_s,
            "disk_bytes": disk,
            "vm_data_size_bytes": data_size,
            "bytes_per_point": disk / rows if rows else None,
            "cpu_s": cpu_s,
            "cpu_s_per_m": cpu_s / (rows / 1e6) if rows else None,
            "peak_rss_mib": hwm / 1024 if hwm else None,
        }
    finally:
        vm.stop()


def _json_line(text):
    import json
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    return None
