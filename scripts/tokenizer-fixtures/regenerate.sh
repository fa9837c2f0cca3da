#!/bin/sh
# Regenerates the tokenizer test fixtures in tests/tokenizer/fixtures from independent reference
# implementations: Hugging Face tokenizers (npm package, pinned in package.json) for tokenizer.json
# and SentencePiece (Debian python3-sentencepiece) for tokenizer.model.
#   cd scripts/tokenizer-fixtures && npm ci && ./regenerate.sh
# SHARED defaults to the shared data directory beside the checkout (../shared from the root).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
shared=${SHARED:-$root/../shared}
out=$root/tests/tokenizer/fixtures
py=/usr/bin/python3  # Debian's python, which has the sentencepiece module
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
cd "$here"

node gen_hf_fixtures.js "$shared/tokenizers/smollm2-bpe/tokenizer.json" "$out/smollm2_bpe.json" \
  --extra cases_smollm2_special.json

$py gen_spm_fixtures.py "$shared/tokenizers/llama2-spm/tokenizer.model" "$out/llama2_spm.json"

# The metaspace + byte-fallback tokenizer.json style, built from the Llama 2 vocabulary (the C++
# test rebuilds the same tokenizer.json at test time and checks the merges fingerprint).
for style in legacy metaspace; do
  fp=$($py spm_to_tokenizer_json.py "$shared/tokenizers/llama2-spm/tokenizer.model" \
    "$tmp/$style.json" "$style")
  node gen_hf_fixtures.js "$tmp/$style.json" "$out/llama2_hf_$style.json" \
    --meta "style=$style" --meta "merges_fingerprint=$fp" \
    --extra cases_llama2_special.json
done

# Small tokenizer.json files, one feature each.
node gen_mini_fixtures.js "$out/mini_tokenizers.json"
