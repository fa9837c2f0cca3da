#include "tokenizer/added_tokens.h"

#include <utf8proc.h>

#include <algorithm>

#include "tokenizer/utf8.h"

namespace longctx::tok {
namespace {

bool is_word_char(uint32_t cp) {
  if (cp == '_') return true;
  const auto c = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) ||
         (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO);
}

bool ends_with_word_char(std::string_view s) {
  if (s.empty()) return false;
  size_t i = s.size() - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  const size_t n = utf8_seq_len(s, i);
  return n > 0 && is_word_char(utf8_decode(s, i, n));
}

bool starts_with_word_char(std::string_view s) {
  const size_t n = utf8_seq_len(s, 0);
  return n > 0 && is_word_char(utf8_decode(s, 0, n));
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens,
                                     std::vector<std::string> patterns)
    : tokens_(std::move(tokens)), patterns_(std::move(patterns)), by_first_byte_(256) {
  for (size_t i = 0; i < patterns_.size(); ++i) {
    if (patterns_[i].empty()) continue;
    by_first_byte_[static_cast<unsigned char>(patterns_[i][0])].push_back(static_cast<int>(i));
  }
  for (auto& v : by_first_byte_) {
    std::stable_sort(v.begin(), v.end(),
                     [&](int a, int b) { return patterns_[a].size() > patterns_[b].size(); });
  }
}

void AddedTokenMatcher::split(std::string_view text, std::vector<TextSegment>& out) const {
  size_t done = 0;  // text before this offset has been emitted
  size_t pos = 0;
  while (pos < text.size()) {
    int hit = -1;
    for (int idx : by_first_byte_[static_cast<unsigned char>(text[pos])]) {
      const std::string& p = patterns_[idx];
      if (text.compare(pos, p.size(), p) != 0) continue;
      const AddedToken& t = tokens_[idx];
      if (t.single_word && (ends_with_word_char(text.substr(0, pos)) ||
                            starts_with_word_char(text.substr(pos + p.size())))) {
        continue;
      }
      hit = idx;
      break;
    }
    if (hit < 0) {
      ++pos;
      continue;
    }
    const AddedToken& t = tokens_[hit];
    size_t start = pos, stop = pos + patterns_[hit].size();
    if (t.lstrip) {
      start = std::max(done, pos - trailing_whitespace_bytes(text.substr(0, pos)));
    }
    if (t.rstrip) stop += leading_whitespace_bytes(text.substr(stop));
    if (done < start) out.push_back({text.substr(done, start - done), -1, done});
    out.push_back({text.substr(start, stop - start), t.id, start});
    done = pos = stop;
  }
  if (done < text.size() || text.empty()) out.push_back({text.substr(done), -1, done});
}

}  // namespace longctx::tok
