// The one validation of a checkpoint against its config, shared by every command that reads a
// model (plan and run alike, DESIGN.md decision 9): every tensor the decoder reads is present with
// the shape the config implies, and nothing in the checkpoint would change the numbers without
// being read (layers past num_hidden_layers, undeclared biases, tensors of another variant).
// Reads tensor directories only, never tensor data, except check_finite_weights.
#pragma once

#include "config/model_config.h"
#include "io/weights.h"
#include "model/decoder.h"

namespace longctx {

// Error(kShape / kConfig / kUnsupported) naming the tensor, the config.json field and the fix.
// A tensor shape as "[a, b]" for messages.
std::string shape_str(const std::vector<int64_t>& shape);

void check_checkpoint(const ModelConfig& cfg, const io::WeightSource& weights, WeightFormat format);

// xxHash64 of the numbers of a config that change the output and of the tensor directory (names,
// types, shapes, sizes; no data): what pipeline ranks and prompt-cache files compare.
uint64_t model_fingerprint(const ModelConfig& cfg, const io::WeightSource& weights);

// Where a checkpoint's bytes are: per layer, the token embeddings, and the rest (final norm,
// output head, RoPE factors), as a pipeline stage holds them. Tensors in unsupported dtypes are
// not read and count nowhere.
struct WeightLayout {
  std::vector<size_t> layer_bytes;  // [num_hidden_layers]
  size_t embed_bytes = 0, other_bytes = 0;
};
WeightLayout weight_layout(const ModelConfig& cfg, const io::WeightSource& weights,
                           WeightFormat format);

// Error(kFormat) naming the first tensor that holds a NaN or an infinity. Scans tensors stored
// as F32, F16 or BF16 (block-quantized GGUF tensors are left to the logits check); the test is
// one exponent mask per element, a pass at memory bandwidth.
// `only` (null: every tensor): the names of the tensors to scan (a pipeline stage's).
void check_finite_weights(const io::WeightSource& weights,
                          const std::vector<std::string>* only = nullptr);

// Error(kFormat) when rows x vocab logits hold a NaN or an infinity: the output would be garbage.
// `pos0` is the position of the first row (for the message).
void check_finite_logits(const float* logits, int64_t rows, int64_t vocab, int64_t pos0);

}  // namespace longctx
