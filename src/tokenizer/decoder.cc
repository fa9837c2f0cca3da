#include "tokenizer/decoder.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/json_util.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"

namespace longctx::tok {

int byte_fallback_value(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  int v = 0;
  for (int k = 3; k < 5; ++k) {
    const char c = t[k];
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else {
      return -1;
    }
    v = v * 16 + d;
  }
  return v;
}

namespace {

// Maps byte-level characters back to bytes and joins everything into one string. A token with a
// character outside the alphabet (e.g. an added token) is kept as it is.
class ByteLevelDec : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens, bool raw_piece) const override {
    std::string bytes;
    for (const auto& t : tokens) {
      std::string b;
      bool ok = true;
      utf8_for_each_char(t, [&](std::string_view ch) {
        const int v = ok ? byte_level_byte(utf8_decode(ch, 0, ch.size())) : -1;
        if (v < 0) {
          ok = false;
        } else {
          b += static_cast<char>(v);
        }
      });
      bytes += ok ? b : t;
    }
    tokens.assign(1, raw_piece ? bytes : utf8_lossy(bytes));
  }
};

class ReplaceDec : public Decoder {
 public:
  ReplaceDec(TextPattern p, std::string content)
      : pattern_(std::move(p)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens, bool) const override {
    for (auto& t : tokens) t = pattern_.replace_all(t, content_);
  }

 private:
  TextPattern pattern_;
  std::string content_;
};

// Runs of "<0xXX>" tokens become the bytes they name when those form valid UTF-8; otherwise
// each byte becomes U+FFFD (Hugging Face ByteFallback).
class ByteFallbackDec : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens, bool raw_piece) const override {
    std::vector<std::string> out;
    std::string pending;
    size_t pending_count = 0;
    auto flush = [&] {
      if (pending_count == 0) return;
      if (raw_piece || utf8_valid(pending)) {
        out.push_back(pending);
      } else {
        for (size_t i = 0; i < pending_count; ++i) out.emplace_back("\xEF\xBF\xBD");
      }
      pending.clear();
      pending_count = 0;
    };
    for (auto& t : tokens) {
      const int v = byte_fallback_value(t);
      if (v >= 0) {
        pending += static_cast<char>(v);
        ++pending_count;
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens = std::move(out);
  }
};

class FuseDec : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens, bool) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

// Removes up to `start` leading and `stop` trailing copies of `content` from every token.
class StripDec : public Decoder {
 public:
  StripDec(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens, bool raw_piece) const override {
    if (raw_piece || content_.empty()) return;
    for (auto& t : tokens) {
      size_t b = 0, e = t.size();
      for (size_t k = 0; k < start_ && t.compare(b, content_.size(), content_) == 0; ++k) {
        b += content_.size();
      }
      for (size_t k = 0; k < stop_ && e >= b + content_.size() &&
                         t.compare(e - content_.size(), content_.size(), content_) == 0;
           ++k) {
        e -= content_.size();
      }
      t = t.substr(b, e - b);
    }
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

// Replacement character -> space, except in the first token, where Hugging Face drops every
// replacement character (not only a leading one) unless the prepend scheme is "never".
class MetaspaceDec : public Decoder {
 public:
  MetaspaceDec(std::string rep, bool strip_first) : rep_(std::move(rep)), strip_(strip_first) {}
  void decode_chain(std::vector<std::string>& tokens, bool raw_piece) const override {
    const TextPattern rep = TextPattern::literal(rep_);
    for (size_t i = 0; i < tokens.size(); ++i) {
      const bool drop = i == 0 && strip_ && !raw_piece;
      tokens[i] = rep.replace_all(tokens[i], drop ? "" : " ");
    }
  }

 private:
  std::string rep_;
  bool strip_;
};

class SequenceDec : public Decoder {
 public:
  explicit SequenceDec(std::vector<std::unique_ptr<Decoder>> parts) : parts_(std::move(parts)) {}
  void decode_chain(std::vector<std::string>& tokens, bool raw_piece) const override {
    for (const auto& p : parts_) p->decode_chain(tokens, raw_piece);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

}  // namespace

std::unique_ptr<Decoder> parse_decoder(const nlohmann::json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  const std::string type = json_type(j, where, "decoder");
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> parts;
    for (const auto& d : json_array(j, "decoders", where)) {
      if (auto p = parse_decoder(d, where)) parts.push_back(std::move(p));
    }
    return std::make_unique<SequenceDec>(std::move(parts));
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelDec>();
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDec>();
  if (type == "Fuse") return std::make_unique<FuseDec>();
  if (type == "Replace") {
    return std::make_unique<ReplaceDec>(parse_text_pattern(j, where),
                                        json_string(j, "content", where));
  }
  if (type == "Strip") {
    const int64_t start = json_int(j, "start", 0, where), stop = json_int(j, "stop", 0, where);
    if (start < 0 || stop < 0) json_fail(where, "Strip decoder with negative start/stop");
    return std::make_unique<StripDec>(json_string(j, "content", where), static_cast<size_t>(start),
                                      static_cast<size_t>(stop));
  }
  if (type == "Metaspace") {
    bool strip = json_bool(j, "add_prefix_space", true, where);
    const std::string ps = json_string_or(j, "prepend_scheme", "", where);
    if (!ps.empty()) strip = ps != "never";
    return std::make_unique<MetaspaceDec>(json_string_or(j, "replacement", "\xE2\x96\x81", where),
                                          strip);
  }
  throw Error(ErrorKind::kUnsupported,
              where + ": unsupported decoder type '" + type +
                  "'; longctx supports ByteLevel, Replace, ByteFallback, Fuse, Strip, "
                  "Metaspace, Sequence");
}

}  // namespace longctx::tok
