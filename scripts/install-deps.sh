#!/usr/bin/env bash
# Installs ringflow's build and test dependencies from Debian's packages.
# Idempotent: when everything is already present it only checks, in a few seconds.
set -euo pipefail

packages=(
  build-essential meson ninja-build pkg-config
  liburing-dev libzstd-dev libmimalloc-dev libdpdk-dev libnuma-dev
  libcmocka-dev libbenchmark-dev libyaml-dev libxxhash-dev
  clang libclang-rt-14-dev llvm
  gnuplot-nox python3
  collectd-core
  victoria-metrics
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

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
# tests/clients/package-lock.json. Installed only when the lock changed since
# the last install; without node/npm those tests report SKIP.
clients="$(cd "$(dirname "$0")/.." && pwd)/tests/clients"
if [ -f "$clients/package-lock.json" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "install-deps: npm not found: tests/clients (StatsD, line protocol clients) will SKIP"
  elif [ ! -f "$clients/node_modules/.package-lock.json" ] ||
       [ "$clients/package-lock.json" -nt "$clients/node_modules/.package-lock.json" ]; then
    echo "install-deps: npm ci in tests/clients"
    (cd "$clients" && npm ci --no-audit --no-fund --ignore-scripts --omit=optional --loglevel=error)
  else
    echo "install-deps: tests/clients node modules present"
  fi
fi
