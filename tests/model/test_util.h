// Helpers shared by the model and integration tests.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "model/random_checkpoint.h"

namespace longctx::test {

// Head-heavy and compute-light llama shape for memory tests: 2 layers x 2 kv heads x head_dim
// 128 = 4 KiB of f32 KV per token, tiny weights.
inline constexpr const char* kHeadHeavyConfig =
    R"({"model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2,
        "head_dim": 128, "vocab_size": 300, "max_position_embeddings": 8192,
        "bos_token_id": 1, "eos_token_id": 2})";

inline std::string shared_dir() { return LONGCTX_SHARED_DIR; }
inline std::string model_path(const std::string& name) {
  return shared_dir() + "/models/" + name;
}

inline nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot open " + path);
  return nlohmann::json::parse(f);
}

// A fresh empty folder under the build tree, private to this process (ctest runs tests of one
// binary in parallel processes) and removed when the process exits.
inline std::string scratch_dir(const std::string& name) {
  namespace fs = std::filesystem;
  struct Root {
    fs::path path = fs::path(LONGCTX_BINARY_DIR) / "test-scratch" /
                    ("pid" + std::to_string(static_cast<long>(::getpid())));
    ~Root() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  };
  static Root root;
  const fs::path p = root.path / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

// A random-weight checkpoint written into a fresh scratch folder (see scratch_dir); returns it.
inline std::string random_checkpoint_dir(const std::string& name,
                                         const RandomCheckpointOptions& o) {
  const std::string dir = scratch_dir(name);
  write_random_checkpoint(dir, o);
  return dir;
}

}  // namespace longctx::test
