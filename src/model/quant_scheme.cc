#include "model/quant_scheme.h"

#include <cctype>

#include "config/arch.h"

namespace longctx {

std::optional<QuantScheme> parse_quant_scheme(std::string_view s) {
  std::string low(s);
  for (char& c : low) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (low == "q8_0") return QuantScheme::kQ8_0;
  if (low == "q4_0") return QuantScheme::kQ4_0;
  if (low == "q4_k_m") return QuantScheme::kQ4_K_M;
  if (low == "q5_0") return QuantScheme::kQ5_0;
  if (low == "q5_1") return QuantScheme::kQ5_1;
  return std::nullopt;
}

const char* quant_scheme_name(QuantScheme s) {
  switch (s) {
    case QuantScheme::kQ8_0: return "Q8_0";
    case QuantScheme::kQ4_0: return "Q4_0";
    case QuantScheme::kQ4_K_M: return "Q4_K_M";
    case QuantScheme::kQ5_0: return "Q5_0";
    case QuantScheme::kQ5_1: return "Q5_1";
  }
  return "?";
}

std::vector<QuantScheme> all_quant_schemes() {
  return {QuantScheme::kQ8_0, QuantScheme::kQ4_K_M, QuantScheme::kQ4_0};
}

namespace {

// llama.cpp's use_more_bits: the first and last eighth of the layers, and every third between.
bool more_bits(int layer, int n_layers) {
  return layer < n_layers / 8 || layer >= 7 * n_layers / 8 || (layer - n_layers / 8) % 3 == 2;
}

TensorType fit(TensorType t, int64_t cols) {
  if (cols % block_layout(t).elems == 0) return t;
  if (cols % 32 != 0) return TensorType::kF16;
  switch (t) {
    case TensorType::kQ4_K: return TensorType::kQ5_0;
    case TensorType::kQ5_K: return TensorType::kQ5_1;
    default: return TensorType::kQ8_0;
  }
}

}  // namespace

TensorType quant_type_for(QuantScheme scheme, WeightRole role, int layer, int n_layers,
                          int64_t cols) {
  TensorType t = TensorType::kQ8_0;
  switch (scheme) {
    case QuantScheme::kQ8_0:
      break;
    case QuantScheme::kQ4_0:
      t = role == WeightRole::kOutput ? TensorType::kQ6_K : TensorType::kQ4_0;
      break;
    case QuantScheme::kQ5_0:
      t = role == WeightRole::kOutput ? TensorType::kQ6_K : TensorType::kQ5_0;
      break;
    case QuantScheme::kQ5_1:
      t = role == WeightRole::kOutput ? TensorType::kQ6_K : TensorType::kQ5_1;
      break;
    case QuantScheme::kQ4_K_M:
      t = TensorType::kQ4_K;
      if (role == WeightRole::kOutput) t = TensorType::kQ6_K;
      if ((role == WeightRole::kV || role == WeightRole::kDown) && more_bits(layer, n_layers))
        t = TensorType::kQ6_K;
      if (role == WeightRole::kQkv) t = TensorType::kQ5_K;
      break;
  }
  return fit(t, cols);
}

size_t quantized_weight_bytes(const ModelConfig& c, QuantScheme scheme) {
  const int64_t H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  const int64_t qd = int64_t{c.num_attention_heads} * c.head_dim;
  const int64_t kvd = int64_t{c.num_key_value_heads} * c.head_dim;
  const int L = c.num_hidden_layers;
  size_t n = 0;
  auto add = [&](WeightRole r, int layer, int64_t rows, int64_t cols) {
    n += static_cast<size_t>(tensor_bytes(quant_type_for(scheme, r, layer, L, cols), rows, cols));
  };
  add(WeightRole::kEmbed, 0, V, H);
  if (!c.tie_word_embeddings) add(WeightRole::kOutput, 0, V, H);
  const bool fused = !arch_spec_for(c.model_type).hf.qkv.empty();
  for (int l = 0; l < L; ++l) {
    if (fused) {
      add(WeightRole::kQkv, l, qd + 2 * kvd, H);
    } else {
      add(WeightRole::kQ, l, qd, H);
      add(WeightRole::kK, l, kvd, H);
      add(WeightRole::kV, l, kvd, H);
    }
    add(WeightRole::kO, l, H, qd);
    add(WeightRole::kGate, l, I, H);
    add(WeightRole::kUp, l, I, H);
    add(WeightRole::kDown, l, H, I);
    n += 2 * static_cast<size_t>(H) * 4;  // norms
    if (c.attention_bias) n += static_cast<size_t>(qd + 2 * kvd) * 4;
    if (c.o_bias) n += static_cast<size_t>(H) * 4;
  }
  n += static_cast<size_t>(H) * 4;
  return n;
}

}  // namespace longctx
