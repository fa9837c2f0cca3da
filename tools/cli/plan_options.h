// Options shared by every command that plans memory (run, plan, bench, perplexity): they are
// declared once here and read the same way everywhere.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "config/model_config.h"
#include "model/decoder.h"
#include "plan/memory_plan.h"
#include "runtime/session.h"

namespace longctx::cli {

struct PlanFlags {
  int64_t ctx = 0;  // 0: the largest that fits
  std::string kv_dtype = "f16";
  std::string kv_dtype_k, kv_dtype_v;  // empty: --kv-dtype
  std::string prefill_chunk = "auto";
  std::string mem_budget = "auto";
  int threads = 0;  // 0: all cores
};

void add_plan_flags(CLI::App& cmd, PlanFlags& f);

// --mmap: run from the file mapping instead of a copy on huge pages (see WeightMemory).
void add_weight_memory_flag(CLI::App& cmd, bool& mmap);
inline WeightMemory weight_memory(bool mmap) {
  return mmap ? WeightMemory::kMapped : WeightMemory::kResident;
}

// The request these flags describe for `cfg`. A context beyond max_position_embeddings is refused
// (Error naming --force-ctx) unless force_ctx.
PlanRequest plan_request(const PlanFlags& f, const ModelConfig& cfg, bool force_ctx);

// The session settings a plan chose: context, prefill chunk, KV types of keys and values, memory
// limit. Also checks that the model can store those KV types (int4 needs an even head_dim).
SessionOptions session_options(const MemoryPlan& plan, const ModelConfig& cfg);

}  // namespace longctx::cli
