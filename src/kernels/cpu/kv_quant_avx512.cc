// AVX-512 decoders of int8/int4 KV rows (layout in kernels/kv_quant.h): 16 values per vector, one
// group scale (and minimum) broadcast per run, or (int4 keys) vectors of per-channel scales and
// minima. Shapes the vectors do not tile (small groups) use the reference.
#include <immintrin.h>

#include "kernels/cpu/kv_quant.h"

namespace longctx::kernels::cpu::avx512 {
namespace {

// dst[0..16) = low nibbles, dst[half..half+16) = high nibbles of 16 bytes at c, as s * q + m.
inline void int4_pair(const uint8_t* c, __m512 s_lo, __m512 m_lo, __m512 s_hi, __m512 m_hi,
                      float* dst, int half) {
  const __m512i w = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c)));
  const __m512 lo = _mm512_cvtepi32_ps(_mm512_and_si512(w, _mm512_set1_epi32(15)));
  const __m512 hi = _mm512_cvtepi32_ps(_mm512_srli_epi32(w, 4));
  _mm512_storeu_ps(dst, _mm512_fmadd_ps(lo, s_lo, m_lo));
  _mm512_storeu_ps(dst + half, _mm512_fmadd_ps(hi, s_hi, m_hi));
}

inline __m512 f16x16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

}  // namespace

void kv_decode_rows(KvType t, bool keys, const uint8_t* codes, const uint8_t* meta, int off, int n,
                    int hd, float* dst) {
  int G = 32;
  while (hd % G != 0) G /= 2;  // gcd(hd, 32)
  const int groups = hd / G;
  if (keys && t == KvType::kInt4) {  // per channel: [hd] scales, [hd] minima per token group
    if (hd % 32 != 0) {
      reference::kv_decode_rows(t, keys, codes, meta, off, n, hd, dst);
      return;
    }
    const int half = hd / 2;
    for (int r = 0; r < n; ++r, codes += half, dst += hd) {
      const auto* g = reinterpret_cast<const uint16_t*>(meta + static_cast<size_t>((off + r) / kKvChannelGroup) * hd * 4);
      for (int b = 0; b < half; b += 16)
        int4_pair(codes + b, f16x16(g + b), f16x16(g + hd + b), f16x16(g + half + b),
                  f16x16(g + hd + half + b), dst + b, half);
    }
    return;
  }
  if (G < 16 || (t == KvType::kInt4 && G < 32)) {
    reference::kv_decode_rows(t, keys, codes, meta, off, n, hd, dst);
    return;
  }
  if (t == KvType::kInt8) {
    const uint16_t* m = reinterpret_cast<const uint16_t*>(meta) + static_cast<size_t>(off) * groups;
    for (int r = 0; r < n; ++r, codes += hd, m += groups, dst += hd)
      for (int g = 0; g < groups; ++g) {
        const __m512 s = _mm512_set1_ps(_cvtsh_ss(m[g]));
        for (int i = g * G; i < (g + 1) * G; i += 16) {
          const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + i));
          _mm512_storeu_ps(dst + i, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(c)), s));
        }
      }
    return;
  }
  // int4 values, G = 32: the group's 16 bytes give elements 0..15 (low nibbles) and 16..31 (high).
  const uint16_t* m = reinterpret_cast<const uint16_t*>(meta) + static_cast<size_t>(off) * 2 * groups;
  for (int r = 0; r < n; ++r, codes += hd / 2, m += 2 * groups, dst += hd)
    for (int g = 0; g < groups; ++g) {
      const __m512 s = _mm512_set1_ps(_cvtsh_ss(m[2 * g]));
      const __m512 mn = _mm512_set1_ps(_cvtsh_ss(m[2 * g + 1]));
      int4_pair(codes + g * 16, s, mn, s, mn, dst + g * 32, 16);
    }
}

}  // namespace longctx::kernels::cpu::avx512
