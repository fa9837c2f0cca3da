#include "kv/kv_cache.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace longctx {
namespace {

TEST(KVCache, BytesPerTokenMatchesHandFormula) {
  // Llama 3 8B: 32 layers x 8 kv heads x 128 dims x 2 bytes x 2 (K and V) = 131072 bytes.
  KVCacheShape s{32, 8, 128, DType::kF16, 256, 8192};
  EXPECT_EQ(s.bytes_per_token(), 131072u);
  EXPECT_EQ(s.bytes_per_token() * 8192, 1073741824u);
}

TEST(KVCache, GrowsInBlocksAndReadsBackAcrossBlockBoundaries) {
  KVCacheShape s{2, 3, 4, DType::kF32, 5, 100};
  KVCache kv(s);
  EXPECT_EQ(kv.allocated_bytes(), 0u);
  const int64_t n = 12;  // spans three blocks of 5
  std::vector<float> k(n * 3 * 4), v(n * 3 * 4);
  for (size_t i = 0; i < k.size(); ++i) {
    k[i] = static_cast<float>(i);
    v[i] = -static_cast<float>(i);
  }
  kv.reserve(7);
  EXPECT_EQ(kv.allocated_bytes(), 2 * s.bytes_per_block());
  kv.reserve(n);
  EXPECT_EQ(kv.allocated_bytes(), 3 * s.bytes_per_block());
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
  KVCache kv(KVCacheShape{1, 1, 2, DType::kF16, 4, 10});
  kv.reserve(10);
  try {
    kv.reserve(11);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kOutOfRange);
    EXPECT_NE(std::string(e.what()).find("-c"), std::string::npos);
  }
}

}  // namespace
}  // namespace longctx
