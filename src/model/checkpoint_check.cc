#include "model/checkpoint_check.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>
#include <xxhash.h>

#include "config/arch.h"
#include "core/tensor_type.h"
#include "core/error.h"

namespace longctx {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

namespace {

// A tensor the decoder reads: its shape and the config fields that set it.
struct Expected {
  Expected() = default;
  Expected(std::vector<int64_t> s, std::string d, bool req = true, std::string why = "")
      : shape(std::move(s)), dims(std::move(d)), required(req), why_required(std::move(why)) {}
  std::vector<int64_t> shape;
  std::string dims;  // e.g. "[vocab_size, hidden_size]"
  bool required = true;
  std::string why_required;  // why a tensor that may be absent is required here (biases)
};

std::string bias_of(const std::string& weight) {
  return weight.substr(0, weight.size() - std::string("weight").size()) + "bias";
}

// Layer index of a tensor named "<prefix><l>.<rest>", or -1.
int layer_of(const std::string& name, const std::string& prefix) {
  if (prefix.empty() || name.compare(0, prefix.size(), prefix) != 0) return -1;
  size_t i = prefix.size();
  int64_t l = 0;
  size_t digits = 0;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9' && digits < 9) {
    l = l * 10 + (name[i] - '0');
    ++i;
    ++digits;
  }
  if (digits == 0 || i >= name.size() || name[i] != '.') return -1;
  return static_cast<int>(l);
}

// Buffers some exporters save that never change the numbers (recomputed from the config).
bool inert(const std::string& name) {
  return name.ends_with("rotary_emb.inv_freq") || name.ends_with("attention.masked_bias");
}

}  // namespace

