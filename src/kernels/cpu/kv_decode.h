// Decoders of int8/int4 KV rows (layout in kernels/kv_quant.h) for both SIMD paths, written once
// over the path's vector traits VT (Vec8 in vmath_avx2.h, Vec16 in vmath_avx512.h): kW values per
// vector, one group scale (and minimum) broadcast per run, or (int4 keys) vectors of per-channel
// scales and minima. Shapes the vectors do not tile (small groups) use the reference. Include only
// from a path's translation unit; everything here has internal linkage.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "kernels/cpu/kv_quant.h"

namespace longctx::kernels::cpu {
namespace {
namespace kvq {

// dst[0..kW) = low nibbles, dst[half..half+kW) = high nibbles of kW bytes at c, as s * q + m.
template <class VT>
inline void int4_pair(const uint8_t* c, typename VT::V s_lo, typename VT::V m_lo,
                      typename VT::V s_hi, typename VT::V m_hi, float* dst, int half) {
  VT::storeu(dst, VT::fmadd(VT::low_nibbles(c), s_lo, m_lo));
  VT::storeu(dst + half, VT::fmadd(VT::high_nibbles(c), s_hi, m_hi));
}

template <class VT>
void decode_rows(KvType t, bool keys, const uint8_t* codes, const uint8_t* meta, int off, int n,
                 int hd, float* dst) {
  using V = typename VT::V;
  constexpr int W = VT::kW;
  int G = 32;
  while (hd % G != 0) G /= 2;  // gcd(hd, 32)
  const int groups = hd / G;
  if (keys && t == KvType::kInt4) {  // per channel: [hd] scales, [hd] minima per token group
    if (hd % (2 * W) != 0) {
      reference::kv_decode_rows(t, keys, codes, meta, off, n, hd, dst);
      return;
    }
    const int half = hd / 2;
    for (int r = 0; r < n; ++r, codes += half, dst += hd) {
      const auto* g = reinterpret_cast<const uint16_t*>(
          meta + static_cast<size_t>((off + r) / kKvChannelGroup) * hd * 4);
      auto f16 = [g](int i) { return VT::template load<DType::kF16>(g, i); };
      for (int b = 0; b < half; b += W)
        int4_pair<VT>(codes + b, f16(b), f16(hd + b), f16(half + b), f16(hd + half + b), dst + b,
                      half);
    }
    return;
  }
  if (G < W || (t == KvType::kInt4 && G < 2 * W)) {
    reference::kv_decode_rows(t, keys, codes, meta, off, n, hd, dst);
    return;
  }
  if (t == KvType::kInt8) {
    const uint16_t* m = reinterpret_cast<const uint16_t*>(meta) + static_cast<size_t>(off) * groups;
    for (int r = 0; r < n; ++r, codes += hd, m += groups, dst += hd)
      for (int g = 0; g < groups; ++g) {
        const V s = VT::set1(VT::f16_to_f32(m[g]));
        for (int i = g * G; i < (g + 1) * G; i += W)
          VT::storeu(dst + i, VT::mul(VT::load_i8(reinterpret_cast<const int8_t*>(codes + i)), s));
      }
    return;
  }
  // int4 values: byte i of a group holds elements i (low nibble) and i + G/2 (high nibble).
  const uint16_t* m =
      reinterpret_cast<const uint16_t*>(meta) + static_cast<size_t>(off) * 2 * groups;
  const int half = G / 2;
  for (int r = 0; r < n; ++r, codes += hd / 2, m += 2 * groups, dst += hd)
    for (int g = 0; g < groups; ++g) {
      const V s = VT::set1(VT::f16_to_f32(m[2 * g]));
      const V mn = VT::set1(VT::f16_to_f32(m[2 * g + 1]));
      for (int b = 0; b < half; b += W)
        int4_pair<VT>(codes + g * half + b, s, mn, s, mn, dst + g * G + b, half);
    }
}

}  // namespace kvq
}  // namespace
}  // namespace longctx::kernels::cpu
