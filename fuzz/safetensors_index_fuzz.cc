// libFuzzer harness for model.safetensors.index.json (io::parse_safetensors_index, the check
// WeightSource::open_dir runs before it opens any shard): any text either parses or throws a clean
// longctx::Error. What parses names only shard files inside the model folder (no "..", not
// absolute, not empty) and lists every tensor of the weight_map exactly once.
#include <cstddef>
#include <cstdint>
#include <set>
#include <sstream>
#include <string>

#include "fuzz_util.h"
#include "io/weights.h"

using namespace longctx;
using namespace longctx::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto shards = io::parse_safetensors_index(text, "model.safetensors.index.json");
    if (shards.empty()) __builtin_trap();
    std::set<std::string> tensors;
    for (const auto& [shard, names] : shards) {
      if (shard.empty() || shard.front() == '/' || names.empty()) __builtin_trap();
      std::stringstream ss(shard);
      std::string part;
      while (std::getline(ss, part, '/'))
        if (part == "..") __builtin_trap();
      for (const std::string& n : names)
        if (!tensors.insert(n).second) __builtin_trap();  // JSON object keys are unique
    }
  } catch (const Error& e) {
    check_error(e);
  }
  return 0;
}
