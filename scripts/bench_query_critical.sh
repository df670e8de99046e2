#!/usr/bin/env bash
# The critical path while queries read the in-memory heads (issue 18,
# docs/PERFORMANCE.md "Queries over the heads"): one ringflowd (1 worker on
# CPU 1), `ringflow load` on CPU 0 at 50 k events/s over 10,000 series with
# 2 % probe lines routed class: critical, and the query API on an http
# listener. Runs alternate: A with no query, B with a loop of
# count({__name__=~"load.*"}) (every series' head copied each time) for the
# whole 5 s. Each run: clear-counters, 5 s of load, then `ringflow stat
# latency`'s ringflow_critical_path_seconds row. Prints one line per run and
# the median and range of p99 and p99.9 per side.
#
# Usage: scripts/bench_query_critical.sh [--build-dir DIR] [--runs N]
set -euo pipefail
cd "$(dirname "$0")/.."
build=build
runs=5
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "bench_query_critical.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
root=$(pwd)
rf="$root/$build/tools/ringflow"
dir=$(mktemp -d /tmp/rf-qcrit-XXXXXX)
udp=38189 http=38186 probes=39989
cat > "$dir/crit.yaml" <<YAML
engine: {workers: 1, cpus: [1]}
listeners:
  - {transport: udp, protocol: influx_line, port: $udp, rcvbuf: 8MiB}
  - {name: web, transport: tcp, protocol: http, port: $http}
stats: {prometheus: {enabled: false}}
storage: {block_max_age: 5m}
pipeline:
  sinks:
    - {name: store, type: store}
    - {name: probes, type: lp_udp, host: 127.0.0.1, port: $probes}
  routes:
    - {subject: "telemetry.>", sinks: [store]}
    - {subject: "telemetry.rf_probe.>", sinks: [probes], class: critical}
YAML
cd "$dir"
"$root/$build/daemon/ringflowd" -c crit.yaml > d.out 2> d.err &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
sleep 1.5
load() { taskset -c 0 "$rf" load --target 127.0.0.1:$udp --rate 50000 --duration "$1" --series 10000 --critical 0.02 --quiet > /dev/null; }
load 3 # warm-up: every series defined, heads filling
q='http://127.0.0.1:'$http'/api/v1/query?query=count(%7B__name__%3D~%22load.*%22%7D)'
: > a.txt; : > b.txt
for i in $(seq 1 "$runs"); do
  for side in a b; do
    "$rf" admin --socket ./run/ringflow-admin.sock clear-counters > /dev/null
    n=0
    if [ $side = b ]; then
      ( end=$((SECONDS + 5)); while [ $SECONDS -lt $end ]; do curl -s -o /dev/null "$q"; echo >> queries; done ) &
      qpid=$!
    fi
    load 5
    if [ $side = b ]; then wait $qpid; n=$(wc -l < queries); rm -f queries; fi
    row=$("$rf" stat --socket ./run/ringflow.sock latency | awk '$1 == "ringflow_critical_path_seconds"')
    echo "$row" | awk -v s=$side -v n=$n '{printf "%s queries=%d p50_us=%s p99_us=%s p999_us=%s max_us=%s\n", s, n, $4, $6, $7, $8}' | tee -a $side.txt
  done
done
for side in a b; do
  for f in p99_us p999_us; do
    sed -n "s/.* $f=\([0-9.]*\).*/\1/p" $side.txt | sort -g |
      awk -v s=$side -v f=$f '{v[NR]=$1} END {printf "%s %s: median %s, range %s..%s (%d runs)\n", s, f, v[int((NR+1)/2)], v[1], v[NR], NR}'
  done
done
