// A fixed pool of worker threads for fork-join parallel loops. The calling thread takes part as
// worker 0, so ThreadPool(1) runs everything inline with no thread created.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace longctx {

class ThreadPool {
 public:
  // n_threads <= 0 means all hardware threads.
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Runs fn(thread_index) once on each of the size() threads and waits for all of them.
  void run(const std::function<void(int)>& fn);

  // Splits [0, n) into contiguous ranges, at most one per thread, each a multiple of `grain`
  // (except the last), and runs fn(begin, end, thread_index) for each; waits for all.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn);

 private:
  void worker_loop(int index);

  // Workers spin on generation_ for a short while after each job (decode calls the pool many
  // times per token, microseconds apart), then sleep on cv_start_; the caller likewise spins on
  // pending_ before sleeping on cv_done_. sleepers_ / caller_waiting_ tell the other side whether
  // a notify is needed (seq_cst on both sides, so a wake-up is never lost).
  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_start_;
  std::condition_variable cv_done_;
  const std::function<void(int)>* job_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> caller_waiting_{false};
  std::atomic<bool> stop_{false};
};

}  // namespace longctx
