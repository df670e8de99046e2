#!/usr/bin/env python3
"""Fails when `meson test` skipped a test that CI must run.

    scripts/check_skips.py BUILD_DIR

Reads BUILD_DIR/meson-logs/testlog.json (one JSON object per test run by the
last `meson test` in that directory). meson reports a test that exits 77 as
SKIP and counts it apart from the passes, so a machine without a client, DPDK
or libfaketime would otherwise pass with those tests never run. A cmocka test
inside a passing executable can also skip itself (`[  SKIPPED ]` in its
output): that is counted as a skip of the executable here.

Policy (scripts/test.sh runs this after each full suite):
  * Required: each test in REQUIRED must be in the log and have passed, not
    skipped and not missing. Missing means it was not built: DPDK not found
    by meson, say. Every dependency they need is installed by
    scripts/install-deps.sh, so a skip means that script or the machine is
    broken.
  * Required as root: ROOT_ONLY need root (they start ringflowd as root and
    drop to nobody, or mount a tmpfs). CI runs as root, so there they are
    required like the others. Run by a developer without root they may skip,
    and this script names them.
  * Allowed: ALLOWED skip by design (rel_long runs only with RF_LONG=1).
  * Any other test that skips fails the check: a new skip is a decision, to
    be written down here.
Exit status: 0 when the policy holds, 1 when it does not, 2 when the log is
missing or unreadable.
"""
import json
import os
import re
import sys

REQUIRED = {
    "client_collectd", "client_statsd_hotshots", "client_influx_client",
    "dpdk_unit", "dpdk_pcap", "dpdk_queues", "dpdk_fail_eal", "dpdk_fail_nodev", "dpdk_live",
    "rel_clock",
}
# ops_server: its unprivileged flood turns a child into nobody. nats_cluster:
# it creates network namespaces (scripts/cluster.sh).
ROOT_ONLY = {"rel_privileges", "rel_faults", "ops_server", "nats_cluster"}
ALLOWED = {"rel_long"}

CMOCKA_SKIPPED = re.compile(r"^\[  SKIPPED \] (?!\d+ test\(s\))(\S+)", re.M)


def main():
    if len(sys.argv) != 2:
        print("usage: scripts/check_skips.py BUILD_DIR", file=sys.stderr)
        return 2
    path = os.path.join(sys.argv[1], "meson-logs", "testlog.json")
    try:
        with open(path, encoding="utf-8") as f:
            runs = [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError) as e:
        print(f"check_skips: cannot read {path}: {e}", file=sys.stderr)
        return 2

    root = os.geteuid() == 0
    seen = {}
    bad, tolerated = [], []
    for r in runs:
        # "project:suite1+suite2 / name"
        name = r["name"].rpartition(" / ")[2]
        out = (r.get("stdout") or "") + (r.get("stderr") or "")
        seen[name] = r["result"]
        if r["result"] == "SKIP":
            why = next((ln for ln in out.splitlines() if "SKIP" in ln or "skip" in ln), "")
            what = f"{name}: skipped (exit 77){': ' + why.strip() if why else ''}"
        else:
            inner = list(dict.fromkeys(CMOCKA_SKIPPED.findall(out)))
            if r["result"] != "OK" or not inner:
                continue
            what = f"{name}: passed with cmocka cases skipped: {', '.join(inner)}"
        if name in ALLOWED:
            continue
        if name in ROOT_ONLY and not root:
            tolerated.append(what)
        else:
            bad.append(what)

    for name in sorted(REQUIRED | (ROOT_ONLY if root else set())):
        if name not in seen:
            bad.append(f"{name}: not in the log (not built? DPDK and every client come from "
                       "scripts/install-deps.sh)")

    for t in tolerated:
        print(f"check_skips: allowed without root (required in CI, which runs as root): {t}")
    for b in bad:
        print(f"check_skips: FAIL {b}")
    if bad:
        print(f"check_skips: {len(bad)} test(s) that CI must run did not run ({path})")
        return 1
    print(f"check_skips: every required test ran ({len(runs)} in {path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
