#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang, fuzz/) into build-fuzz and runs them on a temporary copy
# of their seed corpora (fuzz/corpus/NAME), so the corpus in the repository stays as committed.
#   scripts/fuzz.sh NAME [SECONDS]   one harness, SECONDS (default 60) long
#   scripts/fuzz.sh all [SECONDS]    every harness in turn, SECONDS (default 6) each (scripts/test.sh)
# NAME: chat_template, gguf, gguf_tokenizer, hook_spec, http_request, model_config, prompt_cache,
# safetensors, safetensors_index, sentencepiece or tokenizer_json (docs/fuzzing.md).
# Extra arguments after SECONDS go to libFuzzer (e.g. -runs=10000000 -jobs=2). Any crash, leak,
# timeout (10 s per input) or out-of-memory (2 GiB) fails the script; the input that did it is left
# in build-fuzz/artifacts/NAME/ to add as a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."
NAMES=(chat_template gguf gguf_tokenizer hook_spec http_request model_config prompt_cache
       safetensors safetensors_index sentencepiece tokenizer_json)
name="${1:?usage: scripts/fuzz.sh NAME|all [SECONDS] [libFuzzer flags...]}"
shift
if [[ "$name" == all ]]; then
  secs="${1:-6}"
  names=("${NAMES[@]}")
else
  secs="${1:-60}"
  [[ " ${NAMES[*]} " == *" $name "* ]] || { echo "unknown harness '$name'; one of: ${NAMES[*]}" >&2; exit 2; }
  names=("$name")
fi
shift || true
bash scripts/install-deps.sh  # clang and libfuzzer-14-dev among them
CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLONGCTX_BUILD_FUZZ=ON \
  -DLONGCTX_BUILD_TESTS=OFF -DLONGCTX_BUILD_PYTHON=OFF >/dev/null
# Only the harnesses and the libraries they link.
targets=()
for n in "${names[@]}"; do targets+=("${n}_fuzz"); done
cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for n in "${names[@]}"; do
  mkdir -p "$work/$n" "build-fuzz/artifacts/$n"
  cp -r "fuzz/corpus/$n/." "$work/$n/"
  echo "== fuzz $n (${secs}s)"
  # The corpus copy grows as libFuzzer finds new inputs; the last lines are its final stats.
  if ! "build-fuzz/fuzz/${n}_fuzz" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="build-fuzz/artifacts/$n/" "$@" "$work/$n" \
      >"$work/$n.log" 2>&1; then
    tail -n 60 "$work/$n.log"
    echo "fuzz $n FAILED: the input is in build-fuzz/artifacts/$n/" >&2
    exit 1
  fi
  grep -E "^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb)" "$work/$n.log" || true
done
