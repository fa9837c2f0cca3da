// KVBlockPool: reference counts, reservations, LRU eviction of the prefix cache, copy-on-write and
// many sequences at once (docs/kv-cache.md).
#include "kv/block_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "kv/kv_cache.h"
#include "kv/kv_test_util.h"

namespace longctx {
namespace {

using testing::prefill;
using testing::PrefixKV;
using testing::stored_row;

KVCacheShape shape(int layers, int bs, std::vector<int64_t> windows = {}, KvType k = KvType::kF32,
                   KvType v = KvType::kF32) {
  return KVCacheShape{layers, 1, 8, k, v, bs, 1 << 20, std::move(windows)};
}

// Prompts that share nothing unless built from one another: tokens seed * 1000 + i.
std::vector<int32_t> tokens(int64_t n, int32_t seed) {
  std::vector<int32_t> t(n);
  for (int64_t i = 0; i < n; ++i) t[i] = seed * 1000 + int32_t(i);
  return t;
}

// Every position's keys and values that `kv` holds equal those of `want` (both over the same
// tokens), for the positions >= from that a query at the last position can see.
void expect_same_rows(const KVCache& kv, const KVCache& want, int64_t from = 0) {
  ASSERT_EQ(kv.n_tokens(), want.n_tokens());
  const KVCacheShape& s = kv.shape();
  const int64_t n = kv.n_tokens();
  for (int l = 0; l < s.n_layers; ++l) {
    const int64_t w = s.window(l);
    for (int64_t p = std::max(from, w > 0 ? n - w : 0); p < n; ++p)
      for (bool keys : {true, false}) {
        const auto a = stored_row(kv, l, p, keys), b = stored_row(want, l, p, keys);
        ASSERT_FALSE(b.empty()) << "layer " << l << " position " << p;
        ASSERT_EQ(a, b) << "layer " << l << " position " << p << (keys ? " keys" : " values");
      }
  }
}

TEST(KVBlockPool, SharedBlocksAndEveryReferenceComesBack) {
  const KVCacheShape s = shape(2, 16, {0, 20});
  KVBlockPool pool(s, 64);
  EXPECT_EQ(pool.stats().free, 64);
  const auto P = tokens(100, 1);
  const PrefixKV x(s, P);
  {
    KVCache a(pool, 200);
    prefill(a, P, x, 0, 100, 32, /*publish=*/true);
    // Publishing after each chunk registered all 6 full blocks before the window layer recycled
    // its early ones: 6 entries of 2 blocks.
    EXPECT_EQ(pool.stats().entries, 6);
    const int64_t a_blocks = int64_t(a.live_bytes() / s.bytes_per_layer_block());
    EXPECT_EQ(a_blocks, 7 + 3);  // full layer: blocks 0..6; window layer: 4..6
    EXPECT_EQ(pool.stats().used, a_blocks);
    EXPECT_EQ(pool.stats().cached_only, 4);  // the window layer's blocks 0..3

    KVCache b(pool, 200);
    EXPECT_EQ(b.adopt_prefix(P.data(), 100), 96);
    EXPECT_EQ(pool.ref_count(a.block_id(0, 0)), 3);  // a, the cache, b
    EXPECT_EQ(b.block_id(0, 5), a.block_id(0, 5));
    EXPECT_EQ(b.block_id(1, 3), -1);  // the window layer maps only what position 96 can see
    EXPECT_EQ(b.block_id(1, 4), a.block_id(1, 4));
    EXPECT_EQ(pool.stats().used, a_blocks);  // sharing took no new block
    prefill(b, P, x, 96, 100, 32);
    EXPECT_EQ(pool.stats().used, a_blocks + 2);  // block 6 of each layer is b's own
    expect_same_rows(b, a);
    EXPECT_EQ(pool.stats().hit_tokens, 96);
    EXPECT_EQ(pool.stats().miss_tokens, 4);
  }
  const auto st = pool.stats();
  EXPECT_EQ(st.used, 0);
  EXPECT_EQ(st.cached_only, 12);
  EXPECT_EQ(st.free + st.cached_only, 64);
  pool.clear_prefix_cache();
  EXPECT_EQ(pool.stats().free, 64);
  EXPECT_EQ(pool.stats().entries, 0);
}

TEST(KVBlockPool, ReservationsNeverExceedTheMaximum) {
  const KVCacheShape s = shape(2, 16, {0, 24});
  KVBlockPool pool(s, 20);
  // Full layer: ceil(100 / 16) = 7; window layer: ceil((23 + 32) / 16) + 1 = 5.
  EXPECT_EQ(pool.blocks_for(100, 32), 12);
  EXPECT_TRUE(pool.try_reserve(12));
  EXPECT_FALSE(pool.try_reserve(9));
  EXPECT_EQ(pool.stats().reserved, 12);
  EXPECT_TRUE(pool.try_reserve(8));
  EXPECT_FALSE(pool.try_reserve(1));
  pool.unreserve(8);
  EXPECT_EQ(pool.stats().reserved, 12);
  try {
    pool.unreserve(13);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInternal);
  }
  KVBlockPool unlimited(s);
  EXPECT_TRUE(unlimited.try_reserve(1'000'000));
}

// The cache may hold every block that is not in use; a reserved sequence still gets all it
// reserved, by evicting entries. Past its reservation, allocation is a broken invariant.
TEST(KVBlockPool, AllocationUnderReservationEvictsTheCache) {
  const KVCacheShape s = shape(2, 16);
  const int64_t need = 14;
  KVBlockPool pool(s, need);
  ASSERT_EQ(pool.blocks_for(100, 32), need);
  const auto A = tokens(100, 1);
  {
    ASSERT_TRUE(pool.try_reserve(need));
    KVCache a(pool, 100);
    prefill(a, A, PrefixKV(s, A), 0, 100, 32, true);
  }
  pool.unreserve(need);
  EXPECT_EQ(pool.stats().cached_only, 12);
  EXPECT_EQ(pool.stats().free, 2);

  // B shares A's first 50 tokens: it adopts 3 blocks, and needs 4 x 2 more than the 2 free.
  auto B = tokens(100, 2);
  std::copy(A.begin(), A.begin() + 50, B.begin());
  const PrefixKV xb(s, B);
  ASSERT_TRUE(pool.try_reserve(need));
  KVCache b(pool, 200);
  EXPECT_EQ(b.adopt_prefix(B.data(), 100), 48);
  prefill(b, B, xb, 48, 100, 32);
  EXPECT_EQ(pool.stats().used, need);
  EXPECT_EQ(pool.stats().free, 0);
  EXPECT_EQ(pool.stats().entries, 3);  // A's blocks 3..5 went, least recently used first
  KVCache fresh(s);
  prefill(fresh, B, xb, 0, 100, 100);
  expect_same_rows(b, fresh);
  try {
    b.prepare(100, 16);  // block 7 of each layer: beyond what b reserved
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInternal) << e.what();
  }
}

