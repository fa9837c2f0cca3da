// AVX2 attention tile: keys and values converted to f32 once per tile, dot-product scores,
// online-softmax update per query row.
#include <immintrin.h>

#include "kernels/cpu/isa.h"
#include "kernels/cpu/vmath_avx2.h"

namespace longctx::kernels::cpu::avx2 {
namespace {

template <DType DT>
void convert(const void* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; i += 8) store8(dst + i, load8<DT>(src, i, n - i), n - i);
}

template <DType DT>
void tile(const AttnTile& t) {
  const int hd = t.head_dim;
  const float* kf = static_cast<const float*>(t.k);
  const float* vf = static_cast<const float*>(t.v);
  if constexpr (DT != DType::kF32) {
    convert<DT>(t.k, static_cast<int64_t>(t.n_keys) * hd, t.kf);
    convert<DT>(t.v, static_cast<int64_t>(t.n_keys) * hd, t.vf);
    kf = t.kf;
    vf = t.vf;
  }
  for (int r = 0; r < t.rows; ++r) {
    const int lo = t.lo[r], hi = t.hi[r];
    if (hi <= lo) continue;
    const float* q = t.q + r * hd;
    float* s = t.s + r * kAttnTile;
    float m_tile = -__builtin_inff();
    for (int j = lo; j < hi; ++j) {
      __m256 a = _mm256_setzero_ps();
      for (int d = 0; d < hd; d += 8)
        a = _mm256_fmadd_ps(load8<DType::kF32>(q, d, hd - d),
                            load8<DType::kF32>(kf, j * hd + d, hd - d), a);
      s[j] = hsum(a);
      m_tile = s[j] > m_tile ? s[j] : m_tile;
    }
    const float m_old = t.m[r];
    const float m_new = m_old > m_tile ? m_old : m_tile;
    const __m256 vm = _mm256_set1_ps(m_new);
    float sum = 0.f;
    for (int j = lo; j < hi; j += 8) {
      const __m256 e = exp_ps(_mm256_sub_ps(load8<DType::kF32>(s, j, hi - j), vm));
      store8(s + j, e, hi - j);
    }
    for (int j = lo; j < hi; ++j) sum += s[j];
    float corr = 0.f;
    if (m_old != -__builtin_inff()) corr = _mm256_cvtss_f32(exp_ps(_mm256_set1_ps(m_old - m_new)));
    float* acc = t.acc + r * hd;
    const __m256 vc = _mm256_set1_ps(corr);
    for (int d = 0; d < hd; d += 8) {
      __m256 a = _mm256_mul_ps(load8<DType::kF32>(acc, d, hd - d), vc);
      for (int j = lo; j < hi; ++j)
        a = _mm256_fmadd_ps(_mm256_set1_ps(s[j]), load8<DType::kF32>(vf, j * hd + d, hd - d), a);
      store8(acc + d, a, hd - d);
    }
    t.l[r] = t.l[r] * corr + sum;
    t.m[r] = m_new;
  }
}

}  // namespace

void attn_tile(const AttnTile& t) {
  switch (t.dtype) {
    case DType::kF32:
      tile<DType::kF32>(t);
      break;
    case DType::kF16:
      tile<DType::kF16>(t);
      break;
    case DType::kBF16:
      tile<DType::kBF16>(t);
      break;
  }
}

}  // namespace longctx::kernels::cpu::avx2
