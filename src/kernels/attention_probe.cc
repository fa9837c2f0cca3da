// attention_probe (ops.h): exact attention-pattern rows for chosen queries, over the keys as the
// KV cache stores them. Keys are decoded a tile at a time with the cache's own decoders (the same
// code attention() uses for coded caches), scores are kept for one row group at a time (the
// heads of one kv group for one query: O(visible keys)), and the softmax statistics of each row
// are computed from all of them before the row is handed on. Nothing is ever context x context.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/kv_quant.h"
#include "kernels/attention_probe.h"

namespace longctx::kernels {

namespace {

constexpr int kProbeTile = 64;

// Keys of kv head g at positions [j, j + n) (one block) as f32 into dst [n][head_dim].
void decode_keys(const KVView& kv, int g, int64_t j, int n, float* dst) {
  const int hd = kv.head_dim, bs = kv.block_size, off = static_cast<int>(j % bs);
  const KvType kt = kv.coded ? kv.k_type : kv_type_of(kv.dtype);
  const auto* section = static_cast<const uint8_t*>(kv.k_blocks[j / bs]) +
                        static_cast<size_t>(g) * kv_row_bytes(kt, hd, true) * bs;
  // int4 keys of the group still being filled are held in f32 (KVView::k_pending).
  const int n_coded =
      kv.coded ? static_cast<int>(std::clamp<int64_t>(kv.k_pending_from - j, 0, n)) : n;
  if (n_coded > 0) kv_decode(kt, true, section, bs, off, n_coded, hd, dst);
  if (n_coded < n) {
    const float* pend = kv.k_pending + (static_cast<size_t>(g) * kKvChannelGroup +
                                        (j + n_coded - kv.k_pending_from)) * hd;
    std::copy(pend, pend + static_cast<size_t>(n - n_coded) * hd,
              dst + static_cast<size_t>(n_coded) * hd);
  }
}

}  // namespace

size_t attention_probe_scratch(int threads, const AttentionParams& p, const KVView& kv,
                               int64_t max_keys) {
  const size_t group = static_cast<size_t>(p.n_heads / std::max(kv.n_kv_heads, 1));
  return static_cast<size_t>(threads) * sizeof(float) *
         (group * static_cast<size_t>(max_keys) +
          static_cast<size_t>(kProbeTile) * kv.head_dim);
}

void attention_probe(ThreadPool& pool, const AttentionParams& p, const float* q, int64_t n_q,
                     int64_t q_pos0, const KVView& kv, const std::vector<int64_t>& queries,
                     const std::function<void(const ProbeRow&)>& fn) {
  if (queries.empty()) return;
  const int hd = kv.head_dim, bs = kv.block_size;
  const int group = p.n_heads / kv.n_kv_heads;
  const int64_t last_pos = q_pos0 + queries.back();
  const int64_t max_keys =
      p.window > 0 ? std::min<int64_t>(p.window, last_pos + 1) : last_pos + 1;
  pool.parallel_for(kv.n_kv_heads, 1, [&](int64_t g0, int64_t g1, int) {
    std::vector<float> s(static_cast<size_t>(group) * max_keys);
    std::vector<float> kt(static_cast<size_t>(kProbeTile) * hd);
    for (int64_t g = g0; g < g1; ++g) {
      for (const int64_t t : queries) {
        const int64_t i = q_pos0 + t;
        const int64_t lo = p.window > 0 ? std::max<int64_t>(0, i - p.window + 1) : 0;
        const int64_t hi = i + 1;
        for (int64_t j = lo; j < hi;) {
          const int n = static_cast<int>(std::min<int64_t>({kProbeTile, bs - j % bs, hi - j}));
          decode_keys(kv, static_cast<int>(g), j, n, kt.data());
          for (int hh = 0; hh < group; ++hh) {
            const float* qh = q + (t * p.n_heads + g * group + hh) * hd;
            float* sh = s.data() + static_cast<size_t>(hh) * max_keys + (j - lo);
            for (int r = 0; r < n; ++r) {
              const float* k = kt.data() + static_cast<size_t>(r) * hd;
              float d = 0.f;
#pragma omp simd reduction(+ : d)
              for (int e = 0; e < hd; ++e) d += qh[e] * k[e];
              sh[r] = d * p.scale;
            }
          }
          j += n;
        }
        for (int hh = 0; hh < group; ++hh) {
          const float* sh = s.data() + static_cast<size_t>(hh) * max_keys;
          double m = -std::numeric_limits<double>::infinity(), l = 0.0;
          for (int64_t r = 0; r < hi - lo; ++r) m = std::max(m, static_cast<double>(sh[r]));
          for (int64_t r = 0; r < hi - lo; ++r) l += std::exp(sh[r] - m);
          fn(ProbeRow{static_cast<int>(g) * group + hh, t, lo, hi, sh, m, l});
        }
      }
    }
  });
}

}  // namespace longctx::kernels
