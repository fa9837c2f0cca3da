// AVX-512 decode (one x row) over block-type weights: each weight row is read front to back on
// 512-bit vectors, 64 weight codes per integer dot product (two Q8_0 / Q4_0 / Q5_0 / Q5_1 blocks,
// or two 32-wide sub-blocks of a K-quant super-block), and the f32 accumulators stay vectors until
// the row ends (no horizontal sum per block). Include only from quant_avx512.cc (VNNI flags;
// internal linkage).
//
// The arithmetic is cpu/quant_dot.h's: per block the code products sum exactly in int32 (K-quants:
// times their sub-block scales in int32, minus the minima / Q6_K's offset of 32 through the x
// code sums), then one f32 multiply by weight scale x activation scale per block; only the order
// of the f32 additions differs (per-lane partial sums).
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/isa.h"
#include "kernels/cpu/quant_scales.h"
#include "kernels/quant_blocks.h"

namespace longctx::kernels::cpu {
namespace {
namespace row512 {

inline __m256i load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline __m128i load16(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
inline __m512i load64(const void* p) { return _mm512_loadu_si512(p); }
// The same 32 bytes in both halves.
inline __m512i bcast32(const void* p) { return _mm512_broadcast_i64x4(load32(p)); }
inline float f16(uint16_t h) { return _cvtsh_ss(h); }
inline uint16_t u16(const uint8_t* p) {
  uint16_t v;
  __builtin_memcpy(&v, p, 2);
  return v;
}
// int16 lanes: a in the lower 256 bits, b in the upper (per-word shift counts).
inline __m512i halves16(short a, short b) {
  return _mm512_inserti64x4(_mm512_set1_epi16(a), _mm256_set1_epi16(b), 1);
}
// Signed codes w (|w| <= 128) times x (|x| <= 127): |w| unsigned, x given w's sign (AVX-512 has
// no 512-bit vpsignb: negate x under w's sign mask).
inline __m512i dot_signed(__m512i w, __m512i x) {
  const __m512i xs = _mm512_mask_sub_epi8(x, _mm512_movepi8_mask(w), _mm512_setzero_si512(), x);
  return _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(w), xs);
}

// Q8_0 / Q4_0 / Q5_0 / Q5_1: two blocks per vector, lanes 0-7 of the int32 sums are block b's,
// 8-15 block b + 1's; their scales d_w d_x spread the same way. A last odd block fills the lower
// half only. Q5_1's minima are summed apart (q5_1_min_sum) by the caller.
template <TensorType T>
float row_32(const uint8_t* wr, int64_t nb, const int8_t* xq, const float* xd) {
  constexpr int64_t bytes = quant::block32_bytes(T);
  constexpr int qs_at = quant::block32_qs_at(T);
  const __m512i lane_of_block = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
  auto step = [&](int64_t b, bool two, int u) {
    const uint8_t* p = wr + b * bytes;
    __m512i w, x;
    if constexpr (T == TensorType::kQ8_0) {
      w = _mm512_castsi256_si512(load32(p + 2));
      if (two) w = _mm512_inserti64x4(w, load32(p + 36), 1);
    } else {
      // [q0 | q0 >> 4 | q1 | q1 >> 4] by 128-bit lanes: block b's elements 0-15, 16-31, then b+1's.
      __m256i q = _mm256_castsi128_si256(load16(p + qs_at));
      if (two) q = _mm256_inserti128_si256(q, load16(p + bytes + qs_at), 1);
      const __m512i z = _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 1, 0, 1, 2, 3, 2, 3),
                                                 _mm512_castsi256_si512(q));
      const __m512i sh = _mm512_setr_epi64(0, 0, 0x0004000400040004, 0x0004000400040004, 0, 0,
                                           0x0004000400040004, 0x0004000400040004);
      w = _mm512_and_si512(_mm512_srlv_epi16(z, sh), _mm512_set1_epi8(0x0F));
      if constexpr (T != TensorType::kQ4_0) {  // bit i of qh (of block b, then b + 1) -> + 16
        uint64_t hb = q5_high_bits(p + qs_at - 4);
        if (two) hb |= uint64_t{q5_high_bits(p + bytes + qs_at - 4)} << 32;
        w = _mm512_mask_add_epi8(w, hb, w, _mm512_set1_epi8(0x10));
      }
      if constexpr (T == TensorType::kQ4_0) w = _mm512_sub_epi8(w, _mm512_set1_epi8(8));
      if constexpr (T == TensorType::kQ5_0) w = _mm512_sub_epi8(w, _mm512_set1_epi8(16));
    }
    if (two) {
      x = load64(xq + b * 32);
    } else {
      x = _mm512_castsi256_si512(load32(xq + b * 32));
      x = _mm512_inserti64x4(x, _mm256_setzero_si256(), 1);
      w = _mm512_inserti64x4(w, _mm256_setzero_si256(), 1);
    }
    const uint32_t dd = u16(p) | (two ? uint32_t{u16(p + bytes)} << 16 : 0u);
    const __m128 dw = _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(dd)));
    // _mm_loadl_epi64 is an unaligned 8-byte load (xd + b is only 4-byte aligned).
    const __m128 dx =
        two ? _mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(xd + b)))
            : _mm_set_ss(xd[b]);
    const __m512 s =
        _mm512_permutexvar_ps(lane_of_block, _mm512_castps128_ps512(_mm_mul_ps(dw, dx)));
    // Q5_1's codes are unsigned (0..31): no sign transfer.
    const __m512i prod = T == TensorType::kQ5_1
                             ? _mm512_dpbusd_epi32(_mm512_setzero_si512(), w, x)
                             : dot_signed(w, x);
    acc[u] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(prod), s, acc[u]);
  };
  int64_t b = 0;
  for (; b + 4 <= nb; b += 4) step(b, true, 0), step(b + 2, true, 1);
  for (; b + 2 <= nb; b += 2) step(b, true, 0);
  if (b < nb) step(b, false, 1);
  return _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]));
}

