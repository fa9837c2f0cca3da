// The BPE model of Hugging Face tokenizer.json: vocab + ranked merges, applied to one
// pre-tokenized word at a time, with optional byte fallback and unknown-token handling.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace longctx::tok {

// Hash and equality that let unordered_map<std::string, ...> be queried with a string_view.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using Vocab = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

struct BpeOptions {
  std::string unk_token;  // empty: none
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
};

class BpeModel {
 public:
  // Throws Error(kFormat) naming `where` when a merge refers to a token missing from the vocab.
  BpeModel(Vocab vocab, const std::vector<std::pair<std::string, std::string>>& merges,
           BpeOptions options, const std::string& where);

  // Appends the ids of one word (already normalized and pre-tokenized) to out.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;

  int32_t token_to_id(std::string_view token) const;  // -1 when absent
  const std::vector<std::string>& id_to_token() const { return id_to_token_; }
  const Vocab& vocab() const { return vocab_; }

 private:
  struct MergeInfo {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  void merge_word(std::vector<int32_t>& syms) const;

  Vocab vocab_;
  std::vector<std::string> id_to_token_;
  std::unordered_map<uint64_t, MergeInfo> merges_;
  BpeOptions opt_;
  int32_t unk_id_ = -1;
  int32_t byte_ids_[256];  // id of "<0xXX>" per byte, -1 when absent
};

}  // namespace longctx::tok
