#!/usr/bin/env bash
# `meson install` into a scratch root, then the same checks as the package
# (check_root.sh): the source install and the .deb hold the same set.
# Usage: test_install.sh BUILD_DIR
set -euo pipefail
build=$1
here="$(cd "$(dirname "$0")" && pwd)"
dest=$(mktemp -d /tmp/rf-install.XXXXXX)
trap 'rm -rf "$dest"' EXIT
meson install -C "$build" --destdir "$dest" --no-rebuild --quiet
prefix=$(meson introspect "$build" --buildoptions | python3 -c '
import json, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
print(o["prefix"]); print(o["sysconfdir"])')
p=$(sed -n 1p <<<"$prefix") s=$(sed -n 2p <<<"$prefix")
case "$s" in /*) ;; *) s="$p/$s" ;; esac
# The bench binary belongs to the developer build only.
rm -f "$dest$p/bin/ringflow-bench"
"$here/check_root.sh" "$dest" "$p" "$s/ringflow"
