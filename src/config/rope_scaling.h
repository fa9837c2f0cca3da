// config.json "rope_scaling" (or the newer "rope_parameters"), parsed and checked once: every field
// the RoPE formulas use. The frequencies themselves are computed in src/model/rope_freqs; the
// formulas and the rules for length-dependent types are in docs/rope-scaling.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace longctx {

enum class RopeType { kDefault, kLinear, kDynamic, kYarn, kLlama3, kLongRope };

struct RopeScaling {
  RopeType type = RopeType::kDefault;
  std::string name = "default";  // as config.json spells it ("su" and Phi-3's "yarn" are longrope)
  // linear, dynamic, yarn, llama3: rope_scaling.factor. longrope: rope_scaling.factor when given,
  // else max_position_embeddings / original_max_position_embeddings (Phi-3.5-mini: 32).
  double factor = 1.0;
  // yarn, llama3, longrope: the pre-extension context. longrope switches from short to long
  // factors once a sequence is longer than this.
  int64_t original_max_position_embeddings = 0;
  double low_freq_factor = 0, high_freq_factor = 0;  // llama3
  double beta_fast = 32, beta_slow = 1;              // yarn
  bool truncate = true;                              // yarn: floor/ceil the correction range
  // Multiplies cos and sin (so attention logits scale by its square): rope_scaling's
  // attention_factor when given, else the paper's default (yarn: 0.1 ln(s) + 1 or the mscale
  // ratio; longrope: sqrt(1 + ln(s) / ln(original))), else 1.
  double attention_factor = 1.0;
  std::vector<double> short_factor, long_factor;  // longrope: rot_dim / 2 each
  // llama3 read from a GGUF file: llama.cpp's rope_freqs tensor, the per-dimension divisors of
  // inv_freq that the llama3 formula gives (rot_dim / 2); empty: computed from the fields above.
  std::vector<double> freq_factors;
};

// What parse_rope_scaling needs to know about the rest of config.json.
struct RopeContext {
  std::string origin;      // the file, for messages
  std::string model_type;  // phi3 reads "su" and "yarn" as longrope (as Phi3Config does)
  int rot_dim = 0;
  int64_t max_position_embeddings = 0;
  // Top-level original_max_position_embeddings (phi3 defaults it to 4096); 0 when absent.
  int64_t original_max_position_embeddings = 0;
};

// `json_text` is the rope_scaling object ("" when absent or null). Errors name the field:
// Error(kConfig) for a missing field, a wrong JSON type, an impossible value or a factor list of
// the wrong length; Error(kUnsupported) for a type longctx does not know.
RopeScaling parse_rope_scaling(const std::string& json_text, const RopeContext& ctx);

const char* rope_type_name(RopeType type);

}  // namespace longctx
