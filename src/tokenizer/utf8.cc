#include "tokenizer/utf8.h"

namespace longctx::tok {
namespace {

// Length of the maximal prefix of a well-formed sequence at s[i] (at least 1), and whether it is
// complete. Follows Table 3-7 of the Unicode standard (well-formed UTF-8 byte sequences).
struct SeqInfo {
  size_t len;     // bytes consumed (valid prefix length, at least 1)
  bool complete;  // the sequence is a whole character
};

SeqInfo scan(std::string_view s, size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return {1, true};
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {1, false};
  }
  size_t k = 1;
  for (; k <= need; ++k) {
    if (i + k >= s.size()) return {k, false};
    const auto b = static_cast<unsigned char>(s[i + k]);
    const unsigned char l = (k == 1) ? lo : 0x80, h = (k == 1) ? hi : 0xBF;
    if (b < l || b > h) return {k, false};
  }
  return {k, true};
}

}  // namespace

size_t utf8_seq_len(std::string_view s, size_t i) {
  if (i >= s.size()) return 0;
  const SeqInfo info = scan(s, i);
  return info.complete ? info.len : 0;
}

uint32_t utf8_decode(std::string_view s, size_t i, size_t n) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (n == 1) return b0;
  uint32_t cp = b0 & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  return cp;
}

void utf8_append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

bool utf8_valid(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const SeqInfo info = scan(s, i);
    if (!info.complete) return false;
    i += info.len;
  }
  return true;
}

std::string utf8_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const SeqInfo info = scan(s, i);
    if (info.complete) {
      out.append(s.substr(i, info.len));
    } else {
      out += "\xEF\xBF\xBD";
    }
    i += info.len;
  }
  return out;
}

bool is_unicode_whitespace(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

size_t leading_whitespace_bytes(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const size_t n = utf8_seq_len(s, i);
    if (n == 0 || !is_unicode_whitespace(utf8_decode(s, i, n))) break;
    i += n;
  }
  return i;
}

size_t trailing_whitespace_bytes(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    const size_t n = utf8_seq_len(s, start);
    if (n != end - start || !is_unicode_whitespace(utf8_decode(s, start, n))) break;
    end = start;
  }
  return s.size() - end;
}

}  // namespace longctx::tok
