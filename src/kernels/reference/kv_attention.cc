// Scalar model of the AVX-512 decode tile over int8 / int4 KV blocks (cpu/kv_attention_avx512.cc):
// the scores of coded keys use the query quantized to int8, everything else is exact. Written
// from the formats of kernels/kv_quant.h, not from the kernel, so a test can hold the kernel to
// it within float rounding; how far it is from exact attention is bounded in
// docs/kv-quantization.md ("Decode tiles").
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/dtype.h"
#include "kernels/cpu/kv_quant.h"
#include "kernels/kv_quant.h"
#include "kernels/reference/reference.h"

namespace longctx::kernels::reference {

namespace {

float f16_at(const uint8_t* p, size_t i) {
  uint16_t h;
  std::memcpy(&h, p + 2 * i, 2);
  return f16_to_f32(h);
}

// x [n] -> codes rint(x * 127 / max|x|) and the scale max|x| / 127, in the f32 operations the
// kernel performs (so the codes agree exactly).
float quantize(const float* x, int n, int* code) {
  float amax = 0.f;
  for (int i = 0; i < n; ++i) amax = std::max(amax, std::abs(x[i]));
  const float inv = amax > 0.f ? 127.f / amax : 0.f;
  for (int i = 0; i < n; ++i) code[i] = static_cast<int>(std::nearbyint(x[i] * inv));
  return amax / 127.f;
}

// One kv head's keys of a coded cache: the section holding position j and j's offset in it.
struct KeySection {
  const uint8_t* codes;  // position j's codes
  const uint8_t* meta;   // the section's meta area
  int off;
};
KeySection key_section(const KVView& kv, int g, int64_t j) {
  const int hd = kv.head_dim, bs = kv.block_size;
  const size_t cb = kv_code_bytes(kv.k_type, hd), row = kv_row_bytes(kv.k_type, hd, true);
  const auto* sec = static_cast<const uint8_t*>(kv.k_blocks[j / bs]) + g * row * bs;
  const int off = static_cast<int>(j % bs);
  return {sec + off * cb, sec + bs * cb, off};
}

// q (scaled) . key j for a coded key, as the tile scores it.
double coded_score(const KVView& kv, const float* q, int g, int64_t j) {
  const int hd = kv.head_dim, groups = hd / 32;
  const KeySection k = key_section(kv, g, j);
  std::vector<float> x(hd);
  std::vector<int> code(hd);
  double s = 0.0;
  if (kv.k_type == KvType::kInt8) {  // per token, 32-dim groups of codes c with one scale
    const uint8_t* scales = k.meta + static_cast<size_t>(k.off) * kv_meta_bytes(kv.k_type, hd, true);
    for (int gr = 0; gr < groups; ++gr) {
      const float d = quantize(q + 32 * gr, 32, code.data() + 32 * gr);
      int64_t dot = 0;
      for (int i = 0; i < 32; ++i)
        dot += int64_t{code[32 * gr + i]} * static_cast<int8_t>(k.codes[32 * gr + i]);
      s += static_cast<double>(dot) * d * f16_at(scales, gr);
    }
    return s;
  }
  // int4, per channel: x^ = m + s u over the token group; q . x^ = (q o s) . u + q . m.
  const uint8_t* gm = k.meta + static_cast<size_t>(k.off / kKvChannelGroup) * hd * 4;
  const int half = hd / 2;
  for (int c = 0; c < hd; ++c) {
    x[c] = q[c] * f16_at(gm, c);
    s += static_cast<double>(q[c]) * f16_at(gm, hd + c);
  }
  for (int gr = 0; gr < groups; ++gr) {
    const float d = quantize(x.data() + 32 * gr, 32, code.data() + 32 * gr);
    int64_t dot = 0;
    for (int c = 32 * gr; c < 32 * gr + 32; ++c) {
      const uint8_t byte = k.codes[c % half];
      dot += int64_t{code[c]} * (c < half ? byte & 15 : byte >> 4);
    }
    s += static_cast<double>(dot) * d;
  }
  return s;
}

}  // namespace

void attention_quant_query(const AttentionParams& p, const float* q, int64_t n_q, int64_t q_pos0,
                           const KVView& kv, float* out) {
  const int hd = kv.head_dim, group = p.n_heads / kv.n_kv_heads;
  std::vector<float> qs(hd), v(hd);
  std::vector<double> acc(hd);
  auto decode = [&](const void* const* blocks, KvType t, bool keys, int g, int64_t j, float* dst) {
    const int bs = kv.block_size;
    const size_t cb = kv_code_bytes(t, hd);
    const auto* sec = static_cast<const uint8_t*>(blocks[j / bs]) + g * kv_row_bytes(t, hd, keys) * bs;
    const int off = static_cast<int>(j % bs);
    kv_decode_rows(t, keys, sec + off * cb, sec + bs * cb, off, 1, hd, dst);
  };
  for (int64_t t = 0; t < n_q; ++t) {
    const int64_t i = q_pos0 + t;
    const int64_t j0 = p.window > 0 ? std::max<int64_t>(0, i - p.window + 1) : 0;
    for (int h = 0; h < p.n_heads; ++h) {
      const int g = h / group;
      for (int d = 0; d < hd; ++d) qs[d] = q[(t * p.n_heads + h) * hd + d] * p.scale;
      double m = -std::numeric_limits<double>::infinity(), l = 0.0;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t j = j0; j <= i; ++j) {
        double s = 0.0;
        if (j < kv.k_pending_from) {
          s = coded_score(kv, qs.data(), g, j);
        } else {  // an int4 key of the group not yet complete: f32
          const float* kp = kv.k_pending +
                            (static_cast<size_t>(g) * kKvChannelGroup + (j - kv.k_pending_from)) * hd;
          for (int d = 0; d < hd; ++d) s += static_cast<double>(qs[d]) * kp[d];
        }
        decode(kv.v_blocks, kv.v_type, false, g, j, v.data());
        const double m_new = std::max(m, s), corr = std::exp(m - m_new), e = std::exp(s - m_new);
        l = l * corr + e;
        for (int d = 0; d < hd; ++d) acc[d] = acc[d] * corr + e * v[d];
        m = m_new;
      }
      float* oh = out + (t * p.n_heads + h) * hd;
      for (int d = 0; d < hd; ++d) oh[d] = static_cast<float>(acc[d] / l);
    }
  }
}

}  // namespace longctx::kernels::reference
