// A fixed pool of worker threads for fork-join parallel loops. The calling thread takes part as
// worker 0, so ThreadPool(1) runs everything inline with no thread created.
//
// Exceptions: a job that throws on any thread (an Error, or std::bad_alloc from a scratch buffer)
// never reaches std::terminate. The first exception is kept, the job's remaining chunks are
// skipped, and once every thread has left the job the caller of run() / parallel_for() receives
// it: an Error as thrown, std::bad_alloc as Error(kMemory); later exceptions of the same job are
// dropped. The pool stays usable for the next job.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace longctx {

class ThreadPool {
 public:
  // n_threads <= 0 means default_threads().
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }
  // Threads this process may run on at once: the CPUs of its affinity mask (taskset, cgroup
  // cpusets), else all hardware threads. What n_threads <= 0 means.
  static int default_threads();

  // Runs fn(thread_index) once on each of the size() threads and waits for all of them.
  void run(const std::function<void(int)>& fn);

  // Splits [0, n) into contiguous chunks, each a multiple of `grain` long (except the last), and
  // runs fn(begin, end, thread_index) once per chunk; waits for all. Threads take chunks as they
  // come (a few per thread), so a thread the OS has not scheduled yet holds nobody up: the others
  // do its share. thread_index identifies the calling thread (for per-thread scratch): calls with
  // the same index never overlap, but one thread may run several chunks.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn);

 private:
  void worker_loop(int index);
  // Keeps `e` unless an exception of this job is kept already.
  void capture(std::exception_ptr e);
  // After a job: rethrows what capture() kept (and clears it).
  void rethrow_captured();
  // Claims and runs chunks of the parallel_for job of generation `gen` until none is left;
  // returns the number run.
  int64_t run_chunks(uint64_t gen, int index);

  // Jobs are published by bumping generation_ (even: run(), odd: parallel_for()). Workers spin on
  // it for a short while after each job (decode calls the pool many times per token,
  // microseconds apart), then sleep on cv_start_; the caller likewise spins before sleeping on
  // cv_done_. sleepers_ / caller_waiting_ tell the other side whether a notify is needed
  // (seq_cst on both sides, so a wake-up is never lost).
  // parallel_for: claim_ = (generation << 24) | chunks not yet claimed; a chunk is claimed by a
  // CAS that also checks the generation, so a late worker can never claim a finished job's chunk.
  // Each hot atomic has its own cache line (no false sharing between spinning threads).
  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_start_;
  std::condition_variable cv_done_;
  const std::function<void(int)>* job_ = nullptr;
  const std::function<void(int64_t, int64_t, int)>* for_fn_ = nullptr;
  int64_t for_n_ = 0, for_chunk_ = 0, for_chunks_ = 0;
  alignas(64) std::atomic<uint64_t> generation_{0};
  alignas(64) std::atomic<uint64_t> claim_{0};
  alignas(64) std::atomic<int64_t> done_{0};
  alignas(64) std::atomic<int> pending_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> caller_waiting_{false};
  std::atomic<bool> stop_{false};
  // The first exception of the current job; failed_ tells threads to skip its remaining chunks.
  std::mutex error_mu_;
  std::exception_ptr error_;
  std::atomic<bool> failed_{false};
};

}  // namespace longctx