// Q4_K / Q5_K: per super-block four vectors of 64 codes (sub-blocks 2j and 2j + 1: the low and
// high nibbles of qs[32j..32j+32), shifted per 256-bit half), pair sums times the sub-block
// scales (int16, placed by a word permute) into one int32 vector; the minima through the x code
// sums in a 256-bit side accumulator.
template <bool Q5>
float row_k45(const uint8_t* wr, int64_t nb, const int8_t* xq, const float* xd, const int16_t* xs) {
  constexpr int64_t bytes = Q5 ? 176 : 144;
  const __m512i m4 = _mm512_set1_epi8(0x0F), sh = halves16(0, 4);
  __m512 acc = _mm512_setzero_ps();
  __m256 accm = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = wr + b * bytes;
    uint32_t u[4];
    unpack_k_scales(blk + 4, u);
    const __m128i sm = load16(u);  // scales 0..7, minima 8..15
    const __m512i s16 = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(sm));
    const __m256i mins16 = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(
        sm, _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15)));
    const uint8_t* qs = blk + (Q5 ? 48 : 16);
    const __m512i hb = Q5 ? bcast32(blk + 16) : _mm512_setzero_si512();
    const int8_t* x = xq + b * 256;
    __m512i isum = _mm512_setzero_si512();
    for (int j = 0; j < 4; ++j) {
      __m512i w = _mm512_and_si512(_mm512_srlv_epi16(bcast32(qs + 32 * j), sh), m4);
      if constexpr (Q5) {  // bit 2j (lower half) / 2j + 1 (upper) of each qh byte -> + 16
        const __m512i bit =
            _mm512_inserti64x4(_mm512_set1_epi8(static_cast<char>(1 << (2 * j))),
                               _mm256_set1_epi8(static_cast<char>(2 << (2 * j))), 1);
        w = _mm512_mask_add_epi8(w, _mm512_test_epi8_mask(hb, bit), w, _mm512_set1_epi8(16));
      }
      const __m512i sc = _mm512_permutexvar_epi16(halves16(2 * j, 2 * j + 1), s16);
      isum = _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(w, load64(x + 64 * j)), sc);
    }
    const __m256i mins = _mm256_madd_epi16(load32(xs + b * 16), mins16);
    const float d = f16(u16(blk)), dmin = f16(u16(blk + 2));
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d * xd[b]), acc);
    accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mins), _mm256_set1_ps(-dmin * xd[b]), accm);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(acc, _mm512_zextps256_ps512(accm)));
}

