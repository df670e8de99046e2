"""Critical-path latency: receives the engine's critical output and turns
rf_probe lines into latencies.

`ringflow load --critical F` replaces a fraction F of lines by
    rf_probe,gen=ringflow-load seq=<n>i,sent_mono_ns=<CLOCK_MONOTONIC ns>i
The harness routes rf_probe to a UDP line-protocol sink (stages/sink), which
writes one line per field:
    rf_probe,gen=ringflow-load sent_mono_ns=<v>i <event time>
Latency is CLOCK_MONOTONIC at receipt here minus sent_mono_ns: generator to
engine to sink to this socket, on one host. Python's time.monotonic_ns() is
CLOCK_MONOTONIC on Linux, the clock the generator reads.
"""
import re
import socket
import threading
import time

_SENT = re.compile(rb"sent_mono_ns=(-?\d+)i?")
_SEQ = re.compile(rb"rf_probe[^ ]* seq=(\d+)i?")


class ProbeReceiver:
    def __init__(self, port=0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
        except OSError:
            pass
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.latencies_ns = []
        self.sent_ns = []  # when each probe was sent (same order as latencies_ns)
        self.seqs = 0
        self.datagrams = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            now = time.monotonic_ns()
            self.datagrams += 1
            for m in _SENT.finditer(data):
                sent = int(m.group(1))
                self.latencies_ns.append(now - sent)
                self.sent_ns.append(sent)
            self.seqs += len(_SEQ.findall(data))

    def stop(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()

    def reset(self):
        self.latencies_ns = []
        self.sent_ns = []
        self.seqs = 0
        self.datagrams = 0


def percentile(sorted_values, q):
    """Nearest-rank percentile (q in 0..100) of an ascending list."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, int(-(-q * len(sorted_values) // 100)) - 1))
    return sorted_values[k]


def summarize(latencies_ns):
    v = sorted(latencies_ns)
    if not v:
        return None
    ms = lambda ns: ns / 1e6
    return {
        "samples": len(v),
        "p50_ms": ms(percentile(v, 50)),
        "p99_ms": ms(percentile(v, 99)),
        "p999_ms": ms(percentile(v, 99.9)),
        "max_ms": ms(v[-1]),
    }


class AlertProbe:
    """The issue's critical path timed from outside: `sockets` UDP client
    sockets send to a `class: critical` listener at `rate` lines/s, each
    socket a series of its own (rf_probe,sock=K v=...), alternately above
    and below a threshold rule's limit (`> 0`), so that every probe makes
    the rule fire or resolve. The alert datagram (routed `alert.>` class
    critical to a UDP line-protocol sink at `self.port`) carries the
    probe's value, which is unique, so it is matched to its send time.
    Several source ports make SO_REUSEPORT land some probes on a worker
    that does not own the series (the crossing case)."""

    def __init__(self, target_port, rate=200.0, sockets=4):
        self.rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rx.bind(("127.0.0.1", 0))
        self.rx.settimeout(0.2)
        self.port = self.rx.getsockname()[1]
        self.target_port = target_port
        self.rate = rate
        self.nsockets = sockets
        self.latencies_ns = []
        self._sent_at = {}
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._receive, daemon=True),
                         threading.Thread(target=self._send, daemon=True)]

    def start(self):
        for t in self._threads:
            t.start()
        return self

    def _receive(self):
        while not self._stop.is_set():
            try:
                data = self.rx.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            now = time.monotonic_ns()
            for tok in data.split():
                if b"value=" not in tok:
                    continue
                for kv in tok.split(b","):  # ...,value=<v>,series=...
                    if kv.startswith(b"value="):
                        t = self._sent_at.pop(int(float(kv[6:])), None)
                        if t is not None:
                            self.latencies_ns.append(now - t)

    def _send(self):
        socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(self.nsockets)]
        period = 1.0 / self.rate
        nxt = time.monotonic()
        seq = 0
        while not self._stop.is_set():
            nxt += period
            dt = nxt - time.monotonic()
            if dt > 0:
                time.sleep(dt)
            k = seq % len(socks)
            # Per socket: fire (v > 0), then resolve (v <= 0), ...
            v = seq + 1 if (seq // len(socks)) % 2 == 0 else -(seq + 1)
            self._sent_at[v] = time.monotonic_ns()
            socks[k].sendto(f"rf_probe,sock={k} v={v}\n".encode(), ("127.0.0.1", self.target_port))
            seq += 1
        for s in socks:
            s.close()

    def reset(self):
        self.latencies_ns = []

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(2)
        self.rx.close()
