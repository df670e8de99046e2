#!/usr/bin/env bash
# Installs ringflow's build and test dependencies from Debian's packages.
# libsystemd-dev: sd_notify (daemon/notify.c). debhelper, dpkg-dev, fakeroot,
# lintian: scripts/package.sh. scdoc: the man pages (docs/man). man-db, systemd,
# bash-completion, logrotate: the packaging tests (man -l, systemd-analyze verify, the
# completion directory pkg-config names).
# Idempotent: when everything is already present it only checks, in a few seconds.
set -euo pipefail

packages=(
  build-essential meson ninja-build pkg-config
  liburing-dev libzstd-dev libmimalloc-dev libdpdk-dev libnuma-dev
  libcmocka-dev libbenchmark-dev libyaml-dev libxxhash-dev
  libhttp-parser-dev zlib1g-dev libdeflate-dev libsnappy-dev libprotobuf-c-dev protobuf-c-compiler libjansson-dev
  libpcre2-dev
  # collectd's signed and encrypted packets (ingest/protocol/collectd_auth.c)
  libssl-dev
  clang libclang-rt-14-dev llvm clang-format
  gnuplot-nox python3 python3-influxdb python3-snappy
  collectd-core
  nodejs
  libfaketime
  victoria-metrics
  libsystemd-dev
  debhelper dpkg-dev fakeroot lintian scdoc man-db systemd bash-completion logrotate
  prometheus
  # the HTTP forwarders' client (stages/forward) and a test receiver of theirs (tests/sinks)
  libcurl4-openssl-dev influxdb
  # the nats sink's client (nats.c, stages/forward/sender_nats.c) and its test server (tests/sinks)
  libnats-dev nats-server
  # TLS and authentication of http listeners and /metrics (core/tls, core/auth),
  # and the CLI tools and client its test uses (tests/daemon/test_tls.py)
  libssl-dev libcrypt-dev openssl curl
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
# npm: Debian's package, unless an npm is already on PATH. A nodejs package
# from elsewhere (NodeSource's, on some machines) bundles npm and conflicts
# with Debian's npm, so asking apt for it there would fail.
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
else
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  echo "install-deps: done"
fi

# The real-client tests (tests/clients) drive npm libraries pinned by
# tests/clients/package-lock.json (node_modules/ is git-ignored). `npm ci`
# installs exactly the lock; a stamp with the lock's SHA-256, written only after
# npm ci succeeded, makes the next run skip it while node_modules matches the
# lock. A failed npm ci fails this script: CI must not quietly skip those tests.
clients="$(cd "$(dirname "$0")/.." && pwd)/tests/clients"
stamp="$clients/node_modules/.ringflow-lock.sha256"
want="$(sha256sum "$clients/package-lock.json" | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
   [ -f "$clients/node_modules/hot-shots/package.json" ] &&
   [ -f "$clients/node_modules/@influxdata/influxdb-client/package.json" ] &&
   [ -f "$clients/node_modules/statsd/package.json" ] &&
   [ -f "$clients/node_modules/lynx/package.json" ] &&
   [ -f "$clients/node_modules/statsd-client/package.json" ] &&
   [ -f "$clients/node_modules/@opentelemetry/sdk-metrics/package.json" ] &&
   [ -f "$clients/node_modules/@opentelemetry/exporter-metrics-otlp-proto/package.json" ] &&
   [ -f "$clients/node_modules/@opentelemetry/exporter-metrics-otlp-http/package.json" ]; then
  echo "install-deps: tests/clients node_modules matches package-lock.json"
else
  echo "install-deps: npm ci in tests/clients ($(node --version), npm $(npm --version))"
  (cd "$clients" && npm ci --no-audit --no-fund --ignore-scripts --omit=optional --loglevel=error)
  echo "$want" >"$stamp"
fi
