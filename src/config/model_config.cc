// Hugging Face config.json -> ModelConfig. Defaults follow transformers' config classes
// (LlamaConfig, MistralConfig, Qwen2Config, Phi3Config); see docs/model-folders.md.
#include "config/model_config.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "config/arch.h"
#include "core/error.h"
#include "core/strings.h"
#include "io/json_util.h"

namespace longctx {

namespace {

using json = nlohmann::json;

// Typed access to config.json fields with errors that name the field.
class Fields {
 public:
  Fields(const json& j, const std::string& origin) : j_(j), origin_(origin) {}

  bool present(const char* key) const { return j_.contains(key); }
  // Present and not null.
  bool has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }
  // Only for present keys.
  const json& at(const char* key) const { return j_.at(key); }

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw Error(ErrorKind::kConfig,
                origin_ + ": field \"" + key + "\" " + what +
                    "; use the config.json that came with the checkpoint, or fix the field");
  }

  int64_t integer(const char* key, int64_t lo, int64_t hi) const {
    if (!has(key)) fail(key, "is required but missing");
    return checked_int(key, j_[key], lo, hi);
  }
  int64_t integer_or(const char* key, int64_t def, int64_t lo, int64_t hi) const {
    return has(key) ? checked_int(key, j_[key], lo, hi) : def;
  }
  int64_t checked_int(const std::string& key, const json& v, int64_t lo, int64_t hi) const {
    if (!v.is_number_integer()) fail(key, "must be an integer but is " + v.dump());
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi))
      fail(key, "is " + v.dump() + ", beyond any real model (at most " + std::to_string(hi) + ")");
    int64_t x = v.get<int64_t>();
    if (x < lo)
      fail(key, "is " + v.dump() + " but must be " +
                    (lo == 1 ? std::string("positive") : ">= " + std::to_string(lo)));
    if (x > hi)
      fail(key, "is " + v.dump() + ", beyond any real model (at most " + std::to_string(hi) + ")");
    return x;
  }
  double number_or(const char* key, double def) const {
    if (!has(key)) return def;
    if (!j_[key].is_number()) fail(key, "must be a number but is " + j_[key].dump());
    return j_[key].get<double>();
  }
  bool boolean_or(const char* key, bool def) const {
    if (!has(key)) return def;
    if (!j_[key].is_boolean()) fail(key, "must be true or false but is " + j_[key].dump());
    return j_[key].get<bool>();
  }
  std::string string_or(const char* key, const std::string& def) const {
    if (!has(key)) return def;
    if (!j_[key].is_string()) fail(key, "must be a string but is " + j_[key].dump());
    return j_[key].get<std::string>();
  }

 private:
  const json& j_;
  const std::string& origin_;
};

void parse_windows(const Fields& f, const ArchSpec& arch, ModelConfig& c) {
  const int layers = c.num_hidden_layers;
  c.layer_window.assign(static_cast<size_t>(layers), 0);
  if (arch.window_rule == WindowRule::kNone) return;  // LlamaConfig has no sliding window
  const int64_t kMaxWindow = int64_t{1} << 30;
  // An absent key takes the class default; an explicit null means no window.
  int64_t window = 0;
  if (f.has("sliding_window"))
    window = f.integer("sliding_window", 0, kMaxWindow);
  else if (!f.present("sliding_window"))
    window = arch.sliding_window;
  if (arch.window_rule == WindowRule::kAllLayers) {
    c.sliding_window = window;
    std::fill(c.layer_window.begin(), c.layer_window.end(), window);
    return;
  }
  // Qwen2: the window applies only with use_sliding_window, to layers >= max_window_layers
  // (or to the layers that "layer_types" marks "sliding_attention", when given).
  if (!f.boolean_or("use_sliding_window", false)) window = 0;
  const int64_t max_window_layers = f.integer_or("max_window_layers", 28, 0, kMaxWindow);
  std::vector<bool> sliding(static_cast<size_t>(layers));
  if (f.has("layer_types")) {
    const json& types = f.at("layer_types");
    if (!types.is_array() || types.size() != static_cast<size_t>(layers))
      f.fail("layer_types",
             "must be a list of num_hidden_layers (" + std::to_string(layers) + ") strings");
    for (int i = 0; i < layers; ++i) {
      const json& t = types[static_cast<size_t>(i)];
      if (t != "full_attention" && t != "sliding_attention")
        f.fail("layer_types",
               "has entry " + t.dump() + "; expected \"full_attention\" or \"sliding_attention\"");
      sliding[static_cast<size_t>(i)] = t == "sliding_attention";
    }
  } else {
    for (int i = 0; i < layers; ++i) sliding[static_cast<size_t>(i)] = i >= max_window_layers;
  }
  bool any = false;
  for (int i = 0; i < layers; ++i)
    if (sliding[static_cast<size_t>(i)] && window > 0) {
      c.layer_window[static_cast<size_t>(i)] = window;
      any = true;
    }
  c.sliding_window = any ? window : 0;
}

