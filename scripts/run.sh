#!/usr/bin/env bash
# Installs the dependencies, builds ringflow (release) and starts ringflowd in
# the foreground on its embedded default configuration: loopback listeners,
# data under ./data, stats sockets under ./run. Extra arguments go to ringflowd
# (e.g. scripts/run.sh --config my.yaml). Ctrl-C drains and stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
if [ -f build/build.ninja ]; then
  meson setup --reconfigure build >/dev/null
else
  meson setup build >/dev/null
fi
ninja -C build -j"$(nproc)"
exec build/daemon/ringflowd "$@"
