#!/usr/bin/env bash
# The soak: ringflowd under mixed load for a long time, sampled once per
# interval, so that a slow leak, a creeping latency or a counter that should
# stay still shows up as a line on a plot.
#
# Usage: scripts/soak.sh [MINUTES] [--seconds S] [--interval S] [--build-dir DIR]
#                        [--rate N] [--out DIR] [--keep]
#   MINUTES        how long the load runs (default 30; fractions allowed)
#   --seconds S    the same in seconds (overrides MINUTES; the CI test uses 60)
#   --interval S   sampling interval (default 10 s; 2 s when the run is under 5 min)
#   --build-dir    where ringflowd and ringflow are (default ./build; built
#                  when missing; RF_SKIP_BUILD=1 uses it as it is)
#   --rate N       total offered events/s, split over four streams (default 60000)
#   --out DIR      results directory (default ./soak-results)
#   --keep         keep the temporary work dir (configs, daemon log, store)
#
# The load: `ringflow load` over influx UDP (with 0.1% rf_probe lines routed
# down the critical path), influx TCP, StatsD UDP and Graphite TCP at once,
# into a daemon that stores everything and runs an aggregation and an alert
# rule. Every interval it records the daemon's RSS, open fds, events processed
# and dropped by place, and the critical-path latency percentiles from
# `show latency` (these are cumulative histograms since start).
#
# Output: DIR/soak.csv, DIR/soak.png (gnuplot, when installed), DIR/summary.txt.
# Exit status: 0 when the daemon ran to the end, exited 0 on SIGTERM, its fd
# count at the end is within 4 of the count after warm-up and its RSS at the
# end is below 1.5 x (RSS after warm-up) + 64 MiB; 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

minutes=30
seconds=""
interval=""
build=build
rate=60000
out=soak-results
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --interval) interval="$2"; shift 2 ;;
    --build-dir) build="$2"; shift 2 ;;
    --rate) rate="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) minutes="$1"; shift ;;
  esac
done
[ -n "$seconds" ] || seconds=$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 }')
if [ -z "$interval" ]; then
  if [ "$seconds" -lt 300 ]; then interval=2; else interval=10; fi
fi

if [ "${RF_SKIP_BUILD:-0}" != 1 ] && [ ! -x "$build/daemon/ringflowd" ]; then
  [ -f "$build/build.ninja" ] || meson setup "$build" >/dev/null
  ninja -C "$build" daemon/ringflowd tools/ringflow >/dev/null
fi
ringflowd=$root/$build/daemon/ringflowd
ringflow=$root/$build/tools/ringflow
[ -x "$ringflowd" ] || ringflowd=$build/daemon/ringflowd
[ -x "$ringflow" ] || ringflow=$build/tools/ringflow
mkdir -p "$out"
out=$(cd "$out" && pwd)

work=$(mktemp -d /tmp/rf-soak-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "${daemon:-}" ] && kill -9 "$daemon" 2>/dev/null || true
  if [ $keep -eq 0 ]; then rm -rf "$work"; else echo "work dir kept: $work"; fi
}
trap cleanup EXIT

# Four consecutive free ports (UDP and TCP).
port_free() { ! ss -Htuln "sport = :$1" 2>/dev/null | grep -q .; }
for _ in $(seq 100); do
  base=$((20000 + RANDOM % 20000))
  ok=1
  for i in 0 1 2 3; do port_free $((base + i)) || ok=0; done
  [ $ok -eq 1 ] && break
done

cat > "$work/soak.yaml" <<EOF
engine:
  workers: 2
  data_dir: ./data
  run_dir: ./run
listeners:
  - {name: lp-udp, transport: udp, protocol: influx_line, port: $base, rcvbuf: 8MiB}
  - {name: lp-tcp, transport: tcp, protocol: influx_line, port: $base}
  - {name: sd-udp, transport: udp, protocol: statsd, port: $((base + 1)), rcvbuf: 8MiB}
  - {name: gr-tcp, transport: tcp, protocol: graphite, port: $((base + 2))}
stats:
  prometheus: {enabled: true, listen: 127.0.0.1:$((base + 3))}
storage:
  retention: {max_age: 1h, max_bytes: 512MiB, interval: 30s}
pipeline:
  sinks:
    - {name: store, type: store}
    - {name: probes, type: json, path: /dev/null}
  routes:
    - {name: probes, subject: "telemetry.rf_probe.>", sinks: [probes], class: critical}
    - {name: data, subject: "telemetry.>", sinks: [store]}
    - {name: aggregates, subject: "aggregate.>", sinks: [store]}
    - {name: alerts, subject: "alert.>", sinks: [probes], class: critical}
  aggregations:
    - {measurement: load, field: f0, window: 10s, functions: [avg, max, p99]}
  alerts:
    - {name: soak_high, type: threshold, match: {measurement: load, field: f0},
       op: ">", fire: 1000000, resolve: 900000}
EOF

cd "$work"
"$ringflowd" --config soak.yaml 2> daemon.log &
daemon=$!
for _ in $(seq 100); do
  grep -q 'msg="running:' daemon.log && break
  kill -0 "$daemon" 2>/dev/null || break
  sleep 0.1
done
grep -q 'msg="running:' daemon.log || { echo "soak: ringflowd did not start"; cat daemon.log; exit 1; }

q=$((rate / 4))
load() { "$ringflow" load --quiet --duration "$seconds" "$@" > /dev/null 2>&1 & pids+=($!); }
load --target 127.0.0.1:$base --transport udp --protocol influx --rate $q --series 2000 \
  --critical 0.001 --sockets 4 --seed 1
