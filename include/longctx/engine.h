// The engine facade (DESIGN.md decision 8): plan -> load -> session, once, for every front end
// (the CLI's run / bench / perplexity / trace, the Python module, the server).
//
//   PlannedRun run = Engine::plan_only(opts);   // config.json + file sizes; refuses here
//   auto engine = Engine::load(run);            // tokenizer, then weights
//   Session s = engine->new_session(prompt_tokens + n_predict);
//   Generator(*engine, s, gen_opts).generate(ids, on_text);   // longctx/generator.h
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/model_config.h"
#include "core/thread_pool.h"
#include "hooks/forward_hooks.h"
#include "kernels/kv_type.h"
#include "model/decoder.h"
#include "plan/memory_budget.h"
#include "plan/memory_plan.h"
#include "plan/stage_plan.h"
#include "runtime/session.h"
#include "tokenizer/tokenizer.h"

namespace longctx {

struct EngineOptions {
  std::string model_path;  // a Hugging Face model folder or a GGUF file
  // Tokens held at most (prompt + generated). 0: the largest that fits the budget, at most
  // max_position_embeddings; more than max_position_embeddings is refused unless force_ctx.
  int64_t context = 0;
  bool force_ctx = false;
  KvType kv = KvType::kF16;          // KV-cache precision of keys and values
  std::optional<KvType> kv_k, kv_v;  // keys / values apart (unset: kv)
  int64_t prefill_chunk = 0;         // prompt tokens per forward pass; 0: the planner picks
  // Sequences that must fit at the full context at once: with context 0 the context is chosen so
  // that `batch` of them fit (a server's --parallel); 1 otherwise.
  int batch = 1;
  std::string mem_budget = "auto";   // "auto" (MemAvailable / cgroup minus a margin) or a size
  int threads = 0;                   // 0: all cores
  WeightMemory weights = WeightMemory::kResident;
  // Bytes the caller will hold beside the model for its own buffers (hook captures, scored
  // logits), added to the plan's activations so that the budget covers them; `extra_what` names
  // them in messages.
  size_t extra_bytes = 0;
  std::string extra_what;
  // False: load no tokenizer (callers that feed token ids, e.g. bench); tokenizer() then throws.
  bool tokenizer = true;
  // What sessions do past the context: stop (default), shift, sinks:N (runtime/session.h).
  ContextOverflow overflow;
  // Receives sessions' one-line notices (LongRoPE recomputing the cache); null: dropped.
  std::function<void(const std::string&)> on_notice;
};

// A plan made before anything is loaded: what the request asked, what it costs, and the budget.
struct PlannedRun {
  EngineOptions options;
  PlanModel model;      // config.json and the sizes of the weight files
  PlanRequest request;  // the options as the planner reads them
  MemoryBudget budget;
  MemoryPlan plan;  // options.extra_bytes included in activations and total
  // Under mpirun with more than one rank: every rank's stage and plan (plan above is rank 0's);
  // empty otherwise.
  PipelinePlan pipeline;

  const ModelConfig& config() const { return model.cfg; }
};

// The planner's request for `o` and `cfg`: Error(kOutOfRange) naming --force-ctx for a context
// beyond max_position_embeddings (unless o.force_ctx), Error(kInvalidArg) for a negative context,
// prefill chunk or thread count. Threads 0 become all cores.
PlanRequest plan_request(const EngineOptions& o, const ModelConfig& cfg);

// The session settings a plan chose: context, prefill chunk, KV types of keys and values, memory
// limit (KV cache + activations, extra bytes included).
SessionOptions session_options(const MemoryPlan& plan);

// The line a front end prints when the context was chosen for the user (options.context 0):
// "context N: the model allows M, but its KV cache (f16) would need ... and the budget is ...;
// the largest context that fits was chosen (set -c to override)"; empty when -c was given.
std::string context_choice_message(const PlannedRun& run);

class Engine {
 public:
  // Plans `opts` from config.json and the file sizes alone (nothing is mapped or allocated) and
  // refuses with Error(kMemory, refusal_message(...)) when it does not fit.
  static PlannedRun plan_only(const EngineOptions& opts);
  // Under mpirun (more than one rank; called on rank 0, the others run dist::run_worker) every
  // rank plans its stage against its own budget (plan/stage_plan.h), and load() loads every
  // rank's stage; sessions then run through the pipeline. Hooks need one process.
  // Loads what `run` planned: the tokenizer (unless given: one already loaded from the same
  // folder, e.g. to count prompt tokens before the weights load, or unless options.tokenizer is
  // false), then the weights, and starts the thread pool.
  static std::unique_ptr<Engine> load(const PlannedRun& run,
                                      std::unique_ptr<Tokenizer> tokenizer = nullptr);
  // plan_only + load.
  static std::unique_ptr<Engine> open(const EngineOptions& opts) { return load(plan_only(opts)); }

  const ModelConfig& config() const { return run_.config(); }
  const PlannedRun& planned() const { return run_; }
  const MemoryPlan& plan() const { return run_.plan; }
  const MemoryBudget& budget() const { return run_.budget; }
  // Error(kInvalidArg) when the engine was opened without one (EngineOptions::tokenizer).
  const Tokenizer& tokenizer() const;
  const Model& model() const { return *model_; }
  ThreadPool& pool() { return *pool_; }
  // Token ids that end a generation: config.json's eos_token_id(s) and the tokenizer's EOS.
  const std::vector<int32_t>& eos_ids() const { return eos_; }

  // Under mpirun: one line per rank ("rank 1 (host): layers 3-5 + head | plan ... of ... | peak
  // RSS ..."), each rank's peak measured now; empty in a single process.
  std::string rank_report();

  // A session configured from the plan. `planned_tokens`: the length the sequence is expected to
  // reach (prompt + tokens to generate; LongRoPE picks its factors from it, 0: unknown), capped at
  // the context. `hooks` (null: none, not owned) sees every forward pass.
  Session new_session(int64_t planned_tokens, hooks::ForwardHooks* hooks = nullptr);
  // A session under another plan of the same model (bench's KV types and thread counts,
  // perplexity's baseline KV type), running on `pool`.
  Session new_session(const MemoryPlan& plan, ThreadPool& pool, int64_t planned_tokens,
                      hooks::ForwardHooks* hooks = nullptr);

 private:
  Engine() = default;

  PlannedRun run_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<ThreadPool> pool_;
  std::vector<int32_t> eos_;
  std::unique_ptr<dist::Pipeline> pipeline_;  // under mpirun: the other ranks' stages
};

}  // namespace longctx
