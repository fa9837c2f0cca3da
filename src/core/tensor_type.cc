#include "core/tensor_type.h"

#include <cctype>
#include <string>

#include "core/error.h"

namespace longctx {

BlockLayout block_layout(TensorType t) {
  switch (t) {
    case TensorType::kF32: return {1, 4};
    case TensorType::kF16: return {1, 2};
    case TensorType::kBF16: return {1, 2};
    case TensorType::kQ8_0: return {32, 34};
    case TensorType::kQ4_0: return {32, 18};
    case TensorType::kQ4_K: return {256, 144};
    case TensorType::kQ5_K: return {256, 176};
    case TensorType::kQ6_K: return {256, 210};
    case TensorType::kQ5_0: return {32, 22};
    case TensorType::kQ5_1: return {32, 24};
  }
  return {1, 4};
}

bool is_quantized(TensorType t) { return block_layout(t).elems > 1; }

const char* tensor_type_name(TensorType t) {
  switch (t) {
    case TensorType::kF32: return "f32";
    case TensorType::kF16: return "f16";
    case TensorType::kBF16: return "bf16";
    case TensorType::kQ8_0: return "q8_0";
    case TensorType::kQ4_0: return "q4_0";
    case TensorType::kQ4_K: return "q4_k";
    case TensorType::kQ5_K: return "q5_k";
    case TensorType::kQ6_K: return "q6_k";
    case TensorType::kQ5_0: return "q5_0";
    case TensorType::kQ5_1: return "q5_1";
  }
  return "?";
}

std::optional<TensorType> parse_tensor_type(std::string_view s) {
  std::string low(s);
  for (char& c : low) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (TensorType t : {TensorType::kF32, TensorType::kF16, TensorType::kBF16, TensorType::kQ8_0,
                       TensorType::kQ4_0, TensorType::kQ4_K, TensorType::kQ5_K, TensorType::kQ6_K,
                       TensorType::kQ5_0, TensorType::kQ5_1})
    if (low == tensor_type_name(t)) return t;
  return std::nullopt;
}

std::optional<DType> float_dtype(TensorType t) {
  switch (t) {
    case TensorType::kF32: return DType::kF32;
    case TensorType::kF16: return DType::kF16;
    case TensorType::kBF16: return DType::kBF16;
    default: return std::nullopt;
  }
}

int64_t row_bytes(TensorType t, int64_t cols) {
  const BlockLayout b = block_layout(t);
  if (cols < 0 || cols % b.elems != 0)
    throw Error(ErrorKind::kShape, std::string("a row of ") + std::to_string(cols) +
                                       " elements cannot be stored as " + tensor_type_name(t) +
                                       ", whose blocks hold " + std::to_string(b.elems) +
                                       " elements; rows must be a multiple of the block size");
  return cols / b.elems * b.bytes;
}

int64_t tensor_bytes(TensorType t, int64_t rows, int64_t cols) {
  const int64_t rb = row_bytes(t, cols);
  if (rows < 0 || (rb > 0 && rows > INT64_MAX / rb))
    throw Error(ErrorKind::kShape, "a tensor of " + std::to_string(rows) + " rows of " +
                                       std::to_string(cols) + " elements is too large");
  return rows * rb;
}

}  // namespace longctx
