#include "tokenizer/normalizer.h"

#include <utf8proc.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"
#include "tokenizer/json_util.h"
#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"

namespace longctx::tok {
namespace {

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts)
      : parts_(std::move(parts)) {}
  void normalize(std::string& s) const override {
    for (const auto& p : parts_) p->normalize(s);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string& s) const override {
    if (!s.empty()) s.insert(0, prefix_);  // Hugging Face leaves empty strings alone
  }

 private:
  std::string prefix_;
};

class ReplaceNormalizer : public Normalizer {
 public:
  explicit ReplaceNormalizer(TextPattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void normalize(std::string& s) const override { s = pattern_.replace_all(s, content_); }

 private:
  TextPattern pattern_;
  std::string content_;
};

// NFC / NFD / NFKC / NFKD / Lowercase / StripAccents through utf8proc.
class Utf8procNormalizer : public Normalizer {
 public:
  Utf8procNormalizer(int options, bool lowercase, bool strip_marks)
      : options_(options), lowercase_(lowercase), strip_marks_(strip_marks) {}
  void normalize(std::string& s) const override {
    if (s.empty()) return;
    if (options_ != 0) {
      utf8proc_uint8_t* out = nullptr;
      const utf8proc_ssize_t n =
          utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                       static_cast<utf8proc_ssize_t>(s.size()), &out,
                       static_cast<utf8proc_option_t>(options_ | UTF8PROC_STABLE));
      if (n < 0) {
        throw Error(ErrorKind::kInvalidArg,
                    std::string("Unicode normalization failed: ") + utf8proc_errmsg(n));
      }
      s.assign(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
      std::free(out);
    }
    if (!lowercase_ && !strip_marks_) return;
    std::string r;
    r.reserve(s.size());
    utf8_for_each_char(s, [&](std::string_view ch) {
      uint32_t cp = utf8_decode(ch, 0, ch.size());
      if (strip_marks_ &&
          utf8proc_category(static_cast<utf8proc_int32_t>(cp)) == UTF8PROC_CATEGORY_MN) {
        return;
      }
      if (lowercase_) cp = static_cast<uint32_t>(utf8proc_tolower(static_cast<int32_t>(cp)));
      utf8_append(r, cp);
    });
    s = std::move(r);
  }

 private:
  int options_;
  bool lowercase_, strip_marks_;
};

class StripNormalizer : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& s) const override {
    if (right_) s.resize(s.size() - trailing_whitespace_bytes(s));
    if (left_) s.erase(0, leading_whitespace_bytes(s));
  }

 private:
  bool left_, right_;
};

}  // namespace

std::unique_ptr<Normalizer> parse_normalizer(const nlohmann::json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  const std::string type = json_type(j, where, "normalizer");
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (const auto& n : json_array(j, "normalizers", where)) {
      if (auto p = parse_normalizer(n, where)) parts.push_back(std::move(p));
    }
    return std::make_unique<SequenceNormalizer>(std::move(parts));
  }
  if (type == "Prepend") {
    return std::make_unique<PrependNormalizer>(json_string(j, "prepend", where));
  }
  if (type == "Replace") {
    return std::make_unique<ReplaceNormalizer>(parse_text_pattern(j, where),
                                               json_string(j, "content", where));
  }
  if (type == "NFC") return std::make_unique<Utf8procNormalizer>(UTF8PROC_COMPOSE, false, false);
  if (type == "NFD") return std::make_unique<Utf8procNormalizer>(UTF8PROC_DECOMPOSE, false, false);
  if (type == "NFKC") {
    return std::make_unique<Utf8procNormalizer>(UTF8PROC_COMPOSE | UTF8PROC_COMPAT, false, false);
  }
  if (type == "NFKD") {
    return std::make_unique<Utf8procNormalizer>(UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT, false, false);
  }
  if (type == "Lowercase") return std::make_unique<Utf8procNormalizer>(0, true, false);
  if (type == "StripAccents") return std::make_unique<Utf8procNormalizer>(0, false, true);
  if (type == "Strip") {
    return std::make_unique<StripNormalizer>(json_bool(j, "strip_left", true, where),
                                             json_bool(j, "strip_right", true, where));
  }
  throw Error(ErrorKind::kUnsupported,
              where + ": unsupported normalizer type '" + type +
                  "'; longctx supports Sequence, Prepend, Replace, NFC, NFD, NFKC, NFKD, "
                  "Lowercase, Strip, StripAccents");
}

}  // namespace longctx::tok
