// The block-type matvec of the AVX2 path (Isa::qmatvec, and its Isa::qgemm: qprefill), written
// over an integer-dot trait QT on 256-bit vectors; include only from a path's translation unit
// (internal linkage).
//
// QT provides, on __m256i of 32 bytes w (unsigned, < 129) and x (signed, |x| <= 127):
//   dot(acc, w, x):         acc + per int32 lane the sum of its 4 products w_i x_i
//   dot_sc(acc, w, x, sc):  acc + per int32 lane the sum of its 2 pair sums (w_2k x_2k +
//                           w_2k+1 x_2k+1) times sc's int16 lanes 2k, 2k+1
// AVX2: pmaddubsw + pmaddwd (pair sums <= 2 * 128 * 127 fit int16); AVX-512: vpdpbusd / vpdpwssd
// (VNNI on 256-bit vectors: on Zen 4 a 512-bit op is two 256-bit halves, so nothing is lost).
//
// Per weight block the code products are summed exactly in int32; Q8_0 / Q4_0 / Q5_0 / Q5_1 blocks
// are scaled by d_w * d_x (one x group per block) in an f32 vector accumulator (Q5_1's minima, m *
// d_x * the x codes' sum per block, are summed apart and added to the row's result); a K-quant
// super-block (one x group) sums its sub-blocks' products times their scales in int32, subtracts
// the minima (the x code sums of bsum times each sub-block's minimum; Q6_K: 32 times its scales)
// and is scaled once.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <type_traits>

#include "kernels/cpu/isa.h"
#include "kernels/cpu/quant_scales.h"
#include "kernels/quant_blocks.h"

namespace longctx::kernels::cpu {
namespace {
namespace qdot {

using namespace quant;

inline float f16(uint16_t h) { return _cvtsh_ss(h); }
inline __m256i load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
// [a x 8 | b x 8] as int16 lanes (the scales of two 16-element halves of a 32-byte vector).
inline __m256i pair16(const int16_t* a, const int16_t* b) {
  return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16(*a)), _mm_set1_epi16(*b), 1);
}

// Signed Q8_0 / Q4_0 / Q5_0 codes w (|w| <= 128) times x: |w| unsigned, x given w's sign (|x| <=
// 127, so nothing overflows even for a stored code of -128).
template <class QT>
inline __m256i dot_signed(__m256i w, __m256i x) {
  return QT::dot(_mm256_setzero_si256(), _mm256_abs_epi8(w), _mm256_sign_epi8(x, w));
}

// The 32 codes of a Q4_0 / Q5_0 / Q5_1 block as bytes 0..31 of a vector: nibbles (element i low,
// i + 16 high), the fifth bits of Q5 on top (byte i gets bit i of qh: each byte picks its qh byte
// i / 8, then tests bit i % 8).
template <TensorType T>
inline __m256i codes_32(const uint8_t* blk) {
  constexpr int qs_at = block32_qs_at(T);
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + qs_at));
  const __m128i m = _mm_set1_epi8(0x0F);
  __m256i w = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_and_si128(q, m)),
                                      _mm_and_si128(_mm_srli_epi16(q, 4), m), 1);
  if constexpr (T != TensorType::kQ4_0) {
    const __m256i h = _mm256_shuffle_epi8(
        _mm256_set1_epi32(static_cast<int>(q5_high_bits(blk + qs_at - 4))),
        _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3,
                         3, 3, 3, 3, 3, 3, 3));
    const __m256i bit = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ull));
    const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(h, bit), bit);
    w = _mm256_or_si256(w, _mm256_and_si256(set, _mm256_set1_epi8(0x10)));
  }
  return w;
}

