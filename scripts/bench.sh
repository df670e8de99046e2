#!/usr/bin/env bash
# Runs every micro-benchmark of ringflow-bench (Google Benchmark through the C
# shim, bench/) and writes the results as JSON. Areas, by name prefix: ring/
# (ring/rf, ring/rte throughput; ring/hop round-trip latency), parse/ (parsers;
# parse/frame TCP line framing; parse/intern series-key interning), encode/ and
# decode/ (block encoders; encode/zstd zstd levels), stages/ (batch, aggregate,
# sketch, series, route, correlate, alert; stages/sink sinks), store/, stats/,
# dpdk/ (with DPDK). List them: ringflow-bench --benchmark_list_tests.
#
# Usage: scripts/bench.sh [--build-dir DIR] [--out FILE] [--quick] [-- BENCHMARK-ARGS...]
#        scripts/bench.sh --compare REV [--new REV2] [--runs N] [--filter REGEX]
#                         [--out DIR] [-- BENCHMARK-ARGS...]
#   --build-dir DIR   meson build directory (default ./build; configured when missing)
#   --out FILE        JSON output (default bench/results/bench-<UTC timestamp>.json)
#   --quick           short runs (--benchmark_min_time=0.05), no repetitions
#   after --           passed to ringflow-bench as is (e.g. --benchmark_filter=ring)
# By default: 5 repetitions, aggregates only (mean, median, stddev, cv), so
# the JSON carries the spread. The console table is printed too.
#
# --compare REV: the effect of a change on a noisy machine. Builds ringflow-bench
# of REV (git archive) and of the working tree (or of --new REV2), each in a
# build directory of its own under the cache ($RF_BENCH_CACHE, default
# ~/.cache/ringflow/bench-compare; a revision's build is kept and reused), then
# runs the two binaries in turn N times (--runs, default 5; old-new, new-old,
# ...: each process run is a fresh start, and drift hits both sides alike) with
# --benchmark_filter=REGEX (--filter, default the hot path: our ring's
# throughput and hop latency, the parsers, routing, batching, alerts), and
# prints per benchmark the median of the per-pair ratios new/old with their
# min-max (scripts/bench_compare.py says which figure each benchmark is judged
# by). The run files and the table go to --out DIR (default
# bench/results/compare-<UTC timestamp>/), with the load average before and
# after.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build
out=""
quick=0
compare=""
compare_new=""
runs=5
filter='^(ring/(hop/)?rf/|parse/|stages/(route|batch|alert)/)'
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --quick) quick=1; shift ;;
    --compare) compare="$2"; shift 2 ;;
    --new) compare_new="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --filter) filter="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

bench_missing() {
  echo "bench.sh: $1 was not built (is Google Benchmark installed? scripts/install-deps.sh)" >&2
  exit 1
}

if [ -z "$compare" ]; then
  if [ -n "$compare_new" ]; then
    echo "bench.sh: --new goes with --compare (see --help)" >&2
    exit 2
  fi
  if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" --buildtype=release >/dev/null
  fi
  ninja -C "$build" bench/ringflow-bench >/dev/null
  bin="$build/bench/ringflow-bench"
  [ -x "$bin" ] || bench_missing "$bin"

  if [ -z "$out" ]; then
    mkdir -p bench/results
    out="bench/results/bench-$(date -u +%Y%m%dT%H%M%SZ).json"
  fi
  mkdir -p "$(dirname "$out")"

  if [ "$quick" = 1 ]; then
    reps=(--benchmark_min_time=0.05)
  else
    reps=(--benchmark_repetitions=5 --benchmark_report_aggregates_only=true)
  fi
  "$bin" "${reps[@]}" --benchmark_out="$out" --benchmark_out_format=json "${extra[@]}"
  echo "bench.sh: wrote $out" >&2
  exit 0
fi

# ---- --compare ----
case "$runs" in ''|*[!0-9]*|0) echo "bench.sh: --runs takes a count of 1 or more" >&2; exit 2 ;; esac
cache="${RF_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ringflow/bench-compare}"
mkdir -p "$cache"

# Builds ringflow-bench of revision $1 (a commit-ish) under the cache and
# prints the binary's path. The source is the revision's tracked files (git
# archive), so the working tree's state does not leak in.
build_rev() {
  local sha src dir
  sha=$(git rev-parse --verify "$1^{commit}") || { echo "bench.sh: no revision $1" >&2; return 1; }
  src="$cache/src-$sha" dir="$cache/build-$sha"
  if [ ! -f "$src/meson.build" ]; then
    rm -rf "$src.tmp" && mkdir -p "$src.tmp"
    git archive "$sha" | tar -x -C "$src.tmp"
    mv "$src.tmp" "$src"
  fi
  build_in "$src" "$dir"
}

# Configures (once) and builds ringflow-bench of source tree $1 in $2.
build_in() {
  if [ ! -f "$2/build.ninja" ]; then
    meson setup "$2" "$1" --buildtype=release >"$2.setup.log" 2>&1 ||
      { cat "$2.setup.log" >&2; return 1; }
  fi
  echo "bench.sh: building $1 in $2" >&2
  ninja -C "$2" bench/ringflow-bench >"$2.build.log" 2>&1 || { tail -30 "$2.build.log" >&2; return 1; }
  [ -x "$2/bench/ringflow-bench" ] || bench_missing "$2/bench/ringflow-bench"
  echo "$2/bench/ringflow-bench"
}

old_bin=$(build_rev "$compare")
if [ -n "$compare_new" ]; then
  new_bin=$(build_rev "$compare_new")
  new_label=$(git rev-parse --short "$compare_new")
else
  # The working tree, uncommitted changes included: one build directory per
  # checkout, kept between calls so that a second compare rebuilds little.
  top=$(pwd -P)
  new_bin=$(build_in "$top" "$cache/build-worktree-$(printf '%s' "$top" | cksum | cut -d' ' -f1)")
  new_label="working tree"
fi

if [ -z "$out" ]; then
  out="bench/results/compare-$(date -u +%Y%m%dT%H%M%SZ)"
fi
mkdir -p "$out"
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
{
  echo "old: $(git rev-parse --short "$compare") ($compare)   new: $new_label"
  echo "filter: $filter   runs: $runs   extra: ${extra[*]:-none}"
  echo "started $(date -u +%FT%TZ), load average $(loadavg)"
} >"$out/summary.txt"

run_one() { # side, run number
  local bin=$old_bin
  [ "$1" = new ] && bin=$new_bin
  echo "bench.sh: run $2/$runs $1 (load average $(loadavg))" >&2
  "$bin" --benchmark_filter="$filter" --benchmark_out="$out/$1-$2.json" \
    --benchmark_out_format=json "${extra[@]}" >"$out/$1-$2.txt" 2>&1 ||
    { echo "bench.sh: the $1 binary failed on run $2 (see $out/$1-$2.txt)" >&2; exit 1; }
}
old_files=() new_files=()
for i in $(seq 1 "$runs"); do
  # Alternating which side goes first keeps a steady drift from favouring one.
  if [ $((i % 2)) = 1 ]; then
    run_one old "$i"; run_one new "$i"
  else
    run_one new "$i"; run_one old "$i"
  fi
  old_files+=("$out/old-$i.json") new_files+=("$out/new-$i.json")
done
echo "finished $(date -u +%FT%TZ), load average $(loadavg)" >>"$out/summary.txt"
python3 scripts/bench_compare.py --old "${old_files[@]}" --new "${new_files[@]}" >>"$out/summary.txt"
cat "$out/summary.txt"
echo "bench.sh: wrote $out/summary.txt and the run files beside it" >&2
