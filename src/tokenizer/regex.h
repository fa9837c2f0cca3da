// A compiled PCRE2 pattern (UTF + UCP, so \p{L}, \p{N}, \s follow Unicode) with match iteration.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace longctx::tok {

class Regex {
 public:
  // Throws Error(kFormat) naming `where` (e.g. the tokenizer.json path) if the pattern is invalid.
  Regex(const std::string& pattern, const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Non-empty matches in s (valid UTF-8), left to right, as [begin, end) byte offsets.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view s) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The "pattern" of tokenizer.json Split / Replace: {"String": literal} or {"Regex": pattern}.
class TextPattern {
 public:
  static TextPattern literal(std::string s);
  static TextPattern regex(const std::string& pattern, const std::string& where);

  // Non-empty matches, left to right, non-overlapping, as [begin, end) byte offsets.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view s) const;
  std::string replace_all(std::string_view s, std::string_view content) const;

 private:
  std::string literal_;
  std::shared_ptr<const Regex> regex_;
};

}  // namespace longctx::tok
