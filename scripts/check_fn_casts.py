#!/usr/bin/env python3
"""Fails when a C source casts a function to a function pointer type.

    scripts/check_fn_casts.py SOURCE_ROOT

Calling a function through a pointer to an incompatible function type is
undefined behaviour (C17 6.3.2.3p8), even when only a parameter's pointer
type differs (rf_engine_worker * against void *). GCC and clang 14 do not
warn about such casts in C, and UBSan's -fsanitize=function is C++ only
there, so this test looks for the cast itself: `(RET (*)(ARGS))name`.
Write a trampoline with the pointer's exact signature instead.
Exit status: 0 when there is none, 1 otherwise (each one is listed).
"""
import os
import re
import sys

CAST = re.compile(r"\(\s*[A-Za-z_][A-Za-z_0-9 ]*\*?\s*\(\s*\*\s*\)\s*\([^()]*\)\s*\)\s*&?\s*[A-Za-z_]")
SKIP_DIRS = {".git", "node_modules"}


def main() -> int:
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    found = []
    for top, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith("build")]
        for name in files:
            if not name.endswith((".c", ".h")):
                continue
            path = os.path.join(top, name)
            with open(path, encoding="utf-8", errors="replace") as f:
                for lineno, line in enumerate(f, 1):
                    if CAST.search(line):
                        found.append(f"{os.path.relpath(path, root)}:{lineno}: {line.strip()}")
    for f in found:
        print(f"function cast to an incompatible type: {f}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
