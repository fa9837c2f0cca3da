#include "plan_options.h"

#include <thread>

#include "core/error.h"

namespace longctx::cli {

void add_plan_flags(CLI::App& cmd, PlanFlags& f) {
  cmd.add_option("-c,--ctx", f.ctx,
                 "Context in tokens (default: the largest that fits the budget, at most "
                 "max_position_embeddings)");
  cmd.add_option("--kv-dtype", f.kv_dtype,
                 "KV-cache precision: f32, f16, bf16, int8, int4 (int8/int4: groups with f16 "
                 "scales, docs/kv-quantization.md)")
      ->capture_default_str();
  cmd.add_option("--kv-dtype-k", f.kv_dtype_k, "Precision of the cached keys (default: --kv-dtype)");
  cmd.add_option("--kv-dtype-v", f.kv_dtype_v,
                 "Precision of the cached values (default: --kv-dtype)");
  cmd.add_option("--prefill-chunk", f.prefill_chunk,
                 "Prompt tokens per forward pass, or auto (largest that fits, at most 512)")
      ->capture_default_str();
  cmd.add_option("--mem-budget", f.mem_budget,
                 "Memory budget, e.g. 12GiB, or auto (MemAvailable / cgroup limit minus a margin)")
      ->capture_default_str();
  cmd.add_option("-t,--threads", f.threads, "Threads (default: all cores)");
}

void add_weight_memory_flag(CLI::App& cmd, bool& mmap) {
  cmd.add_flag("--mmap", mmap,
               "Run from the mapped weight files (loads pages on first use, lets the kernel "
               "evict them) instead of a copy on 2 MiB huge pages, which decodes faster");
}

PlanRequest plan_request(const PlanFlags& f, const ModelConfig& cfg, bool force_ctx) {
  PlanRequest r;
  if (f.ctx < 0) throw Error(ErrorKind::kInvalidArg, "-c must be a positive number of tokens");
  if (f.ctx > cfg.max_position_embeddings && !force_ctx)
    throw Error(ErrorKind::kOutOfRange,
                "context " + std::to_string(f.ctx) + " exceeds the model's max_position_embeddings (" +
                    std::to_string(cfg.max_position_embeddings) +
                    "); positions past it were never trained and output degrades. Use -c " +
                    std::to_string(cfg.max_position_embeddings) +
                    " or less, or add --force-ctx to run anyway");
  r.context = f.ctx;
  r.kv = parse_kv_type(f.kv_dtype);
  if (!f.kv_dtype_k.empty()) r.kv_k = parse_kv_type(f.kv_dtype_k);
  if (!f.kv_dtype_v.empty()) r.kv_v = parse_kv_type(f.kv_dtype_v);
  if (f.prefill_chunk == "auto") {
    r.prefill_chunk = 0;
  } else {
    try {
      size_t used = 0;
      r.prefill_chunk = std::stoll(f.prefill_chunk, &used);
      if (used != f.prefill_chunk.size()) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
      r.prefill_chunk = -1;
    }
    if (r.prefill_chunk <= 0)
      throw Error(ErrorKind::kInvalidArg,
                  "--prefill-chunk must be a positive number of tokens or auto, not '" +
                      f.prefill_chunk + "'");
  }
  if (f.threads < 0) throw Error(ErrorKind::kInvalidArg, "-t must be >= 1 (0 = all cores)");
  r.threads = f.threads > 0 ? f.threads
                            : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return r;
}

SessionOptions session_options(const MemoryPlan& plan, const ModelConfig& cfg) {
  kernels::check_kv_type(plan.kv_k, cfg.head_dim, true, kKvBlockTokens);
  kernels::check_kv_type(plan.kv_v, cfg.head_dim, false, kKvBlockTokens);
  SessionOptions so;
  so.context = plan.context;
  so.prefill_chunk = plan.prefill_chunk;
  so.kv_dtype = DType::kF16;  // unused: both parts are set below
  so.kv_k = plan.kv_k;
  so.kv_v = plan.kv_v;
  so.memory_limit = plan.kv_total + plan.activations;
  return so;
}

}  // namespace longctx::cli
