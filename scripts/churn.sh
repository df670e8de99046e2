#!/usr/bin/env bash
# The series-churn benchmark of issue 24, full size: 50,000 live series while
# 5,000 new ones replace 5,000 old ones every simulated minute, for 24
# simulated hours (7.2 M series in all), one point per series and minute,
# replayed in event time (`ringflow replay --into`) on 2 workers with
# max_series 100000, with a per-series and a grouped aggregation (1 min
# windows). The TTL (--ttl, default 5m) sizes what a worker holds: the live
# series plus every series that stopped less than a TTL ago, and their
# aggregate series: (50,000 + 5,000 x 5) x 2 / 2 workers = 75,000 at 5 min,
# within max_series; at 1 h it would be 325,000 a worker and the run would
# refuse series (as it should: they are not idle long enough to go). Checks: no series refused, no event of an unknown series,
# every point stored; prints the replay's resident memory (VmRSS of the
# process, sampled every second) so that "flat after the first hour" can be
# read off. The scaled version runs in the test command (tools+replay /
# series_churn).
#
# Usage: scripts/churn.sh [--build-dir DIR] [--hours H] [--live N] [--churn N]
#                         [--ttl DURATION] [--workdir DIR] [--keep]
#   defaults: build, 24, 50000, 5000, 5m, a fresh directory under /tmp (removed
#   unless --keep). The recording is about 60 bytes a point (4.3 GB at full size).
set -euo pipefail
cd "$(dirname "$0")/.."

build=build hours=24 live=50000 churn=5000 ttl=5m work="" keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build="$2"; shift 2 ;;
    --hours) hours="$2"; shift 2 ;;
    --live) live="$2"; shift 2 ;;
    --churn) churn="$2"; shift 2 ;;
    --ttl) ttl="$2"; shift 2 ;;
    --workdir) work="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "churn.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
cli="$(pwd)/$build/tools/ringflow"
[ -x "$cli" ] || { echo "churn.sh: $cli not built (ninja -C $build)" >&2; exit 2; }
[ -n "$work" ] || work="$(mktemp -d /tmp/rf-churn-XXXXXX)"
mkdir -p "$work"
[ "$keep" = 1 ] || trap 'rm -rf "$work"' EXIT
cd "$work"

cat > churn.yaml <<YAML
engine: {workers: 2}
listeners:
  - {name: load, transport: udp, protocol: influx_line, port: 29990}
stats: {prometheus: {enabled: false}}
pipeline:
  max_series: 100000
  series_idle_ttl: $ttl
  aggregations:
    - {measurement: load, field: f0, window: 1m, functions: [max]}
    - {measurement: load, field: f0, window: 1m, functions: [avg], group_by: [t1]}
YAML

rate=$(awk -v n="$live" 'BEGIN { printf "%.6f", n / 60 }')
echo "churn.sh: recording $hours h: $live live series, $churn replaced a minute, in $work"
"$cli" load --series "$live" --churn "$churn" --rate "$rate" --duration "${hours}h" \
  --tags 2 --timestamps --record churn.rfrec --json | tee load.json
points=$(sed 's/.*"events":\([0-9]*\).*/\1/' load.json)

echo "churn.sh: replaying (2 workers, max_series 100000, series_idle_ttl $ttl)"
"$cli" replay churn.rfrec --into out --config churn.yaml --workers 2 --json > replay.json &
pid=$!
: > rss.txt
t=0
while kill -0 "$pid" 2> /dev/null; do
  rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status" 2> /dev/null || true)
  [ -n "$rss" ] && echo "$t $rss" >> rss.txt
  sleep 1
  t=$((t + 1))
done
wait "$pid"
echo "churn.sh: replay summary:"; cat replay.json
echo "churn.sh: resident memory of the replay (s, KiB), every 10th sample:"
awk 'NR % 10 == 1' rss.txt
n=$(wc -l < rss.txt)
echo "churn.sh: RSS at 1/24 of the run: $(awk -v n="$n" 'NR == int(n / 24) + 1 { print $2 }' rss.txt) KiB," \
     "at the end: $(tail -1 rss.txt | cut -d' ' -f2) KiB, peak: $(sort -n -k2 rss.txt | tail -1 | cut -d' ' -f2) KiB"

fail=0
get() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" replay.json | head -1; }
# Everything is stored (the default routing): the points and the aggregates.
refused=$(get series_rejected) unknown=$(get unknown_series) stored=$(get points_appended)
aggs=$(get aggregates) dropped=$(get store_dropped) expired=$(get series_expired)
echo "churn.sh: points $points + aggregates ${aggs:-?}, stored ${stored:-?} (dropped ${dropped:-?}),"\
     "series refused ${refused:-?}, events of unknown series ${unknown:-?}, series expired ${expired:-?}"
[ "${refused:-1}" = 0 ] || { echo "churn.sh: FAIL: series refused" >&2; fail=1; }
[ "${unknown:-1}" = 0 ] || { echo "churn.sh: FAIL: events of unknown series" >&2; fail=1; }
[ "${dropped:-1}" = 0 ] && [ "${stored:-0}" = "$((points + ${aggs:-0}))" ] ||
  { echo "churn.sh: FAIL: not every point stored" >&2; fail=1; }
exit $fail
