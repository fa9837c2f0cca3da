// AVX-512 matmul: the f32-FMA matvec (cpu/matvec.h) and packed GEMM (cpu/gemm_f32.h) over Vec16,
// and this path's own bf16 kernels: vdpbf16ps on bf16-rounded activations (see docs/kernels.md)
// for BF16 weights in the decode matvec and the GEMM.
#include <immintrin.h>

#include "kernels/cpu/gemm_f32.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/matvec.h"
#include "kernels/cpu/vmath_avx512.h"

namespace longctx::kernels::cpu::avx512 {

void to_bf16_rows(const float* src, int64_t n, int64_t cols, uint16_t* dst, int64_t ld);

namespace {

constexpr int kNR = gemm::nr<Vec16>();  // weight rows per packed panel (4 zmm): 64
constexpr int kKCB = 512;  // input features per packed bf16-pair block (64 KiB panel, as f32's)
static_assert(gemm::pack_bytes<Vec16>() == kAvx512GemmPackBytes &&
              static_cast<size_t>(kNR) * (kKCB / 2) * 4 == kAvx512GemmPackBytes);

inline __mmask16 tail_mask(int64_t n) { return mask16(n); }

// ---- decode (f32 FMA: cpu/matvec.h; bf16 dot products below) ----

// BF16 weights with bf16-rounded x: vdpbf16ps does 32 products per instruction straight from the
// stored weights (no conversion): half the instructions of the shift + f32 FMA path. x rows have
// stride ldx (cols rounded up to even).
//
// The decode order of these kernels: the 32-element chunks j of a row go to accumulator j % 2 (the
// last one masked, zero-filled), and the result is reduce(a0 + a1). Every tile below sums each
// output in exactly this order, whatever its shape, so a row's result does not depend on the other
// rows of the call (batch invariance). Two accumulators, not four: one x row streams W from memory
// (about one vdpbf16ps per 8 cycles at this machine's bandwidth), far from the dependency chain's
// latency, and with two the batched tiles can hold 3 weight rows x 4 x rows (24 accumulators)
// without spilling: 7 loads per 12 vdpbf16ps instead of 5 per 4. (Measured, kernels_bench
// MatvecRows, 8 x rows: 1.5-1.9x faster on 2048-column rows, no gain on 576-column rows, where
// the 1-row tiles stay.)
inline __mmask32 mask32(int64_t e) { return e >= 32 ? ~__mmask32{0} : ((__mmask32{1} << e) - 1); }

// y[i][r..r+NW) for NX x rows and NW weight rows, each output in the decode order above
// (accumulators indexed by constants only: indexed at run time, GCC keeps them on the stack).
template <int NX, int NW>
inline void tile_bf16(const uint16_t* xb, int64_t ldx, int64_t cols, const uint16_t* w, int64_t r,
                      const float* bias, float* y, int64_t ldy) {
  __m512 acc[2][NX][NW];
#pragma GCC unroll 2
  for (int u = 0; u < 2; ++u)
#pragma GCC unroll 16
    for (int i = 0; i < NX; ++i)
#pragma GCC unroll 16
      for (int k = 0; k < NW; ++k) acc[u][i][k] = _mm512_setzero_ps();
  auto chunk = [&]<int U>(int64_t c, __mmask32 m) __attribute__((always_inline)) {
    __m512bh wv[NW];
#pragma GCC unroll 16
    for (int k = 0; k < NW; ++k) {
      wv[k] = (__m512bh)_mm512_maskz_loadu_epi16(m, w + (r + k) * cols + c);
      // The next tile's rows: NW rows read side by side are NW short streams, which the hardware
      // prefetcher does not follow (without this the 3-row tiles took twice as long).
      if constexpr (NW > 1)
        _mm_prefetch(reinterpret_cast<const char*>(w + (r + NW + k) * cols + c), _MM_HINT_T0);
    }
#pragma GCC unroll 16
    for (int i = 0; i < NX; ++i) {
      const __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi16(m, xb + i * ldx + c);
#pragma GCC unroll 16
      for (int k = 0; k < NW; ++k) acc[U][i][k] = _mm512_dpbf16_ps(acc[U][i][k], xv, wv[k]);
    }
  };
  constexpr __mmask32 all = ~__mmask32{0};
  int64_t c = 0;
  for (; c + 64 <= cols; c += 64) {
    chunk.template operator()<0>(c, all);
    chunk.template operator()<1>(c + 32, all);
  }
  if (c < cols) chunk.template operator()<0>(c, mask32(cols - c));
  if (c + 32 < cols) chunk.template operator()<1>(c + 32, mask32(cols - c - 32));
#pragma GCC unroll 16
  for (int i = 0; i < NX; ++i)
#pragma GCC unroll 16
    for (int k = 0; k < NW; ++k)
      y[i * ldy + r + k] = _mm512_reduce_add_ps(_mm512_add_ps(acc[0][i][k], acc[1][i][k])) +
                           (bias ? bias[r + k] : 0.f);
}

// Weight rows [r, r + NW) against all n x rows, Vec16::kMatvecX at a time: the weight rows stay
// in L1 while the x rows pass over them.
template <int NW>
inline void tiles_bf16_at(const uint16_t* xb, int64_t ldx, int64_t n, const WeightView& w,
                          int64_t r, const float* bias, float* y) {
  constexpr int NX = Vec16::kMatvecX;
  const auto* wp = static_cast<const uint16_t*>(w.data);
  int64_t i = 0;
  for (; i + NX <= n; i += NX)
    tile_bf16<NX, NW>(xb + i * ldx, ldx, w.cols, wp, r, bias, y + i * w.rows, w.rows);
  vec::with_const<NX - 1>(static_cast<int>(n - i), [&](auto m) {
    tile_bf16<decltype(m)::value, NW>(xb + i * ldx, ldx, w.cols, wp, r, bias, y + i * w.rows,
                                      w.rows);
  });
}

// One x row: each weight row in turn, one stream. From 4 x rows on, where the products and not
// the memory set the pace, 3 weight rows per tile on rows of 1024 columns or more (the last rows
// of the range one at a time).
void matvec_bf16_dot(const uint16_t* xb, int64_t n, const WeightView& w, const float* bias,
                     float* y, int64_t r0, int64_t r1) {
  const int64_t ldx = (w.cols + 1) & ~int64_t{1};
  int64_t r = r0;
  if (n >= Vec16::kMatvecX && w.cols >= 1024)
    for (; r + 3 <= r1; r += 3) tiles_bf16_at<3>(xb, ldx, n, w, r, bias, y);
  for (; r < r1; ++r) tiles_bf16_at<1>(xb, ldx, n, w, r, bias, y);
}

// ---- prefill: packed panels + MR x NR micro-kernel ----

// bf16-pair panel: dst[p][kNR] of 32-bit (two bf16: columns k0+2p, k0+2p+1), zero padded.
void pack_bf16(const WeightView& w, int64_t r, int nr, int64_t k0, int kc, uint32_t* dst) {
  const uint16_t* wp = static_cast<const uint16_t*>(w.data);
  const int np = (kc + 1) / 2;
  for (int rb = 0; rb < kNR; rb += 16) {
    for (int pb = 0; pb < np; pb += 16) {
      const int64_t e = kc - 2 * pb;  // bf16 elements left in this row segment
      const __mmask32 m =
          e >= 32 ? ~static_cast<__mmask32>(0) : ((static_cast<__mmask32>(1) << e) - 1);
      __m512 v[16];
      for (int i = 0; i < 16; ++i)
        v[i] = rb + i < nr ? _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(
                                 m, wp + (r + rb + i) * w.cols + k0 + 2 * pb))
                           : _mm512_setzero_ps();
      transpose16(v);
      const int pn = np - pb < 16 ? np - pb : 16;
      for (int j = 0; j < pn; ++j)
        _mm512_storeu_ps(reinterpret_cast<float*>(dst + (pb + j) * kNR + rb), v[transpose_slot(j)]);
    }
  }
}

template <int MR>
void ukernel_bf16(const uint16_t* xb, int64_t ldx, const uint32_t* panel, int np, float* y,
                  int64_t ldy, int nr, bool first, const float* bias) {
  __m512 acc[MR][4];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_setzero_ps();
  for (int p = 0; p < np; ++p) {
    const uint32_t* pp = panel + p * kNR;
    const __m512bh w0 = (__m512bh)_mm512_loadu_si512(pp),
                   w1 = (__m512bh)_mm512_loadu_si512(pp + 16),
                   w2 = (__m512bh)_mm512_loadu_si512(pp + 32),
                   w3 = (__m512bh)_mm512_loadu_si512(pp + 48);
    for (int i = 0; i < MR; ++i) {
      int pair;
      __builtin_memcpy(&pair, xb + i * ldx + 2 * p, 4);
      const __m512bh b = (__m512bh)_mm512_set1_epi32(pair);
      acc[i][0] = _mm512_dpbf16_ps(acc[i][0], b, w0);
      acc[i][1] = _mm512_dpbf16_ps(acc[i][1], b, w1);
      acc[i][2] = _mm512_dpbf16_ps(acc[i][2], b, w2);
      acc[i][3] = _mm512_dpbf16_ps(acc[i][3], b, w3);
    }
  }
  gemm::store_tile<Vec16, MR>(acc, y, ldy, nr, first, bias);
}

void gemm_bf16(const uint16_t* xb, int64_t n, const WeightView& w, const float* bias, float* y,
               int64_t r0, int64_t r1, uint32_t* panel) {
  const int64_t ldx = (w.cols + 1) & ~int64_t{1};
  for (int64_t r = r0; r < r1; r += kNR) {
    const int nr = static_cast<int>(r1 - r < kNR ? r1 - r : kNR);
    for (int64_t k0 = 0; k0 < w.cols; k0 += kKCB) {
      const int kc = static_cast<int>(w.cols - k0 < kKCB ? w.cols - k0 : kKCB);
      pack_bf16(w, r, nr, k0, kc, panel);
      gemm::for_mr(n, [&](int64_t i, auto mr) {
        ukernel_bf16<decltype(mr)::value>(xb + i * ldx + k0, ldx, panel, (kc + 1) / 2,
                                          y + i * w.rows + r, w.rows, nr, k0 == 0,
                                          bias ? bias + r : nullptr);
      });
    }
  }
}

}  // namespace

