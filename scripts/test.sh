#!/usr/bin/env bash
# Builds and runs the whole test suite: once in Release, then once under
# AddressSanitizer + UndefinedBehaviorSanitizer. Set LONGCTX_SKIP_ASAN=1 to skip the second pass.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs="$(nproc)"
# The kernel micro-benchmarks are built (not run) so they keep compiling.
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DLONGCTX_BUILD_TESTS=ON -DLONGCTX_BUILD_BENCH=ON >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"
if [[ "${LONGCTX_SKIP_ASAN:-0}" != 1 ]]; then
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLONGCTX_SANITIZE=ON \
        -DLONGCTX_BUILD_TESTS=ON >/dev/null
  cmake --build build-asan -j"$jobs"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j"$jobs"
fi
