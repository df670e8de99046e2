#!/usr/bin/env bash
# The Debian package end to end: scripts/package.sh builds it (in a copy of
# the tree, lintian must report no error), then it is unpacked into a scratch
# root and checked as installed (check_root.sh), plus what only a package
# has: its name, conffiles, dependencies and the postinst that creates the
# user before the unit starts. About 2 minutes on 2 cores.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="$(cd "$here/../.." && pwd)"
work=$(mktemp -d /tmp/rf-package.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "test_package: FAIL: $*" >&2; exit 1; }
"$src/scripts/package.sh" "$work/out"
version=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
deb="$work/out/ringflow_${version}_$(dpkg-architecture -qDEB_HOST_ARCH).deb"
[ -f "$deb" ] || fail "no $deb"
dpkg-deb -x "$deb" "$work/root"
dpkg-deb -e "$deb" "$work/control"
grep -qx '/etc/ringflow/ringflow.yaml' "$work/control/conffiles" || fail "ringflow.yaml is not a conffile"
grep -q '^Depends:.*systemd' "$work/control/control" || fail "no dependency on systemd"
grep -q '^Depends:.*liburing' "$work/control/control" || fail "shlibs: no liburing"
awk '/systemd-sysusers ringflow.conf/{u=NR} /deb-systemd-invoke/{s=NR} END{exit !(u && s && u < s)}' \
  "$work/control/postinst" || fail "postinst does not create the user before starting the unit"
"$here/check_root.sh" "$work/root" /usr /etc/ringflow
echo "test_package: ok: $(basename "$deb")"
