// The tokenizer of a Hugging Face model folder as GGUF metadata (tokenizer.ggml.*), written the
// way llama.cpp's convert_hf_to_gguf.py writes it, so that llama.cpp and longctx's GGUF tokenizer
// (gguf_tokenizer.h) read it back as the folder's tokenizer:
//   tokenizer.model (SentencePiece) -> model "llama", pre "default": pieces, scores, token types
//     (unknown 2, control 3, unused 5, byte 6, else normal 1); added_tokens.json and
//     tokenizer_config.json's added_tokens_decoder overwrite their ids (control when special,
//     user-defined otherwise, score -1000); ids up to config.json's vocab_size are "[PAD<id>]"
//     (unused, score -10000).
//   tokenizer.json of byte-level BPE -> model "gpt2": tokens (added tokens control or
//     user-defined), ranked merges, and tokenizer.ggml.pre named from the pre-tokenizer's
//     structure (gpt-2, smollm, llama-bpe, qwen2); any other pre-tokenizer is refused.
// Special ids as llama.cpp's SpecialVocab finds them: tokenizer_config.json's bos/eos/unk/pad
// tokens matched in tokenizer.json's added tokens, then config.json's *_token_id; add_bos/add_eos
// from tokenizer_config.json, else from tokenizer.json's TemplateProcessing; the chat template.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace longctx::io {
class GgufWriter;
}

namespace longctx::tok {

struct ExportedVocab {
  std::string model;  // "llama" or "gpt2"
  std::string pre;    // tokenizer.ggml.pre
  std::vector<std::string> tokens;
  std::vector<float> scores;      // "llama" only
  std::vector<int32_t> types;     // llama_token_type values
  std::vector<std::string> merges;  // "gpt2" only: "left right"
  std::optional<int32_t> bos, eos, unk, pad;
  std::optional<bool> add_bos, add_eos;
  std::string chat_template;  // "" when the folder has none
};

// Reads the tokenizer of the model folder DIR padded to `vocab_size` tokens (config.json's).
// Error(kIo) when the folder has neither tokenizer.model nor tokenizer.json; Error(kUnsupported)
// naming the fix for a tokenizer llama.cpp's GGUF vocabularies cannot express here; Error(kFormat)
// for a malformed file.
ExportedVocab export_vocab(const std::string& dir, int64_t vocab_size);

// Sets the tokenizer.ggml.* keys (and tokenizer.chat_template) of `v` on `w`.
void write_vocab_metadata(const ExportedVocab& v, io::GgufWriter& w);

}  // namespace longctx::tok
