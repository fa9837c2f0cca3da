// The f32-FMA matvec (decode: y = x W^T + b for a few x rows, weights streamed once) of both SIMD
// paths, written once over the path's vector traits VT (Vec8 in vmath_avx2.h, Vec16 in
// vmath_avx512.h): F32, F16 and BF16 weights converted in registers. (BF16 weights with bf16 dot
// products are AVX-512's own, in matmul_avx512.cc.) Include only from a path's translation unit;
// everything here has internal linkage.
//
// VT provides (besides what cpu/attention_tile.h lists): kMatvecRows (weight rows per tile when
// x has several rows) and kMatvecPrefetch (whether those tiles prefetch the next tile's short
// rows).
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "core/dtype.h"
#include "kernels/ops.h"

namespace longctx::kernels::cpu {
namespace {
namespace mv {

// y[i][r..r+NW) for NX x rows and NW weight rows at a time. pf > 0: also prefetch the weights pf
// elements ahead of each row's loads (the next tile's rows, for short rows, whose streams are too
// short for the hardware prefetcher to pick up).
template <class VT, DType DT, int NX, int NW>
inline void tile(const float* x, int64_t cols, const void* w, int64_t r, const float* bias,
                 float* y, int64_t ldy, int64_t pf = 0) {
  using V = typename VT::V;
  constexpr int W = VT::kW;
  constexpr int64_t es = DT == DType::kF32 ? 4 : 2;
  V acc[NX][NW];
  for (int i = 0; i < NX; ++i)
    for (int k = 0; k < NW; ++k) acc[i][k] = VT::zero();
  int64_t c = 0;
  for (; c + W <= cols; c += W) {
    V wv[NW];
    if (pf > 0)
      for (int k = 0; k < NW; ++k)
        _mm_prefetch(static_cast<const char*>(w) + ((r + k) * cols + c + pf) * es, _MM_HINT_T0);
    for (int k = 0; k < NW; ++k) wv[k] = VT::template load<DT>(w, (r + k) * cols + c);
    for (int i = 0; i < NX; ++i) {
      const V xv = VT::loadu(x + i * cols + c);
      for (int k = 0; k < NW; ++k) acc[i][k] = VT::fmadd(xv, wv[k], acc[i][k]);
    }
  }
  if (c < cols) {
    const int n = static_cast<int>(cols - c);
    V wv[NW];
    for (int k = 0; k < NW; ++k) wv[k] = VT::template load_n<DT>(w, (r + k) * cols + c, n);
    for (int i = 0; i < NX; ++i) {
      const V xv = VT::template load_n<DType::kF32>(x, i * cols + c, n);
      for (int k = 0; k < NW; ++k) acc[i][k] = VT::fmadd(xv, wv[k], acc[i][k]);
    }
  }
  for (int i = 0; i < NX; ++i)
    for (int k = 0; k < NW; ++k)
      y[i * ldy + r + k] = VT::reduce_add(acc[i][k]) + (bias ? bias[r + k] : 0.f);
}

// One x row (decode): rows [r0, r1) are one contiguous range of W, read front to back as a single
// stream, a row at a time with four accumulators. Interleaving rows (several streams) as tile()
// does reaches ~60% of the read bandwidth here; one stream reaches ~95%, with no software prefetch
// (a prefetch 2 KiB ahead cost 5-25% of decode; docs/kernels.md).
template <class VT, DType DT>
void seq(const float* x, const WeightView& w, const float* bias, float* y, int64_t r0, int64_t r1) {
  using V = typename VT::V;
  constexpr int W = VT::kW;
  const int64_t cols = w.cols;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t base = r * cols;
    V acc[4] = {VT::zero(), VT::zero(), VT::zero(), VT::zero()};
    int64_t c = 0;
    for (; c + 4 * W <= cols; c += 4 * W)
      for (int u = 0; u < 4; ++u)
        acc[u] = VT::fmadd(VT::loadu(x + c + W * u),
                           VT::template load<DT>(w.data, base + c + W * u), acc[u]);
    for (; c + W <= cols; c += W)
      acc[0] = VT::fmadd(VT::loadu(x + c), VT::template load<DT>(w.data, base + c), acc[0]);
    if (c < cols) {
      const int n = static_cast<int>(cols - c);
      acc[1] = VT::fmadd(VT::template load_n<DType::kF32>(x, c, n),
                         VT::template load_n<DT>(w.data, base + c, n), acc[1]);
    }
    y[r] = VT::reduce_add(VT::add(VT::add(acc[0], acc[1]), VT::add(acc[2], acc[3]))) +
           (bias ? bias[r] : 0.f);
  }
}

template <class VT, DType DT, int NX>
void rows(const float* x, const WeightView& w, const float* bias, float* y, int64_t r0,
          int64_t r1) {
  constexpr int NW = VT::kMatvecRows;
  // Rows of up to 4 KiB: prefetch the next tile while this one streams (where the path does).
  const int64_t es = DT == DType::kF32 ? 4 : 2;
  const int64_t pf = VT::kMatvecPrefetch && w.cols * es <= 4096 ? NW * w.cols : 0;
  int64_t r = r0;
  for (; r + 2 * NW <= r1; r += NW) tile<VT, DT, NX, NW>(x, w.cols, w.data, r, bias, y, w.rows, pf);
  for (; r + NW <= r1; r += NW) tile<VT, DT, NX, NW>(x, w.cols, w.data, r, bias, y, w.rows);
  for (; r < r1; ++r) tile<VT, DT, NX, 1>(x, w.cols, w.data, r, bias, y, w.rows);
}

// Float weight types only, rows packed (w.row_bytes == cols * element size: the driver checks).
// Rows [r0, r1) of y for n x rows: one stream for n == 1, else weights once per 4 x rows.
template <class VT, DType DT>
void matvec_dt(const float* x, int64_t n, const WeightView& w, const float* bias, float* y,
               int64_t r0, int64_t r1) {
  if (n == 1) return seq<VT, DT>(x, w, bias, y, r0, r1);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) rows<VT, DT, 4>(x + i * w.cols, w, bias, y + i * w.rows, r0, r1);
  const float* xi = x + i * w.cols;
  float* yi = y + i * w.rows;
  switch (n - i) {
    case 3:
      rows<VT, DT, 3>(xi, w, bias, yi, r0, r1);
      break;
    case 2:
      rows<VT, DT, 2>(xi, w, bias, yi, r0, r1);
      break;
    case 1:
      rows<VT, DT, 1>(xi, w, bias, yi, r0, r1);
      break;
    default:
      break;
  }
}

template <class VT>
void matvec(const float* x, int64_t n, const WeightView& w, const float* bias, float* y, int64_t r0,
            int64_t r1) {
  switch (w.type) {
    case TensorType::kF32:
      matvec_dt<VT, DType::kF32>(x, n, w, bias, y, r0, r1);
      break;
    case TensorType::kF16:
      matvec_dt<VT, DType::kF16>(x, n, w, bias, y, r0, r1);
      break;
    case TensorType::kBF16:
      matvec_dt<VT, DType::kBF16>(x, n, w, bias, y, r0, r1);
      break;
    default:  // block types: the quantized kernels (cpu/quant_dot.h)
      break;
  }
}

}  // namespace mv
}  // namespace
}  // namespace longctx::kernels::cpu
