#include "plan_options.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <vector>

#include "core/error.h"
#include "io/atomic_file.h"
#include "plan/memory_budget.h"

namespace longctx::cli {

void add_plan_flags(CLI::App& cmd, PlanFlags& f) {
  cmd.add_option("-c,--ctx", f.ctx,
                 "Context in tokens (0 or absent: the largest that fits the budget, at most "
                 "max_position_embeddings)");
  cmd.add_option("--kv-dtype", f.kv_dtype,
                 "KV-cache precision: f32, f16, bf16, int8, int4 (int8/int4: groups with f16 "
                 "scales, docs/kv-quantization.md)")
      ->capture_default_str();
  cmd.add_option("--kv-dtype-k", f.kv_dtype_k,
                 "Precision of the cached keys (default: --kv-dtype)");
  cmd.add_option("--kv-dtype-v", f.kv_dtype_v,
                 "Precision of the cached values (default: --kv-dtype)");
  cmd.add_option("--prefill-chunk", f.prefill_chunk,
                 "Prompt tokens per forward pass, or auto / 0 (largest that fits, at most 512)")
      ->capture_default_str();
  cmd.add_option("--mem-budget", f.mem_budget,
                 "Memory budget, e.g. 12GiB, or auto (MemAvailable / cgroup limit minus a margin)")
      ->capture_default_str();
  cmd.add_option("-t,--threads", f.threads, "Threads (0 or absent: all cores)");
  cmd.footer(kNumberRule);
}

void add_weight_memory_flag(CLI::App& cmd, bool& mmap) {
  cmd.add_flag("--mmap", mmap,
               "Run from the mapped weight files (loads pages on first use, lets the kernel "
               "evict them) instead of a copy on 2 MiB huge pages, which decodes faster");
}

void add_progress_flags(CLI::App& cmd, ProgressMode& mode) {
  cmd.add_flag_callback(
      "--progress", [&mode] { mode = ProgressMode::kOn; },
      "Show a live progress line on stderr (tokens, tok/s, ETA, memory) even "
      "when it is not a terminal");
  cmd.add_flag_callback(
      "--no-progress", [&mode] { mode = ProgressMode::kOff; },
      "Never show the progress line (default: shown when stderr is a terminal)");
}

std::string read_text_file(const std::string& path, const std::string& flag,
                           const std::string& mem_budget) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ELOOP)
      throw Error(ErrorKind::kIo, flag + " " + path +
                                      ": a symbolic link that loops (too many "
                                      "levels of symbolic links); give the text "
                                      "file itself");
    throw Error(ErrorKind::kIo, flag + " " + path + ": cannot read it (" + std::strerror(err) +
                                    "); check the path");
  }
  if (S_ISDIR(st.st_mode))
    throw Error(ErrorKind::kIo, flag + " " + path + " is a folder; " + flag + " takes a text file");
  // The text is read before any plan sees it, so its size is bounded by the budget here, before
  // it is read (a pipe or device as it is read).
  const MemoryBudget budget = memory_budget_from_flag(mem_budget);
  const uint64_t limit = budget.bytes / kTextBytesPerByte;
  auto too_big = [&](const std::string& size) {
    throw Error(ErrorKind::kMemory,
                flag + " " + path + " is " + size + "; with a memory budget of " +
                    io::format_bytes(budget.bytes) + " (" + budget.source + ") at most " +
                    io::format_bytes(limit) + " of text can be read (the text, its normalized "
                    "copy and its token ids take about " + std::to_string(kTextBytesPerByte) +
                    " bytes per byte); give a shorter text or raise --mem-budget");
  };
  const bool regular = S_ISREG(st.st_mode);
  if (regular && static_cast<uint64_t>(st.st_size) > limit)
    too_big(io::format_bytes(static_cast<uint64_t>(st.st_size)));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorKind::kIo, flag + " " + path + ": cannot open it; check permissions");
  std::string text;
  if (regular) text.reserve(static_cast<size_t>(st.st_size));
  std::vector<char> buf(size_t{1} << 16);
  while (in.read(buf.data(), static_cast<std::streamsize>(buf.size())) || in.gcount() > 0) {
    text.append(buf.data(), static_cast<size_t>(in.gcount()));
    if (text.size() > limit) too_big("more than " + io::format_bytes(limit));
  }
  return text;
}

EngineOptions engine_options(const PlanFlags& f) {
  EngineOptions o;
  o.context = f.ctx;
  o.kv = parse_kv_type(f.kv_dtype);
  if (!f.kv_dtype_k.empty()) o.kv_k = parse_kv_type(f.kv_dtype_k);
  if (!f.kv_dtype_v.empty()) o.kv_v = parse_kv_type(f.kv_dtype_v);
  if (f.prefill_chunk == "auto" || f.prefill_chunk == "0") {
    o.prefill_chunk = 0;
  } else {
    try {
      size_t used = 0;
      o.prefill_chunk = std::stoll(f.prefill_chunk, &used);
      if (used != f.prefill_chunk.size()) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
      o.prefill_chunk = -1;
    }
    if (o.prefill_chunk <= 0)
      throw Error(ErrorKind::kInvalidArg,
                  "--prefill-chunk must be a positive number of tokens, or auto (or 0), not '" +
                      f.prefill_chunk + "'");
  }
  o.mem_budget = f.mem_budget;
  o.threads = f.threads;
  return o;
}

}  // namespace longctx::cli
