// Helpers of the planner's tests: built-in presets priced as bf16 weights, fixed budgets.
#pragma once

#include <string>

#include "model/presets.h"
#include "plan/memory_plan.h"

namespace longctx::plantest {

constexpr size_t kGiB = size_t{1} << 30;

inline PlanModel preset(const std::string& name) {
  const Preset& p = find_preset(name);
  return plan_model_from_config(parse_model_config(p.config_json, name), 2, name);
}

inline MemoryBudget budget(size_t bytes) {
  MemoryBudget b;
  b.bytes = bytes;
  b.source = "test";
  return b;
}

}  // namespace longctx::plantest
