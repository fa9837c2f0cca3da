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

// Phi-3.5-mini-instruct's LongRoPE rescale factors (config.json rope_scaling), 48 per list.
constexpr const char* kPhi35LongFactor =
    "1.0800000429153442, 1.1100000143051147, 1.1399999856948853, 1.340000033378601, "
    "1.5899999141693115, 1.600000023841858, 1.6200000047683716, 2.620000123977661, "
    "3.2300000190734863, 3.2300000190734863, 4.789999961853027, 7.400000095367432, "
    "7.700000286102295, 9.09000015258789, 12.199999809265137, 17.670000076293945, "
    "24.46000099182129, 28.57000160217285, 30.420001983642578, 30.840002059936523, "
    "32.590003967285156, 32.93000411987305, 42.320003509521484, 44.96000289916992, "
    "50.340003967285156, 50.45000457763672, 57.55000305175781, 57.93000411987305, "
    "58.21000289916992, 60.1400032043457, 62.61000442504883, 62.62000274658203, "
    "62.71000289916992, 63.1400032043457, 63.1400032043457, 63.77000427246094, "
    "63.93000411987305, 63.96000289916992, 63.970001220703125, 64.02999877929688, "
    "64.06999969482422, 64.08000183105469, 64.12000274658203, 64.41000366210938, "
    "64.4800033569336, 64.51000213623047, 64.52999877929688, 64.83999633789062";
constexpr const char* kPhi35ShortFactor =
    "1.0, 1.0199999809265137, 1.0299999713897705, 1.0299999713897705, 1.0499999523162842, "
    "1.0499999523162842, 1.0499999523162842, 1.0499999523162842, 1.0499999523162842, "
    "1.0699999332427979, 1.0999999046325684, 1.1099998950958252, 1.1599998474121094, "
    "1.1599998474121094, 1.1699998378753662, 1.2899998426437378, 1.339999794960022, "
    "1.679999828338623, 1.7899998426437378, 1.8199998140335083, 1.8499997854232788, "
    "1.8799997568130493, 1.9099997282028198, 1.9399996995925903, 1.9899996519088745, "
    "2.0199997425079346, 2.0199997425079346, 2.0199997425079346, 2.0199997425079346, "
    "2.0199997425079346, 2.0199997425079346, 2.0299997329711914, 2.0299997329711914, "
    "2.0299997329711914, 2.0299997329711914, 2.0299997329711914, 2.0299997329711914, "
    "2.0299997329711914, 2.0299997329711914, 2.0299997329711914, 2.0799996852874756, "
    "2.0899996757507324, 2.189999580383301, 2.2199995517730713, 2.5899994373321533, "
    "2.729999542236328, 2.749999523162842, 2.8399994373321533";

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
      {"phi-3.5-mini",
       llama_like("phi3", 3072, 8192, 32, 32, 32, 32064, 131072, 10000, 1e-5, false,
                  ", \"sliding_window\": 262144, \"original_max_position_embeddings\": 4096, "
                  "\"rope_scaling\": {\"type\": \"longrope\", \"long_factor\": [" +
                      std::string(kPhi35LongFactor) + "], \"short_factor\": [" +
                      std::string(kPhi35ShortFactor) + "]}")},
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
