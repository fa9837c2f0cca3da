// Attention over coded KV blocks (int8/int4, mixed K/V types, int4 keys with an f32 pending group)
// equals "dequantize everything, then the scalar reference kernel" within float rounding, on every
// SIMD path, over GQA ratios, head dims, windows and lengths that are not multiples of the tile.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kernels/kernel_test_util.h"
#include "kernels/kv_quant.h"
#include "kernels/kv_quant_test_util.h"
#include "kernels/reference/reference.h"

namespace longctx::kernels {
namespace {

struct Case {
  KvType k, v;
  int group, hd, n_kv;
  int64_t window, n_q, n_tokens;
  int block_size, threads;
};

void check(const Case& c, uint32_t seed) {
  SCOPED_TRACE(std::string("k=") + kv_type_name(c.k) + " v=" + kv_type_name(c.v) +
               " group=" + std::to_string(c.group) + " hd=" + std::to_string(c.hd) +
               " n_kv=" + std::to_string(c.n_kv) + " window=" + std::to_string(c.window) +
               " n_q=" + std::to_string(c.n_q) + " n_tokens=" + std::to_string(c.n_tokens) +
               " block=" + std::to_string(c.block_size) + " threads=" + std::to_string(c.threads));
  const int nh = c.group * c.n_kv;
  const testing::CodedKV kv(c.k, c.v, c.block_size, c.n_kv, c.hd, c.n_tokens, seed);
  const testing::PagedKV f32 = kv.dequantized(c.block_size, c.n_kv, c.hd, c.n_tokens);
  const auto q = testing::random_floats(size_t(c.n_q) * nh * c.hd, seed + 7, -1.f, 1.f);
  const AttentionParams p{nh, 1.f / std::sqrt(static_cast<float>(c.hd)), c.window};
  const int64_t q_pos0 = c.n_tokens - c.n_q;
  std::vector<float> want(q.size());
  reference::attention(p, q.data(), c.n_q, q_pos0, f32.view, want.data());
  ThreadPool pool(c.threads);
  testing::PathGuard guard;
  for (SimdPath path : testing::runnable_paths()) {
    set_simd_path(path);
    SCOPED_TRACE(simd_path_name(path));
    std::vector<float> got(q.size(), NAN);
    attention(pool, p, q.data(), c.n_q, q_pos0, kv.view, got.data());
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_NEAR(got[i], want[i], 2e-5f * (1 + std::abs(want[i]))) << "at " << i;
  }
}

TEST(KvQuantAttention, EqualsDequantizeThenReference) {
  const KvType I8 = KvType::kInt8, I4 = KvType::kInt4, F16 = KvType::kF16, F32 = KvType::kF32;
  uint32_t seed = 1;
  for (auto [k, v] : {std::pair{I8, I8}, {I4, I4}, {I8, I4}, {I4, I8}, {F16, F32}, {I4, F16}})
    for (int hd : {8, 16, 64, 96, 128}) {
      // Decode: one query deep in the cache (key splits across threads), GQA 3.
      check({k, v, 3, hd, 2, 0, 1, 301, 64, 3}, seed++);
      // Prefill: queries across blocks, tiles cut by block ends, a pending tail of 13 keys.
      check({k, v, 2, hd, 1, 0, 77, 237, 96, 2}, seed++);
      // Sliding window, GQA 1 and 4.
      check({k, v, 1, hd, 2, 50, 40, 170, 32, 1}, seed++);
      check({k, v, 4, hd, 1, 33, 9, 129, 64, 2}, seed++);
      // Decode with GQA 8 and 5: more query rows than one register group of 4.
      check({k, v, 8, hd, 1, 0, 1, 200, 64, 2}, seed++);
      check({k, v, 5, hd, 1, 0, 1, 150, 32, 1}, seed++);
    }
}

TEST(KvQuantAttention, ScratchDoesNotGrowWithContext) {
  ThreadPool pool(2);
  const AttentionParams p{8, 0.125f, 0};
  KVView a = coded_kv_view(KvType::kInt8, KvType::kInt4, 256, 2, 64, nullptr, nullptr, 1024);
  KVView b = a;
  b.n_tokens = 1 << 20;
  EXPECT_EQ(attention_scratch_bytes(pool, p, 1, a), attention_scratch_bytes(pool, p, 1, b));
  // And it covers the decoded tiles: 2 x 64 keys x 64 dims x 4 bytes per thread at least.
  KVView f = a;
  f.coded = false;
  EXPECT_GE(attention_scratch_bytes(pool, p, 1, a), attention_scratch_bytes(pool, p, 1, f) + 2 * 2 * 64 * 64 * 4);
}

}  // namespace
}  // namespace longctx::kernels
