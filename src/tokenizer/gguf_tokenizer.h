// The tokenizer embedded in a GGUF file's metadata (tokenizer.ggml.*), so that a .gguf model, or
// one of llama.cpp's vocabulary-only files, needs nothing beside it.
//
// Supported tokenizer.ggml.model values:
//   "llama": SentencePiece-style BPE by token scores with <0xXX> byte fallback (gguf_spm.h).
//   "gpt2":  byte-level BPE with ranked merges, after the pre-tokenizer regexes that
//            tokenizer.ggml.pre names (gguf_pretokenizers.cc lists them), reusing the Hugging Face
//            tokenizer.json machinery (BpeModel, regex Split, ByteLevel).
// Control, user-defined and unknown tokens written in the text encode to their ids (as llama.cpp
// does with parse_special); decode(skip_special) leaves out control and unknown tokens.
// Decoding is exact: llama.cpp's clean_spaces rewriting (" ," -> ",", ...) is not applied, so
// decode(encode(s)) == s for valid UTF-8 (up to the leading space rule of "llama" vocabularies).
#pragma once

#include <memory>
#include <string>

#include "tokenizer/tokenizer.h"

namespace longctx {

namespace io {
class GgufFile;
}

class GgufTokenizer : public Tokenizer {
 public:
  struct Info {
    std::string model;          // tokenizer.ggml.model
    std::string pre;            // tokenizer.ggml.pre ("" when absent)
    std::string chat_template;  // tokenizer.chat_template ("" when absent)
    bool add_bos = false;       // what encode(add_special) adds
    bool add_eos = false;
  };
  GgufTokenizer(std::unique_ptr<Tokenizer> impl, Info info)
      : impl_(std::move(impl)), info_(std::move(info)) {}

  std::vector<int32_t> encode(std::string_view text, bool add_special) const override {
    return impl_->encode(text, add_special);
  }
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = true) const override {
    return impl_->decode(ids, skip_special);
  }
  std::string token_bytes(int32_t id) const override { return impl_->token_bytes(id); }
  int64_t vocab_size() const override { return impl_->vocab_size(); }
  int32_t bos_id() const override { return impl_->bos_id(); }
  int32_t eos_id() const override { return impl_->eos_id(); }
  bool is_special(int32_t id) const override { return impl_->is_special(id); }

  const Info& info() const { return info_; }
  // The Jinja chat template of tokenizer.chat_template; empty when the file has none.
  const std::string& chat_template() const { return info_.chat_template; }

 private:
  std::unique_ptr<Tokenizer> impl_;
  Info info_;
};

// Builds the tokenizer of f's metadata. Error(kUnsupported) naming the value and the supported
// ones for an unknown tokenizer.ggml.model or tokenizer.ggml.pre; Error(kFormat) for malformed
// metadata (see read_gguf_vocab).
std::unique_ptr<GgufTokenizer> load_gguf_tokenizer(const io::GgufFile& f);
// Opens PATH (any .gguf, including vocabulary-only files) and builds its tokenizer.
std::unique_ptr<GgufTokenizer> load_gguf_tokenizer(const std::string& path);

}  // namespace longctx
