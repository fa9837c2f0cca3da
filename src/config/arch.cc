#include "config/arch.h"

#include <string>

#include "core/error.h"
#include "core/strings.h"

namespace longctx {

namespace {

TensorNames hf_names() {
  TensorNames n;
  n.embed = "model.embed_tokens.weight";
  n.final_norm = "model.norm.weight";
  n.lm_head = "lm_head.weight";
  n.attn_norm = "model.layers.{l}.input_layernorm.weight";
  n.mlp_norm = "model.layers.{l}.post_attention_layernorm.weight";
  n.q = "model.layers.{l}.self_attn.q_proj.weight";
  n.k = "model.layers.{l}.self_attn.k_proj.weight";
  n.v = "model.layers.{l}.self_attn.v_proj.weight";
  n.o = "model.layers.{l}.self_attn.o_proj.weight";
  n.gate = "model.layers.{l}.mlp.gate_proj.weight";
  n.up = "model.layers.{l}.mlp.up_proj.weight";
  n.down = "model.layers.{l}.mlp.down_proj.weight";
  return n;
}

// llama.cpp's names (its gguf-py constants, MODEL_TENSOR_NAMES).
TensorNames gguf_names() {
  TensorNames n;
  n.embed = "token_embd.weight";
  n.final_norm = "output_norm.weight";
  n.lm_head = "output.weight";
  n.attn_norm = "blk.{l}.attn_norm.weight";
  n.mlp_norm = "blk.{l}.ffn_norm.weight";
  n.q = "blk.{l}.attn_q.weight";
  n.k = "blk.{l}.attn_k.weight";
  n.v = "blk.{l}.attn_v.weight";
  n.o = "blk.{l}.attn_output.weight";
  n.gate = "blk.{l}.ffn_gate.weight";
  n.up = "blk.{l}.ffn_up.weight";
  n.down = "blk.{l}.ffn_down.weight";
  return n;
}

std::vector<ArchSpec> make_registry() {
  std::vector<ArchSpec> r;
  ArchSpec llama;
  llama.model_type = "llama";
  llama.gguf_arch = "llama";
  llama.hf_class = "LlamaForCausalLM";
  llama.reads_bias_flags = true;
  llama.hf = hf_names();
  llama.gguf = gguf_names();
  llama.gguf_qk_interleaved = true;
  r.push_back(llama);

  ArchSpec mistral = llama;  // same names; llama.cpp converts it as "llama"
  mistral.model_type = "mistral";
  mistral.hf_class = "MistralForCausalLM";
  mistral.max_position_embeddings = 4096 * 32;
  mistral.num_key_value_heads = 8;
  mistral.sliding_window = 4096;
  mistral.window_rule = WindowRule::kAllLayers;
  mistral.reads_bias_flags = false;
  r.push_back(mistral);

  ArchSpec qwen2 = llama;
  qwen2.model_type = "qwen2";
  qwen2.gguf_arch = "qwen2";
  qwen2.hf_class = "Qwen2ForCausalLM";
  qwen2.max_position_embeddings = 32768;
  qwen2.num_key_value_heads = 32;
  qwen2.sliding_window = 4096;
  qwen2.bos = qwen2.eos = -1;
  qwen2.window_rule = WindowRule::kQwen2Layers;
  qwen2.reads_bias_flags = false;
  qwen2.qkv_bias_always = true;
  qwen2.gguf_qk_interleaved = false;
  r.push_back(qwen2);

  ArchSpec phi3 = llama;
  phi3.model_type = "phi3";
  phi3.gguf_arch = "phi3";
  phi3.hf_class = "Phi3ForCausalLM";
  phi3.max_position_embeddings = 4096;
  phi3.rms_norm_eps = 1e-5f;
  phi3.original_max_position_embeddings = 4096;
  phi3.eos = 32000;
  phi3.window_rule = WindowRule::kAllLayers;
  phi3.reads_bias_flags = false;
  phi3.hf.qkv = "model.layers.{l}.self_attn.qkv_proj.weight";
  phi3.hf.gate_up = "model.layers.{l}.mlp.gate_up_proj.weight";
  phi3.gguf.qkv = "blk.{l}.attn_qkv.weight";
  phi3.gguf.gate_up = "blk.{l}.ffn_up.weight";  // llama.cpp keeps Phi-3's fused [gate; up]
  phi3.gguf_qk_interleaved = false;
  r.push_back(phi3);
  return r;
}

const std::vector<ArchSpec>& registry() {
  static const std::vector<ArchSpec> r = make_registry();
  return r;
}

}  // namespace

std::vector<std::string> supported_model_types() {
  std::vector<std::string> out;
  for (const auto& a : registry()) out.push_back(a.model_type);
  return out;
}

const ArchSpec& arch_spec_for(const std::string& model_type, const std::string& origin) {
  for (const auto& a : registry())
    if (a.model_type == model_type) return a;
  std::string list, closest;
  size_t best = SIZE_MAX;
  for (const auto& a : registry()) {
    list += (list.empty() ? "" : ", ") + a.model_type;
    size_t d = edit_distance(model_type, a.model_type);
    if (model_type.rfind(a.model_type, 0) == 0) d = 0;  // "qwen2_moe" -> qwen2
    if (d < best) best = d, closest = a.model_type;
  }
  throw Error(ErrorKind::kUnsupported,
              (origin.empty() ? std::string() : origin + ": ") + "model_type \"" + model_type +
                  "\" is not supported; longctx runs " + list + " (closest: " + closest +
                  "). Use a checkpoint of a supported architecture; "
                  "editing model_type does not make another architecture loadable");
}

const ArchSpec& arch_spec_for_gguf(const std::string& gguf_arch, const std::string& origin) {
  std::string list;
  for (const auto& a : registry()) {
    if (a.gguf_arch == gguf_arch) return a;
    if (list.find("\"" + a.gguf_arch + "\"") == std::string::npos)
      list += (list.empty() ? "\"" : ", \"") + a.gguf_arch + "\"";
  }
  throw Error(ErrorKind::kUnsupported,
              origin + ": general.architecture \"" + gguf_arch +
                  "\" is not supported; longctx runs GGUF files of architecture " + list +
                  " (Mistral files are \"llama\"). Use a GGUF of a supported model");
}

std::string layer_tensor_name(const std::string& name_template, int layer) {
  std::string s = name_template;
  const auto at = s.find("{l}");
  if (at != std::string::npos) s.replace(at, 3, std::to_string(layer));
  return s;
}

}  // namespace longctx
