// longctx run: generate text from a prompt, streaming it, then print one summary line.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "commands.h"
#include "config/model_config.h"
#include "core/error.h"
#include "core/proc_stats.h"
#include "default_model.h"
#include "plan/memory_budget.h"
#include "plan/memory_plan.h"
#include "plan_options.h"
#include "kernels/ops.h"
#include "model/decoder.h"
#include "model/rope_freqs.h"
#include "runtime/sampler.h"
#include "runtime/session.h"
#include "tokenizer/tokenizer.h"

namespace longctx::cli {

namespace {

struct RunOpts {
  std::string model_dir, prompt, prompt_file;
  int n_predict = 128;
  bool force_ctx = false;
  bool ignore_eos = false;
  bool mmap = false;
  PlanFlags plan;
  SamplerParams sp;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(ErrorKind::kIo, "cannot read prompt file " + path + "; check the path");
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

int run(const RunOpts& o) {
  validate(o.sp);
  if (o.n_predict < 0) throw Error(ErrorKind::kInvalidArg, "-n must be >= 0");

  std::string dir = o.model_dir, prompt = o.prompt;
  bool random_weights = false;
  if (dir.empty()) {
    const DefaultModel d = resolve_default_model();
    dir = d.dir;
    random_weights = d.random;
    if (prompt.empty() && o.prompt_file.empty()) prompt = d.prompt;
  }
  if (!o.prompt_file.empty()) prompt = read_file(o.prompt_file);

  // Plan first: refuse before the tokenizer is loaded, a weight mapped or a cache block allocated.
  const PlanModel pm = plan_model_from_dir(dir);
  const ModelConfig& cfg = pm.cfg;
  const PlanRequest req = plan_request(o.plan, cfg, o.force_ctx);
  const MemoryBudget budget = memory_budget_from_flag(o.plan.mem_budget);
  const MemoryPlan plan = make_plan(pm, req, budget);
  if (!plan.fits()) throw Error(ErrorKind::kMemory, refusal_message(pm, req, plan));
  const int64_t ctx = plan.context;
  if (req.context == 0) {
    if (ctx < cfg.max_position_embeddings)
      std::fprintf(stderr,
                   "context %lld: the model allows %lld, but its KV cache (%s) would need %s and "
                   "the budget is %s; the largest context that fits was chosen (set -c to "
                   "override)\n",
                   static_cast<long long>(ctx),
                   static_cast<long long>(cfg.max_position_embeddings),
                   kv_setting_name(plan.kv_k, plan.kv_v).c_str(),
                   format_size(plan.kv_bytes_per_token * cfg.max_position_embeddings).c_str(),
                   format_size(budget.bytes).c_str());
    else
      std::fprintf(stderr, "context %lld: the model's maximum, which fits the budget (%s)\n",
                   static_cast<long long>(ctx), format_size(budget.bytes).c_str());
  }
  const SessionOptions so = session_options(plan, cfg);

  const auto tok = load_tokenizer(dir);
  const std::vector<int32_t> ids = tok->encode(prompt, true);
  if (ids.empty())
    throw Error(ErrorKind::kInvalidArg, "the prompt is empty and the tokenizer adds no BOS; "
                                        "give a prompt with -p TEXT");
  if (static_cast<int64_t>(ids.size()) >= ctx)
    throw Error(ErrorKind::kOutOfRange, "the prompt has " + std::to_string(ids.size()) +
                                            " tokens but the context is " + std::to_string(ctx) +
                                            "; raise -c or shorten the prompt");

  const auto model = Model::load(dir, weight_memory(o.mmap));
  ThreadPool pool(req.threads);
  // The total is known up front, so LongRoPE picks short or long factors once (docs/rope-scaling.md).
  SessionOptions run_so = so;
  run_so.planned_tokens = std::min<int64_t>(ctx, static_cast<int64_t>(ids.size()) + o.n_predict);
  run_so.on_notice = [](const std::string& m) { std::fprintf(stderr, "note: %s\n", m.c_str()); };
  Session session(*model, pool, run_so);
  Sampler sampler(o.sp);

  if (random_weights)
    std::fprintf(stderr,
                 "note: %s has random weights: the text is meaningless, speed and memory are "
                 "real\n", dir.c_str());
  std::fprintf(stderr,
               "model %s (%s, %d layers) | weights %s | ctx %lld | kv %s | prefill chunk "
               "%lld%s | threads %d | simd %s | plan %s of %s\n",
               dir.c_str(), cfg.model_type.c_str(), cfg.num_hidden_layers,
               model->weights_resident() ? "on huge pages" : "mapped", static_cast<long long>(ctx),
               kv_setting_name(plan.kv_k, plan.kv_v).c_str(),
               static_cast<long long>(plan.prefill_chunk), plan.chunk_auto ? " (auto)" : "",
               pool.size(), kernels::simd_path(), format_size(plan.total).c_str(),
               format_size(budget.bytes).c_str());
  if (cfg.rope_scaling.type != RopeType::kDefault)
    std::fprintf(stderr, "rope: %s\n", rope_summary(cfg, run_so.planned_tokens).c_str());
  std::fputs(prompt.c_str(), stdout);
  std::fflush(stdout);

  std::vector<int32_t> history = ids;
  std::vector<int> eos = cfg.eos_token_ids;
  if (tok->eos_id() >= 0) eos.push_back(tok->eos_id());

  auto t0 = std::chrono::steady_clock::now();
  std::vector<float> logits = session.append(ids);
  const double prefill_s = seconds_since(t0);

  // The decoder sees the prompt first, so the continuation keeps the spaces it has after it
  // (SentencePiece drops the leading space of a sequence's first piece only).
  StreamDecoder stream(*tok);
  for (int32_t id : ids) stream.push(id);
  int generated = 0;
  const char* stop_reason = "limit (-n)";
  t0 = std::chrono::steady_clock::now();
  while (generated < o.n_predict) {
    const int32_t next = sampler.sample(logits.data(), model->vocab_size(), history);
    ++generated;
    history.push_back(next);
    if (!o.ignore_eos && std::find(eos.begin(), eos.end(), next) != eos.end()) {
      stop_reason = "end of sequence";
      break;
    }
    std::fputs(stream.push(next).c_str(), stdout);
    std::fflush(stdout);
    if (generated == o.n_predict) break;
    if (session.n_past() + 1 > ctx) {
      stop_reason = "context full (raise -c)";
      break;
    }
    logits = session.append({next});
  }
  const double decode_s = seconds_since(t0);
  std::fputs(stream.flush().c_str(), stdout);
  std::fputs("\n", stdout);
  std::fflush(stdout);

  // The first generated token comes from the prefill's logits; decode runs generated-1 steps.
  const int decode_steps = std::max(0, generated - 1);
  std::fprintf(stderr,
               "prompt %zu tok | generated %d tok (%s) | prefill %.1f tok/s | decode %.2f tok/s | "
               "kv %.1f MiB | peak RSS %.1f MiB\n",
               ids.size(), generated, stop_reason, ids.size() / std::max(prefill_s, 1e-9),
               decode_steps / std::max(decode_s, 1e-9),
               session.kv().allocated_bytes() / 1048576.0, peak_rss_bytes() / 1048576.0);
  return 0;
}

}  // namespace

Runner add_run_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("run", "Generate text from a prompt");
  auto o = std::make_shared<RunOpts>();
  cmd->add_option("-m,--model", o->model_dir,
                  "Hugging Face model folder (default: ../shared/models/stories260K when present, "
                  "else a cached random-weight SmolLM2-135M-shaped checkpoint)");
  cmd->add_option("-p,--prompt", o->prompt, "Prompt text");
  cmd->add_option("-f,--file", o->prompt_file, "Read the prompt from a file");
  cmd->add_option("-n,--n-predict", o->n_predict, "Tokens to generate")->capture_default_str();
  add_plan_flags(*cmd, o->plan);
  add_weight_memory_flag(*cmd, o->mmap);
  cmd->add_flag("--force-ctx", o->force_ctx, "Allow -c beyond max_position_embeddings");
  cmd->add_option("--temp", o->sp.temperature, "Temperature; 0 = greedy")->capture_default_str();
  cmd->add_option("--top-k", o->sp.top_k, "Keep the k most likely tokens (0 = off)");
  cmd->add_option("--top-p", o->sp.top_p, "Nucleus sampling mass (1 = off)");
  cmd->add_option("--min-p", o->sp.min_p, "Drop tokens below min-p x the top probability");
  cmd->add_option("--repeat-penalty", o->sp.repeat_penalty, "Repetition penalty (1 = off)");
  cmd->add_option("--repeat-last-n", o->sp.repeat_last_n,
                  "Tokens the repetition penalty looks back over (-1 = all)")
      ->capture_default_str();
  cmd->add_option("--seed", o->sp.seed, "Sampling seed")->capture_default_str();
  cmd->add_flag("--ignore-eos", o->ignore_eos, "Keep generating past end-of-sequence");
  return [o] { return run(*o); };
}

}  // namespace longctx::cli
