// libFuzzer harness for config.json (parse_model_config, config/model_config.h, with its
// rope_scaling / rope_parameters through parse_rope_scaling): any text either parses or throws a
// clean longctx::Error. What parses obeys the limits the rest of longctx relies on (positive
// shapes, heads divisible by KV heads, even rotary dims, token ids inside the vocabulary, one
// window per layer), and its RoPE frequencies (model/rope_freqs.h), at load time and at lengths
// on both sides of every switch-over, are finite and positive: a config that would give NaN
// frequencies must be refused, not run.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "config/model_config.h"
#include "fuzz_util.h"
#include "model/rope_freqs.h"

using namespace longctx;
using namespace longctx::fuzz;

namespace {

void check_freqs(const ModelConfig& c, int64_t seq_len) {
  const RopeFreqs f = compute_rope_freqs(c, seq_len);
  if (f.inv_freq.size() != static_cast<size_t>(c.rot_dim() / 2)) __builtin_trap();
  for (float x : f.inv_freq)
    if (!(std::isfinite(x) && x > 0)) __builtin_trap();
  if (!(std::isfinite(f.attn_factor) && f.attn_factor > 0)) __builtin_trap();
}

void check(const ModelConfig& c) {
  if (c.hidden_size < 1 || c.intermediate_size < 1 || c.num_hidden_layers < 1) __builtin_trap();
  if (c.num_attention_heads < 1 || c.num_key_value_heads < 1 || c.head_dim < 2) __builtin_trap();
  if (c.num_attention_heads % c.num_key_value_heads != 0 || c.head_dim % 2 != 0) __builtin_trap();
  if (c.vocab_size < 1 || c.max_position_embeddings < 1) __builtin_trap();
  if (c.rot_dim() < 2 || c.rot_dim() > c.head_dim || c.rot_dim() % 2 != 0) __builtin_trap();
  if (!(c.rms_norm_eps > 0) || !(c.rope_theta > 0) || !std::isfinite(c.rope_theta))
    __builtin_trap();
  if (c.layer_window.size() != static_cast<size_t>(c.num_hidden_layers)) __builtin_trap();
  for (int64_t w : c.layer_window)
    if (w < 0) __builtin_trap();
  if (c.bos_token_id < -1 || c.bos_token_id >= c.vocab_size) __builtin_trap();
  for (int id : c.eos_token_ids)
    if (id < 0 || id >= c.vocab_size) __builtin_trap();
  const RopeScaling& rs = c.rope_scaling;
  if (!(std::isfinite(rs.factor) && rs.factor > 0)) __builtin_trap();
  if (rs.type == RopeType::kLongRope &&
      (rs.short_factor.size() != static_cast<size_t>(c.rot_dim() / 2) ||
       rs.long_factor.size() != rs.short_factor.size()))
    __builtin_trap();
  const int64_t orig = rs.original_max_position_embeddings;
  for (int64_t len : {int64_t{0}, int64_t{1}, orig, orig + 1, c.max_position_embeddings,
                      c.max_position_embeddings + 1, 2 * c.max_position_embeddings}) {
    if (len < 0) continue;
    check_freqs(c, len);
    const int64_t r = rope_length(rs, len, 0);
    (void)rope_needs_recompute(rs, len, r + 1);
  }
  (void)rope_summary(c, 0);
  (void)rope_summary(c, c.max_position_embeddings);
  (void)rope_type_name(rs.type);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    check(parse_model_config(text, "config.json"));
  } catch (const Error& e) {
    check_error(e);
  }
  return 0;
}
