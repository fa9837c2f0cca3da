// UTF-8 helpers shared by the tokenizers: decoding code points, lossy repair of invalid bytes,
// Unicode whitespace.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace longctx::tok {

// Length of the valid UTF-8 sequence starting at s[i], or 0 when the bytes there are not a
// complete, well-formed sequence (invalid lead byte, bad continuation, overlong, surrogate,
// beyond U+10FFFF, or cut off by the end of s).
size_t utf8_seq_len(std::string_view s, size_t i);

// Decodes the code point at s[i] (which must start a valid sequence of length n).
uint32_t utf8_decode(std::string_view s, size_t i, size_t n);

void utf8_append(std::string& out, uint32_t cp);

// True when s is entirely well-formed UTF-8.
bool utf8_valid(std::string_view s);

// Replaces every maximal ill-formed subsequence with U+FFFD, as Rust's String::from_utf8_lossy
// (and the Unicode "substitution of maximal subparts" practice) does.
std::string utf8_lossy(std::string_view s);

// Unicode White_Space (what Rust's char::is_whitespace tests).
bool is_unicode_whitespace(uint32_t cp);
// Bytes of leading / trailing Unicode whitespace in s (valid UTF-8).
size_t leading_whitespace_bytes(std::string_view s);
size_t trailing_whitespace_bytes(std::string_view s);

// Splits s into its characters (code points), as byte ranges. s must be valid UTF-8.
template <typename F>
void utf8_for_each_char(std::string_view s, F&& f) {
  size_t i = 0;
  while (i < s.size()) {
    size_t n = utf8_seq_len(s, i);
    if (n == 0) n = 1;  // callers validate first; never loop forever
    f(s.substr(i, n));
    i += n;
  }
}

}  // namespace longctx::tok
