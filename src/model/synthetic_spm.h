// A SentencePiece tokenizer.model for random-weight checkpoints, beside their byte-level BPE
// tokenizer.json: llama.cpp's convert_hf_to_gguf.py reads Llama, Mistral and Qwen2 vocabularies
// from tokenizer.model when there is one, and Phi-3 only from it; a synthetic tokenizer.json's
// pre-tokenizer hash is one the converter cannot recognise. longctx itself keeps reading
// tokenizer.json (load_tokenizer prefers it), so nothing it does changes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace longctx {

// The serialized ModelProto of a BPE model with byte fallback and exactly `vocab` pieces: <unk>,
// <s>, </s>, the 256 byte pieces <0x00>..<0xFF>, "▁", the letters a-z, then `words` (with "▁" for
// a word start, ranked by order) until `vocab` pieces. "" when vocab is below the 286 fixed pieces.
std::string synthetic_spm_model(const std::vector<std::string>& words, int64_t vocab);

}  // namespace longctx
