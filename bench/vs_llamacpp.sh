#!/usr/bin/env bash
# vs_llamacpp.sh — decode and prefill speed of longctx against llama.cpp on the same GGUF files.
#
# Not run by CI or the tests: it takes tens of minutes and needs a llama.cpp build.
#
# What it does:
#   1. `longctx random-model` writes random-weight checkpoints shaped like real models
#      (SmolLM2-135M, TinyLlama-1.1B; speed does not depend on the weights' values).
#   2. `longctx quantize --type f16` turns each into an f16 GGUF; llama.cpp's llama-quantize makes
#      the Q8_0 and Q4_K_M files from it, so both engines read llama.cpp's own quantization
#      (llama-quantize's default tensor mixes: Q4_K_M also holds Q6_K tensors, and rows that are
#      not a multiple of 256 fall back to other types). With QUANTIZER=longctx the quantized files
#      come from `longctx quantize` instead.
#   3. For every file it runs, alternating, llama-bench and `longctx bench` with the same settings
#      (2 threads, f16 KV cache, pp512 + tg128 at depth 0, and tg128 after DEPTH tokens), PAIRS
#      times each. The machine's memory bandwidth drifts by 2x from minute to minute, so the
#      figures are medians and the ratio is the median of the per-pair ratios (each pair ran
#      back to back).
#   4. Prints a markdown table: llama.cpp tok/s, longctx tok/s, ratio longctx / llama.cpp, and
#      longctx's fraction of the read-bandwidth roofline for decode (bytes one token reads, divided
#      by the bandwidth `longctx bench` probed right after the test).
#
# Usage (from the repository root, after building the longctx CLI):
#   LLAMA_CPP_DIR=~/src/llama.cpp/build bench/vs_llamacpp.sh
#
# Environment (defaults in brackets):
#   LLAMA_CPP_DIR  llama.cpp build folder holding bin/llama-bench and bin/llama-quantize (required)
#   LONGCTX        the longctx CLI [build/longctx]
#   WORK_DIR       checkpoints, GGUF files and raw JSON results [${TMPDIR:-/tmp}/longctx-vs-llamacpp]
#   SHAPES         random-model presets ["smollm2-135m tinyllama-1.1b"]
#   TYPES          GGUF types ["q8_0 q4_k_m"]
#   QUANTIZER      who makes the quantized files: llama (llama-quantize) or longctx [llama]
#   THREADS        threads for both engines [2]
#   PAIRS          alternating llama.cpp/longctx pairs at depth 0 [3]
#   REPS           repetitions inside each run at depth 0 [2]
#   DEPTH          tokens in the KV cache for the deep decode test; 0 skips it [8192]
#   DEPTH_PAIRS    pairs for the deep test; "preset=n" entries override per shape
#                  ["smollm2-135m=2 tinyllama-1.1b=1"]
#   DEPTH_REPS     repetitions inside each deep run (the fill happens once per run) [2]
#   PYTHON         a python3 (standard library only) [python3]
#
# On a machine shared with other busy processes, llama.cpp's OpenMP threads (which spin at every
# barrier) lose far more than longctx's: use THREADS=1, or export OMP_WAIT_POLICY=passive, and
# see docs/gguf.md ("Speed against llama.cpp").
#
# The raw llama-bench / longctx bench JSON of every run stays in WORK_DIR/results; rerunning with
# the same WORK_DIR reuses the checkpoints and GGUF files but not the results.
set -euo pipefail

: "${LLAMA_CPP_DIR:?set LLAMA_CPP_DIR to a llama.cpp build folder (with bin/llama-bench)}"
LONGCTX=${LONGCTX:-build/longctx}
WORK_DIR=${WORK_DIR:-${TMPDIR:-/tmp}/longctx-vs-llamacpp}
SHAPES=${SHAPES:-"smollm2-135m tinyllama-1.1b"}
TYPES=${TYPES:-"q8_0 q4_k_m"}
QUANTIZER=${QUANTIZER:-llama}
THREADS=${THREADS:-2}
PAIRS=${PAIRS:-3}
REPS=${REPS:-2}
DEPTH=${DEPTH:-8192}
DEPTH_PAIRS=${DEPTH_PAIRS:-"smollm2-135m=2 tinyllama-1.1b=1"}
DEPTH_REPS=${DEPTH_REPS:-2}
PYTHON=${PYTHON:-python3}

