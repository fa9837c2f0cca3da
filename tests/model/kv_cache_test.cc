#include "kv/kv_cache.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace longctx {
namespace {

TEST(KVCache, BytesPerTokenMatchesHandFormula) {
  // Llama 3 8B: 32 layers x 8 kv heads x 128 dims x 2 bytes x 2 (K and V) = 131072 bytes.
  KVCacheShape s{32, 8, 128, DType::kF16, 256, 8192, {}};
  EXPECT_EQ(s.bytes_per_token(), 131072u);
  EXPECT_EQ(s.bytes_per_token() * 8192, 1073741824u);
}

TEST(KVCache, GrowsInBlocksAndReadsBackAcrossBlockBoundaries) {
  KVCacheShape s{2, 3, 4, DType::kF32, 5, 100, {}};
  KVCache kv(s);
  EXPECT_EQ(kv.allocated_bytes(), 0u);
  const int64_t n = 12;  // spans three blocks of 5
  std::vector<float> k(n * 3 * 4), v(n * 3 * 4);
  for (size_t i = 0; i < k.size(); ++i) {
    k[i] = static_cast<float>(i);
    v[i] = -static_cast<float>(i);
  }
  kv.prepare(0, 7);
  EXPECT_EQ(kv.allocated_bytes(), 2 * 2 * s.bytes_per_layer_block());  // 2 layers x 2 blocks
  kv.prepare(7, n - 7);
  EXPECT_EQ(kv.allocated_bytes(), 2 * 3 * s.bytes_per_layer_block());
  for (int l = 0; l < 2; ++l) {
    kv.write(l, 0, 7, k.data(), v.data());
    kv.write(l, 7, n - 7, k.data() + 7 * 12, v.data() + 7 * 12);
  }
  EXPECT_EQ(kv.n_tokens(), n);
  const kernels::KVView view = kv.view(1, n);
  for (int64_t t = 0; t < n; ++t)
    for (int h = 0; h < 3; ++h)
      for (int d = 0; d < 4; ++d) {
        const float* kb = static_cast<const float*>(view.k_blocks[t / 5]);
        const float* vb = static_cast<const float*>(view.v_blocks[t / 5]);
        const size_t at = (h * 5 + t % 5) * 4 + d;
        ASSERT_EQ(kb[at], k[(t * 3 + h) * 4 + d]);
        ASSERT_EQ(vb[at], v[(t * 3 + h) * 4 + d]);
      }
}

TEST(KVCache, RefusesPastCapacity) {
  KVCache kv(KVCacheShape{1, 1, 2, DType::kF16, 4, 10, {}});
  kv.prepare(0, 10);
  try {
    kv.prepare(10, 1);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kOutOfRange);
    EXPECT_NE(std::string(e.what()).find("-c"), std::string::npos);
  }
}

// A sliding-window layer recycles the blocks its queries can no longer see, so its memory stops
// growing once the window is full; a full-attention layer keeps everything.
TEST(KVCache, SlidingWindowLayerStopsGrowing) {
  // Layer 0 full, layer 1 window 8; blocks of 4 tokens; decode one token at a time.
  KVCacheShape s{2, 1, 2, DType::kF32, 4, 1000, {0, 8}};
  KVCache kv(s);
  const std::vector<float> k = {1, 2}, v = {3, 4};
  size_t live_at_64 = 0;
  for (int64_t pos = 0; pos < 200; ++pos) {
    kv.prepare(pos, 1);
    kv.write(0, pos, 1, k.data(), v.data());
    kv.write(1, pos, 1, k.data(), v.data());
    const kernels::KVView w = kv.view(1, pos + 1);
    // Every key the query at `pos` can see is present.
    for (int64_t j = std::max<int64_t>(0, pos - 7); j <= pos; ++j)
      ASSERT_NE(w.k_blocks[j / 4], nullptr) << pos << " " << j;
    if (pos == 64) live_at_64 = kv.live_bytes();
  }
  const size_t full_layer = 50 * s.bytes_per_layer_block();  // 200 tokens / 4
  // Window layer: at most (8 - 1 + 1) / 4 + 1 = 3 blocks.
  EXPECT_LE(kv.live_bytes(), full_layer + 3 * s.bytes_per_layer_block());
  EXPECT_EQ(s.max_blocks(1, 1000, 1), 3);
  // Recycled blocks are reused: allocation tracks the live set, not the sequence.
  EXPECT_LE(kv.allocated_bytes(), full_layer + 4 * s.bytes_per_layer_block());
  EXPECT_GT(kv.live_bytes(), live_at_64);  // the full layer kept growing
  EXPECT_THROW(kv.truncate(10), Error);     // the window layer dropped keys position 10 needs
  kv.truncate(0);
  EXPECT_EQ(kv.n_tokens(), 0);
  EXPECT_EQ(kv.live_bytes(), 0u);
}

}  // namespace
}  // namespace longctx
