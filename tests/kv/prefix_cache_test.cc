// A sequence that adopts a cached prefix attends exactly as one that computed the prefix itself,
// for every KV storage type, a sliding-window layer, and blocks of 16, 64 and 256 tokens; attention
// over such caches equals the scalar reference over their dequantized contents.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/kernel_test_util.h"
#include "kernels/ops.h"
#include "kernels/reference/reference.h"
#include "kv/block_pool.h"
#include "kv/kv_cache.h"
#include "kv/kv_test_util.h"

namespace longctx {
namespace {

using testing::prefill;
using testing::PrefixKV;
using testing::stored_row;

constexpr int kHeads = 4, kKvHeads = 2, kHeadDim = 32;
// Positions compared across block sizes: the complete int4 key groups of the shortest prompt
// (3 x 16 + 5 tokens; the 5 after them are still f32 there).
constexpr int64_t kCompared = 48;

// An f32 copy of what `kv` holds for `layer` ([n_kv][block][hd] per block, as the reference
// kernel reads it); positions a window layer recycled are zero (no query may see them).
struct F32Copy {
  std::vector<std::vector<float>> k, v;
  std::vector<const void*> kp, vp;
  kernels::KVView view;

  F32Copy(const KVCache& kv, int layer) {
    const KVCacheShape& s = kv.shape();
    const int64_t n = kv.n_tokens(), bs = s.block_size, nb = (n + bs - 1) / bs;
    const size_t block = size_t(s.n_kv_heads) * bs * s.head_dim;
    k.assign(nb, std::vector<float>(block, 0.f));
    v.assign(nb, std::vector<float>(block, 0.f));
    for (int64_t p = 0; p < n; ++p)
      for (bool keys : {true, false}) {
        const auto row = stored_row(kv, layer, p, keys);
        if (row.empty()) continue;
        std::vector<float>& block = keys ? k[p / bs] : v[p / bs];
        for (int h = 0; h < s.n_kv_heads; ++h)
          std::copy_n(row.data() + size_t(h) * s.head_dim, s.head_dim,
                      block.data() + (size_t(h) * bs + p % bs) * s.head_dim);
      }
    for (int64_t b = 0; b < nb; ++b) {
      kp.push_back(k[b].data());
      vp.push_back(v[b].data());
    }
    view = kernels::KVView{DType::kF32, int(bs), s.n_kv_heads, s.head_dim, kp.data(), vp.data(), n};
  }
};

std::vector<float> attend(ThreadPool& threads, const KVCache& kv, int layer,
                          const std::vector<float>& q, int64_t n_q) {
  const kernels::AttentionParams p{kHeads, 1.f / std::sqrt(float(kHeadDim)),
                                   kv.shape().window(layer)};
  std::vector<float> out(q.size(), NAN);
  kernels::attention(threads, p, q.data(), n_q, kv.n_tokens() - n_q, kv.view(layer, kv.n_tokens()),
                     out.data());
  return out;
}

TEST(PrefixCache, AdoptedPrefixAttendsExactlyAsComputed) {
  const KvType F16 = KvType::kF16, I8 = KvType::kInt8, I4 = KvType::kInt4, F32 = KvType::kF32;
  ThreadPool threads(2);
  for (auto [kt, vt] : {std::pair{F16, F16}, {I8, I8}, {I4, I4}, {I4, F16}, {F32, I8}}) {
    // Rows as each block size stores them, to compare across block sizes.
    std::map<int, std::vector<std::vector<float>>> rows_by_bs;
    for (int bs : {16, 64, 256}) {
      SCOPED_TRACE(std::string(kv_type_name(kt)) + "/" + kv_type_name(vt) + " block " +
                   std::to_string(bs));
      // Layer 0 full attention, layer 1 a window shorter than the prompt.
      const int64_t window = bs + 9, n = 3 * bs + 5, n_q = 6;
      const KVCacheShape s{2, kKvHeads, kHeadDim, kt, vt, bs, n + 8, {0, window}};
      KVBlockPool pool(s);  // check_kv_type accepts the block size
      std::vector<int32_t> prompt(n);
      for (int64_t i = 0; i < n; ++i) prompt[i] = int32_t(i * 7919 % 32000);  // same for every bs
      const PrefixKV x(s, prompt);

      KVCache a(pool, n + 8);  // computes the prompt, publishing as it goes
      prefill(a, prompt, x, 0, n, bs / 2 + 3, true);
      KVCache b(pool, n + 8);  // adopts what a published, computes the rest
      ASSERT_EQ(b.adopt_prefix(prompt.data(), n), 3 * bs);
      EXPECT_EQ(b.block_id(1, 0), -1);  // outside the window from position 3 x bs
      prefill(b, prompt, x, 3 * bs, n, 7);
      KVCache c(s);  // computes everything alone, in other chunks
      prefill(c, prompt, x, 0, n, 11);

      const auto q = kernels::testing::random_floats(size_t(n_q) * kHeads * kHeadDim, 17 + bs);
      auto& rows = rows_by_bs[bs];
      for (int64_t p = 0; p < kCompared; ++p)
        for (bool keys : {true, false}) rows.push_back(stored_row(c, 0, p, keys));
      for (int l = 0; l < 2; ++l) {
        SCOPED_TRACE("layer " + std::to_string(l));
        for (int64_t p = l == 1 ? n - window : 0; p < n; ++p)
          for (bool keys : {true, false}) {
            const auto want = stored_row(c, l, p, keys);
            ASSERT_EQ(stored_row(b, l, p, keys), want) << p;
          }
        const auto got = attend(threads, b, l, q, n_q);
        EXPECT_EQ(got, attend(threads, c, l, q, n_q));
        // The kernel over the shared blocks equals the scalar reference over their contents. With
        // int8/int4 keys the AVX-512 decode tile scores against a quantized query: its error
        // bound is tested in tests/kernels/kv_attention_test.cc, not here.
        if (kv_type_is_quantized(s.k_type) && kernels::active_simd_path() ==
                                                           kernels::SimdPath::kAvx512)
          continue;
        const F32Copy f32(b, l);
        const kernels::AttentionParams p{kHeads, 1.f / std::sqrt(float(kHeadDim)), s.window(l)};
        std::vector<float> want(q.size());
        kernels::reference::attention(p, q.data(), n_q, n - n_q, f32.view, want.data());
        for (size_t i = 0; i < got.size(); ++i)
          ASSERT_NEAR(got[i], want[i], 2e-5f * (1 + std::abs(want[i]))) << i;
      }
    }
    // Per-token codecs and int4 keys' groups of 16 do not depend on the block size: the same
    // prompt stores the same values in blocks of 16, 64 and 256 tokens.
    EXPECT_EQ(rows_by_bs[64], rows_by_bs[16]);
    EXPECT_EQ(rows_by_bs[256], rows_by_bs[16]);
  }
}

}  // namespace
}  // namespace longctx
