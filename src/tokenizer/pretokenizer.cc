#include "tokenizer/pretokenizer.h"

#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/json_util.h"
#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"

namespace longctx::tok {

std::vector<std::pair<size_t, size_t>> split_ranges(
    size_t len, const std::vector<std::pair<size_t, size_t>>& matches, SplitBehavior behavior,
    bool invert) {
  // Cover the whole string with (range, is_match) pieces.
  struct Piece {
    size_t b, e;
    bool match;
  };
  std::vector<Piece> pieces;
  size_t prev = 0;
  for (const auto& [b, e] : matches) {
    if (prev < b) pieces.push_back({prev, b, invert});
    pieces.push_back({b, e, !invert});
    prev = e;
  }
  if (prev < len) pieces.push_back({prev, len, invert});

  std::vector<std::pair<size_t, size_t>> out;
  bool prev_match = false;
  switch (behavior) {
    case SplitBehavior::kRemoved:
      for (const auto& p : pieces) {
        if (!p.match) out.emplace_back(p.b, p.e);
      }
      break;
    case SplitBehavior::kIsolated:
      for (const auto& p : pieces) out.emplace_back(p.b, p.e);
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const auto& p : pieces) {
        if (p.match && !prev_match && !out.empty()) {
          out.back().second = p.e;
        } else {
          out.emplace_back(p.b, p.e);
        }
        prev_match = p.match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto it = pieces.rbegin(); it != pieces.rend(); ++it) {
        if (it->match && !prev_match && !out.empty()) {
          out.back().first = it->b;
        } else {
          out.emplace_back(it->b, it->e);
        }
        prev_match = it->match;
      }
      std::reverse(out.begin(), out.end());
      break;
    case SplitBehavior::kContiguous:
      for (const auto& p : pieces) {
        if (p.match == prev_match && !out.empty()) {
          out.back().second = p.e;
        } else {
          out.emplace_back(p.b, p.e);
        }
        prev_match = p.match;
      }
      break;
  }
  return out;
}

namespace {

// The GPT-2 byte-to-unicode table: printable Latin-1 bytes map to themselves, the other 68 bytes
// to U+0100.. in byte order.
struct ByteLevelTable {
  std::array<std::string, 256> chars;
  std::array<int, 324> bytes;  // code points < 324 cover the whole alphabet
  ByteLevelTable() {
    bytes.fill(-1);
    uint32_t n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const uint32_t cp = printable ? static_cast<uint32_t>(b) : 256 + n++;
      utf8_append(chars[b], cp);
      bytes[cp] = b;
    }
  }
};
const ByteLevelTable& table() {
  static const ByteLevelTable t;
  return t;
}

// Replaces each split by the pieces that fn(text) -> ranges gives.
template <typename F>
void split_each(std::vector<PreSplit>& splits, F&& fn) {
  std::vector<PreSplit> out;
  out.reserve(splits.size());
  for (auto& s : splits) {
    for (const auto& [b, e] : fn(s.text)) {
      if (e > b) out.push_back({s.text.substr(b, e - b), s.at_origin && b == 0});
    }
  }
  splits = std::move(out);
}

// Every character for which pred(code point) holds is one match.
template <typename P>
std::vector<std::pair<size_t, size_t>> char_matches(std::string_view s, P&& pred) {
  std::vector<std::pair<size_t, size_t>> m;
  size_t i = 0;
  utf8_for_each_char(s, [&](std::string_view ch) {
    if (pred(utf8_decode(ch, 0, ch.size()))) m.emplace_back(i, i + ch.size());
    i += ch.size();
  });
  return m;
}

bool is_numeric(uint32_t cp) {
  const auto c = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}

bool is_punctuation(uint32_t cp) {
  const auto c = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  return (c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO) ||
         (cp < 0x80 && std::ispunct(static_cast<int>(cp)));
}