// One weight row times NX x rows (QuantAct rows xi..), added to acc[NX] (f32 lanes).
// Q8_0 / Q4_0 / Q5_0 / Q5_1: one x group per block (Q5_1's minima are left to q5_1_min_sum). U
// accumulators per row hide the FMA latency in decode (U = 1 elsewhere: one accumulator of 8 lanes
// per output is llama.cpp's prefill order).
template <class QT, TensorType T, int NX, int U>
inline void row_32(const uint8_t* wr, int64_t nb, const int8_t* const* xq, const float* const* xd,
                   __m256* acc) {
  constexpr int64_t bytes = block32_bytes(T);
  auto block = [&](int64_t b, int u) {
    const uint8_t* blk = wr + b * bytes;
    __m256i w;
    if constexpr (T == TensorType::kQ8_0) {
      w = load32(blk + 2);
    } else {
      w = codes_32<T>(blk);
      if constexpr (T == TensorType::kQ4_0) w = _mm256_sub_epi8(w, _mm256_set1_epi8(8));
      if constexpr (T == TensorType::kQ5_0) w = _mm256_sub_epi8(w, _mm256_set1_epi8(16));
    }
    uint16_t dh;
    __builtin_memcpy(&dh, blk, 2);
    const float dw = f16(dh);
    for (int i = 0; i < NX; ++i) {
      const __m256i x = load32(xq[i] + b * 32);
      // Q5_1's codes are unsigned (0..31): no sign transfer.
      const __m256i p = T == TensorType::kQ5_1 ? QT::dot(_mm256_setzero_si256(), w, x)
                                               : dot_signed<QT>(w, x);
      acc[i * U + u] =
          _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw * xd[i][b]), acc[i * U + u]);
    }
  };
  int64_t b = 0;
  for (; b + U <= nb; b += U)
    for (int u = 0; u < U; ++u) block(b + u, u);
  for (; b < nb; ++b) block(b, 0);
}

// Q4_K / Q5_K super-blocks: 6-bit scales and minima unpacked to int16, nibbles (+ fifth bits)
// against x, int32 sums per super-block.
template <class QT, TensorType T, int NX>
inline void row_k45(const uint8_t* wr, int64_t nb, const int8_t* const* xq, const float* const* xd,
                    const int16_t* const* xs, __m256* acc) {
  constexpr bool q5 = T == TensorType::kQ5_K;
  constexpr int64_t bytes = q5 ? 176 : 144;
  const __m256i m4 = _mm256_set1_epi8(0x0F), bit4 = _mm256_set1_epi8(0x10);
  alignas(32) int16_t sc[16];  // scales 0..7, minima 8..15
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = wr + b * bytes;
    // The 12 scale bytes -> scales (bytes 0..7) and minima (8..15) as 6-bit values.
    uint32_t u[4];
    unpack_k_scales(blk + 4, u);
    const __m128i sm = _mm_loadu_si128(reinterpret_cast<const __m128i*>(u));
    _mm256_store_si256(reinterpret_cast<__m256i*>(sc), _mm256_cvtepu8_epi16(sm));
    // Minima per 16 x elements: [m0, m0, m1, m1, ..., m7, m7].
    const __m256i mins16 = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(
        sm, _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15)));
    const uint8_t* qs = blk + (q5 ? 48 : 16);
    __m256i hb = q5 ? load32(blk + 16) : _mm256_setzero_si256();
    __m256i isum[NX][2];
    for (int i = 0; i < NX; ++i) isum[i][0] = isum[i][1] = _mm256_setzero_si256();
    for (int j = 0; j < 4; ++j) {
      const __m256i q = load32(qs + 32 * j);
      __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
      if constexpr (q5) {  // bit 2j (2j + 1) of each qh byte -> bit 4 of the code
        lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(hb, 4), bit4));
        hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(hb, 3), bit4));
        hb = _mm256_srli_epi16(hb, 2);
      }
      const __m256i s_lo = _mm256_set1_epi16(sc[2 * j]), s_hi = _mm256_set1_epi16(sc[2 * j + 1]);
      for (int i = 0; i < NX; ++i) {
        const int8_t* x = xq[i] + b * 256 + 64 * j;
        isum[i][0] = QT::dot_sc(isum[i][0], lo, load32(x), s_lo);
        isum[i][1] = QT::dot_sc(isum[i][1], hi, load32(x + 32), s_hi);
      }
    }
    uint16_t dd[2];
    __builtin_memcpy(dd, blk, 4);
    const float d = f16(dd[0]), dmin = f16(dd[1]);
    for (int i = 0; i < NX; ++i) {
      const __m256i mins = _mm256_madd_epi16(load32(xs[i] + b * 16), mins16);
      const __m256i s = _mm256_add_epi32(isum[i][0], isum[i][1]);
      acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(d * xd[i][b]), acc[i]);
      acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mins), _mm256_set1_ps(-dmin * xd[i][b]), acc[i]);
    }
  }
}

