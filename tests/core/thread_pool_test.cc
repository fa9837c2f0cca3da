#include "core/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <vector>

namespace longctx {
namespace {

TEST(ThreadPool, ParallelForCoversRangeOnce) {
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 5, 17, 1000}) {
      std::vector<std::atomic<int>> hits(n);
      pool.parallel_for(n, 4, [&](int64_t b, int64_t e, int t) {
        EXPECT_LT(t, threads);
        if (b != 0) {
          EXPECT_EQ(b % 4, 0);
        }
        for (int64_t i = b; i < e; ++i) hits[i]++;
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << n << " " << i;
    }
  }
}

TEST(ThreadPool, RunVisitsEveryThreadIndex) {
  ThreadPool pool(4);
  for (int rep = 0; rep < 100; ++rep) {
    std::atomic<int> mask{0};
    pool.run([&](int t) { mask |= 1 << t; });
    ASSERT_EQ(mask.load(), 0xf);
  }
}

// Per-thread scratch relies on this: two calls with the same thread index never overlap, and
// every index is below size().
TEST(ThreadPool, ThreadIndexIsNeverBusyTwice) {
  for (int threads : {2, 3, 5}) {
    ThreadPool pool(threads);
    std::vector<std::atomic<int>> busy(threads);
    std::atomic<int64_t> covered{0};
    for (int rep = 0; rep < 200; ++rep) {
      pool.parallel_for(997, 3, [&](int64_t b, int64_t e, int t) {
        ASSERT_LT(t, threads);
        EXPECT_EQ(busy[t].exchange(1), 0) << "thread index " << t << " runs two chunks at once";
        for (int spin = 0; spin < 200; ++spin) std::atomic_signal_fence(std::memory_order_seq_cst);
        covered += e - b;
        busy[t].store(0);
      });
    }
    EXPECT_EQ(covered.load(), 200 * 997);
  }
}

// Jobs of both kinds back to back, many times: every job sees only its own work.
TEST(ThreadPool, RunAndParallelForInterleave) {
  ThreadPool pool(3);
  for (int rep = 0; rep < 2000; ++rep) {
    const int64_t n = 1 + rep % 37;
    std::vector<std::atomic<int>> hits(n);
    pool.parallel_for(n, 1 + rep % 3, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) hits[i]++;
    });
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << rep << " " << i;
    if (rep % 3 == 0) {
      std::atomic<int> mask{0};
      pool.run([&](int t) { mask |= 1 << t; });
      ASSERT_EQ(mask.load(), 0x7) << rep;
    }
  }
}

}  // namespace
}  // namespace longctx
