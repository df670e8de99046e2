#!/usr/bin/env bash
# Checks an installed file tree: ROOT (a meson --destdir or an unpacked .deb)
# with PREFIX (/usr/local, /usr) and SYSCONF (its ringflow configuration dir).
# What it checks, each a way the package can be broken:
#   - every file is there (binaries, configuration, unit, sysusers, man
#     pages, completion, the DPDK drop-in);
#   - the binaries run, and the packaged configuration is valid and has the
#     system paths;
#   - `man -l` renders each page with its sections;
#   - `systemd-analyze verify` passes on the unit (its ExecStart pointed at
#     ROOT's binary, its Documentation= pages found in ROOT);
#   - the sysusers.d file creates the user in a scratch root;
#   - bash completion completes commands.
#   - as root: ringflowd runs from ROOT as the unit runs it (an unprivileged
#     user, no capability but CAP_NET_BIND_SERVICE, no new privileges) on the
#     packaged configuration, with a conf.d file and environment variables
#     moving it to scratch directories and ports of its own; `ringflow
#     --config` finds it; SIGTERM stops it with exit 0.
# Usage: check_root.sh ROOT PREFIX SYSCONF
set -euo pipefail
root=$1 prefix=$2 sysconf=$3
fail() { echo "check_root: FAIL: $*" >&2; exit 1; }
ok() { echo "check_root: ok: $*"; }
scratch=$(mktemp -d /tmp/rf-check-root.XXXXXX)
trap 'rm -rf "$scratch"' EXIT

man_dir="$root$prefix/share/man"
unit=""
for d in "$root/lib/systemd/system" "$root/usr/lib/systemd/system" "$root$prefix/lib/systemd/system"; do
  [ -f "$d/ringflow.service" ] && unit="$d/ringflow.service"
done
[ -n "$unit" ] || fail "no ringflow.service under $root"
for f in "$prefix/bin/ringflowd" "$prefix/bin/ringflow" "$sysconf/ringflow.yaml" \
         "$sysconf/conf.d/README" "$prefix/lib/sysusers.d/ringflow.conf" \
         "$prefix/share/bash-completion/completions/ringflow" \
         "$prefix/share/bash-completion/completions/ringflowd" \
         "$prefix/share/doc/ringflow/examples/dpdk.conf" \
         "$(dirname "$sysconf")/logrotate.d/ringflow"; do
  [ -e "$root$f" ] || fail "missing $f"
done
for page in man1/ringflow.1 man5/ringflow.yaml.5 man8/ringflowd.8; do
  ls "$man_dir/$page"* >/dev/null 2>&1 || fail "missing man page $page"
done
[ -e "$root$prefix/bin/ringflow-bench" ] && fail "ringflow-bench is installed"
ok "files"

# The logrotate file parses (debug mode: nothing is rotated, no script runs).
if command -v logrotate >/dev/null 2>&1; then
  logrotate --debug --state "$scratch/logrotate.state" "$root$(dirname "$sysconf")/logrotate.d/ringflow" \
    >"$scratch/logrotate.out" 2>&1 || fail "logrotate refuses its file: $(cat "$scratch/logrotate.out")"
  grep -q 'ringflow' "$scratch/logrotate.out" || fail "logrotate read no rule: $(cat "$scratch/logrotate.out")"
  ok "logrotate"
fi

"$root$prefix/bin/ringflowd" --version | grep -q '^ringflowd ' || fail "ringflowd --version"
"$root$prefix/bin/ringflow" --version | grep -q '^ringflow ' || fail "ringflow --version"
conf="$root$sysconf/ringflow.yaml"
grep -q '^include: conf.d/\*.yaml$' "$conf" || fail "ringflow.yaml does not include conf.d"
"$root$prefix/bin/ringflowd" --print-config --config "$conf" >"$scratch/merged.yaml" ||
  fail "--print-config on the packaged configuration"
