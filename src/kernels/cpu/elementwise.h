// RMSNorm, SiLU-gating, RoPE rotation and a streaming sum for both SIMD paths, written once over
// the path's vector traits VT (Vec8 in vmath_avx2.h, Vec16 in vmath_avx512.h; see
// cpu/attention_tile.h for the operations). Include only from a path's translation unit;
// everything here has internal linkage.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace longctx::kernels::cpu {
namespace {
namespace ew {

// kW floats of p from i, or the n - i < kW that are left (zero above).
template <class VT>
inline typename VT::V load_tail(const float* p, int64_t i, int64_t n) {
  return n - i >= VT::kW ? VT::loadu(p + i)
                         : VT::template load_n<DType::kF32>(p, i, static_cast<int>(n - i));
}
template <class VT>
inline void store_tail(float* p, int64_t i, int64_t n, typename VT::V v) {
  if (n - i >= VT::kW)
    VT::storeu(p + i, v);
  else
    VT::store_n(p + i, v, static_cast<int>(n - i));
}

template <class VT>
void rmsnorm_row(const float* x, const float* weight, int64_t dim, float eps, float* y) {
  using V = typename VT::V;
  V ss = VT::zero();
  for (int64_t c = 0; c < dim; c += VT::kW) {
    const V v = load_tail<VT>(x, c, dim);
    ss = VT::fmadd(v, v, ss);
  }
  const V vinv =
      VT::set1(1.f / __builtin_sqrtf(VT::reduce_add(ss) / static_cast<float>(dim) + eps));
  for (int64_t c = 0; c < dim; c += VT::kW)
    store_tail<VT>(y, c, dim,
                   VT::mul(VT::mul(load_tail<VT>(x, c, dim), vinv), load_tail<VT>(weight, c, dim)));
}

template <class VT>
void silu_mul(const float* gate, const float* up, int64_t n, float* out) {
  using V = typename VT::V;
  const V one = VT::set1(1.f);
  for (int64_t i = 0; i < n; i += VT::kW) {
    const V g = load_tail<VT>(gate, i, n);
    const V s = VT::div(g, VT::add(one, VT::exp(VT::sub(VT::zero(), g))));
    store_tail<VT>(out, i, n, VT::mul(s, load_tail<VT>(up, i, n)));
  }
}

template <class VT>
void rope_apply(float* x, int64_t n_vec, int head_dim, int half, const float* cs, const float* sn) {
  using V = typename VT::V;
  for (int64_t v = 0; v < n_vec; ++v) {
    float* x0p = x + v * head_dim;
    float* x1p = x0p + half;
    for (int64_t i = 0; i < half; i += VT::kW) {
      const V x0 = load_tail<VT>(x0p, i, half), x1 = load_tail<VT>(x1p, i, half);
      const V c = load_tail<VT>(cs, i, half), s = load_tail<VT>(sn, i, half);
      store_tail<VT>(x0p, i, half, VT::sub(VT::mul(x0, c), VT::mul(x1, s)));
      store_tail<VT>(x1p, i, half, VT::add(VT::mul(x1, c), VT::mul(x0, s)));
    }
  }
}

// Four vectors per iteration, four accumulators: enough loads in flight to saturate DRAM.
template <class VT>
float sum(const float* x, int64_t n) {
  using V = typename VT::V;
  constexpr int W = VT::kW;
  V a0 = VT::zero(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    a0 = VT::add(a0, VT::loadu(x + i));
    a1 = VT::add(a1, VT::loadu(x + i + W));
    a2 = VT::add(a2, VT::loadu(x + i + 2 * W));
    a3 = VT::add(a3, VT::loadu(x + i + 3 * W));
  }
  for (; i < n; i += W) a0 = VT::add(a0, load_tail<VT>(x, i, n));
  return VT::reduce_add(VT::add(VT::add(a0, a1), VT::add(a2, a3)));
}

}  // namespace ew
}  // namespace
}  // namespace longctx::kernels::cpu
