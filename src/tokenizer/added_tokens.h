// Added tokens of tokenizer.json ("added_tokens"): special and user tokens found verbatim in the
// input text before normalization / pre-tokenization, matched leftmost-longest.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace longctx::tok {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool single_word = false;  // only match when not inside a word
  bool lstrip = false;       // swallow whitespace on the left
  bool rstrip = false;       // swallow whitespace on the right
  bool normalized = false;   // matched in normalized text rather than raw text
  bool special = false;      // skipped by decode(skip_special)
};

// One piece of input text: an added token (id >= 0) or text to tokenize (id == -1).
struct TextSegment {
  std::string_view text;
  int32_t id;
  size_t offset;  // byte offset of text within the string passed to split()
};

// Finds a set of added tokens in text (leftmost, then longest, non-overlapping).
class AddedTokenMatcher {
 public:
  // `patterns[i]` is what to look for (the token content, normalized for normalized tokens).
  AddedTokenMatcher(std::vector<AddedToken> tokens, std::vector<std::string> patterns);
  bool empty() const { return tokens_.empty(); }
  // Appends the segments of text to out; text segments may be empty only when text is.
  void split(std::string_view text, std::vector<TextSegment>& out) const;

 private:
  std::vector<AddedToken> tokens_;
  std::vector<std::string> patterns_;
  std::vector<std::vector<int>> by_first_byte_;  // candidate indices, longest pattern first
};

}  // namespace longctx::tok
