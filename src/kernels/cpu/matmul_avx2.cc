// AVX2 + FMA (+F16C) matmul: the matvec of cpu/matvec.h for decode and the packed GEMM of
// cpu/gemm_f32.h for prefill, both over Vec8 (vmath_avx2.h); f32 math for every weight dtype.
#include <immintrin.h>

#include "kernels/cpu/gemm_f32.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/matvec.h"
#include "kernels/cpu/vmath_avx2.h"

namespace longctx::kernels::cpu::avx2 {

static_assert(gemm::pack_bytes<Vec8>() == kAvx2GemmPackBytes);

// xb: unused, this path has no bf16 dot products.
void matvec(const float* x, const uint16_t* /*xb*/, int64_t n, const WeightView& w,
            const float* bias, float* y, int64_t r0, int64_t r1) {
  mv::matvec<Vec8>(x, n, w, bias, y, r0, r1);
}

// xb: unused (bf16 weights are converted to f32 as they are packed).
void gemm(const float* x, const uint16_t* /*xb*/, int64_t n, const WeightView& w, const float* bias,
          float* y, int64_t r0, int64_t r1, void* pack) {
  float* panel = static_cast<float*>(pack);
  switch (w.type) {
    case TensorType::kF32:
      gemm::gemm_f32<Vec8, DType::kF32>(x, n, w, bias, y, r0, r1, panel);
      break;
    case TensorType::kF16:
      gemm::gemm_f32<Vec8, DType::kF16>(x, n, w, bias, y, r0, r1, panel);
      break;
    case TensorType::kBF16:
      gemm::gemm_f32<Vec8, DType::kBF16>(x, n, w, bias, y, r0, r1, panel);
      break;
    default:  // block types: qgemm
      break;
  }
}

void to_bf16_rows(const float* src, int64_t n, int64_t cols, uint16_t* dst, int64_t ld) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < ld; ++c)
      dst[i * ld + c] = c < cols ? f32_to_bf16(src[i * cols + c]) : 0;
}

void to_f32(DType t, const void* src, float* dst, int64_t n) {
  for (int64_t c = 0; c < n; c += 8) {
    __m256 v;
    switch (t) {
      case DType::kF32:
        v = load8<DType::kF32>(src, c, n - c);
        break;
      case DType::kF16:
        v = load8<DType::kF16>(src, c, n - c);
        break;
      default:
        v = load8<DType::kBF16>(src, c, n - c);
        break;
    }
    store8(dst + c, v, n - c);
  }
}

}  // namespace longctx::kernels::cpu::avx2
