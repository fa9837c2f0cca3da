#include "tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace longctx::tok {

struct Regex::Impl {
  pcre2_code* code = nullptr;
  std::string pattern;
};

Regex::Regex(const std::string& pattern, const std::string& where) : impl_(new Impl) {
  impl_->pattern = pattern;
  int err = 0;
  PCRE2_SIZE err_off = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                              PCRE2_UTF | PCRE2_UCP, &err, &err_off, nullptr);
  if (impl_->code == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    throw Error(ErrorKind::kFormat, where + ": invalid regex pattern '" + pattern + "' at offset " +
                                        std::to_string(err_off) + ": " +
                                        reinterpret_cast<const char*>(msg) +
                                        "; fix the pattern in the tokenizer file");
  }
  // JIT is optional: when unavailable, pcre2_match falls back to the interpreter.
  pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE);
}

Regex::~Regex() {
  if (impl_ && impl_->code) pcre2_code_free(impl_->code);
}

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view s) const {
  std::vector<std::pair<size_t, size_t>> out;
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(impl_->code, nullptr);
  if (md == nullptr) throw Error(ErrorKind::kMemory, "pcre2: cannot allocate match data");
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(s.data());
  size_t pos = 0;
  while (pos <= s.size()) {
    const int rc =
        pcre2_match(impl_->code, subject, s.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      pcre2_match_data_free(md);
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof(msg));
      throw Error(ErrorKind::kInternal, "regex '" + impl_->pattern + "' failed to match: " +
                                            reinterpret_cast<const char*>(msg));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t b = ov[0], e = ov[1];
    if (e > b) {
      out.emplace_back(b, e);
      pos = e;
    } else {
      // Empty match: step over one character so that the search always advances.
      if (b >= s.size()) break;
      const size_t n = utf8_seq_len(s, b);
      pos = b + (n == 0 ? 1 : n);
    }
  }
  pcre2_match_data_free(md);
  return out;
}

TextPattern TextPattern::literal(std::string s) {
  TextPattern p;
  p.literal_ = std::move(s);
  return p;
}

TextPattern TextPattern::regex(const std::string& pattern, const std::string& where) {
  TextPattern p;
  p.regex_ = std::make_shared<const Regex>(pattern, where);
  return p;
}

std::vector<std::pair<size_t, size_t>> TextPattern::find_all(std::string_view s) const {
  if (regex_) return regex_->find_all(s);
  std::vector<std::pair<size_t, size_t>> out;
  if (literal_.empty()) return out;
  for (size_t pos = s.find(literal_); pos != std::string_view::npos;
       pos = s.find(literal_, pos + literal_.size())) {
    out.emplace_back(pos, pos + literal_.size());
  }
  return out;
}

std::string TextPattern::replace_all(std::string_view s, std::string_view content) const {
  std::string out;
  size_t last = 0;
  for (const auto& [b, e] : find_all(s)) {
    out.append(s.substr(last, b - last));
    out.append(content);
    last = e;
  }
  out.append(s.substr(last));
  return out;
}

}  // namespace longctx::tok
