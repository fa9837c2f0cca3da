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

}  // namespace
}  // namespace longctx
