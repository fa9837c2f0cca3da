#include "kv/kv_cache.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/huge_pages.h"

namespace longctx {
namespace {

TEST(KVCache, BytesPerTokenMatchesHandFormula) {
  // Llama 3 8B: 32 layers x 8 kv heads x 128 dims x 2 bytes x 2 (K and V) = 131072 bytes.
  KVCacheShape s{32, 8, 128, KvType::kF16, KvType::kF16, 256, 8192, {}};
  EXPECT_EQ(s.bytes_per_token(), 131072u);
  EXPECT_EQ(s.bytes_per_token() * 8192, 1073741824u);
}

TEST(KVCache, GrowsInBlocksAndReadsBackAcrossBlockBoundaries) {
  KVCacheShape s{2, 3, 4, KvType::kF32, KvType::kF32, 5, 100, {}};
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

TEST(KVCache, BlocksSpanSeveralSlabsAndStayDistinct) {
  // 1 layer x 8 heads x 64 dims x 1024 tokens x f32 x 2 = 4 MiB per block: four fill a 16 MiB
  // slab, so 11 blocks use three slabs. Every block is written with its own pattern.
  KVCacheShape s{1, 8, 64, KvType::kF32, KvType::kF32, 1024, 11 * 1024, {}};
  KVCache kv(s);
  const int64_t n = 11 * 1024;
  std::vector<float> k(static_cast<size_t>(n) * 8 * 64), v(k.size());
  for (size_t i = 0; i < k.size(); ++i) {
    k[i] = static_cast<float>(i % 9973);
    v[i] = -static_cast<float>(i % 7919);
  }
  kv.prepare(0, n);
  kv.write(0, 0, n, k.data(), v.data());
  EXPECT_EQ(kv.allocated_bytes(), 11 * s.bytes_per_layer_block());
  const kernels::KVView view = kv.view(0, n);
  for (int64_t t = 0; t < n; t += 37)
    for (int h = 0; h < 8; h += 3) {
      const float* kb = static_cast<const float*>(view.k_blocks[t / 1024]);
      const float* vb = static_cast<const float*>(view.v_blocks[t / 1024]);
      const size_t at = (h * 1024 + t % 1024) * 64 + 5;
      ASSERT_EQ(kb[at], k[(t * 8 + h) * 64 + 5]) << t;
      ASSERT_EQ(vb[at], v[(t * 8 + h) * 64 + 5]) << t;
    }
}

TEST(KVCache, BlockLargerThanASlabGetsItsOwn) {
  // 2 x 32 x 128 x 1024 x f32 = 32 MiB per block, more than one 16 MiB slab.
  KVCacheShape s{1, 32, 128, KvType::kF32, KvType::kF32, 1024, 2048, {}};
  KVCache kv(s);
  std::vector<float> k(size_t{1025} * 32 * 128, 1.5f), v(k.size(), -2.5f);
  kv.prepare(0, 1025);
  kv.write(0, 0, 1025, k.data(), v.data());
  const kernels::KVView view = kv.view(0, 1025);
  const size_t last = size_t{32} * 1024 * 128 - 1;  // the last value of block 0
  EXPECT_EQ(static_cast<const float*>(view.k_blocks[0])[last], 1.5f);
  EXPECT_EQ(static_cast<const float*>(view.v_blocks[0])[last], -2.5f);
  EXPECT_EQ(static_cast<const float*>(view.k_blocks[1])[0], 1.5f);
  EXPECT_EQ(static_cast<const float*>(view.v_blocks[1])[127], -2.5f);
}

TEST(KVCache, SlabsEndOnHugePageBoundaries) {
  const size_t MiB = size_t{1} << 20, huge = HugePageBuffer::kHugePage;
  // Phi-3-mini f16: 32 kv heads x 96 dims x 256 tokens x 2 bytes x 2 = 3 MiB; SmolLM2: 192 KiB;
  // Llama 3 8B: 1 MiB; a block bigger than the minimum slab.
  for (size_t stride : {3 * MiB, 192 * size_t{1024}, MiB, 17 * MiB}) {
    const size_t slab = kv_slab_bytes(stride);
    EXPECT_GE(slab, 16 * MiB) << stride;
    EXPECT_EQ(slab % stride, 0u) << stride;
    EXPECT_EQ(slab % huge, 0u) << stride;
  }
  EXPECT_EQ(kv_slab_bytes(3 * MiB), 18 * MiB);  // 6 blocks, 9 huge pages
  EXPECT_EQ(kv_slab_bytes(MiB), 16 * MiB);
  // Strides with few factors of two: as many whole blocks as fit in 16 MiB, so less than one
  // block of each slab's 8 huge pages is left empty. SmolLM2 int8: 3 heads x 256 x 68 bytes x 2.
  for (size_t odd : {size_t{64} * 4099, size_t{3} * 256 * 68 * 2}) {
    EXPECT_EQ(kv_slab_bytes(odd) % odd, 0u) << odd;
    EXPECT_LE(kv_slab_bytes(odd), 16 * MiB) << odd;
    EXPECT_GT(kv_slab_bytes(odd), 16 * MiB - odd) << odd;
  }
  EXPECT_EQ(kv_slab_bytes(20 * MiB + 64), 20 * MiB + 64);  // one block when it is bigger
}

TEST(KVCache, RefusesPastCapacity) {
  KVCache kv(KVCacheShape{1, 1, 2, KvType::kF16, KvType::kF16, 4, 10, {}});
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
  KVCacheShape s{2, 1, 2, KvType::kF32, KvType::kF32, 4, 1000, {0, 8}};
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

// Keys (position p, head h) as the attention kernel will see them: decoded from the block, or the
// f32 pending group of int4 keys.
std::vector<float> visible_key(const KVCache& kv, int layer, int64_t p, int h) {
  const KVCacheShape& s = kv.shape();
  const kernels::KVView w = kv.view(layer, kv.n_tokens());
  std::vector<float> out(s.head_dim);
  if (p >= w.k_pending_from) {
    const float* src = w.k_pending + (size_t(h) * kernels::kKvChannelGroup + (p - w.k_pending_from)) * s.head_dim;
    std::copy(src, src + s.head_dim, out.begin());
    return out;
  }
  const size_t sec = kernels::kv_row_bytes(s.k_type, s.head_dim, true) * s.block_size;
  kernels::kv_decode(s.k_type, true,
                     static_cast<const uint8_t*>(w.k_blocks[p / s.block_size]) + h * sec,
                     s.block_size, int(p % s.block_size), 1, s.head_dim, out.data());
  return out;
}

TEST(KVCache, QuantizedBytesPerTokenMatchHandFormula) {
  // Llama 3 8B, int4 K and V: keys 64 bytes + (2 + 2) x 128 / 16 per token, values 64 + 4 x 4.
  KVCacheShape s{32, 8, 128, KvType::kInt4, KvType::kInt4, 256, 8192, {}};
  EXPECT_EQ(s.bytes_per_token(), 32u * 8 * ((64 + 32) + (64 + 16)));
  EXPECT_EQ(s.fixed_bytes(), 32u * 8 * 16 * 128 * 4);  // the f32 group of newest keys
  s.k_type = KvType::kInt8;
  s.v_type = KvType::kF16;
  EXPECT_EQ(s.bytes_per_token(), 32u * 8 * ((128 + 8) + 256));
  EXPECT_EQ(s.fixed_bytes(), 0u);
  EXPECT_EQ(s.bytes_per_layer_block() * 256 / 256, 8u * 256 * (136 + 256));
}

// int4 keys are quantized per channel once their group of 16 tokens is complete: whatever the
// write pattern (one token at a time, odd chunks, all at once), the cache holds the same keys.
TEST(KVCache, Int4KeysSameWhateverTheChunking) {
  const int hd = 32, nkv = 2, n = 75;
  KVCacheShape s{1, nkv, hd, KvType::kInt4, KvType::kInt8, 32, 200, {}};
  std::vector<float> k(n * nkv * hd), v(k.size());
  for (size_t i = 0; i < k.size(); ++i) {
    k[i] = std::sin(0.37f * float(i)) * float(1 + i % 5);
    v[i] = std::cos(0.11f * float(i));
  }
  auto fill = [&](KVCache& kv, const std::vector<int64_t>& chunks) {
    int64_t pos = 0;
    for (int64_t c : chunks) {
      kv.prepare(pos, c);
      kv.write(0, pos, c, k.data() + pos * nkv * hd, v.data() + pos * nkv * hd);
      pos += c;
    }
    ASSERT_EQ(pos, n);
  };
  KVCache whole(s), ones(s), odd(s);
  fill(whole, {n});
  fill(ones, std::vector<int64_t>(n, 1));
  fill(odd, {7, 20, 1, 30, 17});
  for (int64_t p = 0; p < n; ++p)
    for (int h = 0; h < nkv; ++h) {
      const auto a = visible_key(whole, 0, p, h);
      ASSERT_EQ(a, visible_key(ones, 0, p, h)) << p;
      ASSERT_EQ(a, visible_key(odd, 0, p, h)) << p;
      // Positions past the last whole group (64..74) are exact; the others within int4 error.
      for (int d = 0; d < hd; ++d) {
        const float x = k[(p * nkv + h) * hd + d];
        if (p >= 64) ASSERT_EQ(a[d], x);
        else ASSERT_NEAR(a[d], x, 10.f / 15 / 2 * 1.01f);  // a channel spans <= 10: s <= 10/15
      }
    }
  // Rewinding into a quantized group reopens it; rewriting gives the same cache again.
  whole.truncate(40);
  EXPECT_EQ(whole.n_tokens(), 40);
  whole.prepare(40, n - 40);
  whole.write(0, 40, n - 40, k.data() + 40 * nkv * hd, v.data() + 40 * nkv * hd);
  for (int64_t p = 48; p < n; ++p)
    for (int h = 0; h < nkv; ++h) ASSERT_EQ(visible_key(whole, 0, p, h), visible_key(odd, 0, p, h)) << p;
}

TEST(KVCache, Int4NeedsAnEvenHeadDim) {
  KVCacheShape s{1, 1, 7, KvType::kInt4, KvType::kF32, 32, 100, {}};
  try {
    KVCache kv(s);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("int8"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace longctx
