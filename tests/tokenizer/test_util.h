// Helpers for the tokenizer tests: paths of shared data and fixtures, fixture loading, and the
// SentencePiece -> tokenizer.json conversion used for the metaspace + byte-fallback style.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace longctx::test {

inline std::string shared_dir() { return LONGCTX_SHARED_DIR; }
inline std::string fixture_path(const std::string& name) {
  return std::string(LONGCTX_SOURCE_DIR) + "/tests/tokenizer/fixtures/" + name;
}
inline std::string llama2_model() {
  return shared_dir() + "/tokenizers/llama2-spm/tokenizer.model";
}
inline std::string smollm2_json() {
  return shared_dir() + "/tokenizers/smollm2-bpe/tokenizer.json";
}

struct FixtureCase {
  std::string text;
  bool add_special = false;
  std::vector<int32_t> ids;
  std::string decoded;               // reference decode(ids), special tokens skipped
  std::string decoded_with_special;  // reference decode(ids) keeping them (tokenizer.json only)
  bool has_decoded_with_special = false;
};

struct Fixture {
  std::string reference;
  std::string merges_fingerprint;  // llama2_hf_*.json only
  std::vector<FixtureCase> cases;
};

Fixture load_fixture(const std::string& name);

std::string read_text_file(const std::string& path);
void write_text_file(const std::string& path, const std::string& text);

// Rebuilds what scripts/tokenizer-fixtures/spm_to_tokenizer_json.py writes for `style` ("legacy"
// or "metaspace") from a SentencePiece model, into out_path. Returns the merges fingerprint
// ("count:fnv1a64"), which must equal the fixture's.
std::string spm_to_tokenizer_json(const std::string& model_path, const std::string& style,
                                  const std::string& out_path);

}  // namespace longctx::test
