#!/usr/bin/env bash
# The end-to-end harness: builds ringflow (release), then drives a real
# ringflowd with `ringflow load` at a list of offered rates and, for each,
# reports where every event sent went: stored (counted in the store the daemon
# leaves on disk) or dropped, by place (generator send errors, kernel drops,
# parser rejects, ring drops, unknown series, unrouted, store refusals, lost
# in the store) and what no counter explains; critical-path latency
# p50/p99/p99.9/max (rf_probe lines routed to a critical UDP sink the harness
# reads), CPU seconds per million events and peak RSS. Then it sends the same
# N points to ringflow and to VictoriaMetrics (Debian package
# victoria-metrics) over TCP, HTTP (VictoriaMetrics only; --http-peer compares
# both systems' HTTP paths) and UDP, waits until each has ingested them, and compares
# ingest rate, bytes/point on disk and CPU per point.
#
# Usage: scripts/harness.sh [--build-dir DIR] [OPTIONS]
#   --rates 50k,500k,1M,2M,max   offered rates (default); max = generator's ceiling
#   --duration SECONDS           load per rate (default 10)
#   --quick                      CI-sized: 50k,500k,max for 2 s each, 1M points per peer run
#   --series N --tags N          the stream's shape (default 1000 series, 3 tags)
#   --sockets N                  generator source ports (default 16)
#   --workers N --no-pin         the engine's workers (default 2, pinned)
#   --no-store                   no store route: loss counted up to the stages
#   --settle-timeout SECONDS     wait for the engine to account for everything (default 20)
#   --no-peer                    skip VictoriaMetrics
#   --http-peer                  only the HTTP comparison: --peer-count points as /write
#                                bodies of 5,000 lines (plain, gzip) and remote_write
#                                requests into ringflow and VictoriaMetrics (no rate sweep)
#   --http-peer-connections N    POSTs in flight in it (default 2)
#   --peer-count N               points per system and path (default 5M; --quick 1M)
#   --peer-transports LIST       tcp,http,udp (default all three)
#   --peer-sockets N             TCP connections in the comparison (default 4)
#   --peer-udp-rate RATE         UDP comparison rate (default 200k; max possible)
#   --peer-http-batch BYTES      POST /write body size (default 256 KiB)
#   --peer-http-connections N    POSTs in flight (default 4)
#   --out DIR                    results directory (default bench/harness/results)
#   --update-doc [FILE]          put the summary between <!-- harness:begin --> and
#                                <!-- harness:end --> of FILE (default docs/PERFORMANCE.md);
#                                plots and results.json go to perf/harness-<time>/ beside it
#   --keep                       keep the temporary work dir (configs, daemon logs)
#
# Paced CPU and critical path beside VictoriaMetrics (issue 25):
#   scripts/harness.sh --paced-vm [--rates 10k,50k,200k,1M] [--transports udp,tcp]
#                      [--duration 5] [--runs N] [--json FILE]
# runs bench/harness/rates_vm.py instead: for each rate and transport a fresh
# ringflowd and a fresh VictoriaMetrics take the same paced stream, one after
# the other; CPU-seconds per million points ingested (each server's /proc),
# and ringflow's critical path (a threshold alert, send to alert receipt)
# under that stream. Its options are in its header.
#
# Output in the results directory: results.json (every figure and the raw
# counters), throughput.png, latency.png, peer.png, summary.md (also
# printed). Exit 0 when every rate ran.
#
# The build directory defaults to ./build; it is configured (release) when
# missing. Set RF_SKIP_BUILD=1 to use it as it is.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build
args=()
script=bench/harness/harness.py
while [ $# -gt 0 ]; do
  case "$1" in
    --paced-vm) script=bench/harness/rates_vm.py; shift ;;
    --build-dir) build="$2"; shift 2 ;;
    --build-dir=*) build="${1#*=}"; shift ;;
    *) args+=("$1"); shift ;;
  esac
done

if [ "${RF_SKIP_BUILD:-0}" != 1 ]; then
  if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" --buildtype=release >/dev/null
  fi
  ninja -C "$build" daemon/ringflowd tools/ringflow >/dev/null
fi
# Debian's python3 first: its modules (python3-snappy for --http-peer) are
# the ones scripts/install-deps.sh installs.
py=/usr/bin/python3
[ -x "$py" ] || py=python3
exec "$py" "$script" --build-dir "$build" "${args[@]}"
