"""Writes points to ringflowd with the Python `influxdb` client (Debian
python3-influxdb), over HTTP, as an application would: ping, write_points in
three precisions (the client converts), a batch with a tag the client adds,
and a gzip'd write. Prints what it was told so the test can compare.

usage: influx_python.py PORT T0_SECONDS"""
import sys

from influxdb import InfluxDBClient

port = int(sys.argv[1])
t0 = int(sys.argv[2])

client = InfluxDBClient(host="127.0.0.1", port=port, database="pydb", timeout=5, retries=1)
version = client.ping()
print("ping", version)

points = [
    {"measurement": "py_cpu", "tags": {"host": "h 1", "dc": "eu,west"},
     "time": t0, "fields": {"usage": 12.5, "cores": 8}},
    {"measurement": "py_cpu", "tags": {"host": "h 1", "dc": "eu,west"},
     "time": t0 + 60, "fields": {"usage": 99.0, "cores": 8}},
]
assert client.write_points(points, time_precision="s")
ms = [{"measurement": "py_mem", "tags": {"host": "h2"}, "time": t0 * 1000 + 5,
       "fields": {"free": -3.25}}]
assert client.write_points(ms, time_precision="ms")
# The client's own default tags, a batch size, and nanoseconds.
ns = [{"measurement": "py_disk", "time": t0 * 10**9 + i, "fields": {"n": i}} for i in range(7)]
assert client.write_points(ns, time_precision="n", tags={"via": "batch"}, batch_size=3)

gz = InfluxDBClient(host="127.0.0.1", port=port, database="pydb", gzip=True, timeout=5)
assert gz.write_points([{"measurement": "py_gzip", "time": t0, "fields": {"v": 0.1}}],
                       time_precision="s")

# A bad point: the server answers 400 and the client raises with its message.
try:
    client.write(["py_bad v=oops"], params={"db": "pydb"}, protocol="line")
    print("bad accepted")
except Exception as e:  # InfluxDBClientError
    print("bad refused:", getattr(e, "code", "?"), e)
print("done")
