// Hugging Face config.json -> ModelConfig: every field that sets shapes and numerics.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/rope_scaling.h"
#include "core/dtype.h"

namespace longctx {

struct ModelConfig {
  std::string model_type;  // "llama", "mistral", "qwen2", "phi3"
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int num_hidden_layers = 0;
  int num_attention_heads = 0;
  // Absent: num_attention_heads (llama, phi3); MistralConfig's 8 and Qwen2Config's 32 (the HF
  // class defaults, which are the values of their 7B models).
  int num_key_value_heads = 0;
  int head_dim = 0;  // defaults to hidden_size / num_attention_heads
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  // Pre-extension context of Phi-3 long-context models (longrope); 0 when absent (phi3: 4096).
  int64_t original_max_position_embeddings = 0;
  float rms_norm_eps = 1e-6f;
  double rope_theta = 10000.0;
  double partial_rotary_factor = 1.0;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v biases (qwen2: always true)
  bool o_bias = false;          // o_proj bias (llama with attention_bias)
  bool mlp_bias = false;
  std::string hidden_act = "silu";
  int64_t sliding_window = 0;  // 0: none (all layers full attention)
  // Per layer: 0 for full attention, else the window length. Filled from sliding_window,
  // use_sliding_window and max_window_layers.
  std::vector<int64_t> layer_window;
  int bos_token_id = -1;            // -1: none
  std::vector<int> eos_token_ids;   // config may give one id or a list
  DType torch_dtype = DType::kF32;  // informational
  std::string rope_scaling_json;    // raw "rope_scaling" object ("" when absent or null)
  RopeScaling rope_scaling;         // rope_scaling_json parsed and checked

  int rot_dim() const;  // head_dim * partial_rotary_factor, rounded down to even
};

// Parses the text of a config.json. `origin` names the file in messages. Unknown fields are
// ignored; a missing required field, a wrong JSON type or an impossible value is an Error(kConfig)
// that names the field; an unknown model_type is Error(kUnsupported) listing the supported ones.
ModelConfig parse_model_config(const std::string& json_text, const std::string& origin);
// Reads DIR/config.json (Error(kIo) when missing, a folder, a device, a looping or dangling
// symbolic link, or absurdly large).
ModelConfig load_model_config(const std::string& dir);
// The text of a small JSON file that describes a model (`what` names it in messages, e.g.
// "config.json"), with the checks of load_model_config.
std::string read_config_file(const std::string& path, const std::string& what);

}  // namespace longctx
