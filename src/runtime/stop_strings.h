// Stop strings over streamed text: generation ends before the first occurrence of any of them,
// and no text that might be the start of one is released until it is known not to be.
#pragma once

#include <string>
#include <vector>

namespace longctx {

class StopStrings {
 public:
  explicit StopStrings(std::vector<std::string> stops);

  struct Result {
    std::string text;      // safe to release now
    bool matched = false;  // a stop string was completed: `text` ends before it; stop here
  };
  // Adds `piece` (complete UTF-8) after what came before.
  Result push(const std::string& piece);
  // End of generation: what was held back plus `tail`, up to a stop string `tail` completes.
  std::string flush(const std::string& tail = {});

 private:
  std::vector<std::string> stops_;
  std::string held_;  // released text ends before this; it is a prefix of some stop string
  bool done_ = false;
};

}  // namespace longctx
