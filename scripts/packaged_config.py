#!/usr/bin/env python3
"""Writes the packaged configuration (/etc/ringflow/ringflow.yaml) from the
embedded default (daemon/default_config.yaml): the same keys and comments,
with system paths for engine.data_dir, engine.run_dir and the sinks' files,
and an include of conf.d/ for local overrides. Fails if a key it rewrites is missing, so the
two files cannot drift apart silently.

Usage: packaged_config.py DEFAULT_YAML OUTPUT DATA_DIR RUN_DIR
"""
import re
import sys

src, out, data_dir, run_dir = sys.argv[1:5]
text = open(src, encoding="utf-8").read()

header = f"""# ringflowd configuration: {out.rsplit('/', 1)[-1]} as packaged.
#
# The embedded default (ringflowd --print-default-config) with system paths:
# data under {data_dir}, sockets under {run_dir} (the systemd unit's
# StateDirectory and RuntimeDirectory). Put local changes in conf.d/NAME.yaml:
# those files are merged over this one in name order (ringflow.yaml(5)), so
# this file can stay as packaged. `ringflowd --print-config --config FILE`
# shows the result; `systemctl reload ringflow` applies it.
include: conf.d/*.yaml

"""

def rewrite(key, value):
    global text
    pattern = re.compile(r"^(  " + key + r": ).*$", re.M)
    text, n = pattern.subn(lambda m: m.group(1) + value, text, count=1)
    if n != 1:
        sys.exit(f"packaged_config.py: engine.{key} not found in {src}")

rewrite("data_dir", data_dir)
rewrite("run_dir", run_dir)
# Sink paths are the sink's own (relative to the daemon's working directory,
# which is / under systemd): the default's ./data/... must move with data_dir.
text = re.sub(r"(path: )\./data/", lambda m: m.group(1) + data_dir + "/", text)
# Nothing else may still point under the working directory.
for n, line in enumerate(text.splitlines(), 1):
    code = line.split("#", 1)[0]
    if "./data" in code or "./run" in code:
        sys.exit(f"packaged_config.py: {src}:{n} still names a relative path: {line.strip()}")
with open(out, "w", encoding="utf-8") as f:
    f.write(header + text)
