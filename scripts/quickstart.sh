#!/usr/bin/env bash
# Quick start: install what is missing, build in Release, and run the default job
# (../shared/models/stories260K when present, else a cached random-weight checkpoint).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DLONGCTX_BUILD_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" --target longctx
# The Python module: built into build/python, made importable for Debian's python3 from any
# directory by a .pth file in its site directory (scripts/install-python.sh).
# (grep reads the whole list: with -q it would stop early and pipefail would see cmake's SIGPIPE)
if cmake --build build --target help 2>/dev/null | grep longctx_python >/dev/null; then
  cmake --build build -j"$(nproc)" --target longctx_python
  bash scripts/install-python.sh build
else
  echo "quickstart: Python module skipped (pybind11-dev / python3-dev / python3-numpy missing)" >&2
fi
./build/longctx run "$@"
