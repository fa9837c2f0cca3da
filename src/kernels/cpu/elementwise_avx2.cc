// AVX2 rmsnorm, SiLU-gating and RoPE rotation.
#include <immintrin.h>

#include "kernels/cpu/isa.h"
#include "kernels/cpu/vmath_avx2.h"

namespace longctx::kernels::cpu::avx2 {

void rmsnorm_row(const float* x, const float* weight, int64_t dim, float eps, float* y) {
  __m256 ss = _mm256_setzero_ps();
  for (int64_t c = 0; c < dim; c += 8) {
    const __m256 v = load8<DType::kF32>(x, c, dim - c);
    ss = _mm256_fmadd_ps(v, v, ss);
  }
  const __m256 vinv =
      _mm256_set1_ps(1.f / __builtin_sqrtf(hsum(ss) / static_cast<float>(dim) + eps));
  for (int64_t c = 0; c < dim; c += 8) {
    const __m256 v = _mm256_mul_ps(load8<DType::kF32>(x, c, dim - c), vinv);
    store8(y + c, _mm256_mul_ps(v, load8<DType::kF32>(weight, c, dim - c)), dim - c);
  }
}

void silu_mul(const float* gate, const float* up, int64_t n, float* out) {
  const __m256 one = _mm256_set1_ps(1.f);
  for (int64_t i = 0; i < n; i += 8) {
    const __m256 g = load8<DType::kF32>(gate, i, n - i);
    const __m256 e = exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), g));
    const __m256 s = _mm256_div_ps(g, _mm256_add_ps(one, e));
    store8(out + i, _mm256_mul_ps(s, load8<DType::kF32>(up, i, n - i)), n - i);
  }
}

void rope_apply(float* x, int64_t n_vec, int head_dim, int half, const float* cs, const float* sn) {
  for (int64_t v = 0; v < n_vec; ++v) {
    float* xv = x + v * head_dim;
    for (int i = 0; i < half; i += 8) {
      const int64_t k = half - i;
      const __m256 x0 = load8<DType::kF32>(xv, i, k), x1 = load8<DType::kF32>(xv, half + i, k);
      const __m256 c = load8<DType::kF32>(cs, i, k), s = load8<DType::kF32>(sn, i, k);
      store8(xv + i, _mm256_sub_ps(_mm256_mul_ps(x0, c), _mm256_mul_ps(x1, s)), k);
      store8(xv + half + i, _mm256_add_ps(_mm256_mul_ps(x1, c), _mm256_mul_ps(x0, s)), k);
    }
  }
}

float sum(const float* x, int64_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + i));
    a1 = _mm256_add_ps(a1, _mm256_loadu_ps(x + i + 8));
    a2 = _mm256_add_ps(a2, _mm256_loadu_ps(x + i + 16));
    a3 = _mm256_add_ps(a3, _mm256_loadu_ps(x + i + 24));
  }
  for (; i < n; i += 8) a0 = _mm256_add_ps(a0, load8<DType::kF32>(x, i, n - i));
  return hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

}  // namespace longctx::kernels::cpu::avx2
