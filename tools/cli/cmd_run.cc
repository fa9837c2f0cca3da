// longctx run: generate text from a prompt, streaming it, then print one summary line.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "commands.h"
#include "core/error.h"
#include "core/proc_stats.h"
#include "default_model.h"
#include "kernels/ops.h"
#include "longctx/engine.h"
#include "longctx/generator.h"
#include "model/rope_freqs.h"
#include "runtime/prompt_cache.h"
#include "hook_options.h"
#include "plan_options.h"

namespace longctx::cli {

namespace {

struct RunOpts {
  std::string model_path, prompt, prompt_file;
  bool force_ctx = false;
  bool mmap = false;
  PlanFlags plan;
  GenerateOptions gen;
  HookFlags hooks;
  std::string overflow = "stop";  // --context-overflow
  std::string prompt_cache;  // --prompt-cache FILE
  bool prompt_cache_ro = false, prompt_cache_strict = false;
};

int run(const RunOpts& o) {
  validate(o.gen);
  if ((o.prompt_cache_ro || o.prompt_cache_strict) && o.prompt_cache.empty())
    throw Error(ErrorKind::kInvalidArg,
                "--prompt-cache-ro and --prompt-cache-strict go with --prompt-cache FILE");
  if (!o.prompt.empty() && !o.prompt_file.empty())
    throw Error(ErrorKind::kInvalidArg,
                "give the prompt with -p TEXT or -f FILE, not both (-f " + o.prompt_file + ")");

  std::string dir = o.model_path, prompt = o.prompt;
  bool random_weights = false;
  if (dir.empty()) {
    const DefaultModel d = resolve_default_model();
    dir = d.dir;
    random_weights = d.random;
    if (prompt.empty() && o.prompt_file.empty()) prompt = d.prompt;
  }
  if (!o.prompt_file.empty()) prompt = read_text_file(o.prompt_file, "-f", o.plan.mem_budget);

  // Plan first: refuse before the tokenizer is loaded, a weight mapped or a cache block allocated.
  EngineOptions eo = engine_options(o.plan);
  eo.model_path = dir;
  eo.force_ctx = o.force_ctx;
  eo.weights = weight_memory(o.mmap);
  eo.overflow = parse_context_overflow(o.overflow);
  eo.on_notice = [](const std::string& m) { std::fprintf(stderr, "note: %s\n", m.c_str()); };
  PlannedRun planned = Engine::plan_only(eo);
  const MemoryPlan& plan = planned.plan;
  const ModelConfig& cfg = planned.config();
  const int64_t ctx = plan.context;
  if (const std::string m = context_choice_message(planned); !m.empty())
    std::fprintf(stderr, "%s\n", m.c_str());

  // The prompt must fit before the weights load.
  auto tok = load_tokenizer(dir);
  const std::vector<int32_t> ids = tok->encode(prompt, true);
  if (ids.empty())
    throw Error(ErrorKind::kInvalidArg,
                "the prompt is empty and the tokenizer adds no BOS; "
                "give a prompt with -p TEXT");
  check_prompt_fits(static_cast<int64_t>(ids.size()), ctx);
  // --patch / --steer: positions count from the prompt's first token; steering and one-row
  // patches over an open slice go on through the generated tokens.
  std::unique_ptr<hooks::HookRunner> runner;
  if (o.hooks.any_intervention()) {
    const auto T = static_cast<int64_t>(ids.size());
    runner = std::make_unique<hooks::HookRunner>(cfg, hook_request(o.hooks, cfg), T);
    // The plan above did not know of them: price the patches and plan again, same context.
    eo.extra_bytes = hooks::HookRunner::memory_bytes(cfg, runner->request(), T,
                                                     plan.prefill_chunk, planned.request.threads);
    eo.extra_what = "patches";
    eo.context = ctx;
    planned = Engine::plan_only(eo);
  }

  const auto engine = Engine::load(planned, std::move(tok));
  // The total is known up front, so LongRoPE picks short or long factors once
  // (docs/rope-scaling.md).
  Session session = engine->new_session(static_cast<int64_t>(ids.size()) + o.gen.n_predict,
                                        runner.get());
  Generator gen(*engine, session, o.gen);
  // --prompt-cache: the longest prefix of the prompt the file holds, checked, into the session.
  PromptCacheLoad cached;
  if (!o.prompt_cache.empty()) {
    cached = load_prompt_cache(session, o.prompt_cache, ids);
    if (!cached.refused.empty()) {
      const std::string why = "--prompt-cache " + o.prompt_cache + " cannot be used: " +
                              cached.refused;
      if (o.prompt_cache_strict) throw Error(ErrorKind::kFormat, why + " (--prompt-cache-strict)");
      std::fprintf(stderr, "note: %s; the prompt is prefilled from scratch\n", why.c_str());
    } else if (cached.found) {
      std::fprintf(stderr, "prompt cache: %lld of the prompt's %zu tokens from %s (%lld cached, "
                           "read and checked in %.3f s)\n",
                   static_cast<long long>(cached.reused), ids.size(), o.prompt_cache.c_str(),
                   static_cast<long long>(cached.cached), cached.seconds);
    }
  }

  if (random_weights)
    std::fprintf(stderr,
                 "note: %s has random weights: the text is meaningless, speed and memory are "
                 "real\n",
                 dir.c_str());
  std::fprintf(stderr,
               "model %s (%s, %d layers) | weights %s | ctx %lld | kv %s | prefill chunk "
               "%lld%s | threads %d | simd %s | plan %s of %s\n",
               dir.c_str(), cfg.model_type.c_str(), cfg.num_hidden_layers,
               engine->model().weights_resident() ? "on huge pages" : "mapped",
               static_cast<long long>(ctx), kv_setting_name(plan.kv_k, plan.kv_v).c_str(),
               static_cast<long long>(plan.prefill_chunk), plan.chunk_auto ? " (auto)" : "",
               engine->pool().size(), kernels::simd_path(), format_size(plan.total).c_str(),
               format_size(planned.budget.bytes).c_str());
  if (cfg.rope_scaling.type != RopeType::kDefault)
    std::fprintf(stderr, "rope: %s\n", rope_summary(cfg, session.options().planned_tokens).c_str());
  // With a progress line the prompt is echoed after the prefill, so the line cannot overwrite it.
  auto echo_prompt = [&] {
    std::fputs(prompt.c_str(), stdout);
    std::fflush(stdout);
  };
  if (!gen.shows_progress()) echo_prompt();
  const GenerateResult r = gen.generate(
      ids,
      [](const std::string& text) {
        std::fputs(text.c_str(), stdout);
        std::fflush(stdout);
      },
      [&] {
        if (gen.shows_progress()) echo_prompt();
        // After the prefill: the prompt's state, for the next run that starts with it.
        if (!o.prompt_cache.empty() && !o.prompt_cache_ro &&
            session.n_past() > cached.reused)
          save_prompt_cache(session, o.prompt_cache);
      },
      cached.reused);
  std::fputs("\n", stdout);
  std::fflush(stdout);

  std::fprintf(stderr,
               "prompt %zu tok%s | generated %zu tok (%s) | prefill %.1f tok/s | decode %.2f tok/s | "
               "kv %.1f MiB | peak RSS %.1f MiB\n",
               ids.size(),
               r.prompt_held > 0
                   ? (" (" + std::to_string(r.prompt_held) + " from the prompt cache)").c_str()
                   : "",
               r.tokens.size(), stop_reason_text(r.stop), r.prefill_tok_per_s(),
               r.decode_tok_per_s(), session.kv().allocated_bytes() / 1048576.0,
               peak_rss_bytes() / 1048576.0);
  if (session.shifts() > 0)
    std::fprintf(stderr, "context overflow (%s): %d shifts dropped %lld tokens\n",
                 o.overflow.c_str(), session.shifts(), static_cast<long long>(session.dropped()));
  std::fputs(engine->rank_report().c_str(), stderr);  // under mpirun: each rank's plan and peak
  return 0;
}

}  // namespace

Runner add_run_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("run", "Generate text from a prompt");
  auto o = std::make_shared<RunOpts>();
  cmd->add_option("-m,--model", o->model_path,
                  "Hugging Face model folder or GGUF file (default: ../shared/models/stories260K when "
                  "present, "
                  "else a cached random-weight SmolLM2-135M-shaped checkpoint)");
  cmd->add_option("-p,--prompt", o->prompt, "Prompt text (or -f)");
  cmd->add_option("-f,--file", o->prompt_file, "Read the prompt from a file (or -p)");
  cmd->add_option("-n,--n-predict", o->gen.n_predict, "Tokens to generate")->capture_default_str();
  add_plan_flags(*cmd, o->plan);
  add_weight_memory_flag(*cmd, o->mmap);
  cmd->add_flag("--force-ctx", o->force_ctx, "Allow -c beyond max_position_embeddings");
  cmd->add_option("--temp", o->gen.sampler.temperature, "Temperature; 0 = greedy")
      ->capture_default_str();
  cmd->add_option("--top-k", o->gen.sampler.top_k, "Keep the k most likely tokens (0 = off)");
  cmd->add_option("--top-p", o->gen.sampler.top_p, "Nucleus sampling mass (1 = off)");
  cmd->add_option("--min-p", o->gen.sampler.min_p, "Drop tokens below min-p x the top probability");
  cmd->add_option("--repeat-penalty", o->gen.sampler.repeat_penalty,
                  "Repetition penalty (1 = off)");
  cmd->add_option("--repeat-last-n", o->gen.sampler.repeat_last_n,
                  "Tokens the repetition penalty looks back over (-1 = all)")
      ->capture_default_str();
  cmd->add_option("--seed", o->gen.sampler.seed, "Sampling seed")->capture_default_str();
  cmd->add_flag("--ignore-eos", o->gen.ignore_eos, "Keep generating past end-of-sequence");
  cmd->add_option("--context-overflow", o->overflow,
                  "Past the context: stop (default), shift (drop the older half of the tokens, "
                  "keep going), sinks:N (keep the first N and a window; StreamingLLM)")
      ->capture_default_str();
  cmd->add_option("--prompt-cache", o->prompt_cache,
                  "Reuse the KV state of a prompt prefix saved in FILE, prefill only the rest, "
                  "then save this prompt's state there (docs/prompt-cache.md)");
  cmd->add_flag("--prompt-cache-ro", o->prompt_cache_ro,
                "With --prompt-cache: use the file, never write it");
  cmd->add_flag("--prompt-cache-strict", o->prompt_cache_strict,
                "With --prompt-cache: a file that cannot be used is an error instead of a note");
  add_progress_flags(*cmd, o->gen.progress);
  add_hook_flags(*cmd, o->hooks, /*capture=*/false);
  return [o] { return run(*o); };
}

}  // namespace longctx::cli
