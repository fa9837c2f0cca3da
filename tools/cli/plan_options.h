// Options shared by every command that plans memory (run, plan, bench, perplexity): they are
// declared once here and turned into the library's EngineOptions the same way everywhere.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "longctx/engine.h"
#include "runtime/progress.h"

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

// --progress / --no-progress: force the live progress line on or off (default: when stderr is a
// terminal).
void add_progress_flags(CLI::App& cmd, ProgressMode& mode);

// The engine options these flags describe (model folder, weights and the rest left at their
// defaults). Error(kInvalidArg) for an unknown KV type or a bad --prefill-chunk.
EngineOptions engine_options(const PlanFlags& f);

}  // namespace longctx::cli