grep -q '^  data_dir: /var/lib/ringflow$' "$scratch/merged.yaml" || fail "data_dir is not /var/lib/ringflow"
grep -q '^  run_dir: /run/ringflow$' "$scratch/merged.yaml" || fail "run_dir is not /run/ringflow"
grep -q '^  memory_limit: auto$' "$scratch/merged.yaml" || fail "memory_limit is not auto"
grep -q 'path: /var/lib/ringflow/alerts.jsonl' "$scratch/merged.yaml" || fail "the alerts sink is not under /var/lib/ringflow"
! grep -v '^ *#' "$scratch/merged.yaml" | grep -q '\./data\|\./run' || fail "a relative path is left in the packaged configuration"
"$root$prefix/bin/ringflowd" --check-config "$conf" >/dev/null || fail "the packaged configuration is invalid"
ok "binaries and the packaged configuration"

for page in man1/ringflow.1 man5/ringflow.yaml.5 man8/ringflowd.8; do
  f=$(ls "$man_dir/$page"*)
  out=$(MANWIDTH=80 man -l "$f" 2>"$scratch/man.err") || fail "man -l $f"
  [ -s "$scratch/man.err" ] && fail "man -l $f: $(cat "$scratch/man.err")"
  for section in NAME SYNOPSIS DESCRIPTION "SEE ALSO"; do
    grep -q "^$section" <<<"$out" || fail "man -l $f: no $section section"
  done
done
ok "man -l on each page"

# The unit as installed, but starting ROOT's binary (verify wants an
# executable), with ROOT's man pages on MANPATH (verify runs man for each
# Documentation= page).
sed "s#^ExecStart=$prefix/bin/#ExecStart=$root$prefix/bin/#" "$unit" >"$scratch/ringflow.service"
grep -q "^ExecStart=$root$prefix/bin/ringflowd --config $sysconf/ringflow.yaml$" "$scratch/ringflow.service" ||
  fail "ExecStart is not $prefix/bin/ringflowd --config $sysconf/ringflow.yaml"
for key in 'Type=notify' 'ExecReload=/bin/kill -HUP $MAINPID' 'StateDirectory=ringflow' \
           'RuntimeDirectory=ringflow' 'LimitNOFILE=' 'ProtectSystem=strict' \
           'NoNewPrivileges=yes' 'PrivateTmp=yes' 'CapabilityBoundingSet=' 'WatchdogSec=' \
           'User=ringflow'; do
  grep -qF "$key" "$unit" || fail "the unit has no $key"
done
MANPATH="$man_dir" SYSTEMD_LOG_LEVEL=notice systemd-analyze verify "$scratch/ringflow.service" \
  >"$scratch/verify.out" 2>&1 || { cat "$scratch/verify.out" >&2; fail "systemd-analyze verify"; }
[ -s "$scratch/verify.out" ] && { cat "$scratch/verify.out" >&2; fail "systemd-analyze verify printed warnings"; }
# The DPDK drop-in on top of the unit.
mkdir -p "$scratch/ringflow.service.d"
cp "$root$prefix/share/doc/ringflow/examples/dpdk.conf" "$scratch/ringflow.service.d/"
(cd "$scratch" && MANPATH="$man_dir" SYSTEMD_LOG_LEVEL=notice systemd-analyze verify ringflow.service \
   >"$scratch/verify.out" 2>&1) || { cat "$scratch/verify.out" >&2; fail "systemd-analyze verify with dpdk.conf"; }
ok "systemd-analyze verify (unit, and unit + dpdk.conf)"

mkdir -p "$scratch/sysroot/etc"
systemd-sysusers --root="$scratch/sysroot" "$root$prefix/lib/sysusers.d/ringflow.conf" ||
  fail "systemd-sysusers"
grep -q '^ringflow:x:[0-9]*:[0-9]*:ringflow telemetry engine:/var/lib/ringflow:/usr/sbin/nologin$' \
  "$scratch/sysroot/etc/passwd" || fail "sysusers did not create the ringflow user"
ok "sysusers.d creates the ringflow user"

