// Scalar reference matmul and embedding lookup (every TensorType: block types decoded a row at a
// time with the reference dequantizer).
#include <vector>

#include "kernels/reference/reference.h"

namespace longctx::kernels::reference {

float load_f32(DType t, const void* data, int64_t i) {
  switch (t) {
    case DType::kF32:
      return static_cast<const float*>(data)[i];
    case DType::kF16:
      return f16_to_f32(static_cast<const uint16_t*>(data)[i]);
    case DType::kBF16:
      return bf16_to_f32(static_cast<const uint16_t*>(data)[i]);
  }
  return 0.f;
}

void matmul(const float* x, int64_t n, const WeightView& w, const float* bias, float* y) {
  std::vector<float> row(static_cast<size_t>(w.cols));
  for (int64_t r = 0; r < w.rows; ++r) {
    reference::embedding_row(w, r, row.data());
    for (int64_t i = 0; i < n; ++i) {
      const float* xi = x + i * w.cols;
      float acc = 0.f;
      for (int64_t c = 0; c < w.cols; ++c) acc += xi[c] * row[c];
      y[i * w.rows + r] = acc + (bias ? bias[r] : 0.f);
    }
  }
}

void embedding_row(const WeightView& w, int64_t row, float* dst) {
  dequantize_row(w.type, static_cast<const uint8_t*>(w.data) + row * w.row_bytes, dst, w.cols);
}

}  // namespace longctx::kernels::reference