// A window layer's recycled block may be held by the cache alone while its entry's other blocks
// are in use: allocation takes it back (with the entries below it) rather than failing.
TEST(KVBlockPool, AllocationTakesBackRecycledWindowBlocks) {
  const KVCacheShape s = shape(2, 16, {0, 24});
  const int64_t need = 12;
  KVBlockPool pool(s, need);
  ASSERT_EQ(pool.blocks_for(100, 32), need);
  const auto A = tokens(100, 1);
  const PrefixKV x(s, A);
  ASSERT_TRUE(pool.try_reserve(need));
  {
    KVCache a(pool, 100);
    prefill(a, A, x, 0, 100, 32, true);  // 14 blocks written, at most 12 held
    KVCache fresh(s);
    prefill(fresh, A, x, 0, 100, 100);
    expect_same_rows(a, fresh);
    // The last chunk needed two blocks when only the window layer's recycled blocks 2 and 3 were
    // not in use: their entries went, with the entries after them (unreachable without them).
    EXPECT_EQ(pool.stats().entries, 2);
  }
  // What the cache kept is intact: a sequence adopting it computes the same cache.
  KVCache b(pool, 100);
  const int64_t m = b.adopt_prefix(A.data(), 100);
  EXPECT_EQ(m, 32);
  prefill(b, A, x, m, 100, 32);
  KVCache fresh(s);
  prefill(fresh, A, x, 0, 100, 100);
  expect_same_rows(b, fresh);
}

