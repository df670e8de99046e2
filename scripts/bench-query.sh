#!/usr/bin/env bash
# The query benchmark side by side with VictoriaMetrics (issue 18,
# "Performance"; docs/PERFORMANCE.md "Queries: ringflow and VictoriaMetrics"):
# one hour of 10,000 series at a 15 s interval, sent as the same line
# protocol /write bodies to a fresh ringflowd and a fresh VictoriaMetrics
# (Debian victoria-metrics, on loopback ports and a data directory of its
# own), each then stopped and started again so both read from their
# storage; then the same query_range expressions (the raw series, a
# `sum by (grp)`, a `sum by (grp) (rate(...[5m]))`) over the hour at a 15 s
# step against both, alternated, --runs times each. Checks first that both
# answer the same (label sets, timestamps, values within 1e-9; rate is not
# compared: MetricsQL does not extrapolate). Prints each run and a table of
# median latency (min–max), peak RSS of the serving process during the
# query (VmHWM, reset before each query) and its growth, and CPU seconds.
# Exits 1 when the answers differ. Not in the test suite (about 2 minutes).
#
# Usage: scripts/bench-query.sh [--build-dir DIR] [--runs N] [--series N]
#                               [--json FILE] [--keep]
set -euo pipefail
cd "$(dirname "$0")/.."
build=build
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build="$2"; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done
[ -x "$build/daemon/ringflowd" ] || { echo "bench-query.sh: no $build/daemon/ringflowd (ninja -C $build)" >&2; exit 2; }
exec python3 bench/harness/query_bench.py --build-dir "$build" "${args[@]+"${args[@]}"}"
