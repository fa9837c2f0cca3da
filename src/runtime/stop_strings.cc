#include "runtime/stop_strings.h"

#include <algorithm>

namespace longctx {

StopStrings::StopStrings(std::vector<std::string> stops) {
  for (std::string& s : stops)
    if (!s.empty()) stops_.push_back(std::move(s));
}

StopStrings::Result StopStrings::push(const std::string& piece) {
  Result r;
  if (done_) return r;
  held_ += piece;
  if (stops_.empty()) {
    r.text.swap(held_);
    return r;
  }
  // The earliest complete match ends the text.
  size_t first = std::string::npos;
  for (const std::string& s : stops_) first = std::min(first, held_.find(s));
  if (first != std::string::npos) {
    r.text = held_.substr(0, first);
    r.matched = true;
    done_ = true;
    held_.clear();
    return r;
  }
  // Hold back the longest tail of held_ that begins some stop string. Text before it can no
  // longer be part of a match: every match starts inside the held tail.
  size_t keep = 0;
  for (const std::string& s : stops_)
    for (size_t k = std::min(s.size() - 1, held_.size()); k > keep; --k)
      if (held_.compare(held_.size() - k, k, s, 0, k) == 0) {
        keep = k;
        break;
      }
  r.text = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return r;
}

std::string StopStrings::flush(const std::string& tail) {
  if (done_) return {};
  Result r = push(tail);
  if (r.matched) return r.text;
  r.text += held_;
  held_.clear();
  done_ = true;
  return r.text;
}

}  // namespace longctx