void matvec(const float* x, const uint16_t* xb, int64_t n, const WeightView& w, const float* bias,
            float* y, int64_t r0, int64_t r1) {
  if (xb != nullptr && w.type == TensorType::kBF16)
    return matvec_bf16_dot(xb, n, w, bias, y, r0, r1);
  mv::matvec<Vec16>(x, n, w, bias, y, r0, r1);
}

void gemm(const float* x, const uint16_t* xb, int64_t n, const WeightView& w, const float* bias,
          float* y, int64_t r0, int64_t r1, void* pack) {
  switch (w.type) {
    case TensorType::kF32:
      gemm::gemm_f32<Vec16, DType::kF32>(x, n, w, bias, y, r0, r1, static_cast<float*>(pack));
      break;
    case TensorType::kF16:
      gemm::gemm_f32<Vec16, DType::kF16>(x, n, w, bias, y, r0, r1, static_cast<float*>(pack));
      break;
    case TensorType::kBF16:
      gemm_bf16(xb, n, w, bias, y, r0, r1, static_cast<uint32_t*>(pack));
      break;
    default:  // block types take Isa::qgemm
      break;
  }
}

void to_bf16_rows(const float* src, int64_t n, int64_t cols, uint16_t* dst, int64_t ld) {
  for (int64_t i = 0; i < n; ++i) {
    const float* s = src + i * cols;
    uint16_t* d = dst + i * ld;
    for (int64_t c = 0; c < ld; c += 16) {
      const __mmask16 m = tail_mask(cols - c > 0 ? cols - c : 0);
      const __m256bh h = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, s + c));
      _mm256_mask_storeu_epi16(d + c, tail_mask(ld - c), (__m256i)h);
    }
  }
}

void to_f32(DType t, const void* src, float* dst, int64_t n) {
  for (int64_t c = 0; c < n; c += 16) {
    const __mmask16 m = tail_mask(n - c);
    __m512 v;
    switch (t) {
      case DType::kF32:
        v = load16<DType::kF32>(src, c, m);
        break;
      case DType::kF16:
        v = load16<DType::kF16>(src, c, m);
        break;
      default:
        v = load16<DType::kBF16>(src, c, m);
        break;
    }
    _mm512_mask_storeu_ps(dst + c, m, v);
  }
}

}  // namespace longctx::kernels::cpu::avx512
