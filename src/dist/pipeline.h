// Pipeline-parallel runs over MPI (docs/distributed.md). Under `mpirun -np N`, rank 0 runs the
// command (tokenizer, output, sampling) and the first stage of layers; ranks 1..N-1 run
// run_worker(), each holding a contiguous stage of layers and only those layers' KV cache.
// A forward chunk flows down the ranks as [rows][hidden] activations; the last rank computes the
// logits and sends them back to rank 0. Rank 0 does not wait for one chunk's logits before
// sending the next, so stage r works on chunk i while stage r-1 works on chunk i+1.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dist/protocol.h"
#include "model/decoder.h"
#include "plan/memory_budget.h"
#include "plan/stage_plan.h"

namespace longctx::dist {

// What rank 0 asks every rank to plan: the options that shape a stage.
struct Job {
  std::string model_path;
  std::string mem_budget = "auto";  // one flag for all ranks, or "A,B,..." one per rank
  PlanRequest request;              // context and chunk 0: the planner picks (for all ranks)
  bool threads_auto = false;        // -t 0: each rank runs as many threads as it has cores
  WeightMemory weights = WeightMemory::kResident;
  PipelineExtras extras;
};

struct RankPlans {
  PlanModel model;                    // rank 0's view of the model (the same on every rank)
  std::vector<MemoryBudget> budgets;  // per rank
  PipelinePlan plan;
};

// Rank 0: every rank plans `job` against its own budget and files. Error naming the rank and its
// cause when one cannot (missing file, bad budget flag), when a rank's model files or command
// line differ from rank 0's (a fingerprint), or Error(kMemory) when no split fits.
RankPlans plan_ranks(const Job& job);

// Rank 0: every rank loads its stage of `plans` (ranks > 0 their own, from the job's path);
// returns rank 0's model. Error naming the first rank that failed and why.
std::unique_ptr<Model> load_ranks(const RankPlans& plans, const Job& job);

// Rank 0's end of the pipeline: sessions and forward chunks on the other ranks.
class Pipeline {
 public:
  Pipeline(int64_t vocab, int64_t hidden) : vocab_(vocab), hidden_(hidden) {}
  // A session on every other rank: its stage's KV cache and activation buffers. Returns its id.
  int open(int64_t context, int64_t chunk, KvType k, KvType v);
  // Sends rank 0's output rows x [n][hidden] (positions pos0..) down the pipeline. With `wanted`
  // not kNone, the last rank's logits arrive in `dest` ([V] or [n][V]) by the next wait().
  void forward(int session, const float* x, int64_t n, int64_t pos0, int64_t rope_len,
               LogitsWanted wanted, float* dest);
  // Waits for every logits transfer forward() started.
  void wait();
  void truncate(int session, int64_t n);
  void close(int session);
  // Every rank's peak resident memory so far (VmHWM), in rank order.
  std::vector<size_t> peak_rss();

 private:
  int64_t vocab_, hidden_;
  int next_id_ = 1;
};

// Ranks > 0: serves rank 0's requests until it ends the run. Returns the exit code.
int run_worker();

}  // namespace longctx::dist
