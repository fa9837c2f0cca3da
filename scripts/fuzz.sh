#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang, fuzz/) and runs one: scripts/fuzz.sh NAME [SECONDS]
# (NAME: hook_spec, gguf, gguf_tokenizer or http_request; SECONDS default 60) on a copy of its
# seed corpus fuzz/corpus/NAME.
# Installs clang and libfuzzer-14-dev when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
name="${1:?usage: scripts/fuzz.sh NAME [SECONDS]}"
secs="${2:-60}"
bash scripts/install-deps.sh
missing=()
for p in clang libfuzzer-14-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLONGCTX_BUILD_FUZZ=ON \
  -DLONGCTX_BUILD_TESTS=OFF -DLONGCTX_BUILD_PYTHON=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target "${name}_fuzz"
corpus="$(mktemp -d)"
trap 'rm -rf "$corpus"' EXIT
cp -r "fuzz/corpus/$name/." "$corpus/"
"build-fuzz/fuzz/${name}_fuzz" -max_total_time="$secs" "$corpus"
