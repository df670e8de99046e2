#!/usr/bin/env bash
# Runs every libFuzzer target of ringflow under ASan + UBSan.
#
#   scripts/fuzz.sh            # 30 s per target (the CI-sized smoke run)
#   scripts/fuzz.sh 600        # the long run: 10 min per target
#   scripts/fuzz.sh 60 influx  # one target (influx, statsd, graphite, framing, block_decode, segment, http, prom, promql)
#   scripts/fuzz.sh --build-dir /work/build-me-fuzz 300 framing   # in a build dir of your own
#
# It configures a clang build in build-fuzz/ (-Dfuzz=true; tests/fuzz/meson.build
# compiles the parsers into each target with -fsanitize=fuzzer,address,undefined),
# builds the targets and runs each for the given seconds on a working corpus in
# build-fuzz/fuzz-corpus/<target>, seeded from the checked-in
# tests/fuzz/corpus/<target>/ (which libFuzzer only reads). A crash, leak,
# sanitizer report or failed invariant leaves a reproducer in
# build-fuzz/fuzz-artifacts/ and makes the script exit non-zero; replay it with
#   build-fuzz/tests/fuzz/fuzz_<target> <reproducer>
# The build directory is --build-dir DIR, else $FUZZ_BUILD_DIR, else
# build-fuzz/ in the checkout; build-fuzz/ above stands for it. Engineers
# sharing one checkout each pass their own. FUZZ_JOBS: parallel workers per
# target (default 1).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
bdir="${FUZZ_BUILD_DIR:-$root/build-fuzz}"
if [ "${1:-}" = "--build-dir" ]; then
  [ -n "${2:-}" ] || { echo "fuzz.sh: --build-dir needs a directory"; exit 2; }
  bdir="$2"
  shift 2
fi
case "$bdir" in /*) ;; *) bdir="$PWD/$bdir" ;; esac
secs="${1:-30}"
only="${2:-}"
jobs="${FUZZ_JOBS:-1}"
targets=(influx statsd graphite collectd framing block_decode segment http prom promql)
[ -n "$only" ] && targets=("$only")

command -v clang >/dev/null || { echo "fuzz.sh: clang missing (scripts/install-deps.sh)"; exit 2; }
if [ ! -f "$bdir/build.ninja" ]; then
  CC=clang CXX=clang++ meson setup "$bdir" "$root" -Dfuzz=true -Dbench=disabled \
    -Ddpdk=disabled -Dmimalloc=disabled -Dbuildtype=debugoptimized
fi
ninja -C "$bdir" $(printf 'tests/fuzz/fuzz_%s ' "${targets[@]}")

mkdir -p "$bdir/fuzz-artifacts"
par=()
# -jobs runs workers in the background with logs in fuzz-<n>.log (in $bdir).
[ "$jobs" -gt 1 ] && par=(-jobs="$jobs" -workers="$jobs")
cd "$bdir"
status=0
for t in "${targets[@]}"; do
  work="$bdir/fuzz-corpus/$t"
  mkdir -p "$work"
  log="$bdir/fuzz-$t.log"
  max_len=4096
  [ "$t" = block_decode ] && max_len=65536
  [ "$t" = segment ] && max_len=16384
  # libFuzzer's progress goes to a log per target; the summary is printed.
  if "$bdir/tests/fuzz/fuzz_$t" -max_total_time="$secs" -max_len="$max_len" -timeout=10 \
        -rss_limit_mb=2048 "${par[@]}" -print_final_stats=1 \
        -artifact_prefix="$bdir/fuzz-artifacts/$t-" "$work" "$root/tests/fuzz/corpus/$t" \
        >"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    echo "fuzz_$t: ${secs}s, ${runs:-?} runs, no finding"
  else
    tail -n 40 "$log"
    echo "fuzz_$t: FAILED (log $log, reproducer in $bdir/fuzz-artifacts/)"
    status=1
  fi
done
exit $status
