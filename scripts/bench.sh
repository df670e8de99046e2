#!/usr/bin/env bash
# Runs every micro-benchmark of ringflow-bench (Google Benchmark through the C
# shim, bench/) and writes the results as JSON. Areas, by name prefix: ring/,
# parse/ (parsers; parse/frame TCP line framing; parse/intern series-key
# interning), encode/ and decode/ (block encoders; encode/zstd zstd levels),
# stages/ (batch, aggregate, sketch, series, route, correlate, alert; stages/sink
# sinks), store/, stats/, dpdk/ (with DPDK). List them: ringflow-bench
# --benchmark_list_tests.
#
# Usage: scripts/bench.sh [--build-dir DIR] [--out FILE] [--quick] [-- BENCHMARK-ARGS...]
#   --build-dir DIR   meson build directory (default ./build; configured when missing)
#   --out FILE        JSON output (default bench/results/bench-<UTC timestamp>.json)
#   --quick           short runs (--benchmark_min_time=0.05), no repetitions
#   after --           passed to ringflow-bench as is (e.g. --benchmark_filter=ring)
# By default: 5 repetitions, aggregates only (mean, median, stddev, cv), so
# the JSON carries the spread. The console table is printed too.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build
out=""
quick=0
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --quick) quick=1; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" --buildtype=release >/dev/null
fi
ninja -C "$build" bench/ringflow-bench >/dev/null
bin="$build/bench/ringflow-bench"
[ -x "$bin" ] || { echo "bench.sh: $bin was not built (is Google Benchmark installed? scripts/install-deps.sh)" >&2; exit 1; }

if [ -z "$out" ]; then
  mkdir -p bench/results
  out="bench/results/bench-$(date -u +%Y%m%dT%H%M%SZ).json"
fi
mkdir -p "$(dirname "$out")"

if [ "$quick" = 1 ]; then
  runs=(--benchmark_min_time=0.05)
else
  runs=(--benchmark_repetitions=5 --benchmark_report_aggregates_only=true)
fi
"$bin" "${runs[@]}" --benchmark_out="$out" --benchmark_out_format=json "${extra[@]}"
echo "bench.sh: wrote $out" >&2
