// The f32-FMA matvec (decode: y = x W^T + b for a few x rows, weights streamed once) of both SIMD
// paths, written once over the path's vector traits VT (Vec8 in vmath_avx2.h, Vec16 in
// vmath_avx512.h): F32, F16 and BF16 weights converted in registers. (BF16 weights with bf16 dot
// products are AVX-512's own, in matmul_avx512.cc.) Include only from a path's translation unit;
// everything here has internal linkage.
//
// VT provides (besides what cpu/attention_tile.h lists): kMatvecX, the x rows of a tile when x has
// several rows (kMatvecX * 4 accumulators).
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "core/dtype.h"
#include "kernels/cpu/vec_common.h"
#include "kernels/ops.h"

namespace longctx::kernels::cpu {
namespace {
namespace mv {

// One x row (decode): rows [r0, r1) are one contiguous range of W, read front to back as a single
// stream, a row at a time with four accumulators. Interleaving rows (several streams) reaches ~60%
// of the read bandwidth here; one stream reaches ~95%, with no software prefetch (a prefetch 2 KiB
// ahead cost 5-25% of decode; docs/kernels.md).
//
// Its summation order is THE decode order of this path: accumulator u takes the W-wide chunks
// u, u + 4, u + 8, ... of each 4W block, the whole chunks after the last block go to accumulator 0,
// a final partial chunk to accumulator 1, and the result is reduce((a0 + a1) + (a2 + a3)) + bias.
// The multi-row kernels below sum every row of a batch in exactly this order, so a row's result
// never depends on how many other rows share the call (batch invariance: a sequence decoded in a
// batch gets the bits it gets alone; tests/kernels/batch_invariance_test.cc).
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

// y[i][r..r+NW) for NX x rows and NW weight rows, each output summed in seq()'s order (four
// accumulators per output: NX * NW * 4 registers). The accumulators are indexed by constants only
// (fully unrolled loops): indexed by a run-time chunk number, GCC kept them on the stack and
// stored every one on every step.
template <class VT, DType DT, int NX, int NW>
inline void tile(const float* x, int64_t cols, const void* w, int64_t r, const float* bias,
                 float* y, int64_t ldy) {
  using V = typename VT::V;
  constexpr int W = VT::kW;
  V acc[4][NX][NW];
#pragma GCC unroll 4
  for (int u = 0; u < 4; ++u)
#pragma GCC unroll 16
    for (int i = 0; i < NX; ++i)
#pragma GCC unroll 16
      for (int k = 0; k < NW; ++k) acc[u][i][k] = VT::zero();
  // Chunk c (n < W: the final partial one, zero-filled loads) into accumulator set U.
  auto chunk = [&]<int U>(int64_t c, int n) __attribute__((always_inline)) {
    V wv[NW];
#pragma GCC unroll 16
    for (int k = 0; k < NW; ++k)
      wv[k] = n == W ? VT::template load<DT>(w, (r + k) * cols + c)
                     : VT::template load_n<DT>(w, (r + k) * cols + c, n);
#pragma GCC unroll 16
    for (int i = 0; i < NX; ++i) {
      const V xv = n == W ? VT::loadu(x + i * cols + c)
                          : VT::template load_n<DType::kF32>(x, i * cols + c, n);
#pragma GCC unroll 16
      for (int k = 0; k < NW; ++k) acc[U][i][k] = VT::fmadd(xv, wv[k], acc[U][i][k]);
    }
  };
  int64_t c = 0;
  for (; c + 4 * W <= cols; c += 4 * W) {
    chunk.template operator()<0>(c, W);
    chunk.template operator()<1>(c + W, W);
    chunk.template operator()<2>(c + 2 * W, W);
    chunk.template operator()<3>(c + 3 * W, W);
  }
  for (; c + W <= cols; c += W) chunk.template operator()<0>(c, W);
  if (c < cols) chunk.template operator()<1>(c, static_cast<int>(cols - c));
#pragma GCC unroll 16
  for (int i = 0; i < NX; ++i)
#pragma GCC unroll 16
    for (int k = 0; k < NW; ++k)
      y[i * ldy + r + k] =
          VT::reduce_add(VT::add(VT::add(acc[0][i][k], acc[1][i][k]),
                                 VT::add(acc[2][i][k], acc[3][i][k]))) +
          (bias ? bias[r + k] : 0.f);
}

// Weight rows [r, r + NW) against all n x rows, NX at a time: the NW rows stay in L1 while every
// group of x rows passes over them, so W is read from memory once per call.
template <class VT, DType DT, int NX, int NW>
inline void tiles_at(const float* x, int64_t n, const WeightView& w, int64_t r, const float* bias,
                     float* y) {
  int64_t i = 0;
  for (; i + NX <= n; i += NX)
    tile<VT, DT, NX, NW>(x + i * w.cols, w.cols, w.data, r, bias, y + i * w.rows, w.rows);
  vec::with_const<NX - 1>(static_cast<int>(n - i), [&](auto m) {
    tile<VT, DT, decltype(m)::value, NW>(x + i * w.cols, w.cols, w.data, r, bias,
                                         y + i * w.rows, w.rows);
  });
}

// Float weight types only, rows packed (w.row_bytes == cols * element size: the driver checks).
// Rows [r0, r1) of y for n x rows, every row in the decode order (seq()'s): one stream for n == 1,
// else one weight row at a time against VT::kMatvecX x rows at a time. W stays one stream: tiles of
// two weight rows (fewer loads per FMA) halved the read bandwidth, and serving 4 and 8 sequences
// lost 20-30% of its throughput with them (bench/serve_bench).
template <class VT, DType DT>
void matvec_dt(const float* x, int64_t n, const WeightView& w, const float* bias, float* y,
               int64_t r0, int64_t r1) {
  if (n == 1) return seq<VT, DT>(x, w, bias, y, r0, r1);
  for (int64_t r = r0; r < r1; ++r) tiles_at<VT, DT, VT::kMatvecX, 1>(x, n, w, r, bias, y);
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
