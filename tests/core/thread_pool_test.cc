#include "core/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"

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

// After a job threw, the pool runs the next one in full, with no stale exception.
void expect_usable(ThreadPool& pool) {
  std::vector<std::atomic<int>> hits(257);
  pool.parallel_for(257, 2, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) hits[i]++;
  });
  for (size_t i = 0; i < hits.size(); ++i) ASSERT_EQ(hits[i].load(), 1) << i;
  std::atomic<int> mask{0};
  pool.run([&](int t) { mask |= 1 << t; });
  EXPECT_EQ(mask.load(), (1 << pool.size()) - 1);
}

// Issue 19 item 5: an Error thrown on a worker thread (not the caller) reaches the caller as the
// same Error instead of std::terminate.
TEST(ThreadPool, WorkerErrorReachesTheCaller) {
  ThreadPool pool(4);
  int worker_threw = 0;
  for (int rep = 0; rep < 50; ++rep) {
    std::atomic<int> thrown{0};
    try {
      pool.parallel_for(64, 1, [&](int64_t b, int64_t, int t) {
        if (t != 0) {
          thrown++;
          throw Error(ErrorKind::kMemory, "scratch of chunk " + std::to_string(b));
        }
        // The caller is slow, so that the workers take chunks too.
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      });
      EXPECT_EQ(thrown.load(), 0) << "a worker threw but the caller saw nothing";
    } catch (const Error& e) {
      EXPECT_GT(thrown.load(), 0);
      EXPECT_EQ(e.kind(), ErrorKind::kMemory);
      EXPECT_EQ(std::string(e.what()).rfind("scratch of chunk ", 0), 0u) << e.what();
      ++worker_threw;
    }
    expect_usable(pool);
  }
  EXPECT_GT(worker_threw, 0) << "no worker ever took a chunk; the test proved nothing";
}

// Every chunk throws: the first exception is kept, the others are dropped, the remaining chunks
// are skipped, and the caller gets one of the thrown Errors.
TEST(ThreadPool, FirstOfManyErrorsIsKept) {
  ThreadPool pool(3);
  std::atomic<int> ran{0};
  try {
    pool.parallel_for(1000, 1, [&](int64_t b, int64_t, int) {
      ran++;
      throw Error(ErrorKind::kShape, "chunk " + std::to_string(b));
    });
    FAIL() << "no exception";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kShape);
    EXPECT_EQ(std::string(e.what()).rfind("chunk ", 0), 0u) << e.what();
  }
  // 12 chunks (4 per thread); after the first failure each thread runs at most the chunk it had.
  EXPECT_LE(ran.load(), 3 + 3);
  expect_usable(pool);
}

TEST(ThreadPool, RunErrorOnAWorkerReachesTheCaller) {
  ThreadPool pool(4);
  for (int thrower : {0, 2, 3}) {
    std::atomic<int> visited{0};
    try {
      pool.run([&](int t) {
        visited++;
        if (t == thrower) throw Error(ErrorKind::kIo, "thread " + std::to_string(t));
      });
      FAIL() << "no exception";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()), "thread " + std::to_string(thrower));
    }
    EXPECT_EQ(visited.load(), 4) << "the caller returned before every thread finished";
    expect_usable(pool);
  }
}

// An allocation failure in a worker's scratch buffer arrives as Error(kMemory), on one thread or
// many.
TEST(ThreadPool, BadAllocBecomesAMemoryError) {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    try {
      pool.parallel_for(100, 1, [&](int64_t, int64_t, int) { throw std::bad_alloc(); });
      FAIL() << "no exception";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kMemory);
      EXPECT_NE(std::string(e.what()).find("-t"), std::string::npos) << e.what();
    }
    try {
      pool.run([&](int t) {
        if (t == threads - 1) throw std::bad_alloc();
      });
      FAIL() << "no exception";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kMemory);
    }
    expect_usable(pool);
  }
}

}  // namespace
}  // namespace longctx
