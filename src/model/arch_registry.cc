#include <string>

#include "core/error.h"
#include "model/arch_spec.h"

namespace longctx {

namespace {

std::vector<ArchSpec> make_registry() {
  std::vector<ArchSpec> r;
  ArchSpec llama;
  llama.model_type = "llama";
  r.push_back(llama);

  ArchSpec mistral = llama;  // same names; sliding_window comes from config.json
  mistral.model_type = "mistral";
  r.push_back(mistral);

  ArchSpec qwen2 = llama;
  qwen2.model_type = "qwen2";
  qwen2.qkv_bias_always = true;
  qwen2.o_bias_with_attention_bias = false;
  r.push_back(qwen2);

  ArchSpec phi3 = llama;
  phi3.model_type = "phi3";
  phi3.qkv_proj = "model.layers.{l}.self_attn.qkv_proj.weight";
  phi3.gate_up_proj = "model.layers.{l}.mlp.gate_up_proj.weight";
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

const ArchSpec& arch_spec_for(const std::string& model_type) {
  for (const auto& a : registry())
    if (a.model_type == model_type) return a;
  std::string known;
  for (const auto& t : supported_model_types()) known += (known.empty() ? "" : ", ") + t;
  throw Error(ErrorKind::kUnsupported, "model_type '" + model_type +
                                           "' is not supported; longctx runs: " + known);
}

std::string layer_tensor_name(const std::string& name_template, int layer) {
  std::string s = name_template;
  const auto at = s.find("{l}");
  if (at != std::string::npos) s.replace(at, 3, std::to_string(layer));
  return s;
}

}  // namespace longctx
