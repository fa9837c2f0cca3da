// Hook points (DESIGN.md decision 7): every intermediate the decoder produces has the name and
// shape TransformerLens gives it in HookedTransformer.from_pretrained_no_processing (raw Hugging
// Face values, no folding or centring), batch dimension 1. docs/hooks.md has the table.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/model_config.h"

namespace longctx::hooks {

// Model-level points come first (layer -1), then the points of every block.
enum class Point : uint8_t {
  kEmbed,               // hook_embed                     [1,pos,d_model]
  kLnFinalScale,        // ln_final.hook_scale             [1,pos,1]
  kLnFinalNormalized,   // ln_final.hook_normalized        [1,pos,d_model]
  kLogits,              // logits                          [1,pos,d_vocab]
  kResidPre,            // blocks.{l}.hook_resid_pre       [1,pos,d_model]
  kLn1Scale,            // blocks.{l}.ln1.hook_scale       [1,pos,1]
  kLn1Normalized,       // blocks.{l}.ln1.hook_normalized  [1,pos,d_model]
  kQ,                   // blocks.{l}.attn.hook_q          [1,pos,n_heads,d_head]
  kK,                   // blocks.{l}.attn.hook_k          [1,pos,n_kv_heads,d_head]
  kV,                   // blocks.{l}.attn.hook_v          [1,pos,n_kv_heads,d_head]
  kRotQ,                // blocks.{l}.attn.hook_rot_q      [1,pos,n_heads,d_head]
  kRotK,                // blocks.{l}.attn.hook_rot_k      [1,pos,n_kv_heads,d_head]
  kAttnScores,          // blocks.{l}.attn.hook_attn_scores [1,n_heads,query_pos,key_pos]
  kPattern,             // blocks.{l}.attn.hook_pattern     [1,n_heads,query_pos,key_pos]
  kPatternKeyMass,      // blocks.{l}.attn.pattern_key_mass [1,n_heads,key_pos]
  kPatternEntropy,      // blocks.{l}.attn.pattern_entropy  [1,n_heads,query_pos]
  kZ,                   // blocks.{l}.attn.hook_z          [1,pos,n_heads,d_head]
  kAttnOut,             // blocks.{l}.hook_attn_out        [1,pos,d_model]
  kResidMid,            // blocks.{l}.hook_resid_mid       [1,pos,d_model]
  kLn2Scale,            // blocks.{l}.ln2.hook_scale       [1,pos,1]
  kLn2Normalized,       // blocks.{l}.ln2.hook_normalized  [1,pos,d_model]
  kMlpPre,              // blocks.{l}.mlp.hook_pre         [1,pos,d_mlp]   gate, before act
  kMlpPreLinear,        // blocks.{l}.mlp.hook_pre_linear  [1,pos,d_mlp]   up
  kMlpPost,             // blocks.{l}.mlp.hook_post        [1,pos,d_mlp]   act(gate) * up
  kMlpOut,              // blocks.{l}.hook_mlp_out         [1,pos,d_model]
  kResidPost,           // blocks.{l}.hook_resid_post      [1,pos,d_model]
  kCount
};
inline constexpr int kPointCount = static_cast<int>(Point::kCount);

inline bool is_layer_point(Point p) { return p >= Point::kResidPre; }
// Attention-pattern points: computed by a probe of the KV cache (kernels::attention_probe), not
// held by the decoder as rows of positions.
inline bool is_pattern_point(Point p) {
  return p == Point::kAttnScores || p == Point::kPattern || p == Point::kPatternKeyMass ||
         p == Point::kPatternEntropy;
}

// One hook: a point, and its layer (-1 for model-level points).
struct HookId {
  Point point = Point::kEmbed;
  int layer = -1;
  bool operator==(const HookId&) const = default;
  auto operator<=>(const HookId&) const = default;
};

// "blocks.3.attn.hook_q", "hook_embed", "logits".
std::string hook_name(HookId id);
// The name after "blocks.{l}." for layer points ("attn.hook_q"); the whole name otherwise.
std::string_view point_suffix(Point p);

// Parses one exact name. Error(kInvalidArg) for an unknown name (naming the nearest valid ones)
// or a layer outside [0, n_layers).
HookId parse_hook_name(std::string_view name, int n_layers);
// Expands a comma-separated list of names and globs ('*' matches any run of characters, as in
// "blocks.*.hook_resid_post" or "blocks.3.attn.*") into hooks in model order, without duplicates.
// Error(kInvalidArg) for an unknown name, a layer out of range, or a glob that matches nothing.
std::vector<HookId> expand_hook_list(std::string_view list, int n_layers);
// Every hook of a model with n_layers layers, in the order the decoder fires them.
std::vector<HookId> all_hooks(int n_layers);

// Dimensions of one position's row of a position-major hook (everything after [1,pos]):
// {d_model}, {1}, {n_heads, d_head}, {n_kv_heads, d_head}, {d_mlp}, {d_vocab}. Empty for the
// pattern points.
std::vector<int64_t> row_dims(Point p, const ModelConfig& cfg);
// Floats in such a row (the product of row_dims).
int64_t row_width(Point p, const ModelConfig& cfg);

}  // namespace longctx::hooks