TEST(KVBlockPool, EvictsLeastRecentlyUsedLeavesFirst) {
  const KVCacheShape s = shape(1, 16);
  KVBlockPool pool(s, 7);
  const auto P = tokens(33, 1), Q = tokens(33, 2), R = tokens(33, 3);
  for (const auto* t : {&P, &Q, &R}) {  // each: 3 blocks, the first 2 cached
    KVCache c(pool, 64);
    prefill(c, *t, PrefixKV(s, *t), 0, 33, 33);
    c.publish_prefix(t->data(), 33);
  }
  EXPECT_EQ(pool.stats().carved, 7);
  EXPECT_EQ(pool.stats().cached_only, 6);
  {
    KVCache touch(pool, 64);  // P becomes the most recently used
    EXPECT_EQ(touch.adopt_prefix(P.data(), 33), 32);
  }
  // Oldest first: Q's blocks (its leaf q1, then q0), then R's leaf r1; never a parent before
  // its child.
  const auto N = tokens(49, 4);
  KVCache n(pool, 64);
  prefill(n, N, PrefixKV(s, N), 0, 33, 33);  // 1 free + q1 + q0
  EXPECT_EQ(pool.stats().entries, 4);
  prefill(n, N, PrefixKV(s, N), 33, 49, 16);  // r1
  EXPECT_EQ(pool.stats().entries, 3);
  EXPECT_EQ(pool.stats().free, 0);
  auto adopted = [&](const std::vector<int32_t>& t) {
    KVCache c(pool, 64);
    const int64_t m = c.adopt_prefix(t.data(), 33);
    if (m > 0) {  // and what it holds is still what was computed
      KVCache fresh(s);
      prefill(fresh, t, PrefixKV(s, t), 0, m, m);
      for (int64_t p = 0; p < m; ++p)
        EXPECT_EQ(stored_row(c, 0, p, true), stored_row(fresh, 0, p, true));
    }
    return m;
  };
  EXPECT_EQ(adopted(P), 32);
  EXPECT_EQ(adopted(Q), 0);
  EXPECT_EQ(adopted(R), 16);
}

// Rewinding into a published block and writing different tokens copies the block first: the
// cached prefix keeps what was computed. A block nobody else holds any more is written in place.
TEST(KVBlockPool, CopyOnWriteAfterTruncate) {
  // int4 keys: a rewind inside a group of 16 re-quantizes the group from dequantized keys, so it
  // would differ from a fresh cache; cut on the group boundary inside block 1 instead.
  for (auto [k, v, cut] :
       {std::tuple{KvType::kF32, KvType::kF32, 20}, std::tuple{KvType::kInt4, KvType::kInt8, 16}}) {
    SCOPED_TRACE(kv_type_name(k));
    const KVCacheShape s = shape(2, 16, {}, k, v);
    KVBlockPool pool(s);
    const auto P = tokens(40, 1);
    auto P2 = tokens(40, 2);
    std::copy(P.begin(), P.begin() + 20, P2.begin());
    KVCache a(pool, 100);
    prefill(a, P, PrefixKV(s, P), 0, 40, 40);
    a.publish_prefix(P.data(), 40);
    const int32_t b0 = a.block_id(0, 0), b1 = a.block_id(0, 1);
    EXPECT_EQ(pool.ref_count(b1), 2);
    a.truncate(cut);  // inside block 1
    prefill(a, P2, PrefixKV(s, P2), cut, 40, 40 - cut);
    EXPECT_EQ(a.block_id(0, 0), b0);   // not written: still shared
    EXPECT_NE(a.block_id(0, 1), b1);   // copied
    EXPECT_EQ(pool.ref_count(b1), 1);  // the cache's
    KVCache want2(s);
    prefill(want2, P2, PrefixKV(s, P2), 0, 40, 40);
    expect_same_rows(a, want2);

    KVCache b(pool, 100);
    ASSERT_EQ(b.adopt_prefix(P.data(), 40), 32);
    EXPECT_EQ(b.block_id(0, 1), b1);
    prefill(b, P, PrefixKV(s, P), 32, 40, 8);
    KVCache want(s);
    prefill(want, P, PrefixKV(s, P), 0, 40, 40);
    expect_same_rows(b, want);

    // Once the cache and b let go, a owns block 0 alone: a rewrite goes in place.
    pool.clear_prefix_cache();
    b.truncate(0);
    const int64_t carved = pool.stats().carved;
    a.truncate(5);
    prefill(a, P2, PrefixKV(s, P2), 5, 40, 35);
    EXPECT_EQ(a.block_id(0, 0), b0);
    EXPECT_EQ(pool.stats().carved, carved);
    expect_same_rows(a, want2, k == KvType::kInt4 ? 16 : 0);  // int4: group 0..15 re-quantized
  }
}