// Q6_K super-blocks: 6-bit codes from ql nibbles and qh bit pairs, int8 scales per 16 elements.
template <class QT, int NX>
inline void row_q6k(const uint8_t* wr, int64_t nb, const int8_t* const* xq, const float* const* xd,
                    const int16_t* const* xs, __m256* acc) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
  alignas(32) int16_t sc[16];
  for (int64_t b = 0; b < nb; ++b) {
    const BlockQ6_K* blk = reinterpret_cast<const BlockQ6_K*>(wr + b * 210);
    const __m256i sc16 =
        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk->scales)));
    _mm256_store_si256(reinterpret_cast<__m256i*>(sc), sc16);
    __m256i isum[NX][2];
    for (int i = 0; i < NX; ++i) isum[i][0] = isum[i][1] = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i l0 = load32(blk->ql + 64 * h), l1 = load32(blk->ql + 64 * h + 32);
      const __m256i qh = load32(blk->qh + 32 * h);
      // Elements 32k + l of this half: low nibble of l0 / l1 (k = 0, 1), high (k = 2, 3); qh bits
      // 2k, 2k + 1 on top.
      __m256i w[4];
      w[0] = _mm256_or_si256(_mm256_and_si256(l0, m4),
                             _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
      w[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                             _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
      w[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                             _mm256_and_si256(qh, m30));
      w[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                             _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
      for (int k = 0; k < 4; ++k) {
        const int g = 8 * h + 2 * k;  // scale index of the first 16 elements
        const __m256i s = pair16(sc + g, sc + g + 1);
        for (int i = 0; i < NX; ++i)
          isum[i][k & 1] =
              QT::dot_sc(isum[i][k & 1], w[k], load32(xq[i] + b * 256 + 128 * h + 32 * k), s);
      }
    }
    const float d = f16(blk->d);
    for (int i = 0; i < NX; ++i) {
      // The codes are stored + 32: subtract 32 * sum_j scale_j * (x code sum of group j).
      const __m256i off = _mm256_madd_epi16(load32(xs[i] + b * 16), sc16);
      const __m256i s =
          _mm256_sub_epi32(_mm256_add_epi32(isum[i][0], isum[i][1]), _mm256_slli_epi32(off, 5));
      acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(d * xd[i][b]), acc[i]);
    }
  }
}

// Rows [r0, r1) of y for x rows [i0, i0 + NX): each weight row read once for the NX rows.
// Decode: the call's only x row (Q8_0 / Q4_0 then take two accumulators).
template <class QT, TensorType T, int NX, bool Decode = false>
void rows(const QuantAct& x, int64_t i0, const WeightView& w, const float* bias, float* y,
          int64_t r0, int64_t r1) {
  constexpr bool b32 = T == TensorType::kQ8_0 || T == TensorType::kQ4_0 ||
                       T == TensorType::kQ5_0 || T == TensorType::kQ5_1;
  constexpr int U = Decode && b32 ? 2 : 1;
  const int64_t ng = x.cols / x.group, nb16 = x.cols / 16;
  const int8_t* xq[NX];
  const float* xd[NX];
  const int16_t* xs[NX];
  for (int i = 0; i < NX; ++i) {
    xq[i] = x.q + (i0 + i) * x.cols;
    xd[i] = x.d + (i0 + i) * ng;
    xs[i] = x.bsum + (i0 + i) * nb16;
  }
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* wr = static_cast<const uint8_t*>(w.data) + r * w.row_bytes;
    __m256 acc[NX * U];
    for (int i = 0; i < NX * U; ++i) acc[i] = _mm256_setzero_ps();
    if constexpr (b32)
      row_32<QT, T, NX, U>(wr, ng, xq, xd, acc);
    else if constexpr (T == TensorType::kQ6_K)
      row_q6k<QT, NX>(wr, ng, xq, xd, xs, acc);
    else
      row_k45<QT, T, NX>(wr, ng, xq, xd, xs, acc);
    for (int i = 0; i < NX; ++i) {
      __m256 a = acc[i * U];
      for (int u = 1; u < U; ++u) a = _mm256_add_ps(a, acc[i * U + u]);
      float v = hsum(a);
      if constexpr (T == TensorType::kQ5_1) v += q5_1_min_sum(wr, ng, xd[i], xs[i], f16);
      y[(i0 + i) * w.rows + r] = v + (bias ? bias[r] : 0.f);
    }
  }
}

