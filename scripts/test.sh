#!/usr/bin/env bash
# Installs the dependencies, checks the formatting, builds ringflow and runs
# every test:
#   1. release build (warnings are errors) + the whole cmocka suite, with
#      suite 'pkg': `meson install` checked, and the Debian package built by
#      scripts/package.sh, unpacked and checked (about 2.5 minutes of it)
#   2. AddressSanitizer + UndefinedBehaviorSanitizer build + the whole suite but the
#      60 s soak (its RSS verdict means nothing under ASan; it ran in stage 1)
#   3. ThreadSanitizer build + the cross-thread tests (suite 'tsan')
#   4. every libFuzzer target for a few seconds on its checked-in corpus
# Each stage prints its own summary; the script stops at the first failure.
# A skipped test fails stages 1 and 2 unless it may skip (scripts/check_skips.py
# has the list and why): meson counts SKIP (exit 77) apart from failures, so a
# real-client or DPDK test that did not run would otherwise pass unseen. The
# tests that need root (rel_privileges, rel_faults' tmpfs) are required when
# this runs as root, as CI does, and only reported when it does not.
# Usage: scripts/test.sh [--quick]   (--quick: stage 1 only)
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
[ "${1:-}" = "--quick" ] && quick=1

scripts/install-deps.sh

# The layout is clang-format's (.clang-format, docs/STYLE.md): a file that
# differs fails here, before anything is built.
scripts/check-format.sh

jobs=$(nproc)

setup() { # dir, extra meson args...
  local dir=$1; shift
  if [ -f "$dir/build.ninja" ]; then
    meson setup --reconfigure "$dir" "$@" >/dev/null
  else
    meson setup "$dir" "$@" >/dev/null
  fi
}

echo "== release build and tests"
setup build -Dwerror=true
ninja -C build -j"$jobs"
meson test -C build --print-errorlogs --num-processes "$jobs"
scripts/check_skips.py build

[ $quick -eq 1 ] && exit 0

echo "== ASan + UBSan build and tests"
setup build-asan -Dbuildtype=debug -Db_sanitize=address,undefined -Db_lundef=false \
  -Dwerror=true -Dbench=disabled
ninja -C build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  meson test -C build-asan --print-errorlogs --num-processes "$jobs" --timeout-multiplier 4 \
  --no-suite soak
scripts/check_skips.py build-asan

echo "== TSan build and cross-thread tests"
setup build-tsan -Dbuildtype=debug -Db_sanitize=thread -Db_lundef=false -Dbench=disabled \
  -Ddpdk=disabled
ninja -C build-tsan -j"$jobs"
TSAN_OPTIONS=halt_on_error=1 meson test -C build-tsan --suite tsan --print-errorlogs \
  --timeout-multiplier 4

if [ -x scripts/fuzz.sh ]; then
  echo "== fuzz targets (short run)"
  scripts/fuzz.sh 10
fi
echo "== all test stages passed"
