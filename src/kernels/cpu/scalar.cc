// The scalar path: plain loops behind the same entry points as the SIMD paths (used on CPUs
// without AVX2 and forced with LONGCTX_SIMD=scalar). Threads and tiling come from the drivers.
#include <algorithm>
#include <cmath>

#include "kernels/cpu/isa.h"
#include "kernels/reference/reference.h"

namespace longctx::kernels::cpu::scalar {

using reference::load_f32;

// xb: unused, this path has no bf16 dot products.
void matvec(const float* x, const uint16_t* /*xb*/, int64_t n, const WeightView& w, const float* bias,
            float* y, int64_t r0, int64_t r1) {
  const DType dt = *float_dtype(w.type);  // float types only (block types: qmatvec)
  for (int64_t i = 0; i < n; ++i)
    for (int64_t r = r0; r < r1; ++r) {
      float acc = 0.f;
      for (int64_t c = 0; c < w.cols; ++c)
        acc += x[i * w.cols + c] * load_f32(dt, w.data, r * w.cols + c);
      y[i * w.rows + r] = acc + (bias ? bias[r] : 0.f);
    }
}

void gemm(const float* x, const uint16_t* xb, int64_t n, const WeightView& w, const float* bias,
          float* y, int64_t r0, int64_t r1, void* pack) {
  matvec(x, nullptr, n, w, bias, y, r0, r1);
}

void to_bf16_rows(const float* src, int64_t n, int64_t cols, uint16_t* dst, int64_t ld) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < ld; ++c)
      dst[i * ld + c] = c < cols ? f32_to_bf16(src[i * cols + c]) : 0;
}

void to_f32(DType t, const void* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = load_f32(t, src, i);
}

void rmsnorm_row(const float* x, const float* weight, int64_t dim, float eps, float* y) {
  reference::rmsnorm(x, weight, 1, dim, eps, y);
}

void silu_mul(const float* gate, const float* up, int64_t n, float* out) {
  reference::silu_mul(gate, up, n, out);
}

void rope_apply(float* x, int64_t n_vec, int head_dim, int half, const float* cs, const float* sn) {
  for (int64_t v = 0; v < n_vec; ++v) {
    float* xv = x + v * head_dim;
    for (int i = 0; i < half; ++i) {
      const float x0 = xv[i], x1 = xv[i + half];
      xv[i] = x0 * cs[i] - x1 * sn[i];
      xv[i + half] = x1 * cs[i] + x0 * sn[i];
    }
  }
}

void attn_tile(const AttnTile& t) {
  const int hd = t.head_dim;
  to_f32(t.dtype, t.k, t.kf, static_cast<int64_t>(t.n_keys) * hd);
  to_f32(t.dtype, t.v, t.vf, static_cast<int64_t>(t.n_keys) * hd);
  for (int r = 0; r < t.rows; ++r) {
    const int lo = t.lo[r], hi = t.hi[r];
    if (hi <= lo) continue;
    const float* q = t.q + r * hd;
    float* s = t.s + r * kAttnTile;
    float m_tile = -INFINITY;
    for (int j = lo; j < hi; ++j) {
      float d = 0.f;
      for (int c = 0; c < hd; ++c) d += q[c] * t.kf[j * hd + c];
      s[j] = d;
      m_tile = std::max(m_tile, d);
    }
    const float m_new = std::max(t.m[r], m_tile);
    const float corr = t.m[r] == -INFINITY ? 0.f : std::exp(t.m[r] - m_new);
    float* acc = t.acc + r * hd;
    float sum = 0.f;
    for (int c = 0; c < hd; ++c) acc[c] *= corr;
    for (int j = lo; j < hi; ++j) {
      const float p = std::exp(s[j] - m_new);
      sum += p;
      for (int c = 0; c < hd; ++c) acc[c] += p * t.vf[j * hd + c];
    }
    t.l[r] = t.l[r] * corr + sum;
    t.m[r] = m_new;
  }
}

float sum(const float* x, int64_t n) {
  // Four independent partial sums, as the SIMD paths keep several accumulators.
  float a[4] = {0.f, 0.f, 0.f, 0.f};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int k = 0; k < 4; ++k) a[k] += x[i + k];
  for (; i < n; ++i) a[0] += x[i];
  return (a[0] + a[1]) + (a[2] + a[3]);
}

}  // namespace longctx::kernels::cpu::scalar
