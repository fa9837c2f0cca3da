// Scalar reference matmul and embedding lookup.
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
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * w.cols;
    for (int64_t r = 0; r < w.rows; ++r) {
      float acc = 0.f;
      for (int64_t c = 0; c < w.cols; ++c) acc += xi[c] * load_f32(w.dtype, w.data, r * w.cols + c);
      y[i * w.rows + r] = acc + (bias ? bias[r] : 0.f);
    }
  }
}

void embedding_row(const WeightView& w, int64_t row, float* dst) {
  for (int64_t c = 0; c < w.cols; ++c) dst[c] = load_f32(w.dtype, w.data, row * w.cols + c);
}

}  // namespace longctx::kernels::reference
