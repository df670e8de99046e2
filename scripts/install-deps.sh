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
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
