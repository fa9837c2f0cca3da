// A Hugging Face tokenizer.json tokenizer (model type BPE): added tokens -> normalizer ->
// pre-tokenizer -> BPE -> post-processor, and ids -> decoder for the way back.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/decoder.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/post_processor.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"

namespace longctx::tok {

struct HfTokenizerParts {
  std::string path;  // for messages
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<BpeModel> model;
  std::unique_ptr<Decoder> decoder;
  PostTemplate post;
  std::vector<AddedToken> added;
  int32_t bos_id = -1;
  int32_t eos_id = -1;
};

class HfTokenizer : public Tokenizer {
 public:
  explicit HfTokenizer(HfTokenizerParts parts);

  std::vector<int32_t> encode(std::string_view text, bool add_special) const override;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special) const override;
  std::string token_bytes(int32_t id) const override;
  int64_t vocab_size() const override { return vocab_size_; }
  int32_t bos_id() const override { return p_.bos_id; }
  int32_t eos_id() const override { return p_.eos_id; }
  bool is_special(int32_t id) const override;

 private:
  void encode_text(std::string_view text, bool at_origin, std::vector<int32_t>& out) const;
  const AddedToken* added_token(int32_t id) const;

  HfTokenizerParts p_;
  std::unique_ptr<AddedTokenMatcher> raw_matcher_;   // added tokens with normalized == false
  std::unique_ptr<AddedTokenMatcher> norm_matcher_;  // added tokens with normalized == true
  std::unordered_map<int32_t, size_t> added_index_;  // id -> index in p_.added
  int64_t vocab_size_ = 0;
};

}  // namespace longctx::tok