void parse_special_tokens(const Fields& f, const ArchSpec& arch, ModelConfig& c) {
  const int64_t max_id = c.vocab_size - 1;
  auto id = [&](const std::string& key, const json& v) {
    if (!v.is_number_integer()) f.fail(key, "must be a token id (integer) but is " + v.dump());
    return static_cast<int>(f.checked_int(key, v, 0, max_id));
  };
  // An absent key takes the class default (dropped if outside the vocabulary of a small
  // model); an explicit null means none.
  c.bos_token_id = f.present("bos_token_id") || arch.bos > max_id ? -1 : arch.bos;
  if (f.has("bos_token_id")) c.bos_token_id = id("bos_token_id", f.at("bos_token_id"));
  c.eos_token_ids.clear();
  if (f.has("eos_token_id")) {
    const json& e = f.at("eos_token_id");
    if (e.is_array()) {
      for (const json& x : e) c.eos_token_ids.push_back(id("eos_token_id", x));
    } else {
      c.eos_token_ids.push_back(id("eos_token_id", e));
    }
  } else if (!f.present("eos_token_id") && arch.eos >= 0 && arch.eos <= max_id) {
    c.eos_token_ids.push_back(arch.eos);
  }
}

// Fields of other families' transformers classes that change the computation (soft-capping,
// extra norms, scaled embeddings or residuals, ...). A decoder that skips them prints wrong text
// without a word, so a config that sets one to a non-neutral value is refused by name.
void refuse_foreign_variants(const Fields& f, const std::string& origin) {
  struct Variant {
    const char* key;
    const char* what;
    double neutral;  // the value that computes nothing (NaN: null/false/absent only)
  };
  static const Variant kVariants[] = {
      {"attn_logit_softcapping", "attention-score soft-capping (Gemma 2)", NAN},
      {"final_logit_softcapping", "logit soft-capping (Gemma 2)", NAN},
      {"query_pre_attn_scalar", "a query scale other than 1/sqrt(head_dim) (Gemma 2)", NAN},
      {"use_qk_norm", "RMSNorm on queries and keys", NAN},
      {"qk_layernorm", "LayerNorm on queries and keys", NAN},
      {"embedding_multiplier", "scaled embeddings (Granite)", 1.0},
      {"logits_scaling", "scaled logits (Granite)", 1.0},
      {"residual_multiplier", "scaled residual branches (Granite)", 1.0},
      {"attention_multiplier", "a custom attention scale (Granite)", NAN},
      {"logit_scale", "scaled logits (Cohere)", 1.0},
      {"use_parallel_residual", "parallel attention and MLP branches", NAN},
      {"no_rope_layers", "layers without RoPE (Llama 4 / SmolLM3)", NAN},
      {"sliding_window_pattern", "interleaved sliding-window layers (Gemma 2/3)", NAN},
      {"attention_type", "a non-standard attention variant", NAN},
  };
  for (const Variant& v : kVariants) {
    if (!f.has(v.key)) continue;
    const json& x = f.at(v.key);
    if (x.is_boolean() && !x.get<bool>()) continue;
    if (x.is_number() && x.get<double>() == v.neutral) continue;
    if (x.is_array() && x.empty()) continue;
    throw Error(ErrorKind::kUnsupported,
                origin + ": field \"" + v.key + "\" is " + x.dump() + ": " + v.what +
                    ", which longctx's decoder does not compute; this checkpoint is not a plain "
                    "llama/mistral/qwen2/phi3 model and would print wrong text (remove the field "
                    "only if it is known to be inert)");
  }
}

}  // namespace

int ModelConfig::rot_dim() const {
  int r = static_cast<int>(static_cast<double>(head_dim) * partial_rotary_factor);
  return r & ~1;
}