void check_checkpoint(const ModelConfig& cfg, const io::WeightSource& w, WeightFormat format) {
  const ArchSpec& spec = arch_spec_for(cfg.model_type);
  const TensorNames& n = format == WeightFormat::kGguf ? spec.gguf : spec.hf;
  const bool gguf = format == WeightFormat::kGguf;
  const std::string cfg_name = gguf ? w.origin() + " (its metadata)" : "config.json";
  const int64_t H = cfg.hidden_size, I = cfg.intermediate_size, V = cfg.vocab_size;
  const int64_t qd = int64_t{cfg.num_attention_heads} * cfg.head_dim;
  const int64_t kvd = int64_t{cfg.num_key_value_heads} * cfg.head_dim;
  const std::string QD = "num_attention_heads x head_dim", KVD = "num_key_value_heads x head_dim";

  // In the decoder's order, so that the first mismatch reported is the first one it would meet.
  std::vector<std::pair<std::string, Expected>> want;
  auto expect = [&](const std::string& name, Expected e) { want.emplace_back(name, std::move(e)); };
  expect(n.embed, Expected{{V, H}, "[vocab_size, hidden_size]"});
  expect(n.lm_head, Expected{{V, H},
                             "[vocab_size, hidden_size]",
                             !cfg.tie_word_embeddings,
                             "tie_word_embeddings is not true"});
  expect(n.final_norm, Expected{{H}, "[hidden_size]"});
  for (int l = 0; l < cfg.num_hidden_layers; ++l) {
    auto t = [&](const std::string& tmpl) { return layer_tensor_name(tmpl, l); };
    expect(t(n.attn_norm), Expected{{H}, "[hidden_size]"});
    expect(t(n.mlp_norm), Expected{{H}, "[hidden_size]"});
    // Biases only where declared: an undeclared bias tensor is refused below, as transformers
    // would not read it either.
    const std::string bias_why = "attention_bias is true (or the family always has q/k/v biases)";
    if (!n.qkv.empty()) {
      expect(t(n.qkv), Expected{{qd + 2 * kvd, H}, "[" + QD + " + 2 x " + KVD + ", hidden_size]"});
      if (cfg.attention_bias)
        expect(bias_of(t(n.qkv)),
               Expected{{qd + 2 * kvd}, "[" + QD + " + 2 x " + KVD + "]", true, bias_why});
    } else {
      expect(t(n.q), Expected{{qd, H}, "[" + QD + ", hidden_size]"});
      expect(t(n.k), Expected{{kvd, H}, "[" + KVD + ", hidden_size]"});
      expect(t(n.v), Expected{{kvd, H}, "[" + KVD + ", hidden_size]"});
      if (cfg.attention_bias) {
        expect(bias_of(t(n.q)), Expected{{qd}, "[" + QD + "]", true, bias_why});
        expect(bias_of(t(n.k)), Expected{{kvd}, "[" + KVD + "]", true, bias_why});
        expect(bias_of(t(n.v)), Expected{{kvd}, "[" + KVD + "]", true, bias_why});
      }
    }
    expect(t(n.o), Expected{{H, qd}, "[hidden_size, " + QD + "]"});
    if (cfg.o_bias)
      expect(bias_of(t(n.o)), Expected{{H}, "[hidden_size]", true, "attention_bias is true"});
    if (!n.gate_up.empty()) {
      expect(t(n.gate_up), Expected{{2 * I, H}, "[2 x intermediate_size, hidden_size]"});
    } else {
      expect(t(n.gate), Expected{{I, H}, "[intermediate_size, hidden_size]"});
      expect(t(n.up), Expected{{I, H}, "[intermediate_size, hidden_size]"});
    }
    expect(t(n.down), Expected{{H, I}, "[hidden_size, intermediate_size]"});
  }

  // Layers the checkpoint holds, from the names of every tensor (unsupported dtypes included).
  const std::string layer_prefix = n.attn_norm.substr(0, n.attn_norm.find("{l}"));
  int ckpt_layers = 0;
  std::vector<std::string> all;
  for (const auto& [name, t] : w.tensors()) all.push_back(name);
  for (const auto& [name, d] : w.unsupported()) all.push_back(name);
  for (const std::string& name : all)
    ckpt_layers = std::max(ckpt_layers, layer_of(name, layer_prefix) + 1);
  const std::string layers_field = gguf ? "block_count" : "num_hidden_layers";
  if (ckpt_layers > cfg.num_hidden_layers)
    throw Error(ErrorKind::kConfig,
                w.origin() + ": the weights hold " + std::to_string(ckpt_layers) + " layers (" +
                    layer_prefix + "0 to " + layer_prefix + std::to_string(ckpt_layers - 1) +
                    ") but " + cfg_name + " says " + layers_field + " = " +
                    std::to_string(cfg.num_hidden_layers) + "; running the first " +
                    std::to_string(cfg.num_hidden_layers) + " alone would print wrong text. Set " +
                    layers_field + " to " + std::to_string(ckpt_layers) +
                    " (the config that came with the weights)");

  std::set<std::string> wanted;
  for (const auto& [name, e] : want) wanted.insert(name);
  for (const auto& [name, e] : want) {
    const io::TensorInfo* t = w.find(name);  // throws for an unsupported dtype, naming it
    if (!t) {
      if (!e.required) continue;
      const int l = layer_of(name, layer_prefix);
      if (l >= ckpt_layers && l >= 0)
        throw Error(ErrorKind::kConfig,
                    w.origin() + ": " + cfg_name + " says " + layers_field + " = " +
                        std::to_string(cfg.num_hidden_layers) + " but the weights hold only " +
                        std::to_string(ckpt_layers) + " layers (tensor " + name +
                        " is missing); set " + layers_field + " to " + std::to_string(ckpt_layers) +
                        " or download the complete checkpoint");
      throw Error(
          ErrorKind::kShape,
          "tensor " + name + " is missing from " + w.origin() +
              (e.why_required.empty() ? "" : " but " + cfg_name + " says " + e.why_required) +
              " (" + std::to_string(w.tensors().size()) +
              " tensors present); the weights do not match this architecture or the "
              "checkpoint is incomplete");
    }
    if (t->shape != e.shape)
      throw Error(ErrorKind::kShape,
                  "tensor " + name + " in " + t->file + " has shape " + shape_str(t->shape) +
                      " but " + cfg_name + " implies " + e.dims + " = " + shape_str(e.shape) +
                      " (hidden_size " + std::to_string(H) + ", intermediate_size " +
                      std::to_string(I) + ", vocab_size " + std::to_string(V) +
                      ", num_attention_heads " + std::to_string(cfg.num_attention_heads) +
                      ", num_key_value_heads " + std::to_string(cfg.num_key_value_heads) +
                      ", head_dim " + std::to_string(cfg.head_dim) +
                      "); the weights do not belong to this " + cfg_name);
  }
  if (gguf) return;  // llama.cpp files carry extras (rope_freqs, ...) derived from the metadata

  // Tensors the decoder would not read: each would change the numbers of a real model.
  std::vector<std::string> unread;
  for (const std::string& name : all)
    if (!wanted.count(name) && !inert(name)) unread.push_back(name);
  if (unread.empty()) return;
  const std::string& first = unread.front();
  const std::string more =
      unread.size() > 1 ? " and " + std::to_string(unread.size() - 1) + " more" : "";
  if (first.ends_with(".bias")) {
    const bool mlp = first.find("mlp") != std::string::npos;
    throw Error(
        ErrorKind::kConfig,
        w.origin() + ": tensor " + first + more +
            " is a bias that config.json does not "
            "declare (" +
            (mlp ? "mlp_bias" : "attention_bias") + " is false or absent" +
            (spec.reads_bias_flags ? ""
                                   : ", and " + spec.model_type + " models have no such bias") +
            "); skipping it would print wrong text. Use the config.json that came with "
            "the weights");
  }
  throw Error(ErrorKind::kUnsupported,
              w.origin() + ": tensor " + first + more + " is not part of a " + spec.model_type +
                  " model as config.json describes it; this checkpoint is a variant longctx "
                  "does not compute (skipping the tensor would print wrong text)");
}

