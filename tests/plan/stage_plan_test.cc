// Splitting layers over pipeline ranks (plan/stage_plan.h), against figures worked by hand.
#include "plan/stage_plan.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "model/presets.h"
#include "plan/plan_test_util.h"

namespace longctx {
namespace {

using plantest::budget;
using plantest::kGiB;
using plantest::preset;

PlanRequest request(int64_t context) {
  PlanRequest r;
  r.context = context;
  r.prefill_chunk = 512;
  r.threads = 2;
  return r;
}

// Llama-3.1-8B in bf16 at 131072 tokens of f16 KV: 32 layers of 436 MiB of weights and 512 MiB
// of KV each (8 kv heads x 128 x 2 bytes x 2 x 131072), 1002 MiB of embeddings and as much head.
TEST(StageSplit, Llama31At128kOverTwoAndFourMachinesOf16GiB) {
  const PlanModel m = preset("llama-3.1-8b");
  const PipelinePlan two =
      plan_pipeline(m, request(131072), std::vector<MemoryBudget>(2, budget(16 * kGiB)));
  ASSERT_TRUE(two.fits());
  EXPECT_EQ(two.stages[0].first, 0);
  EXPECT_EQ(two.stages[0].end, 16);
  EXPECT_EQ(two.stages[1].end, 32);
  for (const MemoryPlan& p : two.plans) {
    EXPECT_EQ(p.kv_total, size_t{16} * 512 << 20);  // 16 layers x 512 MiB
    EXPECT_LE(p.total, 16 * kGiB);
  }
  // Rank 0 holds the embeddings, rank 1 the head (the same shape, untied) and the final norm
  // (4096 bf16 values).
  EXPECT_EQ(two.plans[1].weights, two.plans[0].weights + 4096 * 2);
  // One process of 16 GiB cannot; the refusal of one names two ranks.
  EXPECT_FALSE(make_plan(m, request(131072), budget(16 * kGiB)).fits());
  EXPECT_EQ(ranks_needed(m, request(131072), budget(16 * kGiB)), 2);

  const PipelinePlan four =
      plan_pipeline(m, request(131072), std::vector<MemoryBudget>(4, budget(16 * kGiB)));
  ASSERT_TRUE(four.fits());
  for (size_t r = 0; r < 4; ++r) {
    EXPECT_EQ(four.stages[r].end - four.stages[r].first, 8) << r;
    EXPECT_EQ(four.plans[r].kv_total, size_t{8} * 512 << 20);
  }
}

TEST(StageSplit, ARankWithLessMemoryGetsFewerLayers) {
  const PlanModel m = preset("llama-3.1-8b");
  const PipelinePlan p = plan_pipeline(
      m, request(131072), {budget(24 * kGiB), budget(12 * kGiB), budget(12 * kGiB)});
  ASSERT_TRUE(p.fits());
  const int a = p.stages[0].end - p.stages[0].first, b = p.stages[1].end - p.stages[1].first,
            c = p.stages[2].end - p.stages[2].first;
  EXPECT_EQ(a + b + c, 32);
  EXPECT_GT(a, b);
  EXPECT_GT(a, c);
  for (size_t r = 0; r < 3; ++r) EXPECT_LE(p.plans[r].total, p.plans[r].budget.bytes) << r;
  // Contiguous, in order.
  EXPECT_EQ(p.stages[1].first, p.stages[0].end);
  EXPECT_EQ(p.stages[2].first, p.stages[1].end);
}

TEST(StageSplit, AutoContextIsTheLargestAnySplitHolds) {
  const PlanModel m = preset("llama-3.1-8b");
  const std::vector<MemoryBudget> b(2, budget(12 * kGiB));
  const PipelinePlan p = plan_pipeline(m, request(0), b);
  ASSERT_TRUE(p.fits());
  EXPECT_LT(p.context, 131072);
  EXPECT_EQ(p.context % kKvBlockTokens, 0);
  EXPECT_TRUE(split_layers(m, request(p.context), b).size() == 2);
  EXPECT_TRUE(split_layers(m, request(p.context + kKvBlockTokens), b).empty());
}

TEST(StageSplit, RefusalsNameTheRanksAndWhatFits) {
  const PlanModel m = preset("llama-3.1-8b");
  const std::vector<MemoryBudget> b(2, budget(12 * kGiB));
  EXPECT_TRUE(split_layers(m, request(131072), b).empty());
  const std::string msg = pipeline_refusal(m, request(131072), b);
  EXPECT_NE(msg.find("does not fit on 2 ranks"), std::string::npos) << msg;
  EXPECT_NE(msg.find("rank 1 (layers 16-31)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("3 ranks (mpirun -np 3"), std::string::npos) << msg;
  // More ranks than layers.
  const PlanModel tiny = preset("smollm2-135m");
  const std::vector<MemoryBudget> many(31, budget(16 * kGiB));
  EXPECT_TRUE(split_layers(tiny, request(2048), many).empty());
  EXPECT_NE(pipeline_refusal(tiny, request(2048), many).find("only 30 layers"), std::string::npos);
}

TEST(StageSplit, PerRankBudgetFlags) {
  EXPECT_EQ(budget_flag_for_rank("12GiB,8GiB", 0), "12GiB");
  EXPECT_EQ(budget_flag_for_rank("12GiB,8GiB", 1), "8GiB");
  EXPECT_EQ(budget_flag_for_rank("12GiB,8GiB", 5), "8GiB");
  EXPECT_EQ(budget_flag_for_rank("auto", 3), "auto");
  EXPECT_THROW(budget_flag_for_rank("12GiB,,8GiB", 0), Error);
}

}  // namespace
}  // namespace longctx
