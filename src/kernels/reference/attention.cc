// Scalar reference attention: one query row at a time, keys in order, online softmax
// (running max m, running sum l, accumulator acc). Scratch is O(head_dim); no mask is built.
#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/reference/reference.h"

namespace longctx::kernels::reference {

namespace {
// Element d of the key (or value) of position j, kv head g.
float kv_at(const KVView& kv, const void* const* blocks, int64_t j, int g, int d) {
  const int64_t b = j / kv.block_size, o = j % kv.block_size;
  const int64_t idx = (static_cast<int64_t>(g) * kv.block_size + o) * kv.head_dim + d;
  return load_f32(kv.dtype, blocks[b], idx);
}
}  // namespace

void attention(const AttentionParams& p, const float* q, int64_t n_q, int64_t q_pos0,
               const KVView& kv, float* out) {
  const int hd = kv.head_dim;
  assert(p.n_heads % kv.n_kv_heads == 0);
  assert(q_pos0 + n_q <= kv.n_tokens);
  const int group = p.n_heads / kv.n_kv_heads;
  std::vector<float> acc(hd);
  for (int64_t t = 0; t < n_q; ++t) {
    const int64_t i = q_pos0 + t;
    const int64_t j0 = p.window > 0 ? std::max<int64_t>(0, i - p.window + 1) : 0;
    for (int h = 0; h < p.n_heads; ++h) {
      const int g = h / group;
      const float* qh = q + (t * p.n_heads + h) * hd;
      float m = -std::numeric_limits<float>::infinity(), l = 0.f;
      std::fill(acc.begin(), acc.end(), 0.f);
      for (int64_t j = j0; j <= i; ++j) {
        float s = 0.f;
        for (int d = 0; d < hd; ++d) s += qh[d] * kv_at(kv, kv.k_blocks, j, g, d);
        s *= p.scale;
        const float m_new = std::max(m, s);
        const float corr = std::exp(m - m_new), e = std::exp(s - m_new);
        l = l * corr + e;
        for (int d = 0; d < hd; ++d) acc[d] = acc[d] * corr + e * kv_at(kv, kv.v_blocks, j, g, d);
        m = m_new;
      }
      float* oh = out + (t * p.n_heads + h) * hd;
      for (int d = 0; d < hd; ++d) oh[d] = acc[d] / l;
    }
  }
}

}  // namespace longctx::kernels::reference