comp=$(bash -c '
  source /usr/share/bash-completion/bash_completion
  source "$1"; source "$2"
  COMP_WORDS=(ringflow st); COMP_CWORD=1; COMP_LINE="ringflow st"; COMP_POINT=${#COMP_LINE}
  _ringflow; echo "${COMPREPLY[*]}"
  COMP_WORDS=(ringflow --config x.yaml admin ""); COMP_CWORD=4; COMP_LINE="ringflow --config x.yaml admin "
  COMP_POINT=${#COMP_LINE}; _ringflow; echo "${COMPREPLY[*]}"
  COMP_WORDS=(ringflowd --print); COMP_CWORD=1; COMP_LINE="ringflowd --print"; COMP_POINT=${#COMP_LINE}
  _ringflowd; echo "${COMPREPLY[*]}"' _ \
  "$root$prefix/share/bash-completion/completions/ringflow" \
  "$root$prefix/share/bash-completion/completions/ringflowd")
grep -qx 'stat' <<<"$(sed -n 1p <<<"$comp")" || fail "completion of 'ringflow st': $comp"
grep -q 'reload' <<<"$(sed -n 2p <<<"$comp")" || fail "completion after 'admin': $comp"
grep -q -- '--print-config' <<<"$(sed -n 3p <<<"$comp")" || fail "completion of 'ringflowd --print': $comp"
ok "bash completion"

if [ "$(id -u)" -ne 0 ]; then
  echo "check_root: not run: ringflowd as the unit's user (needs root to switch users)"
  exit 0
fi
svc="$scratch/svc"
mkdir -p "$svc/etc/conf.d" "$svc/state" "$svc/runtime"
chmod 755 "$scratch" "$svc" "$svc/etc" "$svc/etc/conf.d"
chown nobody "$svc/state" "$svc/runtime"
cp "$conf" "$svc/etc/ringflow.yaml"
read -r udp_port http_port < <(python3 -c '
import socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0))
t = socket.socket(); t.bind(("127.0.0.1", 0))
print(u.getsockname()[1], t.getsockname()[1])')
cat >"$svc/etc/conf.d/50-test.yaml" <<YAML
engine:
  workers: 1
  data_dir: \${RF_TEST_STATE}
  run_dir: \${RF_TEST_RUNTIME:-/nonexistent}
listeners:
  - name: test-udp
    transport: udp
    protocol: influx_line
    port: $udp_port
stats:
  prometheus:
    listen: "127.0.0.1:$http_port"
pipeline:
  sinks:
    - {name: store, type: store}
    - {name: alerts, type: json, path: "\${RF_TEST_STATE}/alerts.jsonl"}
YAML
chmod 644 "$svc/etc/ringflow.yaml" "$svc/etc/conf.d/50-test.yaml"
RF_TEST_STATE="$svc/state" RF_TEST_RUNTIME="$svc/runtime" \
  setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all \
  --bounding-set=-all,+net_bind_service --no-new-privs \
  "$root$prefix/bin/ringflowd" --config "$svc/etc/ringflow.yaml" >"$svc/log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  grep -q 'msg="running:' "$svc/log" && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.1
done
grep -q 'msg="running:' "$svc/log" || { kill $pid 2>/dev/null || true; cat "$svc/log" >&2; fail "ringflowd did not start as the unit's user"; }
grep -q "workers=1 data_dir=$svc/state run_dir=$svc/runtime " "$svc/log" ||
  { kill $pid 2>/dev/null || true; cat "$svc/log" >&2; fail "the conf.d file and the environment were not applied"; }
[ "$(stat -c %U "$svc/runtime/ringflow.sock")" = nobody ] || { kill $pid 2>/dev/null || true; fail "the stats socket is not the user's"; }
echo "cpu,host=a usage=1" >"/dev/udp/127.0.0.1/$udp_port"
# The CLI reads the configuration as the daemon does: with its variables.
RF_TEST_STATE="$svc/state" RF_TEST_RUNTIME="$svc/runtime" \
  "$root$prefix/bin/ringflow" --config "$svc/etc/ringflow.yaml" stat >"$svc/stat" 2>&1 ||
  { kill $pid 2>/dev/null || true; cat "$svc/stat" >&2; fail "ringflow --config could not find the engine"; }
kill -TERM $pid
rc=0; wait $pid || rc=$?
[ $rc -eq 0 ] || { cat "$svc/log" >&2; fail "ringflowd exited $rc on SIGTERM"; }
grep -q 'msg="stopped"' "$svc/log" || fail "no 'stopped' line"
ok "ringflowd runs as an unprivileged user without capabilities on the packaged configuration"
