// RoPE inverse frequencies and attention factor from config.json (rope_theta, rope_scaling,
// partial_rotary_factor). Formulas and the rules for length-dependent types: docs/rope-scaling.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/model_config.h"

namespace longctx {

struct RopeFreqs {
  std::vector<float> inv_freq;  // [rot_dim / 2]
  float attn_factor = 1.f;      // multiplies cos and sin (YaRN / LongRoPE scaling)
};

// transformers' rope_init_fn(config, seq_len): the frequencies of a forward pass whose last
// position is seq_len - 1. seq_len matters only for dynamic (NTK base grows once seq_len >
// max_position_embeddings) and longrope (long factors once seq_len >
// original_max_position_embeddings); 0 means "at load time" (transformers' seq_len=None).
RopeFreqs compute_rope_freqs(const ModelConfig& cfg, int64_t seq_len = 0);

// The sequence length whose frequencies a forward pass uses. `len_after` is the number of tokens
// the sequence holds once the pass ends; `planned` the total the caller expects to reach (0 when
// unknown). dynamic: len_after (transformers recomputes per forward call and keeps cached keys);
// longrope: max(len_after, planned), so a generation known to cross the boundary uses the long
// factors from its first token; other types: len_after (no effect).
int64_t rope_length(const RopeScaling& rs, int64_t len_after, int64_t planned);

// True when keys cached under rope length `cached` were rotated with other frequencies than a
// sequence of rope length `next` needs and transformers would recompute them: longrope crossing
// from short to long factors. (dynamic never recomputes cached keys, as in transformers.)
bool rope_needs_recompute(const RopeScaling& rs, int64_t cached, int64_t next);

// One line on the scaling in use, for `longctx run` and `longctx plan`: type, factor, attention
// factor and, for longrope, which factors a sequence of `planned` tokens uses (both when 0).
std::string rope_summary(const ModelConfig& cfg, int64_t planned);

}  // namespace longctx
