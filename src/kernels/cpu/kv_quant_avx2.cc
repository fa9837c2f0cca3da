// AVX2 decoders of int8/int4 KV rows (layout in kernels/kv_quant.h): 8 values per vector, one
// group scale (and minimum) broadcast per run, or (int4 keys) vectors of per-channel scales and
// minima. Shapes the vectors do not tile (small groups) use the reference.
#include <immintrin.h>

#include "kernels/cpu/kv_quant.h"

namespace longctx::kernels::cpu::avx2 {
namespace {

// dst[0..8) = lo nibbles, dst[half..half+8) = high nibbles of 8 bytes at c, as s * q + m.
inline void int4_pair(const uint8_t* c, __m256 s_lo, __m256 m_lo, __m256 s_hi, __m256 m_hi,
                      float* dst, int half) {
  const __m256i w = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(c)));
  const __m256 lo = _mm256_cvtepi32_ps(_mm256_and_si256(w, _mm256_set1_epi32(15)));
  const __m256 hi = _mm256_cvtepi32_ps(_mm256_srli_epi32(w, 4));
  _mm256_storeu_ps(dst, _mm256_fmadd_ps(lo, s_lo, m_lo));
  _mm256_storeu_ps(dst + half, _mm256_fmadd_ps(hi, s_hi, m_hi));
}

inline __m256 f16x8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

}  // namespace

void kv_decode_rows(KvType t, bool keys, const uint8_t* codes, const uint8_t* meta, int off, int n,
                    int hd, float* dst) {
  int G = 32;
  while (hd % G != 0) G /= 2;  // gcd(hd, 32)
  const int groups = hd / G;
  if (keys && t == KvType::kInt4) {  // per channel: [hd] scales, [hd] minima per token group
    if (hd % 16 != 0) {
      reference::kv_decode_rows(t, keys, codes, meta, off, n, hd, dst);
      return;
    }
    const int half = hd / 2;
    for (int r = 0; r < n; ++r, codes += half, dst += hd) {
      const auto* g = reinterpret_cast<const uint16_t*>(meta + static_cast<size_t>((off + r) / kKvChannelGroup) * hd * 4);
      for (int b = 0; b < half; b += 8)
        int4_pair(codes + b, f16x8(g + b), f16x8(g + hd + b), f16x8(g + half + b),
                  f16x8(g + hd + half + b), dst + b, half);
    }
    return;
  }
  if (G < 8 || (t == KvType::kInt4 && G < 16)) {
    reference::kv_decode_rows(t, keys, codes, meta, off, n, hd, dst);
    return;
  }
  if (t == KvType::kInt8) {
    const uint16_t* m = reinterpret_cast<const uint16_t*>(meta) + static_cast<size_t>(off) * groups;
    for (int r = 0; r < n; ++r, codes += hd, m += groups, dst += hd)
      for (int g = 0; g < groups; ++g) {
        const __m256 s = _mm256_set1_ps(_cvtsh_ss(m[g]));
        for (int i = g * G; i < (g + 1) * G; i += 8) {
          const __m128i c = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(codes + i));
          _mm256_storeu_ps(dst + i, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(c)), s));
        }
      }
    return;
  }
  // int4 values: byte i of a group holds elements i (low nibble) and i + G/2 (high nibble).
  const uint16_t* m = reinterpret_cast<const uint16_t*>(meta) + static_cast<size_t>(off) * 2 * groups;
  const int half = G / 2;
  for (int r = 0; r < n; ++r, codes += hd / 2, m += 2 * groups, dst += hd)
    for (int g = 0; g < groups; ++g) {
      const __m256 s = _mm256_set1_ps(_cvtsh_ss(m[2 * g]));
      const __m256 mn = _mm256_set1_ps(_cvtsh_ss(m[2 * g + 1]));
      for (int b = 0; b < half; b += 8) int4_pair(codes + g * half + b, s, mn, s, mn, dst + g * G + b, half);
    }
}

}  // namespace longctx::kernels::cpu::avx2
