"""Writes points to ringflowd with the Python `influxdb` client (Debian
python3-influxdb), over HTTP, as an application would: ping, write_points in
three precisions (the client converts), a batch with a tag the client adds,
and a gzip'd write. Prints what it was told so the test can compare.

With a third argument `restart` (the daemon was restarted on the same store)
it only writes a value of another type to a field written before, which
InfluxDB refuses as a field type conflict, and a good point.

usage: influx_python.py PORT T0_SECONDS [restart]"""
import sys

from influxdb import InfluxDBClient

port = int(sys.argv[1])
t0 = int(sys.argv[2])

client = InfluxDBClient(host="127.0.0.1", port=port, database="pydb", timeout=5, retries=1)
version = client.ping()
print("ping", version)


def refused(what, points):
    """Writes points that the server must refuse; prints its answer."""
    try:
        client.write_points(points, time_precision="s")
        print(what, "accepted")
    except Exception as e:  # InfluxDBClientError
        print(what, "refused:", getattr(e, "code", "?"), e)


if len(sys.argv) > 3 and sys.argv[3] == "restart":
    # usage was a float before the restart: an integer (the client writes
    # Python ints as "8i") and a string are conflicts, a float is fine.
    tags = {"host": "h 1", "dc": "eu,west"}
    refused("int after restart", [{"measurement": "py_cpu", "tags": tags, "time": t0 + 120,
                                   "fields": {"usage": 7}}])
    refused("string after restart", [{"measurement": "py_cpu", "tags": tags, "time": t0 + 120,
                                      "fields": {"usage": "x"}}])
    assert client.write_points([{"measurement": "py_cpu", "tags": tags, "time": t0 + 180,
                                 "fields": {"usage": 1.5}}], time_precision="s")
    print("done")
    sys.exit(0)

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

# String fields, as the client quotes and escapes them.
assert client.write_points([{"measurement": "py_str", "time": t0, "fields": {
    "say": 'say "hi"', "path": "C:\\tmp\\x", "utf8": "caf\u00e9 \u20ac", "csv": "a,b;c=d e"}}],
    time_precision="s")

# A value of another type than the field's first one: refused, as InfluxDB does.
refused("conflict", [{"measurement": "py_cpu", "tags": {"host": "h 1", "dc": "eu,west"},
                      "time": t0 + 30, "fields": {"usage": True}}])

# A bad point: the server answers 400 and the client raises with its message.
try:
    client.write(["py_bad v=oops"], params={"db": "pydb"}, protocol="line")
    print("bad accepted")
except Exception as e:  # InfluxDBClientError
    print("bad refused:", getattr(e, "code", "?"), e)
print("done")
