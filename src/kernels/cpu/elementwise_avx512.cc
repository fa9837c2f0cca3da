// AVX-512 rmsnorm, SiLU-gating and RoPE rotation.
#include <immintrin.h>

#include "kernels/cpu/isa.h"
#include "kernels/cpu/vmath_avx512.h"

namespace longctx::kernels::cpu::avx512 {

void rmsnorm_row(const float* x, const float* weight, int64_t dim, float eps, float* y) {
  __m512 ss = _mm512_setzero_ps();
  for (int64_t c = 0; c < dim; c += 16) {
    const __m512 v = _mm512_maskz_loadu_ps(mask16(dim - c), x + c);
    ss = _mm512_fmadd_ps(v, v, ss);
  }
  const float inv = 1.f / __builtin_sqrtf(_mm512_reduce_add_ps(ss) / static_cast<float>(dim) + eps);
  const __m512 vinv = _mm512_set1_ps(inv);
  for (int64_t c = 0; c < dim; c += 16) {
    const __mmask16 m = mask16(dim - c);
    const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + c), vinv);
    _mm512_mask_storeu_ps(y + c, m, _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, weight + c)));
  }
}

void silu_mul(const float* gate, const float* up, int64_t n, float* out) {
  const __m512 one = _mm512_set1_ps(1.f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = mask16(n - i);
    const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
    const __m512 e = exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), g));
    const __m512 s = _mm512_div_ps(g, _mm512_add_ps(one, e));
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, up + i)));
  }
}

void rope_apply(float* x, int64_t n_vec, int head_dim, int half, const float* cs, const float* sn) {
  for (int64_t v = 0; v < n_vec; ++v) {
    float* xv = x + v * head_dim;
    for (int i = 0; i < half; i += 16) {
      const __mmask16 m = mask16(half - i);
      const __m512 x0 = _mm512_maskz_loadu_ps(m, xv + i),
                   x1 = _mm512_maskz_loadu_ps(m, xv + half + i);
      const __m512 c = _mm512_maskz_loadu_ps(m, cs + i), s = _mm512_maskz_loadu_ps(m, sn + i);
      _mm512_mask_storeu_ps(xv + i, m, _mm512_sub_ps(_mm512_mul_ps(x0, c), _mm512_mul_ps(x1, s)));
      _mm512_mask_storeu_ps(xv + half + i, m,
                            _mm512_add_ps(_mm512_mul_ps(x1, c), _mm512_mul_ps(x0, s)));
    }
  }
}

float sum(const float* x, int64_t n) {
  // Four cache lines per iteration, four accumulators: enough loads in flight to saturate DRAM.
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    a0 = _mm512_add_ps(a0, _mm512_loadu_ps(x + i));
    a1 = _mm512_add_ps(a1, _mm512_loadu_ps(x + i + 16));
    a2 = _mm512_add_ps(a2, _mm512_loadu_ps(x + i + 32));
    a3 = _mm512_add_ps(a3, _mm512_loadu_ps(x + i + 48));
  }
  for (; i < n; i += 16) a0 = _mm512_add_ps(a0, _mm512_maskz_loadu_ps(mask16(n - i), x + i));
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

}  // namespace longctx::kernels::cpu::avx512
