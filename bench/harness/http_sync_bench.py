#!/usr/bin/env python3
"""What sync=true costs an HTTP writer: requests/s of InfluxDB /write requests
into a real ringflowd, with and without sync, in one run.

Each of --conns keep-alive connections sends --requests requests of --lines
points (new series per request, so no block is cut early by an out-of-order
point), one at a time (a sync writer waits for each answer), in turn without
and with sync for --rounds rounds. Prints requests/s for each round and the
medians, min and max. The daemon stores on the --dir file system: what sync
waits for is that disk's fdatasync.

  python3 bench/harness/http_sync_bench.py --ringflowd build/daemon/ringflowd
"""
import argparse
import os
import socket
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine  # noqa: E402


def body_of(conn, k, lines, t0):
    return "".join(f"syncbench,c={conn},s={k * lines + i} v={i} {t0}\n"
                   for i in range(lines)).encode()


def writer(port, target, conn, requests, lines, t0, out, idx):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(30)
    ok = 0
    buf = b""
    for k in range(requests):
        body = body_of(conn, k, lines, t0)
        s.sendall(f"POST {target} HTTP/1.1\r\nHost: b\r\nContent-Length: {len(body)}\r\n\r\n"
                  .encode() + body)
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                raise RuntimeError("connection closed")
            buf += chunk
        head, buf = buf.split(b"\r\n\r\n", 1)
        ok += head.startswith(b"HTTP/1.1 204")
    s.close()
    out[idx] = ok


def run_once(port, target, conns, requests, lines, t0, base):
    out = [0] * conns
    threads = [threading.Thread(target=writer,
                                args=(port, target, base + c, requests, lines, t0, out, c))
               for c in range(conns)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - start
    if sum(out) != conns * requests:
        raise RuntimeError(f"{target}: {sum(out)} of {conns * requests} answered 204")
    return conns * requests / wall


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ringflowd", required=True)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--requests", type=int, default=200, help="per connection and round")
    ap.add_argument("--lines", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dir", default=None, help="where the store goes (default: a temp dir)")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="rf-sync-bench-", dir=a.dir)
    port = engine.free_port(socket.SOCK_STREAM)
    cfg = os.path.join(work, "bench.yaml")
    with open(cfg, "w") as f:
        f.write(f"engine: {{workers: {a.workers}, data_dir: {work}/data, run_dir: {work}/run}}\n"
                f"listeners:\n  - {{name: web, transport: tcp, protocol: http, port: {port}}}\n"
                "stats: {prometheus: {enabled: false}}\n"
                "storage: {block_max_age: 10m}\n")
    d = engine.Daemon(a.ringflowd, cfg, os.path.join(work, "ringflowd.log"))
    d.start()
    t0 = int(time.time()) - 60
    rates = {"plain": [], "sync": []}
    try:
        base = 0
        for r in range(a.rounds):
            for name, target in (("plain", "/write?db=b&precision=s"),
                                 ("sync", "/write?db=b&precision=s&sync=true")):
                rate = run_once(port, target, a.conns, a.requests, a.lines, t0, base)
                base += a.conns
                rates[name].append(rate)
                print(f"round {r} {name}: {rate:.0f} requests/s", flush=True)
    finally:
        d.stop()
    for name, v in rates.items():
        print(f"{name}: median {statistics.median(v):.0f} requests/s "
              f"(min {min(v):.0f}, max {max(v):.0f}; {a.conns} connections, "
              f"{a.lines} points a request)")
    ratios = [s / p for s, p in zip(rates["sync"], rates["plain"])]
    print(f"sync/plain: median {statistics.median(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f})")


if __name__ == "__main__":
    main()
