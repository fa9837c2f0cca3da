// RoPE inverse frequencies and attention factor from config.json (rope_theta, rope_scaling,
// partial_rotary_factor).
#pragma once

#include <vector>

#include "config/model_config.h"

namespace longctx {

struct RopeFreqs {
  std::vector<float> inv_freq;  // [rot_dim / 2]
  float attn_factor = 1.f;      // multiplies cos and sin (YaRN / LongRoPE scaling)
};

// Supported rope_scaling types: none/"default", "linear", "llama3". Others are Error(kUnsupported)
// naming the type; malformed fields are Error(kConfig) naming the field.
RopeFreqs compute_rope_freqs(const ModelConfig& cfg);

}  // namespace longctx
