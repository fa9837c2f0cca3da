#!/usr/bin/env bash
# Installs the Debian 12 packages longctx needs to build and test, when any is missing.
set -euo pipefail
PKGS=(g++ cmake make pkg-config nlohmann-json3-dev libcli11-dev libsentencepiece-dev
      libpcre2-dev libutf8proc-dev libxxhash-dev libcpp-httplib-dev libgtest-dev libgmock-dev
      libbenchmark-dev
      python3-numpy  # also regenerates tests/model/fixtures/rope_freqs.json
      pybind11-dev python3-dev python3-pytest python3-matplotlib  # the Python module (python/)
      clang libfuzzer-14-dev  # the libFuzzer harnesses (fuzz/, scripts/fuzz.sh)
      libopenmpi-dev openmpi-bin)  # pipeline runs across ranks (mpirun, docs/distributed.md)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
