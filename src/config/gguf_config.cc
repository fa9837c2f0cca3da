#include "config/gguf_config.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config/arch.h"
#include "core/dtype.h"
#include "core/error.h"
#include "io/gguf.h"

namespace longctx {

namespace {

using json = nlohmann::json;

// A 1-D F32/F16 tensor's values (the RoPE factor tensors), checked against the expected length.
std::vector<double> factor_tensor(const io::GgufFile& f, const io::GgufTensor& t, size_t want) {
  const std::optional<DType> dt = t.type ? float_dtype(*t.type) : std::nullopt;
  if (!dt || t.shape.size() != 1 || static_cast<size_t>(t.shape[0]) != want)
    throw Error(ErrorKind::kFormat, f.path() + ": tensor " + t.name + " must be " +
                                        std::to_string(want) +
                                        " float values (rope dimension count / 2), found " +
                                        t.ggml_type_name + " of " + std::to_string(t.shape.size()) +
                                        " dimensions");
  std::vector<float> v(want);
  to_f32(*dt, t.data, v.data(), want);
  return {v.begin(), v.end()};
}

}  // namespace

ModelConfig config_from_gguf(const io::GgufFile& f) {
  if (f.tensors().empty())
    throw Error(ErrorKind::kInvalidArg,
                f.path() + " holds no tensors: it is a vocabulary-only GGUF file (usable with "
                           "longctx tokenize), not a model; point -m at a model file");
  const std::string arch_name = f.get_string("general.architecture");
  const std::string a = arch_name + ".";
  // llama.cpp converts Mistral as "llama" and drops its window; a "llama" file that records one
  // (longctx quantize writes it) without llama's biases is read as Mistral, which applies it.
  const ArchSpec& arch = [&]() -> const ArchSpec& {
    const ArchSpec& s = arch_spec_for_gguf(arch_name, f.path());
    const auto win = f.opt_int(a + "attention.sliding_window");
    if (s.model_type == "llama" && win && *win > 0 &&
        !f.find_tensor(layer_tensor_name("blk.{l}.attn_q.bias", 0)))
      return arch_spec_for("mistral");
    return s;
  }();
  json j;
  j["model_type"] = arch.model_type;
  j["architectures"] = json::array({arch.hf_class});
  j["hidden_size"] = f.get_int(a + "embedding_length");
  j["intermediate_size"] = f.get_int(a + "feed_forward_length");
  j["num_hidden_layers"] = f.get_int(a + "block_count");
  const int64_t heads = f.get_int(a + "attention.head_count");
  j["num_attention_heads"] = heads;
  j["num_key_value_heads"] = f.opt_int(a + "attention.head_count_kv").value_or(heads);
  if (auto kl = f.opt_int(a + "attention.key_length")) {
    j["head_dim"] = *kl;
    if (auto vl = f.opt_int(a + "attention.value_length"); vl && *vl != *kl)
      throw Error(ErrorKind::kUnsupported,
                  f.path() + ": attention.key_length " + std::to_string(*kl) +
                      " differs from attention.value_length " + std::to_string(*vl) +
                      "; longctx runs models whose keys and values have one head size");
  }
  j["max_position_embeddings"] = f.get_int(a + "context_length");
  j["rms_norm_eps"] = f.get_float(a + "attention.layer_norm_rms_epsilon");
  j["rope_theta"] = f.opt_float(a + "rope.freq_base").value_or(10000.0);

  // Vocabulary: the embedding's rows (vocab_size is optional metadata).
  const io::GgufTensor* embed = f.find_tensor(layer_tensor_name(arch.gguf.embed, 0));
  if (!embed || embed->shape.size() != 2)
    throw Error(ErrorKind::kFormat, f.path() + ": has no 2-D tensor " + arch.gguf.embed +
                                        " (the token embedding); is this a vocabulary-only file? "
                                        "Point -m at a model file");
  j["vocab_size"] = embed->shape[0];
  j["tie_word_embeddings"] = f.find_tensor(arch.gguf.lm_head) == nullptr;

  // Biases as the tensors say (llama: attention_bias covers q, k, v and o).
  const std::string q0 = layer_tensor_name(arch.gguf.qkv.empty() ? arch.gguf.q : arch.gguf.qkv, 0);
  const std::string o0 = layer_tensor_name(arch.gguf.o, 0);
  auto bias_of = [](const std::string& w) { return w.substr(0, w.size() - 6) + "bias"; };
  const bool qkv_bias = f.find_tensor(bias_of(q0)) != nullptr;
  const bool o_bias = f.find_tensor(bias_of(o0)) != nullptr;
  if (arch.reads_bias_flags) {
    if (qkv_bias != o_bias)
      throw Error(ErrorKind::kUnsupported,
                  f.path() + ": has " + (qkv_bias ? "q/k/v" : "o") + " biases but not " +
                      (qkv_bias ? "an o" : "q/k/v") + " bias; a " + arch_name +
                      " model has all four or none");
    j["attention_bias"] = qkv_bias;
  }
  if (f.find_tensor(bias_of(layer_tensor_name(arch.gguf.down, 0))) != nullptr)
    j["mlp_bias"] = true;

  if (auto w = f.opt_int(a + "attention.sliding_window"); w && *w > 0) {
    j["sliding_window"] = *w;
    if (arch.window_rule == WindowRule::kQwen2Layers) {
      j["use_sliding_window"] = true;
      j["max_window_layers"] = 0;
    }
  } else {
    j["sliding_window"] = nullptr;
  }
  if (auto b = f.opt_int("tokenizer.ggml.bos_token_id")) j["bos_token_id"] = *b;
  else j["bos_token_id"] = nullptr;
  if (auto e = f.opt_int("tokenizer.ggml.eos_token_id")) j["eos_token_id"] = *e;
  else j["eos_token_id"] = nullptr;

  // Rotary dimensions and scaling.
  const int64_t head_dim = j.contains("head_dim") ? j["head_dim"].get<int64_t>()
                                                  : j["hidden_size"].get<int64_t>() / heads;
  const int64_t rot = f.opt_int(a + "rope.dimension_count").value_or(head_dim);
  if (rot != head_dim && head_dim > 0)
    j["partial_rotary_factor"] = static_cast<double>(rot) / static_cast<double>(head_dim);
  const size_t half = static_cast<size_t>(std::max<int64_t>(rot, 0) / 2);
  const std::string type = f.opt_string(a + "rope.scaling.type").value_or("none");
  const io::GgufTensor* longf = f.find_tensor("rope_factors_long.weight");
  const io::GgufTensor* shortf = f.find_tensor("rope_factors_short.weight");
  const io::GgufTensor* freqs = f.find_tensor("rope_freqs.weight");
  json rs;
  if (longf || shortf) {
    if (!longf || !shortf)
      throw Error(ErrorKind::kFormat, f.path() + ": has only one of rope_factors_long.weight and "
                                                 "rope_factors_short.weight; LongRoPE needs both");
    rs["type"] = "longrope";
    rs["long_factor"] = factor_tensor(f, *longf, half);
    rs["short_factor"] = factor_tensor(f, *shortf, half);
    const int64_t orig = f.get_int(a + "rope.scaling.original_context_length");
    j["original_max_position_embeddings"] = orig;
    if (auto af = f.opt_float(a + "rope.scaling.attn_factor")) rs["attention_factor"] = *af;
  } else if (type == "linear") {
    rs["type"] = "linear";
    rs["factor"] = f.get_float(a + "rope.scaling.factor");
  } else if (type == "yarn") {
    rs["type"] = "yarn";
    rs["factor"] = f.get_float(a + "rope.scaling.factor");
    rs["original_max_position_embeddings"] = f.get_int(a + "rope.scaling.original_context_length");
    if (auto v = f.opt_float(a + "rope.scaling.yarn_beta_fast")) rs["beta_fast"] = *v;
    if (auto v = f.opt_float(a + "rope.scaling.yarn_beta_slow")) rs["beta_slow"] = *v;
  } else if (type != "none" && !(type == "llama3" && freqs)) {
    throw Error(ErrorKind::kUnsupported, f.path() + ": " + a + "rope.scaling.type \"" + type +
                                             "\" is not supported; longctx reads none, linear, "
                                             "yarn, rope_freqs (Llama 3.1) and Phi-3 LongRoPE");
  }
  if (!rs.is_null()) j["rope_scaling"] = rs;

  ModelConfig c = parse_model_config(j.dump(), f.path() + " (GGUF metadata)");
  if (freqs && !(longf || shortf)) {
    // Llama 3.1: llama.cpp stores the llama3 scaling as per-dimension divisors of inv_freq.
    RopeScaling& r = c.rope_scaling;
    r.type = RopeType::kLlama3;
    r.name = "llama3";
    r.freq_factors = factor_tensor(f, *freqs, half);
    r.factor = *std::max_element(r.freq_factors.begin(), r.freq_factors.end());
    for (double x : r.freq_factors)
      if (!(x > 0))
        throw Error(ErrorKind::kFormat,
                    f.path() + ": tensor rope_freqs.weight holds a factor <= 0 or NaN");
  }
  return c;
}

}  // namespace longctx