load --target 127.0.0.1:$base --transport tcp --protocol influx --rate $q --series 2000 \
  --fields 2 --seed 2
load --target 127.0.0.1:$((base + 1)) --transport udp --protocol statsd --rate $q --series 500 \
  --seed 3
load --target 127.0.0.1:$((base + 2)) --transport tcp --protocol graphite --rate $q \
  --series 500 --timestamps --seed 4

csv=$out/soak.csv
echo "t_s,rss_kib,fds,processed,events_per_s,kernel_drops,ring_drops,rejected,unknown_series,store_dropped,crit_count,p50_us,p99_us,p999_us,max_us" > "$csv"
sample() { # elapsed seconds
  local rss fds stats
  rss=$(awk '/^VmRSS:/ {print $2}' /proc/$daemon/status 2>/dev/null || echo 0)
  fds=$(ls /proc/$daemon/fd 2>/dev/null | wc -l)
  stats=$("$ringflow" stat --socket ./run/ringflow.sock --json 2>/dev/null || echo '{}')
  python3 - "$1" "$rss" "$fds" "$stats" >> "$csv" <<'PY'
import json, sys
t, rss, fds, raw = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
try:
    d = json.loads(raw)
except ValueError:
    d = {}
def s(table, col):
    return sum(r.get(col, 0) for r in d.get(table, []))
lat = [r for r in d.get("latency", []) if r.get("histogram") == "ringflow_critical_path_seconds"]
crit = sum(r.get("count", 0) for r in lat)
def mx(col):
    return max([r.get(col, 0) for r in lat] or [0])
print(",".join(str(x) for x in [
    t, rss, fds, s("stages", "processed"), round(sum(r.get("events_per_s", 0) for r in d.get("workers", []))),
    s("listeners", "kernel_drops"), s("workers", "dropped_ring_full"), s("listeners", "rejected"),
    s("stages", "unknown_series"),
    s("storage_shards", "dropped_backpressure") + s("storage_shards", "dropped_io_error"),
    crit, mx("p50_us"), mx("p99_us"), mx("p999_us"), mx("max_us")]))
PY
}

echo "soak: ${seconds}s of mixed load at ${rate} events/s offered, sampled every ${interval}s; work dir $work"
start=$(date +%s)
alive=1
while :; do
  now=$(date +%s)
  el=$((now - start))
  if ! kill -0 "$daemon" 2>/dev/null; then
    alive=0
    echo "soak: ringflowd ended at ${el}s; the end of its log:"
    tail -5 daemon.log
    break
  fi
  sample "$el"
  [ "$el" -ge "$seconds" ] && break
  sleep "$interval"
done
for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
pids=()
sleep 1
[ $alive -eq 1 ] && sample "$(( $(date +%s) - start ))"

rc=0
if [ $alive -eq 1 ]; then
  kill -TERM "$daemon"
  wait "$daemon" || rc=$?
else
  wait "$daemon" || rc=$?
fi
daemon=""

# Warm-up reference: the sample nearest 10% of the run (at least the 2nd).
summary=$(python3 - "$csv" "$rc" "$alive" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
rc, alive = int(sys.argv[2]), int(sys.argv[3])
if len(rows) < 3:
    print("too few samples"); print("VERDICT fail"); sys.exit()
ref = rows[max(1, len(rows) // 10)]
last = rows[-1]
rss0, rss1 = int(ref["rss_kib"]), int(last["rss_kib"])
fd0, fd1 = int(ref["fds"]), int(last["fds"])
rss_max = max(int(r["rss_kib"]) for r in rows)
ok = alive == 1 and rc == 0 and fd1 <= fd0 + 4 and rss1 < 1.5 * rss0 + 64 * 1024
print(f"samples {len(rows)}, duration {last['t_s']} s")
print(f"rss after warm-up {rss0} KiB, at end {rss1} KiB, max {rss_max} KiB")
print(f"fds after warm-up {fd0}, at end {fd1}")
print(f"processed {last['processed']}; kernel_drops {last['kernel_drops']}, ring_drops {last['ring_drops']}, "
      f"rejected {last['rejected']}, unknown_series {last['unknown_series']}, store_dropped {last['store_dropped']}")
print(f"critical path (cumulative): {last['crit_count']} events, p50 {last['p50_us']} us, "
      f"p99 {last['p99_us']} us, p99.9 {last['p999_us']} us, max {last['max_us']} us")
print(f"daemon exit status {rc}")
print("VERDICT " + ("pass" if ok else "fail"))
PY
)
echo "$summary" | tee "$out/summary.txt"

if command -v gnuplot > /dev/null; then
  gnuplot <<EOF || echo "soak: gnuplot failed (the CSV is complete)"
set terminal pngcairo size 1200,900
set output "$out/soak.png"
set datafile separator ","
set key autotitle columnhead left top
set multiplot layout 3,1 title "ringflow soak: ${seconds}s at ${rate} events/s offered"
set xlabel "seconds"
set ylabel "RSS (MiB)"
plot "$csv" using 1:(\$2/1024) with lines lw 2 title "RSS"
set ylabel "open fds"
plot "$csv" using 1:3 with lines lw 2 title "fds"
set ylabel "critical path (us)"
set logscale y
plot "$csv" using 1:12 with lines title "p50", "$csv" using 1:13 with lines title "p99", \
     "$csv" using 1:14 with lines title "p99.9"
unset multiplot
EOF
fi
echo "soak: results in $out (soak.csv, soak.png, summary.txt)"
echo "$summary" | grep -q "VERDICT pass"