// Prefill order (the x rows 4 at a time, one accumulator per output: llama.cpp's order), the
// AVX2 path's Isa::qgemm.
template <class QT, TensorType T>
void prefill_t(const QuantAct& x, int64_t n, const WeightView& w, const float* bias, float* y,
               int64_t r0, int64_t r1) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) rows<QT, T, 4>(x, i, w, bias, y, r0, r1);
  switch (n - i) {
    case 3:
      rows<QT, T, 3>(x, i, w, bias, y, r0, r1);
      break;
    case 2:
      rows<QT, T, 2>(x, i, w, bias, y, r0, r1);
      break;
    case 1:
      rows<QT, T, 1>(x, i, w, bias, y, r0, r1);
      break;
    default:
      break;
  }
}

// Decode order (Isa::qmatvec): every x row summed as the one-row decode sums it, so a row's result
// does not depend on the other rows (batch invariance); 16 weight rows at a time against all x
// rows, so those rows come from L1 after the first.
template <class QT, TensorType T>
void decode_t(const QuantAct& x, int64_t n, const WeightView& w, const float* bias, float* y,
              int64_t r0, int64_t r1) {
  for (int64_t b = r0; b < r1; b += 16) {
    const int64_t e = r1 - b < 16 ? r1 : b + 16;
    for (int64_t i = 0; i < n; ++i) rows<QT, T, 1, true>(x, i, w, bias, y, b, e);
  }
}

template <class QT, bool Prefill>
void by_type(const QuantAct& x, int64_t n, const WeightView& w, const float* bias, float* y,
             int64_t r0, int64_t r1) {
  auto go = [&](auto t) {
    constexpr TensorType T = decltype(t)::value;
    if constexpr (Prefill)
      prefill_t<QT, T>(x, n, w, bias, y, r0, r1);
    else
      decode_t<QT, T>(x, n, w, bias, y, r0, r1);
  };
  switch (w.type) {
    case TensorType::kQ8_0:
      return go(std::integral_constant<TensorType, TensorType::kQ8_0>{});
    case TensorType::kQ4_0:
      return go(std::integral_constant<TensorType, TensorType::kQ4_0>{});
    case TensorType::kQ4_K:
      return go(std::integral_constant<TensorType, TensorType::kQ4_K>{});
    case TensorType::kQ5_K:
      return go(std::integral_constant<TensorType, TensorType::kQ5_K>{});
    case TensorType::kQ6_K:
      return go(std::integral_constant<TensorType, TensorType::kQ6_K>{});
    case TensorType::kQ5_0:
      return go(std::integral_constant<TensorType, TensorType::kQ5_0>{});
    case TensorType::kQ5_1:
      return go(std::integral_constant<TensorType, TensorType::kQ5_1>{});
    default:
      return;
  }
}

template <class QT>
void qmatvec(const QuantAct& x, int64_t n, const WeightView& w, const float* bias, float* y,
             int64_t r0, int64_t r1) {
  by_type<QT, false>(x, n, w, bias, y, r0, r1);
}

template <class QT>
void qprefill(const QuantAct& x, int64_t n, const WeightView& w, const float* bias, float* y,
              int64_t r0, int64_t r1) {
  by_type<QT, true>(x, n, w, bias, y, r0, r1);
}

}  // namespace qdot
}  // namespace
}  // namespace longctx::kernels::cpu
