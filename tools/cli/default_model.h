// The model `longctx run` uses when no -m is given.
#pragma once

#include <string>

namespace longctx::cli {

struct DefaultModel {
  std::string dir;
  std::string prompt;   // a prompt that suits it
  bool random = false;  // random weights: the text is meaningless
};

// ../shared/models/stories260K (a real tiny trained model) when it can be found beside the
// checkout; otherwise a random-weight SmolLM2-135M-shaped checkpoint generated once into the user
// cache folder ($XDG_CACHE_HOME or ~/.cache, under longctx/).
DefaultModel resolve_default_model();

}  // namespace longctx::cli
