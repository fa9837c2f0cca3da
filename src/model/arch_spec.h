// Architectures as data (DESIGN.md decision 5): each family is an ArchSpec entry mapping its
// Hugging Face tensor names onto the one decoder layout. Adding a family is a new entry here.
#pragma once

#include <string>
#include <vector>

namespace longctx {

struct ArchSpec {
  std::string model_type;  // config.json "model_type"
  // Tensor names; "{l}" stands for the layer index.
  std::string embed = "model.embed_tokens.weight";
  std::string final_norm = "model.norm.weight";
  std::string lm_head = "lm_head.weight";
  std::string attn_norm = "model.layers.{l}.input_layernorm.weight";
  std::string mlp_norm = "model.layers.{l}.post_attention_layernorm.weight";
  std::string q_proj = "model.layers.{l}.self_attn.q_proj.weight";
  std::string k_proj = "model.layers.{l}.self_attn.k_proj.weight";
  std::string v_proj = "model.layers.{l}.self_attn.v_proj.weight";
  std::string qkv_proj;  // fused [q; k; v] rows (Phi-3), used instead of q/k/v when set
  std::string o_proj = "model.layers.{l}.self_attn.o_proj.weight";
  std::string gate_proj = "model.layers.{l}.mlp.gate_proj.weight";
  std::string up_proj = "model.layers.{l}.mlp.up_proj.weight";
  std::string gate_up_proj;  // fused [gate; up] rows (Phi-3), used instead of gate/up when set
  std::string down_proj = "model.layers.{l}.mlp.down_proj.weight";
  // Which projections carry biases when config.attention_bias is true (Llama: q,k,v,o) and which
  // always do (Qwen2: q,k,v regardless of the flag).
  bool qkv_bias_always = false;
  bool o_bias_with_attention_bias = true;
};

// The entry for a config.json model_type; Error(kUnsupported) listing the known ones otherwise.
const ArchSpec& arch_spec_for(const std::string& model_type);
std::vector<std::string> supported_model_types();

// Replaces "{l}" in a name template with the layer index.
std::string layer_tensor_name(const std::string& name_template, int layer);

}  // namespace longctx
