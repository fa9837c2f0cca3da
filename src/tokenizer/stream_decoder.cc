// StreamDecoder: decodes a growing id sequence incrementally. Each push decodes a short window
// (the ids not yet emitted, after a few ids of context) and emits the text past what the context
// decoded to, unless the text ends in U+FFFD: that means an incomplete character (e.g. the first
// bytes of an emoji spelled with byte-fallback tokens) which the next ids will complete.
//
// The context makes position-dependent decoder rules come out as in a full decode: SentencePiece
// (and the Strip / Metaspace decoders) drop the leading space of the first token only, so the
// context must hold a token with visible text; whitespace-only and special tokens are not enough
// (SentencePiece with remove_extra_whitespaces strips every leading whitespace piece).
#include "tokenizer/tokenizer.h"

namespace longctx {
namespace {

constexpr size_t kMaxContext = 16;

bool ends_with_replacement(const std::string& s) {
  return s.size() >= 3 && s.compare(s.size() - 3, 3, "\xEF\xBF\xBD") == 0;
}

bool blank(const std::string& s) { return s.find_first_not_of(' ') == std::string::npos; }

}  // namespace

void StreamDecoder::trim_window() {
  size_t keep = 1;
  while (keep < ids_.size() && keep < kMaxContext &&
         blank(tok_.token_bytes(ids_[ids_.size() - keep]))) {
    ++keep;
  }
  if (ids_.size() > keep) ids_.erase(ids_.begin(), ids_.end() - static_cast<ptrdiff_t>(keep));
  prefix_ = tok_.decode(ids_, true);
}

std::string StreamDecoder::push(int32_t id) {
  ids_.push_back(id);
  const std::string text = tok_.decode(ids_, true);
  if (text.size() <= prefix_.size() || ends_with_replacement(text) ||
      text.compare(0, prefix_.size(), prefix_) != 0) {
    return "";
  }
  std::string fresh = text.substr(prefix_.size());
  trim_window();
  return fresh;
}

std::string StreamDecoder::flush() {
  if (ids_.empty()) return "";
  const std::string text = tok_.decode(ids_, true);
  std::string rest;
  if (text.size() > prefix_.size() && text.compare(0, prefix_.size(), prefix_) == 0) {
    rest = text.substr(prefix_.size());
  }
  trim_window();
  return rest;
}

}  // namespace longctx
