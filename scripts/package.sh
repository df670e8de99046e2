#!/usr/bin/env bash
# Builds the Debian package: ringflow_<version>_<arch>.deb in OUTDIR
# (default: ./pkg-out), then runs lintian on it and fails on any error.
#
# The build runs `dpkg-buildpackage -us -uc -b` in a copy of the source tree
# (the files git tracks, and new ones it does not ignore), so it never writes
# into this checkout (debian/ringflow, obj-*/) or races a build here.
# Usage: scripts/package.sh [OUTDIR]      (needs scripts/install-deps.sh first)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mkdir -p "${1:-$root/pkg-out}" && cd "${1:-$root/pkg-out}" && pwd)"

version=$(sed -n "s/^  version : '\(.*\)',$/\1/p" "$root/meson.build")
deb_version=$(dpkg-parsechangelog -l "$root/debian/changelog" -S Version)
if [ "$version" != "$deb_version" ]; then
  echo "package.sh: meson.build says $version, debian/changelog says $deb_version" >&2
  exit 1
fi

work=$(mktemp -d /tmp/ringflow-pkg.XXXXXX)
trap 'rm -rf "$work"' EXIT
src="$work/ringflow-$version"
mkdir -p "$src"
if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
  (cd "$root" && git ls-files -z --cached --others --exclude-standard |
     while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
     tar --null -T - -cf -) | tar -xf - -C "$src"
else
  # A source tarball: everything but build output.
  (cd "$root" && tar --exclude='./build*' --exclude='./pkg-out' --exclude='./obj-*' \
     --exclude='./debian/ringflow' --exclude='./debian/.debhelper' -cf - .) | tar -xf - -C "$src"
fi

echo "package.sh: dpkg-buildpackage in $src"
(cd "$src" && DEB_BUILD_OPTIONS="parallel=$(nproc) ${DEB_BUILD_OPTIONS:-}" \
   dpkg-buildpackage -us -uc -b >"$work/build.log" 2>&1) || {
  tail -50 "$work/build.log" >&2
  echo "package.sh: dpkg-buildpackage failed (log above)" >&2
  exit 1
}
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
deb="ringflow_${version}_${arch}.deb"
cp "$work/$deb" "$out/$deb"
echo "package.sh: $out/$deb"

# lintian: errors fail the build; warnings are printed for a person to read.
if lintian --fail-on error --no-tag-display-limit "$out/$deb"; then
  echo "package.sh: lintian: no errors"
else
  echo "package.sh: lintian reports errors (above)" >&2
  exit 1
fi