TEST(KVBlockPool, MisuseIsAnError) {
  const KVCacheShape s = shape(1, 16);
  KVBlockPool pool(s);
  const auto P = tokens(40, 1);
  KVCache a(pool, 100);
  prefill(a, P, PrefixKV(s, P), 0, 20, 20);
  EXPECT_THROW(a.adopt_prefix(P.data(), 40), Error);    // not empty
  EXPECT_THROW(a.publish_prefix(P.data(), 21), Error);  // beyond what it holds
  EXPECT_THROW(pool.release(a.block_id(0, 5)), Error);  // no such block
  EXPECT_THROW({ KVBlockPool p(shape(1, 8, {}, KvType::kInt4, KvType::kF16)); }, Error);
  EXPECT_EQ(a.n_tokens(), 20);
}

// Many sequences over one pool from several threads: prompts share prefixes, admission waits for
// room, every sequence ends with exactly the cache it would have computed alone, and every block
// comes back.
TEST(KVBlockPool, ManySequencesConcurrently) {
  KVCacheShape s{2, 2, 16, KvType::kInt4, KvType::kInt8, 16, 1 << 20, {0, 40}};
  const int64_t max_blocks = 60;
  KVBlockPool pool(s, max_blocks);
  const int kThreads = 6, kSeqs = 10, kGen = 6, kChunk = 32;
  std::vector<std::vector<int32_t>> bases = {tokens(64, 1), tokens(64, 2), tokens(64, 3)};
  std::mutex mu;
  std::vector<std::string> failures;
  std::atomic<int64_t> adopted{0};
  auto worker = [&](int t) {
    std::mt19937 rng(t + 1);
    for (int i = 0; i < kSeqs; ++i) {
      try {
        std::vector<int32_t> prompt(bases[(t + i) % 3].begin(),
                                    bases[(t + i) % 3].begin() + 16 + rng() % 49);
        for (int j = int(rng() % 40); j > 0; --j) prompt.push_back(int32_t(rng() % 50000));
        std::vector<int32_t> all = prompt;
        for (int j = 0; j < kGen; ++j) all.push_back(int32_t(rng() % 50000));
        const int64_t n = int64_t(prompt.size()), total = int64_t(all.size());
        const PrefixKV x(s, all);
        const int64_t need = pool.blocks_for(total, kChunk);
        while (!pool.try_reserve(need)) std::this_thread::yield();
        {
          KVCache kv(pool, total);
          const int64_t m = kv.adopt_prefix(prompt.data(), n);
          adopted += m;
          prefill(kv, all, x, m, n, kChunk, true);
          prefill(kv, all, x, n, total, 1);  // decode
          KVCache want(s);
          prefill(want, all, x, 0, total, kChunk);
          expect_same_rows(kv, want);
          if (::testing::Test::HasFailure()) throw std::runtime_error("rows differ");
        }
        pool.unreserve(need);
      } catch (const std::exception& e) {
        std::lock_guard lock(mu);
        failures.push_back("thread " + std::to_string(t) + " seq " + std::to_string(i) + ": " +
                           e.what());
        return;
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(worker, t);
  for (auto& th : threads) th.join();
  for (const auto& f : failures) ADD_FAILURE() << f;
  EXPECT_GT(adopted.load(), 0);
  const auto st = pool.stats();
  EXPECT_EQ(st.used, 0);
  EXPECT_EQ(st.reserved, 0);
  EXPECT_EQ(st.free + st.cached_only, max_blocks);
  EXPECT_EQ(st.hit_tokens, adopted.load());
  pool.clear_prefix_cache();
  EXPECT_EQ(pool.stats().free, max_blocks);
}

}  // namespace
}  // namespace longctx
