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
