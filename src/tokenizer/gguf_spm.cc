#include "tokenizer/gguf_spm.h"

#include <cstdio>
#include <queue>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace longctx::tok {
namespace {

const std::string kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space

// SentencePiece's normalizer replaces each byte that does not start a valid UTF-8 sequence with
// U+FFFD, one per byte (not per maximal subpart as Hugging Face does).
std::string repair_per_byte(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_seq_len(s, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

std::string escape_spaces(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  for (char c : s) {
    if (c == ' ') {
      out += kSpace;
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

SpmScoreTokenizer::SpmScoreTokenizer(GgufVocab vocab) : v_(std::move(vocab)) {
  mergeable_.reserve(v_.tokens.size());
  for (size_t i = 0; i < v_.tokens.size(); ++i) {
    const GgufTokenType t = v_.types[i];
    // Control, unknown, byte and unused tokens never result from merging characters (as in
    // SentencePiece); text that spells them ("<0x0A>", "<s>") stays ordinary text.
    if (t == GgufTokenType::kNormal || t == GgufTokenType::kUserDefined ||
        t == GgufTokenType::kUndefined) {
      mergeable_.emplace(v_.tokens[i], static_cast<int32_t>(i));
    }
  }
  // Byte tokens are looked up among all tokens (their type is kByte).
  Vocab all;
  for (size_t i = 0; i < v_.tokens.size(); ++i) {
    if (v_.types[i] == GgufTokenType::kByte) all.emplace(v_.tokens[i], static_cast<int32_t>(i));
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    const auto it = all.find(std::string_view(name));
    byte_ids_[b] = it == all.end() ? -1 : it->second;
  }
  std::vector<AddedToken> specials = gguf_special_tokens(v_);
  std::vector<std::string> patterns;
  for (const auto& a : specials) patterns.push_back(a.content);
  specials_ = std::make_unique<AddedTokenMatcher>(std::move(specials), std::move(patterns));
  // llama.cpp's defaults for "llama" vocabularies, unless the file says otherwise.
  add_bos_ = v_.add_bos.value_or(true);
  add_eos_ = v_.add_eos.value_or(false);
  add_space_prefix_ = v_.add_space_prefix.value_or(true);
  if (add_bos_ && v_.bos < 0) {
    throw Error(ErrorKind::kFormat, v_.where +
                                        ": tokenizer.ggml.add_bos_token is true but the file has "
                                        "no tokenizer.ggml.bos_token_id; convert the model again");
  }
  if (add_eos_ && v_.eos < 0) {
    throw Error(ErrorKind::kFormat, v_.where +
                                        ": tokenizer.ggml.add_eos_token is true but the file has "
                                        "no tokenizer.ggml.eos_token_id; convert the model again");
  }
}

bool SpmScoreTokenizer::is_special(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= v_.tokens.size()) return false;
  const GgufTokenType t = v_.types[static_cast<size_t>(id)];
  return t == GgufTokenType::kControl || t == GgufTokenType::kUnknown;
}

void SpmScoreTokenizer::check_id(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= v_.tokens.size()) {
    throw Error(ErrorKind::kOutOfRange, "token id " + std::to_string(id) +
                                            " is outside the vocabulary (size " +
                                            std::to_string(v_.tokens.size()) + ") of " + v_.where);
  }
}

std::vector<int32_t> SpmScoreTokenizer::encode(std::string_view input, bool add_special) const {
  std::string repaired;
  if (!utf8_valid(input)) {
    repaired = repair_per_byte(input);
    input = repaired;
  }
  std::vector<int32_t> out;
  if (add_special && add_bos_) out.push_back(v_.bos);
  std::vector<TextSegment> segs;
  specials_->split(input, segs);
  bool after_special = true;  // the start of the input counts as following a special token
  for (const TextSegment& s : segs) {
    if (s.id >= 0) {
      out.push_back(s.id);
      after_special = true;
      continue;
    }
    if (s.text.empty()) continue;
    std::string text;
    if (add_space_prefix_ && after_special) text = " ";
    text += s.text;
    encode_run(escape_spaces(text), out);
    after_special = false;
  }
  if (add_special && add_eos_) out.push_back(v_.eos);
  return out;
}

void SpmScoreTokenizer::append_bytes(std::string_view ch, std::vector<int32_t>& out) const {
  bool all = true;
  for (char c : ch) all = all && byte_ids_[static_cast<unsigned char>(c)] >= 0;
  if (all) {
    for (char c : ch) out.push_back(byte_ids_[static_cast<unsigned char>(c)]);
  } else if (v_.unk >= 0 && (out.empty() || out.back() != v_.unk)) {
    // No byte fallback: the unknown token, one for a run of such characters (SentencePiece).
    out.push_back(v_.unk);
  }
}

void SpmScoreTokenizer::encode_run(const std::string& text, std::vector<int32_t>& out) const {
  // Symbols: contiguous byte ranges of text in a linked list; len == 0 marks a merged-away one.
  struct Sym {
    int prev, next;
    size_t off, len;
    int32_t id;  // the token this range is, or -1 (a character that is no token)
  };
  std::vector<Sym> syms;
  syms.reserve(text.size());
  utf8_for_each_char(text, [&](std::string_view ch) {
    const int i = static_cast<int>(syms.size());
    const auto it = mergeable_.find(ch);
    syms.push_back({i - 1, i + 1, static_cast<size_t>(ch.data() - text.data()), ch.size(),
                    it == mergeable_.end() ? -1 : it->second});
  });
  if (syms.empty()) return;
  syms.back().next = -1;

  struct Bigram {
    float score;
    int left, right;
    size_t size;
    int32_t id;
  };
  // Highest score first; among equal scores the leftmost pair (llama.cpp and SentencePiece).
  const auto lower = [](const Bigram& a, const Bigram& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  std::priority_queue<Bigram, std::vector<Bigram>, decltype(lower)> queue(lower);
  const auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const size_t size = syms[left].len + syms[right].len;
    const auto it = mergeable_.find(std::string_view(text).substr(syms[left].off, size));
    if (it == mergeable_.end()) return;
    queue.push({v_.scores[static_cast<size_t>(it->second)], left, right, size, it->second});
  };
  for (int i = 1; i < static_cast<int>(syms.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Sym& l = syms[b.left];
    Sym& r = syms[b.right];
    // Stale entry: one side was merged into something else since it was queued. (The text a
    // bigram covers starts at l.off, so an equal total length means the same text and token.)
    if (l.len == 0 || r.len == 0 || l.len + r.len != b.size) continue;
    l.len += r.len;
    l.id = b.id;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }
  for (int i = 0; i >= 0; i = syms[i].next) {
    if (syms[i].id >= 0) {
      out.push_back(syms[i].id);
    } else {
      append_bytes(std::string_view(text).substr(syms[i].off, syms[i].len), out);
    }
  }
}

std::string SpmScoreTokenizer::token_bytes(int32_t id) const {
  check_id(id);
  const std::string& text = v_.tokens[static_cast<size_t>(id)];
  switch (v_.types[static_cast<size_t>(id)]) {
    case GgufTokenType::kControl:
    case GgufTokenType::kUnknown:
    case GgufTokenType::kUnused:
      return "";  // no text of their own (decode(skip_special = false) spells control tokens)
    case GgufTokenType::kUserDefined:
      return text;
    case GgufTokenType::kByte:
      if (text.size() == 6 && text.compare(0, 3, "<0x") == 0) {
        return std::string(1, static_cast<char>(std::stoi(text.substr(3, 2), nullptr, 16)));
      }
      return text;
    default:
      break;
  }
  std::string out;
  for (size_t i = 0; i < text.size();) {
    if (text.compare(i, kSpace.size(), kSpace) == 0) {
      out += ' ';
      i += kSpace.size();
    } else {
      out += text[i++];
    }
  }
  return out;
}

std::string SpmScoreTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string out;
  bool first = true;  // no visible piece yet: skipped special tokens do not count
  for (int32_t id : ids) {
    check_id(id);
    if (is_special(id)) {
      if (!skip_special) {
        out += v_.tokens[static_cast<size_t>(id)];
        first = false;
      }
      continue;
    }
    std::string piece = token_bytes(id);
    // The space that encoding put before the text belongs to the first piece only (as in
    // SentencePiece and llama.cpp), so " Hello" = "▁" "▁Hello" decodes back to " Hello".
    if (first && add_space_prefix_ && !piece.empty() && piece[0] == ' ' &&
        v_.types[static_cast<size_t>(id)] == GgufTokenType::kNormal) {
      piece.erase(0, 1);
    }
    first = false;
    out += piece;
  }
  return utf8_lossy(out);
}

}  // namespace longctx::tok
