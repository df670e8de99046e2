#!/bin/sh
# Forwarding throughput to VictoriaMetrics (prom_remote_write and
# influx_http, disk buffer on): samples/s, receiver and sender CPU per
# sample, write amplification; median of 5 runs with min-max
# (bench/harness/forward_bench.py; figures in docs/PERFORMANCE.md,
# "Forwarding"). Builds the release tree first. Arguments go to the script:
#   scripts/forward-bench.sh [--points 2000000] [--runs 5] [--protocols LIST]
set -eu
BUILD=${BUILD:-build-release}
[ -d "$BUILD" ] || meson setup "$BUILD" --buildtype=release >/dev/null
ninja -C "$BUILD" daemon/ringflowd >/dev/null
exec python3 bench/harness/forward_bench.py --ringflowd "$BUILD/daemon/ringflowd" "$@"
