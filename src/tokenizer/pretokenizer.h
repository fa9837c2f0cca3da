// Pre-tokenizers of Hugging Face tokenizer.json ("pre_tokenizer" section): split normalized text
// into words that the BPE model then encodes one by one.
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace longctx::tok {

struct PreSplit {
  std::string text;  // valid UTF-8 (after ByteLevel: the byte-level alphabet)
  bool at_origin;    // starts at offset 0 of the original input (Metaspace prepend_scheme first)
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual void pre_tokenize(std::vector<PreSplit>& splits) const = 0;
};

// How a split treats the matched delimiters (Hugging Face SplitDelimiterBehavior).
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// Turns the sorted non-overlapping matches in a string of length len into the byte ranges of the
// resulting pieces (empty pieces dropped), as Hugging Face NormalizedString::split does.
std::vector<std::pair<size_t, size_t>> split_ranges(
    size_t len, const std::vector<std::pair<size_t, size_t>>& matches, SplitBehavior behavior,
    bool invert);

// Byte -> the character the GPT-2 byte-level alphabet uses for it (UTF-8).
const std::string& byte_level_char(unsigned char b);
// Inverse mapping: code point -> byte, or -1 for a code point outside the alphabet.
int byte_level_byte(uint32_t cp);

// Builds the pre-tokenizer described by j (null gives nullptr). Supported: ByteLevel, Split,
// Digits, Metaspace, Whitespace, WhitespaceSplit, Punctuation, Sequence.
std::unique_ptr<PreTokenizer> parse_pre_tokenizer(const nlohmann::json& j,
                                                  const std::string& where);

}  // namespace longctx::tok
