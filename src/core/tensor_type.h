// Storage types of weight tensors: the float types of core/dtype.h and the block-quantized types
// of GGUF files that longctx computes with. A quantized row is a sequence of fixed-size blocks
// (block_elems elements in block_bytes bytes), so a row's size is known only in bytes: code
// addresses rows by row_bytes(), never by an element size (there is none for block types).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "core/dtype.h"

namespace longctx {

enum class TensorType : uint8_t {
  kF32,
  kF16,
  kBF16,
  kQ8_0,  // 32 elements: f16 scale d, 32 x int8 q; x = d * q
  kQ4_0,  // 32 elements: f16 d, 16 bytes of nibbles (element i low, i + 16 high); x = d * (q - 8)
  kQ4_K,  // 256 elements: f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 128 bytes of nibbles
  kQ5_K,  // 256 elements: like Q4_K plus 32 bytes of fifth bits
  kQ6_K,  // 256 elements: 128 bytes low nibbles, 64 bytes high 2 bits, 16 x int8 scales, f16 d
  // llama-quantize's fallbacks where a K-quant does not fit a row (rows not a multiple of 256:
  // Q4_K -> Q5_0, Q5_K -> Q5_1), so every Q4_K_M / Q5_K_M file of a 576- or 896-wide model has
  // them.
  kQ5_0,  // 32 elements: f16 d, 4 bytes of fifth bits, 16 bytes of nibbles; x = d * (q - 16)
  kQ5_1,  // 32 elements: f16 d, f16 m, fifth bits, nibbles; x = d * q + m
};

struct BlockLayout {
  int64_t elems;  // elements per block (1 for the float types)
  int64_t bytes;  // bytes per block
};

BlockLayout block_layout(TensorType t);
bool is_quantized(TensorType t);
// "f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "q5_k", "q6_k", "q5_0", "q5_1".
const char* tensor_type_name(TensorType t);
// Parses a tensor_type_name() (case-insensitive); nullopt when unknown.
std::optional<TensorType> parse_tensor_type(std::string_view s);

inline TensorType tensor_type(DType d) {
  switch (d) {
    case DType::kF16: return TensorType::kF16;
    case DType::kBF16: return TensorType::kBF16;
    case DType::kF32: break;
  }
  return TensorType::kF32;
}
// The float type, or nullopt for a block type.
std::optional<DType> float_dtype(TensorType t);

// Bytes of a row of `cols` elements. Error(kShape) when cols is negative or not a multiple of the
// block size, naming the type and the block size.
int64_t row_bytes(TensorType t, int64_t cols);
// Bytes of `rows` rows of `cols` elements (row_bytes(t, cols) * rows, overflow-checked).
int64_t tensor_bytes(TensorType t, int64_t rows, int64_t cols);

}  // namespace longctx