ModelConfig parse_model_config(const std::string& json_text, const std::string& origin) {
  // Syntax errors with line and column, numbers beyond double and absurd nesting: io/json_util.h.
  const json j = io::parse_json_or_throw(json_text, origin);
  if (!j.is_object())
    throw Error(ErrorKind::kFormat, origin +
                                        ": expected a JSON object at the top level; "
                                        "this is not a Hugging Face config.json");
  const Fields f(j, origin);
  ModelConfig c;
  if (!f.has("model_type"))
    f.fail("model_type",
           "is required but missing (a Hugging Face config.json names its "
           "architecture, e.g. \"llama\")");
  c.model_type = f.string_or("model_type", "");
  const ArchSpec& arch = arch_spec_for(c.model_type, origin);

  c.hidden_size = f.integer("hidden_size", 1, int64_t{1} << 20);
  c.intermediate_size = f.integer("intermediate_size", 1, int64_t{1} << 22);
  c.num_hidden_layers = static_cast<int>(f.integer("num_hidden_layers", 1, 4096));
  c.num_attention_heads = static_cast<int>(f.integer("num_attention_heads", 1, 4096));
  c.vocab_size = f.integer("vocab_size", 1, int64_t{1} << 24);
  const int kv_default =
      arch.num_key_value_heads ? arch.num_key_value_heads : c.num_attention_heads;
  c.num_key_value_heads =
      static_cast<int>(f.integer_or("num_key_value_heads", kv_default, 1, 4096));
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    f.fail("num_key_value_heads", "is " + std::to_string(c.num_key_value_heads) +
                                      " but must divide num_attention_heads (" +
                                      std::to_string(c.num_attention_heads) + ")");
  if (f.has("head_dim")) {
    c.head_dim = static_cast<int>(f.integer("head_dim", 1, 1 << 14));
  } else {
    if (c.hidden_size % c.num_attention_heads != 0)
      f.fail("hidden_size", "is " + std::to_string(c.hidden_size) +
                                ", not divisible by num_attention_heads (" +
                                std::to_string(c.num_attention_heads) + ") and head_dim is absent");
    c.head_dim = static_cast<int>(c.hidden_size / c.num_attention_heads);
  }
  if (c.head_dim % 2 != 0)
    f.fail("head_dim", "is " + std::to_string(c.head_dim) + " but rotary embeddings need it even");

  c.max_position_embeddings =
      f.integer_or("max_position_embeddings", arch.max_position_embeddings, 1, int64_t{1} << 28);
  c.original_max_position_embeddings =
      f.integer_or("original_max_position_embeddings", arch.original_max_position_embeddings, 1,
                   int64_t{1} << 28);
  const double eps = f.number_or("rms_norm_eps", arch.rms_norm_eps);
  // Stored as a float: a smaller eps would round to 0 (a zero row would then normalize to NaN).
  if (!(eps >= 1e-30 && eps < 1)) f.fail("rms_norm_eps", "must be in (0, 1), at least 1e-30");
  c.rms_norm_eps = static_cast<float>(eps);

  // rope: top-level rope_theta / rope_scaling; newer files may nest them in rope_parameters.
  const json* rope_params = f.has("rope_parameters") && f.at("rope_parameters").is_object()
                                ? &f.at("rope_parameters")
                                : nullptr;
  double theta = 10000.0;
  if (f.has("rope_theta")) {
    theta = f.number_or("rope_theta", theta);
  } else if (rope_params && rope_params->contains("rope_theta")) {
    theta = Fields(*rope_params, origin).number_or("rope_theta", theta);
  }
  // Real values are 1e4..1e8; far beyond, the highest frequencies underflow to 0 in float. A base
  // of 1 turns every dimension at the same speed (no position information) and YaRN divides by
  // its logarithm; below 1 the frequencies grow with the dimension.
  if (!(theta > 1 && theta <= 1e12))
    f.fail("rope_theta", "must be a number above 1 and at most 1e12 (real models use 1e4 to 1e8)");
  c.rope_theta = theta;
  if (f.has("rope_scaling")) {
    if (!f.at("rope_scaling").is_object())
      f.fail("rope_scaling", "must be an object or null but is " + f.at("rope_scaling").dump());
    c.rope_scaling_json = f.at("rope_scaling").dump();
  } else if (rope_params && rope_params->contains("rope_type") &&
             (*rope_params)["rope_type"] != "default") {
    c.rope_scaling_json = rope_params->dump();
  }
  c.partial_rotary_factor = f.number_or("partial_rotary_factor", 1.0);
  if (!f.has("partial_rotary_factor") && rope_params &&
      rope_params->contains("partial_rotary_factor"))
    c.partial_rotary_factor = Fields(*rope_params, origin).number_or("partial_rotary_factor", 1.0);
  if (!(c.partial_rotary_factor > 0 && c.partial_rotary_factor <= 1))
    f.fail("partial_rotary_factor", "must be in (0, 1]");
  if (c.rot_dim() < 2) f.fail("partial_rotary_factor", "leaves fewer than 2 rotary dimensions");
  c.rope_scaling = parse_rope_scaling(c.rope_scaling_json,
                                      {origin, c.model_type, c.rot_dim(), c.max_position_embeddings,
                                       c.original_max_position_embeddings});

  c.tie_word_embeddings = f.boolean_or("tie_word_embeddings", false);
  // The decoder computes one activation; anything else would run SiLU under another name.
  c.hidden_act = f.string_or("hidden_act", "silu");
  if (c.hidden_act != "silu" && c.hidden_act != "swish")
    throw Error(ErrorKind::kUnsupported,
                origin + ": field \"hidden_act\" is \"" + c.hidden_act +
                    "\", an MLP activation longctx does not compute; supported: \"silu\" (also "
                    "written \"swish\"). Running it as SiLU would print wrong text");
  c.hidden_act = "silu";
  // The bias rules of the architecture (config/arch.h). Families whose transformers class has no
  // such field ignore it, as transformers does; a bias tensor in their checkpoint is refused by
  // the checkpoint check (model/checkpoint_check.h).
  const bool bias_flag = arch.reads_bias_flags && f.boolean_or("attention_bias", false);
  c.attention_bias = arch.qkv_bias_always || bias_flag;
  c.o_bias = bias_flag;
  c.mlp_bias = arch.reads_bias_flags && f.boolean_or("mlp_bias", false);
  if (c.mlp_bias)
    throw Error(ErrorKind::kUnsupported,
                origin +
                    ": field \"mlp_bias\" is true (biases on gate_proj, up_proj and "
                    "down_proj), which longctx does not compute yet; only mlp_bias: false "
                    "models run");
  refuse_foreign_variants(f, origin);

  parse_windows(f, arch, c);
  parse_special_tokens(f, arch, c);

  // Informational only: anything but the three float types is ignored.
  for (const char* key : {"dtype", "torch_dtype"}) {
    if (!f.has(key) || !f.at(key).is_string()) continue;
    const std::string d = f.at(key).get<std::string>();
    if (d == "float32")
      c.torch_dtype = DType::kF32;
    else if (d == "float16")
      c.torch_dtype = DType::kF16;
    else if (d == "bfloat16")
      c.torch_dtype = DType::kBF16;
    else
      continue;
    break;
  }
  return c;
}

