// Plans for a pipeline of ranks (mpirun, src/dist): the layers split into contiguous stages, one
// per rank, each priced against that rank's own budget (docs/distributed.md). A stage holds only
// its layers' weights and KV cache, so N ranks hold a context that one cannot.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "plan/memory_plan.h"

namespace longctx {

struct PipelinePlan {
  int64_t context = 0, prefill_chunk = 0;
  std::vector<StageRange> stages;  // per rank: contiguous, together every layer once
  std::vector<MemoryPlan> plans;   // per rank, against its budget
  bool fits() const { return !stages.empty(); }
};

// Bytes each rank holds beside its stage: the first rank's caller buffers (e.g. perplexity's
// scored logits), the last rank's logits of a chunk when every row's logits are wanted.
struct PipelineExtras {
  size_t first = 0, last = 0;
};

// The split of req.context (> 0) and req.prefill_chunk (> 0) over ranks with these budgets: each
// rank gets layers in proportion to how many it can hold (a rank with less memory gets fewer),
// every stage checked exactly against its budget. Empty when no split fits or there are more
// ranks than layers.
std::vector<StageRange> split_layers(const PlanModel& model, const PlanRequest& req,
                                     const std::vector<MemoryBudget>& budgets,
                                     PipelineExtras extras = {});

// The plan for `budgets.size()` ranks: with req.context 0 the largest context any split holds
// (capped at max_position_embeddings), with req.prefill_chunk 0 the largest chunk up to
// kMaxAutoChunk that fits. Not fits() when nothing does.
PipelinePlan plan_pipeline(const PlanModel& model, const PlanRequest& req,
                           const std::vector<MemoryBudget>& budgets, PipelineExtras extras = {});

// The fewest ranks of `budget` each (from 2, at most 64) whose pipeline holds `req`; 0 when none
// does (more ranks than layers, or the embeddings alone do not fit).
int ranks_needed(const PlanModel& model, const PlanRequest& req, const MemoryBudget& budget);

// Why no split of `req` fits these ranks, and what would: a smaller context, more ranks.
std::string pipeline_refusal(const PlanModel& model, const PlanRequest& req,
                             const std::vector<MemoryBudget>& budgets, PipelineExtras extras = {});

// "--mem-budget A,B,C": the entry for `rank` (the last one repeats for higher ranks); one entry
// is every rank's. Sizes or "auto".
std::string budget_flag_for_rank(const std::string& flag, int rank);

}  // namespace longctx
