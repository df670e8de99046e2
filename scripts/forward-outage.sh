#!/bin/sh
# The long outage test of the HTTP forwarders (docs/RELIABILITY.md): steady
# load over TCP, victoria-metrics stopped for OUTAGE seconds (default 60)
# and started again; every point must arrive exactly once. The suite runs
# the same test with an 8 s outage (forward_outage). Needs a built tree
# (BUILD, default ./build) and the victoria-metrics package.
set -eu
BUILD=${BUILD:-build}
OUTAGE=${1:-60}
ninja -C "$BUILD" tests/sinks/test_forward daemon/ringflowd tools/ringflow >/dev/null
RF_OUTAGE_SECONDS=$OUTAGE \
RINGFLOWD="$PWD/$BUILD/daemon/ringflowd" RINGFLOW="$PWD/$BUILD/tools/ringflow" \
RF_CLIENTS_DIR="$PWD/tests/clients" \
    "$BUILD/tests/sinks/test_forward" outage
