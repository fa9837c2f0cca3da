#!/usr/bin/env bash
# Quick start: install what is missing, build in Release, and run the default job
# (../shared/models/stories260K when present, else a cached random-weight checkpoint).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DLONGCTX_BUILD_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" --target longctx
./build/longctx run "$@"