find_tool() {  # llama.cpp builds put binaries in bin/ (CMake) or the top folder
  local name=$1
  for p in "$LLAMA_CPP_DIR/bin/$name" "$LLAMA_CPP_DIR/$name"; do
    if [[ -x $p ]]; then
      echo "$p"
      return
    fi
  done
  echo "error: no $name in $LLAMA_CPP_DIR/bin or $LLAMA_CPP_DIR; build it (cmake --build ... --target $name)" >&2
  exit 1
}
LLAMA_BENCH=$(find_tool llama-bench)
LLAMA_QUANTIZE=$(find_tool llama-quantize)
[[ -x $LONGCTX ]] || { echo "error: no longctx CLI at $LONGCTX; build it or set LONGCTX" >&2; exit 1; }
"$LONGCTX" quantize --help >/dev/null 2>&1 ||
  { echo "error: $LONGCTX has no quantize command (needed to write the f16 GGUF)" >&2; exit 1; }
case $QUANTIZER in llama | longctx) ;; *) echo "error: QUANTIZER must be llama or longctx" >&2; exit 1 ;; esac

mkdir -p "$WORK_DIR/results"
rm -f "$WORK_DIR"/results/*.json

# Positions for depth + 128 generated tokens (TinyLlama's config says 2048; llama.cpp only warns
# past it, longctx refuses without --force-ctx, so the checkpoints declare enough).
MAX_POS=$((DEPTH + 1024 > 16384 ? DEPTH + 1024 : 16384))

depth_pairs_for() {
  local shape=$1 n=1 e
  for e in $DEPTH_PAIRS; do
    if [[ $e == "$shape="* ]]; then n=${e#*=}; fi
  done
  echo "$n"
}

# Checkpoint and GGUF files for one shape; prints the GGUF paths, one per type.
prepare() {
  local shape=$1 dir="$WORK_DIR/$shape" t
  if [[ ! -f $dir/config.json ]]; then
    "$LONGCTX" random-model --preset "$shape" --dtype bf16 --max-pos "$MAX_POS" -o "$dir" --force >&2
  fi
  if [[ $QUANTIZER == llama && ! -f $WORK_DIR/$shape-f16.gguf ]]; then
    "$LONGCTX" quantize -m "$dir" --type f16 -o "$WORK_DIR/$shape-f16.gguf" \
      >"$WORK_DIR/$shape-f16.log" ||
      { echo "error: longctx quantize failed; see $WORK_DIR/$shape-f16.log" >&2; exit 1; }
  fi
  for t in $TYPES; do
    local out="$WORK_DIR/$shape-$t-$QUANTIZER.gguf"
    if [[ ! -f $out ]]; then
      if [[ $QUANTIZER == llama ]]; then
        "$LLAMA_QUANTIZE" "$WORK_DIR/$shape-f16.gguf" "$out" "${t^^}" "$THREADS" >"$out.log" 2>&1 ||
          { echo "error: llama-quantize failed; see $out.log" >&2; exit 1; }
      else
        "$LONGCTX" quantize -m "$dir" --type "$t" -o "$out" >"$out.log" ||
          { echo "error: longctx quantize failed; see $out.log" >&2; exit 1; }
      fi
    fi
    echo "$out"
    # llama-quantize falls back to types longctx does not compute with (Q5_0 for Q4_K rows that
    # are not a multiple of 256, e.g. SmolLM2's 576): then both engines also read longctx's own
    # quantization of the same checkpoint.
    if [[ $QUANTIZER == llama ]] &&
      ! "$LONGCTX" bench -m "$out" -p 0 -n 2 -r 1 -t "$THREADS" >"$out.check" 2>&1; then
      echo "note: longctx cannot run $out ($(grep -o 'stored as [A-Z0-9_]*' "$out.check" | head -1));" \
        "adding longctx quantize's $t" >&2
      local own="$WORK_DIR/$shape-$t-longctx.gguf"
      [[ -f $own ]] || "$LONGCTX" quantize -m "$dir" --type "$t" -o "$own" >"$own.log" ||
        { echo "error: longctx quantize failed; see $own.log" >&2; exit 1; }
      echo "$own"
    fi
  done
}

# One llama-bench run and one longctx bench run, back to back, into results/<tag>-<pair>.*.json.
# A failing run leaves a .err file (and the table says so) instead of stopping the script.
run_pair() {
  local file=$1 tag=$2 pair=$3 reps=$4
  shift 4
  local base="$WORK_DIR/results/$tag-$pair"
  local p=512 n=128 d=0
  [[ $1 == deep ]] && { p=0; d=$DEPTH; }
  echo "  [$tag pair $pair] llama-bench" >&2
  "$LLAMA_BENCH" -m "$file" -p "$p" -n "$n" -d "$d" -t "$THREADS" -r "$reps" -ctk f16 -ctv f16 \
    -o json >"$base.llama.json" 2>"$base.llama.err" || echo "    llama-bench failed: $base.llama.err" >&2
  echo "  [$tag pair $pair] longctx bench" >&2
  "$LONGCTX" bench -m "$file" -p "$p" -n "$n" -d "$d" -t "$THREADS" -r "$reps" --kv-dtype f16 \
    --json >"$base.longctx.json" 2>"$base.longctx.err" || echo "    longctx bench failed: $base.longctx.err" >&2
}

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(nproc) cores" >&2
echo "llama.cpp: $("$LLAMA_BENCH" --version 2>&1 | head -1 || true)" >&2
for shape in $SHAPES; do
  mapfile -t files < <(prepare "$shape")
  for file in "${files[@]}"; do
    name=$(basename "$file" .gguf)
    for ((i = 1; i <= PAIRS; i++)); do run_pair "$file" "$name-d0" "$i" "$REPS" shallow; done
    if ((DEPTH > 0)); then
      np=$(depth_pairs_for "$shape")
      for ((i = 1; i <= np; i++)); do run_pair "$file" "$name-deep" "$i" "$DEPTH_REPS" deep; done
    fi
  done
done

"$PYTHON" - "$WORK_DIR/results" <<'EOF'
# Summarises the runs: medians over the runs of each engine, median of per-pair ratios.
import glob, json, os, re, statistics, sys

res = sys.argv[1]
def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

rows = {}  # (model, test) -> {pair: {"llama": ts, "longctx": ts, "roof": frac}}
for path in sorted(glob.glob(os.path.join(res, "*.json"))):
    m = re.match(r"(.*)-(d0|deep)-(\d+)\.(llama|longctx)\.json$", os.path.basename(path))
    if not m:
        continue
    model, _, pair, engine = m.group(1), m.group(2), int(m.group(3)), m.group(4)
    for t in load(path) or []:
        if t["n_gen"] > 0:
            test = "tg%d" % t["n_gen"] + (" @ d%d" % t["n_depth"] if t["n_depth"] else "")
        else:
            test = "pp%d" % t["n_prompt"]
        e = rows.setdefault((model, test), {}).setdefault(pair, {})
        e[engine] = t["avg_ts"]
        if engine == "longctx" and t.get("roofline_frac") is not None:
            e["roof"] = t["roofline_frac"]
            e["bw"] = t["read_bw_gbps"]

def med(v):
    return statistics.median(v) if v else None
def f(x, fmt="%.2f"):
    return fmt % x if x is not None else "failed"

order = {"pp": 0, "tg": 1}
print("| model | type | test | llama.cpp t/s | longctx t/s | ratio | longctx roofline | bandwidth GB/s | pairs |")
print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for (model, test) in sorted(rows, key=lambda k: (k[0], "@" in k[1], order[k[1][:2]])):
    pairs = rows[(model, test)].values()
    ll = [p["llama"] for p in pairs if "llama" in p]
    lc = [p["longctx"] for p in pairs if "longctx" in p]
    ratios = [p["longctx"] / p["llama"] for p in pairs if "llama" in p and "longctx" in p]
    roof = [p["roof"] for p in pairs if "roof" in p]
    bw = [p["bw"] for p in pairs if "bw" in p]
    m = re.match(r"(.*)-(f16|q8_0|q4_0|q4_k_m|q5_k_m|q6_k)-(llama|longctx)$", model)
    shape, typ = (m.group(1), m.group(2) + (" (longctx quantize)" if m.group(3) == "longctx" else "")) if m else (model, "?")
    print("| %s | %s | %s | %s | %s | %s | %s | %s | %d |" % (
        shape, typ, test, f(med(ll)), f(med(lc)), f(med(ratios), "%.2fx"),
        f(100 * med(roof), "%.0f%%") if roof else "-", f(med(bw), "%.1f") if bw else "-", len(ratios)))
EOF
