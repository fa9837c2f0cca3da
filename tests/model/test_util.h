// Helpers shared by the model and integration tests.
#pragma once

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace longctx::test {

inline std::string shared_dir() { return LONGCTX_SHARED_DIR; }
inline std::string model_dir(const std::string& name) {
  return shared_dir() + "/models/" + name;
}

inline nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot open " + path);
  return nlohmann::json::parse(f);
}

// A fresh empty folder under the build tree for one test.
inline std::string scratch_dir(const std::string& name) {
  namespace fs = std::filesystem;
  const fs::path p = fs::path(LONGCTX_BINARY_DIR) / "test-scratch" / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

}  // namespace longctx::test
