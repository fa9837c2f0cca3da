// The JSON form of a memory plan: what `longctx plan --json` prints and what the Python module's
// longctx.plan() / HookedTransformer.plan return, built once here so both say the same thing.
#pragma once

#include <string>

#include "plan/memory_plan.h"

namespace longctx {

// The plan of `req` for `model` against `budget` (`plan` = make_plan(model, req, budget), maybe
// with a caller's extra bytes added) as indented JSON: model, shapes, context, KV types, bytes by
// category ({"bytes", "human"}), budget, headroom, fits, the largest context per KV type at batch
// 1, the mask a precomputed attention mask would hold, and "refusal" when it does not fit.
std::string plan_json(const PlanModel& model, const PlanRequest& req, const MemoryBudget& budget,
                      const MemoryPlan& plan, int indent = 2);

}  // namespace longctx
