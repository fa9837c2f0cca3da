// Options shared by every command that plans memory (run, plan, bench, perplexity): they are
// declared once here and turned into the library's EngineOptions the same way everywhere.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "longctx/engine.h"
#include "runtime/progress.h"

namespace longctx::cli {

// The one rule of numeric flags, printed under every --help.
inline constexpr const char* kNumberRule =
    "Numbers: 0 means automatic where a flag says so (-c, --stride, --prefill-chunk, -t); "
    "negative values are refused. Exit codes: 0 done, 1 an error in the input or the request, "
    "2 a bad command line, 3 a bug in longctx.\n";

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

// What reading and tokenizing a text costs per byte of it: the text, a normalized copy and the
// token ids (4 bytes each, at most about one per byte).
inline constexpr uint64_t kTextBytesPerByte = 8;

// The whole content of a text file given to FLAG (e.g. "-f"): Error(kIo) naming the path and the
// flag when it is missing, a folder or a looping symbolic link; Error(kMemory) naming the sizes
// when it is larger than the memory budget `mem_budget` (a --mem-budget value) over
// kTextBytesPerByte, found before it is read (regular files) or as it is read (devices and pipes:
// -f /dev/stdin).
std::string read_text_file(const std::string& path, const std::string& flag,
                           const std::string& mem_budget);

// The engine options these flags describe (model folder, weights and the rest left at their
// defaults). Error(kInvalidArg) for an unknown KV type or a bad --prefill-chunk.
EngineOptions engine_options(const PlanFlags& f);

}  // namespace longctx::cli
