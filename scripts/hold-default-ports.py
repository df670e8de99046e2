#!/usr/bin/env python3
"""Holds the ports a ringflowd on its defaults (and the tools around it) would
bind, so that tests can be checked to use only ports of their own:

    scripts/hold-default-ports.py & holder=$!
    meson test -C build --suite daemon ...     # must pass as if nothing held them
    kill $holder

UDP and TCP 8089 (line protocol), 8125 (StatsD), 2003 (Graphite); TCP 9273
(Prometheus), 8086 (InfluxDB), 4222 (NATS); UDP 25826 (collectd). Bound on
127.0.0.1 and 0.0.0.0 where it can (either makes a loopback bind of the same
port fail). A port another process already holds is held all the same and
is reported. Runs until it is killed."""
import signal
import socket
import sys

PORTS = [("udp", 8089), ("tcp", 8089), ("udp", 8125), ("tcp", 8125), ("udp", 2003),
         ("tcp", 2003), ("tcp", 9273), ("tcp", 8086), ("udp", 25826), ("tcp", 4222)]

held = []
for proto, port in PORTS:
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    s = socket.socket(socket.AF_INET, kind)
    try:
        s.bind(("0.0.0.0", port))
        if kind == socket.SOCK_STREAM:
            s.listen(16)
        held.append(s)
        print(f"holding {proto} {port}", flush=True)
    except OSError as e:
        s.close()
        print(f"{proto} {port}: {e.strerror} (held by another process)", flush=True)
print("ready", flush=True)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
signal.pause()
