#include "core/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <new>

#include "core/error.h"

#if defined(__linux__)
#include <sched.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LONGCTX_CPU_RELAX() _mm_pause()
#else
#define LONGCTX_CPU_RELAX() std::this_thread::yield()
#endif

namespace longctx {

namespace {
// How long a thread spins for the next job / the end of a job before blocking.
constexpr auto kSpin = std::chrono::microseconds(100);

// Spins until pred() holds or kSpin passes; returns pred().
template <typename Pred>
bool spin_until(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + kSpin;
  for (int i = 0;; ++i) {
    if (pred()) return true;
    LONGCTX_CPU_RELAX();
    if ((i & 63) == 63 && std::chrono::steady_clock::now() > deadline) return pred();
  }
}
}  // namespace

int ThreadPool::default_threads() {
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
#endif
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

ThreadPool::ThreadPool(int n_threads) {
  if (n_threads <= 0) n_threads = default_threads();
  n_threads_ = n_threads;
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
  }
  cv_start_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  for (;;) {
    auto ready = [&] { return stop_.load() || generation_.load() != seen; };
    if (!spin_until(ready)) {
      std::unique_lock<std::mutex> lock(mu_);
      sleepers_.fetch_add(1);
      cv_start_.wait(lock, ready);
      sleepers_.fetch_sub(1);
    }
    if (stop_.load()) return;
    seen = generation_.load();
    if (seen & 1) {
      run_chunks(seen, index);  // parallel_for: nothing to report if the chunks were all taken
      continue;
    }
    try {
      (*job_)(index);
    } catch (...) {
      capture(std::current_exception());
    }
    if (pending_.fetch_sub(1) == 1 && caller_waiting_.load()) {
      std::lock_guard<std::mutex> lock(mu_);
      cv_done_.notify_one();
    }
  }
}

namespace {
constexpr int kChunkBits = 24;
constexpr uint64_t kChunkMask = (uint64_t{1} << kChunkBits) - 1;
constexpr uint64_t kGenMask = (uint64_t{1} << (64 - kChunkBits)) - 1;
// Chunks per thread: enough that a late or preempted thread's share is picked up by the others,
// few enough that claiming costs nothing next to a chunk.
constexpr int64_t kChunksPerThread = 4;

// The next generation after g with the given parity (0: run, 1: parallel_for).
uint64_t next_generation(uint64_t g, uint64_t parity) {
  ++g;
  return (g & 1) == parity ? g : g + 1;
}
}  // namespace

int64_t ThreadPool::run_chunks(uint64_t gen, int index) {
  int64_t ran = 0;
  for (;;) {
    uint64_t w = claim_.load(std::memory_order_acquire);
    if ((w >> kChunkBits) != (gen & kGenMask) || (w & kChunkMask) == 0) return ran;
    if (!claim_.compare_exchange_weak(w, w - 1, std::memory_order_acq_rel)) continue;
    // The job stays alive until every chunk is done, so its fields are safe to read here.
    const int64_t c = for_chunks_ - static_cast<int64_t>(w & kChunkMask);
    const int64_t b = c * for_chunk_;
    // After a failure the remaining chunks are claimed and counted but not run.
    if (!failed_.load(std::memory_order_relaxed)) {
      try {
        (*for_fn_)(b, std::min(for_n_, b + for_chunk_), index);
      } catch (...) {
        capture(std::current_exception());
      }
    }
    ++ran;
    if (done_.fetch_add(1) + 1 == for_chunks_ && index != 0 && caller_waiting_.load()) {
      std::lock_guard<std::mutex> lock(mu_);
      cv_done_.notify_one();
    }
  }
}

namespace {
// What the caller of a job receives: an Error as thrown; std::bad_alloc (a scratch buffer the
// system refused) as Error(kMemory), so that it reads like every other memory refusal.
[[noreturn]] void rethrow_as_error(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::bad_alloc&) {
    throw Error(ErrorKind::kMemory,
                "the system refused a memory allocation inside a parallel kernel (std::bad_alloc); "
                "free memory, or lower -t (per-thread scratch), --prefill-chunk or -c");
  }
}
}  // namespace

void ThreadPool::capture(std::exception_ptr e) {
  std::lock_guard<std::mutex> lock(error_mu_);
  if (!error_) error_ = std::move(e);
  failed_.store(true, std::memory_order_relaxed);
}

void ThreadPool::rethrow_captured() {
  if (!failed_.load()) return;
  std::exception_ptr e;
  {
    std::lock_guard<std::mutex> lock(error_mu_);
    e = std::move(error_);
    error_ = nullptr;
  }
  failed_.store(false);
  rethrow_as_error(e);
}

void ThreadPool::run(const std::function<void(int)>& fn) {
  if (n_threads_ == 1) {
    try {
      fn(0);
    } catch (const std::bad_alloc&) {
      rethrow_as_error(std::current_exception());
    }
    return;
  }
  job_ = &fn;
  pending_.store(n_threads_ - 1);
  generation_.store(next_generation(generation_.load(), 0));  // publishes job_ and pending_
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lock(mu_);
    cv_start_.notify_all();
  }
  try {
    fn(0);
  } catch (...) {
    capture(std::current_exception());  // the workers still hold fn: wait for them first
  }
  auto done = [&] { return pending_.load() == 0; };
  if (!spin_until(done)) {
    std::unique_lock<std::mutex> lock(mu_);
    caller_waiting_.store(true);
    cv_done_.wait(lock, done);
    caller_waiting_.store(false);
  }
  rethrow_captured();
}

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t n_grains = (n + grain - 1) / grain;
  if (n_threads_ == 1 || n_grains == 1) {
    try {
      fn(0, n, 0);
    } catch (const std::bad_alloc&) {
      rethrow_as_error(std::current_exception());
    }
    return;
  }
  const int64_t target = std::min<int64_t>(n_grains, n_threads_ * kChunksPerThread);
  for_chunk_ = (n_grains + target - 1) / target * grain;
  for_chunks_ = (n + for_chunk_ - 1) / for_chunk_;
  for_n_ = n;
  for_fn_ = &fn;
  done_.store(0);
  const uint64_t gen = next_generation(generation_.load(), 1);
  claim_.store(((gen & kGenMask) << kChunkBits) | static_cast<uint64_t>(for_chunks_));
  generation_.store(gen);
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lock(mu_);
    cv_start_.notify_all();
  }
  run_chunks(gen, 0);
  auto done = [&] { return done_.load() == for_chunks_; };
  if (!spin_until(done)) {
    std::unique_lock<std::mutex> lock(mu_);
    caller_waiting_.store(true);
    cv_done_.wait(lock, done);
    caller_waiting_.store(false);
  }
  rethrow_captured();
}

}  // namespace longctx