namespace {

// Index of the first element whose exponent bits are all ones (NaN or Inf), or -1. `mask` selects
// the exponent of an element of type T.
template <typename T>
int64_t first_nonfinite(const void* data, int64_t count, T mask) {
  const T* p = static_cast<const T*>(data);
  constexpr int64_t kBlock = 4096;
  for (int64_t b = 0; b < count; b += kBlock) {
    const int64_t e = std::min(count, b + kBlock);
    // Branch-free over the block so the compiler vectorizes it; located only on a hit.
    T hit = 0;
    for (int64_t i = b; i < e; ++i) {
      T x;
      std::memcpy(&x, p + i, sizeof x);  // safetensors data need not be aligned
      hit |= static_cast<T>((x & mask) == mask);
    }
    if (!hit) continue;
    for (int64_t i = b; i < e; ++i) {
      T x;
      std::memcpy(&x, p + i, sizeof x);
      if ((x & mask) == mask) return i;
    }
  }
  return -1;
}

}  // namespace

uint64_t model_fingerprint(const ModelConfig& c, const io::WeightSource& w) {
  std::string s = c.model_type;
  for (const double x :
       {double(c.hidden_size), double(c.intermediate_size), double(c.num_hidden_layers),
        double(c.num_attention_heads), double(c.num_key_value_heads), double(c.head_dim),
        double(c.vocab_size), double(c.max_position_embeddings), double(c.rms_norm_eps),
        c.rope_theta, c.partial_rotary_factor, double(c.tie_word_embeddings),
        double(c.attention_bias), double(c.o_bias), c.rope_scaling.factor,
        c.rope_scaling.attention_factor})
    s += "|" + std::to_string(x);
  s += "|" + c.rope_scaling.name + "|" + c.hidden_act + "|" + c.rope_scaling_json;
  for (const int64_t wdw : c.layer_window) s += "|" + std::to_string(wdw);
  for (const auto& [name, t] : w.tensors()) {
    s += "\n" + name + " " + tensor_type_name(t.type) + " " + std::to_string(t.nbytes);
    for (const int64_t d : t.shape) s += " " + std::to_string(d);
  }
  return XXH64(s.data(), s.size(), 0);
}

WeightLayout weight_layout(const ModelConfig& cfg, const io::WeightSource& w,
                           WeightFormat format) {
  const ArchSpec& spec = arch_spec_for(cfg.model_type);
  const TensorNames& n = format == WeightFormat::kGguf ? spec.gguf : spec.hf;
  const std::string layer_prefix = n.attn_norm.substr(0, n.attn_norm.find("{l}"));
  WeightLayout out;
  out.layer_bytes.assign(static_cast<size_t>(std::max(0, cfg.num_hidden_layers)), 0);
  for (const auto& [name, t] : w.tensors()) {
    const int l = layer_of(name, layer_prefix);
    if (l >= 0 && l < cfg.num_hidden_layers)
      out.layer_bytes[static_cast<size_t>(l)] += t.nbytes;
    else if (name == n.embed)
      out.embed_bytes += t.nbytes;
    else
      out.other_bytes += t.nbytes;
  }
  return out;
}

void check_finite_weights(const io::WeightSource& w, const std::vector<std::string>* only) {
  for (const auto& [name, t] : w.tensors()) {
    if (only && std::find(only->begin(), only->end(), name) == only->end()) continue;
    const std::optional<DType> dt = float_dtype(t.type);
    if (!dt) continue;
    const int64_t count = static_cast<int64_t>(t.nbytes / dtype_size(*dt));
    int64_t at = -1;
    switch (*dt) {
      case DType::kF32:
        at = first_nonfinite<uint32_t>(t.data, count, 0x7F800000u);
        break;
      case DType::kF16:
        at = first_nonfinite<uint16_t>(t.data, count, uint16_t{0x7C00});
        break;
      case DType::kBF16:
        at = first_nonfinite<uint16_t>(t.data, count, uint16_t{0x7F80});
        break;
    }
    if (at < 0) continue;
    float v = 0;
    to_f32(*dt, static_cast<const uint8_t*>(t.data) + at * dtype_size(*dt), &v, 1);
    throw Error(ErrorKind::kFormat,
                t.file + ": tensor " + name + " holds " + (std::isnan(v) ? "NaN" : "Inf") +
                    " (not finite) values, the first at element " + std::to_string(at) +
                    "; every output would be garbage. The file is corrupt or was saved from a "
                    "diverged run: re-download or re-export it");
  }
}

void check_finite_logits(const float* logits, int64_t rows, int64_t vocab, int64_t pos0) {
  const int64_t count = rows * vocab;
  const int64_t at = first_nonfinite<uint32_t>(logits, count, 0x7F800000u);
  if (at < 0) return;
  throw Error(ErrorKind::kFormat,
              "the model's logits at position " + std::to_string(pos0 + at / vocab) + " are " +
                  (std::isnan(logits[at]) ? "NaN" : "Inf") +
                  " (not finite): the weights or activations overflowed, so any text or score "
                  "would be garbage. Check the checkpoint (re-download it), or a --patch/--steer "
                  "that injects huge values");
}

}  // namespace longctx