const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevelPre : public PreTokenizer {
 public:
  ByteLevelPre(bool add_prefix_space, bool use_regex, const std::string& where)
      : add_prefix_space_(add_prefix_space) {
    if (use_regex) regex_ = std::make_unique<Regex>(kGpt2Pattern, where);
  }
  void pre_tokenize(std::vector<PreSplit>& splits) const override {
    if (add_prefix_space_) {
      for (auto& s : splits) {
        if (s.text.empty() || s.text[0] != ' ') s.text.insert(s.text.begin(), ' ');
      }
    }
    if (regex_) {
      split_each(splits, [&](const std::string& t) {
        return split_ranges(t.size(), regex_->find_all(t), SplitBehavior::kIsolated, false);
      });
    }
    for (auto& s : splits) {
      std::string mapped;
      mapped.reserve(s.text.size() * 2);
      for (unsigned char c : s.text) mapped += table().chars[c];
      s.text = std::move(mapped);
    }
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;
};

class SplitPre : public PreTokenizer {
 public:
  SplitPre(TextPattern p, SplitBehavior b, bool invert)
      : pattern_(std::move(p)), behavior_(b), invert_(invert) {}
  void pre_tokenize(std::vector<PreSplit>& splits) const override {
    split_each(splits, [&](const std::string& t) {
      return split_ranges(t.size(), pattern_.find_all(t), behavior_, invert_);
    });
  }

 private:
  TextPattern pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

// Splits on characters matching a predicate (Digits, Punctuation, WhitespaceSplit).
template <typename P>
class CharSplitPre : public PreTokenizer {
 public:
  CharSplitPre(P pred, SplitBehavior b) : pred_(pred), behavior_(b) {}
  void pre_tokenize(std::vector<PreSplit>& splits) const override {
    split_each(splits, [&](const std::string& t) {
      return split_ranges(t.size(), char_matches(t, pred_), behavior_, false);
    });
  }

 private:
  P pred_;
  SplitBehavior behavior_;
};
template <typename P>
std::unique_ptr<PreTokenizer> make_char_split(P pred, SplitBehavior b) {
  return std::make_unique<CharSplitPre<P>>(pred, b);
}

enum class PrependScheme { kAlways, kFirst, kNever };

class MetaspacePre : public PreTokenizer {
 public:
  MetaspacePre(std::string replacement, PrependScheme scheme, bool split)
      : rep_(std::move(replacement)), scheme_(scheme), split_(split) {}
  void pre_tokenize(std::vector<PreSplit>& splits) const override {
    const TextPattern space = TextPattern::literal(" ");
    for (auto& s : splits) {
      if (s.text.empty()) continue;  // nothing to prepend to
      s.text = space.replace_all(s.text, rep_);
      const bool starts = s.text.compare(0, rep_.size(), rep_) == 0;
      if (!starts && (scheme_ == PrependScheme::kAlways ||
                      (scheme_ == PrependScheme::kFirst && s.at_origin))) {
        s.text.insert(0, rep_);
      }
    }
    if (split_) {
      const TextPattern rep = TextPattern::literal(rep_);
      split_each(splits, [&](const std::string& t) {
        return split_ranges(t.size(), rep.find_all(t), SplitBehavior::kMergedWithNext, false);
      });
    }
  }

 private:
  std::string rep_;
  PrependScheme scheme_;
  bool split_;
};

class SequencePre : public PreTokenizer {
 public:
  explicit SequencePre(std::vector<std::unique_ptr<PreTokenizer>> parts)
      : parts_(std::move(parts)) {}
  void pre_tokenize(std::vector<PreSplit>& splits) const override {
    for (const auto& p : parts_) p->pre_tokenize(splits);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

SplitBehavior parse_behavior(const std::string& s, const std::string& where) {
  if (s == "Removed") return SplitBehavior::kRemoved;
  if (s == "Isolated") return SplitBehavior::kIsolated;
  if (s == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (s == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (s == "Contiguous") return SplitBehavior::kContiguous;
  json_fail(where, "unknown split behavior '" + s + "'");
}

}  // namespace

const std::string& byte_level_char(unsigned char b) { return table().chars[b]; }

int byte_level_byte(uint32_t cp) { return cp < 324 ? table().bytes[cp] : -1; }

std::unique_ptr<PreTokenizer> parse_pre_tokenizer(const nlohmann::json& j,
                                                  const std::string& where) {
  if (j.is_null()) return nullptr;
  const std::string type = json_type(j, where, "pre_tokenizer");
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (const auto& p : json_array(j, "pretokenizers", where)) {
      if (auto q = parse_pre_tokenizer(p, where)) parts.push_back(std::move(q));
    }
    return std::make_unique<SequencePre>(std::move(parts));
  }
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevelPre>(json_bool(j, "add_prefix_space", true, where),
                                          json_bool(j, "use_regex", true, where), where);
  }
  if (type == "Split") {
    return std::make_unique<SplitPre>(parse_text_pattern(j, where),
                                      parse_behavior(json_string(j, "behavior", where), where),
                                      json_bool(j, "invert", false, where));
  }
  if (type == "Digits") {
    return make_char_split(is_numeric, json_bool(j, "individual_digits", false, where)
                                           ? SplitBehavior::kIsolated
                                           : SplitBehavior::kContiguous);
  }
  if (type == "Punctuation") {
    return make_char_split(is_punctuation,
                           parse_behavior(json_string_or(j, "behavior", "Isolated", where), where));
  }
  if (type == "WhitespaceSplit") {
    return make_char_split(is_unicode_whitespace, SplitBehavior::kRemoved);
  }
  if (type == "Whitespace") {
    return std::make_unique<SplitPre>(TextPattern::regex(R"(\w+|[^\w\s]+)", where),
                                      SplitBehavior::kRemoved, true);
  }
  if (type == "Metaspace") {
    const std::string rep = json_string_or(j, "replacement", "\xE2\x96\x81", where);
    PrependScheme scheme = json_bool(j, "add_prefix_space", true, where) ? PrependScheme::kAlways
                                                                         : PrependScheme::kNever;
    const std::string ps = json_string_or(j, "prepend_scheme", "", where);
    if (ps == "always") scheme = PrependScheme::kAlways;
    if (ps == "first") scheme = PrependScheme::kFirst;
    if (ps == "never") scheme = PrependScheme::kNever;
    return std::make_unique<MetaspacePre>(rep, scheme, json_bool(j, "split", true, where));
  }
  throw Error(ErrorKind::kUnsupported,
              where + ": unsupported pre_tokenizer type '" + type +
                  "'; longctx supports ByteLevel, Split, Digits, Metaspace, Whitespace, "
                  "WhitespaceSplit, Punctuation, Sequence");
}

}  // namespace longctx::tok
