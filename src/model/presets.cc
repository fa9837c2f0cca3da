#include "model/presets.h"

#include "core/error.h"

namespace longctx {

namespace {

std::string llama_like(const char* type, int hidden, int inter, int layers, int heads, int kv,
                       int vocab, int max_pos, double theta, double eps, bool tie,
                       const std::string& extra = "") {
  std::string s = "{\"model_type\": \"" + std::string(type) + "\"";
  s += ", \"hidden_size\": " + std::to_string(hidden);
  s += ", \"intermediate_size\": " + std::to_string(inter);
  s += ", \"num_hidden_layers\": " + std::to_string(layers);
  s += ", \"num_attention_heads\": " + std::to_string(heads);
  s += ", \"num_key_value_heads\": " + std::to_string(kv);
  s += ", \"vocab_size\": " + std::to_string(vocab);
  s += ", \"max_position_embeddings\": " + std::to_string(max_pos);
  s += ", \"rope_theta\": " + std::to_string(theta);
  s += ", \"rms_norm_eps\": " + std::to_string(eps);
  s += ", \"tie_word_embeddings\": " + std::string(tie ? "true" : "false");
  s += ", \"hidden_act\": \"silu\", \"bos_token_id\": 1, \"eos_token_id\": 2";
  s += ", \"torch_dtype\": \"bfloat16\"";
  s += extra + "}";
  return s;
}

std::vector<Preset> make_presets() {
  const std::string llama31_rope =
      ", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0, "
      "\"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192}";
  const std::string llama32_rope =
      ", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 32.0, \"low_freq_factor\": "
      "1.0, \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192}";
  return {
      {"tinyllama-1.1b", llama_like("llama", 2048, 5632, 22, 32, 4, 32000, 2048, 10000, 1e-5, false)},
      // The shape of SmolLM2-135M with a 32000-token vocabulary (the benchmark shape).
      {"smollm2-135m", llama_like("llama", 576, 1536, 30, 9, 3, 32000, 8192, 100000, 1e-5, true)},
      {"llama-2-7b", llama_like("llama", 4096, 11008, 32, 32, 32, 32000, 4096, 10000, 1e-5, false)},
      {"llama-3-8b", llama_like("llama", 4096, 14336, 32, 32, 8, 128256, 8192, 500000, 1e-5, false)},
      {"llama-3-70b",
       llama_like("llama", 8192, 28672, 80, 64, 8, 128256, 8192, 500000, 1e-5, false)},
      {"llama-3.1-8b", llama_like("llama", 4096, 14336, 32, 32, 8, 128256, 131072, 500000, 1e-5,
                                  false, llama31_rope)},
      {"llama-3.2-1b", llama_like("llama", 2048, 8192, 16, 32, 8, 128256, 131072, 500000, 1e-5,
                                  true, ", \"head_dim\": 64" + llama32_rope)},
      {"mistral-7b-v0.1", llama_like("mistral", 4096, 14336, 32, 32, 8, 32000, 32768, 10000, 1e-5,
                                     false, ", \"sliding_window\": 4096")},
      {"phi-3-mini-4k", llama_like("phi3", 3072, 8192, 32, 32, 32, 32064, 4096, 10000, 1e-5, false,
                                   ", \"sliding_window\": 2047")},
      {"qwen2.5-0.5b", llama_like("qwen2", 896, 4864, 24, 14, 2, 151936, 32768, 1000000, 1e-6, true,
                                  ", \"use_sliding_window\": false, \"sliding_window\": 32768, "
                                  "\"max_window_layers\": 21")},
      {"qwen2.5-7b", llama_like("qwen2", 3584, 18944, 28, 28, 4, 152064, 32768, 1000000, 1e-6,
                                false,
                                ", \"use_sliding_window\": false, \"sliding_window\": 131072, "
                                "\"max_window_layers\": 28")},
  };
}

}  // namespace

const std::vector<Preset>& presets() {
  static const std::vector<Preset> p = make_presets();
  return p;
}

const Preset& find_preset(const std::string& name) {
  for (const auto& p : presets())
    if (p.name == name) return p;
  std::string known;
  for (const auto& p : presets()) known += (known.empty() ? "" : ", ") + p.name;
  throw Error(ErrorKind::kInvalidArg, "unknown preset '" + name + "'; known presets: " + known);
}

}  // namespace longctx
