// The packed f32 GEMM (prefill, y = x W^T + b for many x rows) of both SIMD paths, written once
// over a vector-traits type VT (vmath_avx2.h / vmath_avx512.h). Include only from a path's
// translation unit after its vmath header; everything here has internal linkage.
//
// Per thread, for each panel of kNR = VT::kGemmVecs x VT::kW weight rows and block of kKC input
// features, the weights are converted to f32 and packed (register transposes) into a panel read
// from L1/L2, and a kMR x kNR micro-kernel sweeps every x row over it: AVX-512 6 x 64 (24
// accumulators of 32 registers, 64 KiB panels), AVX2 6 x 16 (12 of 16, 16 KiB panels).
//
// VT provides (besides kW and kGemmVecs): zero, set1, loadu, storeu, fmadd, add, load<DT>,
// load_n<DT>, store_n, transpose and slot (as described in cpu/attention_tile.h).
#pragma once

#include <cstdint>
#include <type_traits>

#include "core/dtype.h"
#include "kernels/cpu/vec_common.h"
#include "kernels/ops.h"

namespace longctx::kernels::cpu {
namespace {
namespace gemm {

constexpr int kMR = 6;    // x rows per micro-kernel
constexpr int kKC = 256;  // input features per packed f32 block

template <class VT>
constexpr int nr() {
  return VT::kGemmVecs * VT::kW;
}
// Bytes of one thread's f32 panel (Isa::gemm_pack_bytes).
template <class VT>
constexpr size_t pack_bytes() {
  return static_cast<size_t>(nr<VT>()) * kKC * sizeof(float);
}

// f32 panel: dst[k][kNR] for weight rows [r, r + nr) and columns [k0, k0 + kc), zero padded.
template <class VT, DType DT>
void pack_f32(const WeightView& w, int64_t r, int nr_, int64_t k0, int kc, float* dst) {
  constexpr int W = VT::kW, kNR = nr<VT>();
  for (int rb = 0; rb < kNR; rb += W) {
    const int rows = nr_ - rb < 0 ? 0 : (nr_ - rb < W ? nr_ - rb : W);
    for (int kb = 0; kb < kc; kb += W)
      vec::transpose_block<VT, DT>(w.data, (r + rb) * w.cols + k0 + kb, w.cols, rows,
                                   kc - kb < W ? kc - kb : W, dst + kb * kNR + rb, kNR);
  }
}

// Writes acc (MR x kGemmVecs vectors) to y: y = acc + bias (first block) or y += acc.
template <class VT, int MR>
inline void store_tile(typename VT::V (&acc)[MR][VT::kGemmVecs], float* y, int64_t ldy, int nr_,
                       bool first, const float* bias) {
  using V = typename VT::V;
  constexpr int W = VT::kW;
  for (int j = 0; j < VT::kGemmVecs; ++j) {
    const int left = nr_ - W * j;
    if (left <= 0) break;
    const int n = left < W ? left : W;
    V add = VT::zero();
    if (first && bias) add = VT::template load_n<DType::kF32>(bias, W * j, n);
    for (int i = 0; i < MR; ++i) {
      float* yp = y + i * ldy + W * j;
      const V base = first ? add : VT::template load_n<DType::kF32>(yp, 0, n);
      VT::store_n(yp, VT::add(acc[i][j], base), n);
    }
  }
}

template <class VT, int MR>
void ukernel_f32(const float* x, int64_t ldx, const float* panel, int kc, float* y, int64_t ldy,
                 int nr_, bool first, const float* bias) {
  using V = typename VT::V;
  constexpr int W = VT::kW, NV = VT::kGemmVecs, kNR = nr<VT>();
  V acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NV; ++j) acc[i][j] = VT::zero();
  for (int k = 0; k < kc; ++k) {
    const float* p = panel + k * kNR;
    V wv[NV];
    for (int j = 0; j < NV; ++j) wv[j] = VT::loadu(p + W * j);
    for (int i = 0; i < MR; ++i) {
      const V b = VT::set1(x[i * ldx + k]);
      for (int j = 0; j < NV; ++j) acc[i][j] = VT::fmadd(b, wv[j], acc[i][j]);
    }
  }
  store_tile<VT, MR>(acc, y, ldy, nr_, first, bias);
}

// f(i, integral_constant<int, MR>) for x rows [i, i + MR) covering [0, n), MR <= kMR.
template <typename F>
inline void for_mr(int64_t n, F&& f) {
  int64_t i = 0;
  for (; i + kMR <= n; i += kMR) f(i, std::integral_constant<int, kMR>{});
  vec::with_const<kMR - 1>(static_cast<int>(n - i), [&](auto mr) { f(i, mr); });
}

// Rows [r0, r1) of y (r0 a multiple of kNR); panel: pack_bytes<VT>() of scratch.
template <class VT, DType DT>
void gemm_f32(const float* x, int64_t n, const WeightView& w, const float* bias, float* y,
              int64_t r0, int64_t r1, float* panel) {
  constexpr int kNR = nr<VT>();
  for (int64_t r = r0; r < r1; r += kNR) {
    const int nr_ = static_cast<int>(r1 - r < kNR ? r1 - r : kNR);
    for (int64_t k0 = 0; k0 < w.cols; k0 += kKC) {
      const int kc = static_cast<int>(w.cols - k0 < kKC ? w.cols - k0 : kKC);
      pack_f32<VT, DT>(w, r, nr_, k0, kc, panel);
      for_mr(n, [&](int64_t i, auto mr) {
        ukernel_f32<VT, decltype(mr)::value>(x + i * w.cols + k0, w.cols, panel, kc,
                                             y + i * w.rows + r, w.rows, nr_, k0 == 0,
                                             bias ? bias + r : nullptr);
      });
    }
  }
}

}  // namespace gemm
}  // namespace
}  // namespace longctx::kernels::cpu
