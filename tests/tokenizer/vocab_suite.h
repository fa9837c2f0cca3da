// llama.cpp's tokenizer test suite (shared/gguf/vocab): NAME.gguf.inp holds the strings,
// NAME.gguf.out the ids Hugging Face's tokenizers gave for each (no BOS, special tokens
// recognised).
#pragma once

#include <cstdint>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace longctx::test {

struct VocabCase {
  std::string text;
  std::vector<int32_t> ids;
};

inline std::string vocab_path(const std::string& name) {
  return std::string(LONGCTX_SHARED_DIR) + "/gguf/vocab/ggml-vocab-" + name + ".gguf";
}

inline std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Reads BASE.inp and BASE.out as llama.cpp's tests/test-tokenizer-0.cpp does: the strings are
// separated by "\n__ggml_vocab_test__\n" (so each string keeps its own newlines, and the file's
// final separator leaves no empty string after it); line i of .out holds string i's ids,
// space-separated (an empty line for no ids). Throws when the counts differ.
inline std::vector<VocabCase> read_vocab_cases(const std::string& base) {
  const std::string raw = slurp(base + ".inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> inputs;
  for (size_t pos = 0; pos < raw.size();) {
    const size_t next = raw.find(sep, pos);
    if (next == std::string::npos) {
      inputs.push_back(raw.substr(pos));
      break;
    }
    inputs.push_back(raw.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::istringstream out(slurp(base + ".out"));
  std::vector<VocabCase> cases;
  std::string line;
  for (size_t i = 0; std::getline(out, line); ++i) {
    if (i >= inputs.size()) break;
    VocabCase c{inputs[i], {}};
    std::istringstream ids(line);
    for (int32_t id; ids >> id;) c.ids.push_back(id);
    cases.push_back(std::move(c));
  }
  if (cases.size() != inputs.size()) {
    throw std::runtime_error(base + ": .inp and .out hold different numbers of cases");
  }
  return cases;
}

}  // namespace longctx::test
