// Scalar reference rmsnorm, RoPE and SiLU-gating.
#include <cmath>

#include "kernels/reference/reference.h"

namespace longctx::kernels::reference {

void rmsnorm(const float* x, const float* weight, int64_t n, int64_t dim, float eps, float* y) {
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * dim;
    float ss = 0.f;
    for (int64_t c = 0; c < dim; ++c) ss += xi[c] * xi[c];
    const float inv = 1.f / std::sqrt(ss / static_cast<float>(dim) + eps);
    float* yi = y + i * dim;
    for (int64_t c = 0; c < dim; ++c) yi[c] = xi[c] * inv * weight[c];
  }
}

void rope(float* x, int64_t n_tokens, int n_heads, int head_dim, int rot_dim, const int64_t* pos,
          const float* inv_freq, float attn_factor) {
  const int half = rot_dim / 2;
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int i = 0; i < half; ++i) {
      const double a = static_cast<double>(pos[t]) * static_cast<double>(inv_freq[i]);
      const float c = static_cast<float>(std::cos(a) * attn_factor);
      const float s = static_cast<float>(std::sin(a) * attn_factor);
      for (int h = 0; h < n_heads; ++h) {
        float* xh = x + (t * n_heads + h) * head_dim;
        const float x0 = xh[i], x1 = xh[i + half];
        xh[i] = x0 * c - x1 * s;
        xh[i + half] = x1 * c + x0 * s;
      }
    }
  }
}

void silu_mul(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.f + std::exp(-g)) * up[i];
  }
}

double sum(const float* x, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += x[i];
  return s;
}

}  // namespace longctx::kernels::reference