// Q6_K: per half h the 64 bytes ql[64h..) are the low nibbles of elements 0-63 of the half (and
// the high nibbles of 64-127); qh[32h..) broadcast to both 256-bit halves supplies bits 4-5,
// shifted per half. Scales per 16 elements (8 pair-sum lanes each) placed by a word permute.
inline float row_q6k(const uint8_t* wr, int64_t nb, const int8_t* xq, const float* xd,
                     const int16_t* xs) {
  const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
  const __m512i sh_a = halves16(4, 2), sh_b = halves16(0, 2);
  // Scale index of each pair-sum lane of vector v (elements 64v..64v+63 of the super-block).
  __m512i idx[4];
  for (int v = 0; v < 4; ++v) {
    alignas(64) int16_t t[32];
    for (int l = 0; l < 32; ++l) t[l] = static_cast<int16_t>(4 * v + l / 8);
    idx[v] = _mm512_load_si512(t);
  }
  __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
  for (int64_t b = 0; b < nb; ++b) {
    const auto* blk = reinterpret_cast<const quant::BlockQ6_K*>(wr + b * 210);
    const __m256i sc16 = _mm256_cvtepi8_epi16(load16(blk->scales));
    const __m512i s16 = _mm512_castsi256_si512(sc16);
    const int8_t* x = xq + b * 256;
    __m512i isum = _mm512_setzero_si512();
    for (int h = 0; h < 2; ++h) {
      const __m512i l = load64(blk->ql + 64 * h), qh = bcast32(blk->qh + 32 * h);
      const __m512i wa = _mm512_or_si512(_mm512_and_si512(l, m4),
                                         _mm512_and_si512(_mm512_sllv_epi16(qh, sh_a), m30));
      const __m512i wb = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4),
                                         _mm512_and_si512(_mm512_srlv_epi16(qh, sh_b), m30));
      isum = _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(wa, load64(x + 128 * h)),
                                 _mm512_permutexvar_epi16(idx[2 * h], s16));
      isum = _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(wb, load64(x + 128 * h + 64)),
                                 _mm512_permutexvar_epi16(idx[2 * h + 1], s16));
    }
    // The codes are stored + 32: subtract 32 * sum_j scale_j * (x code sum of group j).
    const __m256i off = _mm256_madd_epi16(load32(xs + b * 16), sc16);
    const __m512i s = _mm512_sub_epi32(isum, _mm512_zextsi256_si512(_mm256_slli_epi32(off, 5)));
    acc[b & 1] =
        _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(f16(blk->d) * xd[b]), acc[b & 1]);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]));
}

// Rows [r0, r1) of y for one x row, read front to back as one stream.
inline void rows1(const QuantAct& x, const WeightView& w, const float* bias, float* y, int64_t r0,
                  int64_t r1) {
  const int64_t ng = x.cols / x.group;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* wr = static_cast<const uint8_t*>(w.data) + r * w.row_bytes;
    float v = 0.f;
    switch (w.type) {
      case TensorType::kQ8_0:
        v = row_32<TensorType::kQ8_0>(wr, ng, x.q, x.d);
        break;
      case TensorType::kQ4_0:
        v = row_32<TensorType::kQ4_0>(wr, ng, x.q, x.d);
        break;
      case TensorType::kQ4_K:
        v = row_k45<false>(wr, ng, x.q, x.d, x.bsum);
        break;
      case TensorType::kQ5_K:
        v = row_k45<true>(wr, ng, x.q, x.d, x.bsum);
        break;
      case TensorType::kQ6_K:
        v = row_q6k(wr, ng, x.q, x.d, x.bsum);
        break;
      case TensorType::kQ5_0:
        v = row_32<TensorType::kQ5_0>(wr, ng, x.q, x.d);
        break;
      case TensorType::kQ5_1:
        v = row_32<TensorType::kQ5_1>(wr, ng, x.q, x.d) + q5_1_min_sum(wr, ng, x.d, x.bsum, f16);
        break;
      default:
        break;
    }
    y[r] = v + (bias ? bias[r] : 0.f);
  }
}

}  // namespace row512
}  // namespace
}  // namespace longctx::kernels::cpu