ModelConfig load_model_config(const std::string& dir) {
  const std::string path =
      dir.empty() || dir.back() == '/' ? dir + "config.json" : dir + "/config.json";
  return parse_model_config(read_config_file(path, "config.json"), path);
}

std::string read_config_file(const std::string& path, const std::string& what) {
  // Real config.json files are a few KiB; the cap keeps /dev/zero or a mislabelled weight file
  // from being read whole.
  constexpr off_t kMaxBytes = 16 << 20;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ELOOP)
      throw Error(ErrorKind::kIo, path +
                                      " is a symbolic link that loops (too many levels of "
                                      "symbolic links); point it at the real " +
                                      what);
    if (err == ENOENT && ::lstat(path.c_str(), &st) == 0)
      throw Error(ErrorKind::kIo, path +
                                      " is a symbolic link to a file that does not exist; "
                                      "point it at the real " +
                                      what);
    throw Error(ErrorKind::kIo, path + " cannot be opened (" + std::strerror(err) +
                                    "); a model folder needs the config.json of its Hugging "
                                    "Face checkpoint (check the folder path)");
  }
  if (S_ISDIR(st.st_mode))
    throw Error(ErrorKind::kIo,
                path + " is a folder, not a file; it must be the " + what + " of the checkpoint");
  if (!S_ISREG(st.st_mode))
    throw Error(ErrorKind::kIo, path +
                                    " is not a regular file (a device, pipe or socket); it "
                                    "must be the " +
                                    what + " of the checkpoint");
  if (st.st_size > kMaxBytes)
    throw Error(ErrorKind::kFormat, path + " is " + std::to_string(st.st_size) +
                                        " bytes, far more than any " + what +
                                        " (a few KiB); is it the right file?");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorKind::kIo, "cannot read " + path + "; check its permissions");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace longctx
