// The engine facade: plan (config.json and file sizes only), then load, then sessions configured
// from the plan (include/longctx/engine.h).
#include "longctx/engine.h"

#include <algorithm>
#include <cstdio>
#include <thread>

#include "core/error.h"
#include "dist/mpi.h"
#include "kernels/kv_quant.h"
#include "kv/kv_cache.h"

namespace longctx {

PlanRequest plan_request(const EngineOptions& o, const ModelConfig& cfg) {
  PlanRequest r;
  if (o.context < 0)
    throw Error(ErrorKind::kInvalidArg,
                "-c must be a positive number of tokens (0 = auto: the "
                "largest that fits), not " +
                    std::to_string(o.context));
  if (o.context > cfg.max_position_embeddings && !o.force_ctx)
    throw Error(ErrorKind::kOutOfRange,
                "context " + std::to_string(o.context) +
                    " exceeds the model's max_position_embeddings (" +
                    std::to_string(cfg.max_position_embeddings) +
                    "); positions past it were never trained and output degrades. Use -c " +
                    std::to_string(cfg.max_position_embeddings) +
                    " or less, or add --force-ctx to run anyway");
  if (o.prefill_chunk < 0)
    throw Error(ErrorKind::kInvalidArg, "--prefill-chunk must be a positive number of tokens");
  if (o.threads < 0)
    throw Error(ErrorKind::kInvalidArg,
                "-t must be >= 1 (0 = all cores), not " + std::to_string(o.threads));
  // Each thread is an OS thread with its own kernel scratch; far past the cores it only costs.
  constexpr int kMaxThreads = 1024;
  if (o.threads > kMaxThreads)
    throw Error(
        ErrorKind::kInvalidArg,
        "-t " + std::to_string(o.threads) + " is more threads than longctx runs (at most " +
            std::to_string(kMaxThreads) + "; this machine has " +
            std::to_string(std::thread::hardware_concurrency()) +
            " cores), and each one needs its own per-thread scratch (kernel buffers and a stack). "
            "Use -t " +
            std::to_string(std::max(1u, std::thread::hardware_concurrency())) +
            " or leave -t out (0 = all cores)");
  if (o.batch < 1) throw Error(ErrorKind::kInvalidArg, "the batch must be at least 1 sequence");
  r.context = o.context;
  r.kv = o.kv;
  r.kv_k = o.kv_k;
  r.kv_v = o.kv_v;
  r.prefill_chunk = o.prefill_chunk;
  r.batch = o.batch;
  r.threads = o.threads > 0 ? o.threads
                            : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return r;
}

SessionOptions session_options(const MemoryPlan& plan) {
  SessionOptions so;
  so.context = plan.context;
  so.prefill_chunk = plan.prefill_chunk;
  so.kv_k = plan.kv_k;
  so.kv_v = plan.kv_v;
  so.memory_limit = plan.kv_total + plan.activations;
  return so;
}

std::string context_choice_message(const PlannedRun& run) {
  if (run.request.context != 0) return "";
  const ModelConfig& cfg = run.config();
  const MemoryPlan& plan = run.plan;
  char buf[512];
  if (plan.context < cfg.max_position_embeddings)
    std::snprintf(buf, sizeof buf,
                  "context %lld: the model allows %lld, but its KV cache (%s) would need %s and "
                  "the budget is %s; the largest context that fits was chosen (set -c to "
                  "override)",
                  static_cast<long long>(plan.context),
                  static_cast<long long>(cfg.max_position_embeddings),
                  kv_setting_name(plan.kv_k, plan.kv_v).c_str(),
                  format_size(plan.kv_bytes_per_token * cfg.max_position_embeddings).c_str(),
                  format_size(run.budget.bytes).c_str());
  else
    std::snprintf(buf, sizeof buf, "context %lld: the model's maximum, which fits the budget (%s)",
                  static_cast<long long>(plan.context), format_size(run.budget.bytes).c_str());
  return buf;
}

namespace {
dist::Job pipeline_job(const PlannedRun& run) {
  dist::Job job;
  job.model_path = run.options.model_path;
  job.mem_budget = run.options.mem_budget;
  job.request = run.request;
  job.threads_auto = run.options.threads == 0;
  job.weights = run.options.weights;
  // Rank 0 holds the caller's buffers; the last rank holds logits of the same size when the
  // caller's buffers are scored logits (perplexity): price both.
  job.extras = {run.options.extra_bytes, run.options.extra_bytes};
  return job;
}
}  // namespace

PlannedRun Engine::plan_only(const EngineOptions& opts) {
  PlannedRun run;
  run.options = opts;
  run.model = plan_model_from_path(opts.model_path);
  run.request = plan_request(opts, run.model.cfg);
  // The KV types are checked against the model here, once, before anything is loaded.
  const int hd = run.model.cfg.head_dim;
  kernels::check_kv_type(run.request.key_type(), hd, true, kKvBlockTokens);
  kernels::check_kv_type(run.request.value_type(), hd, false, kKvBlockTokens);
  if (dist::pipelined()) {
    if (opts.batch > 1)
      throw Error(ErrorKind::kUnsupported,
                  "a batch of sequences (longctx serve) runs in one process, not under mpirun");
    dist::RankPlans ranks = dist::plan_ranks(pipeline_job(run));  // refuses with the reason
    run.budget = ranks.budgets[0];
    run.pipeline = std::move(ranks.plan);
    run.plan = run.pipeline.plans[0];
    return run;
  }
  run.budget = memory_budget_from_flag(opts.mem_budget);
  run.plan = make_plan(run.model, run.request, run.budget);
  run.plan.activations += opts.extra_bytes;
  run.plan.total += opts.extra_bytes;
  if (!run.plan.fits()) {
    std::string msg = refusal_message(run.model, run.request, run.plan);
    if (opts.extra_bytes > 0)
      msg += " (the plan includes " + format_size(opts.extra_bytes) + " for " +
             (opts.extra_what.empty() ? std::string("the caller's buffers") : opts.extra_what) +
             ")";
    throw Error(ErrorKind::kMemory, msg);
  }
  return run;
}

std::unique_ptr<Engine> Engine::load(const PlannedRun& run, std::unique_ptr<Tokenizer> tokenizer) {
  std::unique_ptr<Engine> e(new Engine());
  e->run_ = run;
  const std::string& dir = run.options.model_path;
  if (tokenizer)
    e->tokenizer_ = std::move(tokenizer);
  else if (run.options.tokenizer)
    e->tokenizer_ = load_tokenizer(dir);
  // A token id at or past vocab_size has no embedding row: refuse the pair before the weights
  // load, instead of when such a token first shows up in a prompt.
  if (e->tokenizer_ && e->tokenizer_->vocab_size() > run.config().vocab_size)
    throw Error(ErrorKind::kConfig,
                dir + ": the tokenizer has token ids up to " +
                    std::to_string(e->tokenizer_->vocab_size() - 1) + " but the model's vocab_size is " +
                    std::to_string(run.config().vocab_size) +
                    " (ids must be below it); the tokenizer does not belong to this model, or "
                    "vocab_size in config.json is wrong");
  if (!run.pipeline.stages.empty()) {
    dist::RankPlans ranks;
    ranks.model = run.model;
    ranks.plan = run.pipeline;
    e->model_ = dist::load_ranks(ranks, pipeline_job(run));
    e->pipeline_ = std::make_unique<dist::Pipeline>(run.config().vocab_size,
                                                    run.config().hidden_size);
  } else {
    e->model_ = Model::load(dir, run.options.weights);
  }
  e->pool_ = std::make_unique<ThreadPool>(run.request.threads);
  for (int id : run.config().eos_token_ids) e->eos_.push_back(id);
  if (e->tokenizer_ && e->tokenizer_->eos_id() >= 0) e->eos_.push_back(e->tokenizer_->eos_id());
  return e;
}

std::string Engine::rank_report() {
  if (!pipeline_) return "";
  const std::vector<size_t> peaks = pipeline_->peak_rss();
  const PipelinePlan& pp = run_.pipeline;
  std::string out;
  for (size_t r = 0; r < pp.stages.size(); ++r) {
    const StageRange st = pp.stages[r];
    std::string what = st.end - st.first == 1 ? "layer " + std::to_string(st.first)
                                              : "layers " + std::to_string(st.first) + "-" +
                                                    std::to_string(st.end - 1);
    if (st.has_embed()) what = "embeddings + " + what;
    if (st.has_head(run_.config())) what += " + head";
    out += "rank " + std::to_string(r) + ": " + what + " | plan " +
           format_size(pp.plans[r].total) + " of " + format_size(pp.plans[r].budget.bytes) +
           " | peak RSS " + format_size(r < peaks.size() ? peaks[r] : 0) + "\n";
  }
  return out;
}

const Tokenizer& Engine::tokenizer() const {
  if (!tokenizer_)
    throw Error(ErrorKind::kInvalidArg, "this engine was opened without a tokenizer");
  return *tokenizer_;
}

Session Engine::new_session(int64_t planned_tokens, hooks::ForwardHooks* hooks) {
  return new_session(run_.plan, *pool_, planned_tokens, hooks);
}

Session Engine::new_session(const MemoryPlan& plan, ThreadPool& pool, int64_t planned_tokens,
                            hooks::ForwardHooks* hooks) {
  SessionOptions so = session_options(plan);
  so.planned_tokens = std::clamp<int64_t>(planned_tokens, 0, plan.context);
  so.on_notice = run_.options.on_notice;
  so.hooks = hooks;
  so.pipeline = pipeline_.get();
  so.overflow = run_.options.overflow;
  if (pipeline_ && so.overflow.mode != ContextOverflow::kStop)
    throw Error(ErrorKind::kUnsupported,
                "--context-overflow " + context_overflow_name(so.overflow) +
                    " runs in one process; under mpirun a sequence ends at the context");
  if (pipeline_ && hooks)
    throw Error(ErrorKind::kUnsupported,
                "hooks (trace, --patch, --steer, captures) see every layer in one process; under "
                "mpirun the layers are spread over the ranks. Run this command without mpirun");
  return Session(*model_, pool, so);
}

}  // namespace longctx
