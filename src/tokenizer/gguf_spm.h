// The "llama" tokenizer of GGUF files: SentencePiece-style BPE driven by token scores, with byte
// fallback to <0xXX> tokens, written from llama.cpp's llm_tokenizer_spm semantics (GGUF files
// carry no SentencePiece protobuf, so libsentencepiece cannot be used).
//
// Encoding: control, user-defined and unknown tokens written in the text are split out first
// (longest match at the leftmost position); every other run of text gets a leading space when it
// starts the input or follows such a token (add_space_prefix), has its spaces replaced by U+2581
// "▁", and is split into characters; then the adjacent pair whose concatenation is the vocabulary
// token of highest score is merged (ties: leftmost) until no pair forms a token. A character that
// is no token becomes its UTF-8 bytes' <0xXX> tokens (the unknown token when those are missing).
// Invalid UTF-8 is first replaced byte by byte with U+FFFD, as SentencePiece's normalizer does.
//
// Decoding: "▁" becomes a space, byte tokens their byte, and the first piece of the output loses
// one leading space (the one encoding added), as SentencePiece's decoder does.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/gguf_vocab.h"
#include "tokenizer/tokenizer.h"

namespace longctx::tok {

class SpmScoreTokenizer : public Tokenizer {
 public:
  explicit SpmScoreTokenizer(GgufVocab vocab);

  std::vector<int32_t> encode(std::string_view text, bool add_special) const override;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special) const override;
  std::string token_bytes(int32_t id) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(v_.tokens.size()); }
  int32_t bos_id() const override { return v_.bos; }
  int32_t eos_id() const override { return v_.eos; }
  bool is_special(int32_t id) const override;

 private:
  // Appends the ids of one run of text (already prefixed and with ▁ for spaces).
  void encode_run(const std::string& text, std::vector<int32_t>& out) const;
  void append_bytes(std::string_view ch, std::vector<int32_t>& out) const;  // one character
  void check_id(int32_t id) const;

  GgufVocab v_;
  Vocab mergeable_;  // normal and user-defined tokens: what characters may merge into
  int32_t byte_ids_[256];
  std::unique_ptr<AddedTokenMatcher> specials_;
  bool add_bos_, add_eos_, add_space_prefix_;
};

}  // namespace longctx::tok
