// Which block type each weight gets under a quantization scheme (the "file types" of
// llama-quantize): one rule, used by the planner to price a model quantized (its refusals name the
// schemes that would fit) and by `longctx quantize` to write one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/model_config.h"
#include "core/tensor_type.h"

namespace longctx {

enum class QuantScheme { kQ8_0, kQ4_0, kQ4_K_M, kQ5_0, kQ5_1 };

// "q8_0", "q4_0", "q4_k_m", "q5_0", "q5_1" (case-insensitive); nullopt otherwise.
std::optional<QuantScheme> parse_quant_scheme(std::string_view s);
const char* quant_scheme_name(QuantScheme s);  // "Q8_0", "Q4_0", "Q4_K_M", "Q5_0", "Q5_1"
// The schemes a refusal suggests: Q8_0, Q4_K_M, Q4_0 (the ones most files on the hubs use).
std::vector<QuantScheme> all_quant_schemes();

// What a weight matrix is in the model.
enum class WeightRole { kEmbed, kOutput, kQ, kK, kV, kQkv, kO, kGate, kUp, kGateUp, kDown };

// The type of a [rows][cols] matrix of `role` in `layer` of `n_layers` under `scheme`, following
// llama-quantize's default mixes: Q8_0 everywhere for Q8_0; Q4_0 (Q5_0, Q5_1) with a Q6_K output
// head; Q4_K_M with Q4_K, and Q6_K for the output head and for attn_v / ffn_down in the layers
// where llama.cpp's use_more_bits holds (the first and last eighth, and every third layer
// between), Q5_K for Phi-3's fused qkv. A row that its K-quant's 256-element blocks do not divide
// falls back as llama-quantize's does (Q4_K to Q5_0, Q5_K to Q5_1, Q6_K to Q8_0), and to F16 when
// not even 32 divides it. (Norm weights and biases stay F32.)
TensorType quant_type_for(QuantScheme scheme, WeightRole role, int layer, int n_layers,
                          int64_t cols);

// Bytes of all weights of `cfg` under `scheme` (matrices as above, norms and biases in F32).
size_t quantized_weight_bytes(const ModelConfig& cfg, QuantScheme scheme);

}  // namespace longctx
