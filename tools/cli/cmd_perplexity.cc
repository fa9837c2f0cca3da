// longctx perplexity: perplexity of a model over a text file, scored as llama-perplexity scores it,
// and (--compare-kv) the divergence of next-token distributions between two KV-cache types.
//
// Default (llama.cpp's perplexity()): the tokenized file (with BOS) is cut into chunks of CTX
// tokens; each chunk's first token is replaced by BOS; the logits of positions [CTX/2, CTX - 1)
// score the next token. --stride S (llama.cpp's perplexity_v2): chunks of CTX tokens start every S
// tokens and the last S predictions of each are scored. PPL = exp(mean NLL); its standard error is
// PPL x sqrt(var(NLL) / (count - 1)), with var = mean(NLL^2) - mean(NLL)^2 (llama.cpp's formula).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "commands.h"
#include "core/error.h"
#include "longctx/engine.h"
#include "hook_options.h"
#include "plan_options.h"
#include "runtime/progress.h"

namespace longctx::cli {

namespace {

struct PplOpts {
  HookFlags hooks;
  std::string model_path, file, compare_kv;
  std::string overflow = "stop";  // --context-overflow: also score the text as one stream
  int64_t stride = 0;
  bool json = false;
  bool mmap = false;
  ProgressMode progress = ProgressMode::kAuto;
  PlanFlags plan;
};

// Mean and spread of a per-token quantity.
struct Stat {
  double sum = 0, sum2 = 0, max = 0;
  int64_t n = 0;
  void add(double x) {
    sum += x;
    sum2 += x * x;
    max = std::max(max, x);
    ++n;
  }
  double mean() const { return n ? sum / n : 0.0; }
  // Standard error of the mean: sqrt((mean(x^2) - mean(x)^2) / (n - 1)).
  double stderr_mean() const {
    if (n < 2) return 0.0;
    const double var = sum2 / n - mean() * mean();
    return var > 0 ? std::sqrt(var / (n - 1)) : 0.0;
  }
};

// log softmax(row)[i] for every i, in double.
void log_softmax(const float* row, int64_t V, std::vector<double>& out) {
  out.resize(static_cast<size_t>(V));
  double mx = row[0];
  for (int64_t i = 1; i < V; ++i) mx = std::max(mx, static_cast<double>(row[i]));
  double sum = 0;
  for (int64_t i = 0; i < V; ++i) sum += std::exp(row[i] - mx);
  const double lse = mx + std::log(sum);
  for (int64_t i = 0; i < V; ++i) out[i] = row[i] - lse;
}

int64_t argmax(const std::vector<double>& v) {
  return std::max_element(v.begin(), v.end()) - v.begin();
}

// One KV setting's run over a chunk: logits of the scored positions, [rows][V]. `on_chunk` is
// told each prefill chunk's tokens.
void run_chunk(Engine& engine, const MemoryPlan& plan, const std::vector<int32_t>& chunk,
               int64_t first, std::vector<float>& logits,
               const std::function<void(int64_t)>& on_tokens, hooks::HookRunner* hooks) {
  const int64_t ctx = static_cast<int64_t>(chunk.size());
  Session s = engine.new_session(plan, engine.pool(), ctx, hooks);
  int64_t reported = 0;
  s.set_on_progress([&](int64_t done, int64_t) {
    on_tokens(done - reported);
    reported = done;
  });
  // Context tokens [0, first) need no logits; positions [first, n - 1) give the scored rows.
  if (first > 0) s.append(std::vector<int32_t>(chunk.begin(), chunk.begin() + first));
  reported = 0;
  s.append(std::vector<int32_t>(chunk.begin() + first, chunk.end() - 1), &logits);
}

int perplexity(const PplOpts& o) {
  if (o.model_path.empty()) throw Error(ErrorKind::kInvalidArg, "say which model with -m PATH (a Hugging Face folder or a .gguf file)");
  if (o.file.empty()) throw Error(ErrorKind::kInvalidArg, "say which text to score with -f FILE");
  if (o.stride < 0)
    throw Error(ErrorKind::kInvalidArg,
                "--stride must be a positive number of tokens (0 or "
                "absent: llama-perplexity's halves), not " +
                    std::to_string(o.stride));
  const std::string text = read_text_file(o.file, "-f", o.plan.mem_budget);
  if (text.empty())
    throw Error(ErrorKind::kInvalidArg, "-f " + o.file + " is empty; give a text to score");

  EngineOptions eo = engine_options(o.plan);
  eo.model_path = o.model_path;
  eo.weights = weight_memory(o.mmap);
  const ContextOverflow overflow = parse_context_overflow(o.overflow);
  eo.overflow = overflow;
  // Refuses a request that cannot fit (or -c past max_position_embeddings) before tokenizing.
  const PlannedRun probe = Engine::plan_only(eo);
  const ModelConfig& cfg = probe.config();
  auto tok = load_tokenizer(o.model_path);
  const std::vector<int32_t> ids = tok->encode(text, true);
  const int64_t N = static_cast<int64_t>(ids.size());

  // Context: -c, else the planner's choice, shortened to what the text can fill.
  const bool ctx_given = eo.context > 0;
  if (!ctx_given) {
    const int64_t need = o.stride > 0 ? 5 : 8;  // a context of 4 tokens, filled (twice)
    if (N < need)
      throw Error(ErrorKind::kInvalidArg,
                  o.file + " has " + std::to_string(N) + " tokens; perplexity needs at least " +
                      std::to_string(need) +
                      (o.stride > 0 ? " (more than one context of 4 tokens)"
                                    : " (two chunks of 4 tokens, as llama-perplexity requires)") +
                      " to score anything: give a longer text");
    const int64_t planned = probe.plan.context;
    const int64_t text_max = o.stride > 0 ? N - 1 : N / 2;
    eo.context = std::min(planned, text_max);
    if (eo.context < planned)
      std::fprintf(stderr, "context %lld: the largest the text (%lld tokens) fills%s (set -c)\n",
                   static_cast<long long>(eo.context), static_cast<long long>(N),
                   o.stride > 0 ? "" : " twice, as llama-perplexity requires");
  }
  const int64_t ctx = eo.context;
  if (ctx < 4)
    throw Error(ErrorKind::kInvalidArg,
                "-c must be at least 4 tokens to score anything, not " + std::to_string(ctx));
  int64_t n_chunks = 0, first = 0, step = ctx;
  if (o.stride > 0) {
    if (o.stride >= ctx)
      throw Error(ErrorKind::kInvalidArg, "--stride " + std::to_string(o.stride) +
                                              " must be smaller than the context (" +
                                              std::to_string(ctx) + "); lower it");
    if (N <= ctx)
      throw Error(ErrorKind::kInvalidArg, o.file + " has " + std::to_string(N) +
                                              " tokens; --stride needs more than -c (" +
                                              std::to_string(ctx) + "): use -c " +
                                              std::to_string(std::max<int64_t>(N - 1, 0)) + " or less");
    n_chunks = (N - ctx + o.stride - 1) / o.stride;
    first = ctx - o.stride - 1;
    step = o.stride;
  } else {
    if (N < 2 * ctx)
      throw Error(ErrorKind::kInvalidArg,
                  o.file + " has " + std::to_string(N) + " tokens; perplexity with -c " +
                      std::to_string(ctx) + " needs at least " + std::to_string(2 * ctx) +
                      " (two chunks, as llama-perplexity requires): use -c " +
                      std::to_string(N / 2) + " or less, or a longer text");
    n_chunks = N / ctx;
    first = ctx / 2;
  }
  const int64_t rows = ctx - 1 - first, V = cfg.vocab_size;

  // Plans: the measured setting and the baseline run one after the other (one KV cache at a
  // time); each also holds the scored logits of both, [rows][vocab] f32.
  std::optional<KvType> base;
  if (!o.compare_kv.empty()) base = parse_kv_type(o.compare_kv);
  // --patch / --steer apply to every chunk (both KV settings), at positions within the chunk.
  std::unique_ptr<hooks::HookRunner> runner;
  if (o.hooks.any_intervention())
    runner = std::make_unique<hooks::HookRunner>(cfg, hook_request(o.hooks, cfg), ctx);
  // Beside them: the text and its token ids (held throughout), one chunk's ids, and the two
  // log-softmax rows (doubles).
  eo.extra_bytes = size_t(rows) * size_t(V) * sizeof(float) * (base ? 2 : 1) + text.size() +
                   ids.size() * sizeof(int32_t) + size_t(ctx) * sizeof(int32_t) +
                   2 * size_t(V) * sizeof(double);
  eo.extra_what = "the scored logits";
  if (runner) {
    const PlanRequest pr = plan_request(eo, cfg);
    eo.extra_bytes += hooks::HookRunner::memory_bytes(
        cfg, runner->request(), ctx, pr.prefill_chunk > 0 ? pr.prefill_chunk : kMaxAutoChunk,
        pr.threads);
    eo.extra_what = "the scored logits and patches";
  }
  const PlannedRun planned = Engine::plan_only(eo);
  const MemoryPlan& plan = planned.plan;
  MemoryPlan base_plan = plan;
  if (base) {
    EngineOptions be = eo;
    be.kv = *base;
    be.kv_k.reset();
    be.kv_v.reset();
    base_plan = Engine::plan_only(be).plan;
  }

  const auto engine = Engine::load(planned, std::move(tok));
  const std::string kv_name = kv_setting_name(plan.kv_k, plan.kv_v);
  std::fprintf(stderr,
               "perplexity of %s over %s: %lld tokens, %lld chunks of %lld, scoring %lld per chunk "
               "| kv %s%s | threads %d\n",
               o.model_path.c_str(), o.file.c_str(), static_cast<long long>(N),
               static_cast<long long>(n_chunks), static_cast<long long>(ctx),
               static_cast<long long>(rows), kv_name.c_str(),
               base ? (std::string(" vs ") + kv_type_name(*base)).c_str() : "",
               engine->pool().size());

  Stat nll, base_nll, kl;
  int64_t same_top1 = 0;
  std::vector<double> running;
  std::vector<float> logits, base_logits;
  std::vector<double> lp, lq;
  const int32_t bos = engine->tokenizer().bos_id();
  // The running perplexity: "[1]5.4321,[2]..." as llama-perplexity prints it, as it goes; with a
  // live progress line it shows there instead, and the list is printed at the end.
  FILE* running_out = o.json ? stderr : stdout;
  Progress progress("perplexity", plan.total, o.progress);
  const int64_t all_tokens = n_chunks * (ctx - 1) * (base ? 2 : 1);
  int64_t tokens_done = 0;
  std::string note;
  auto on_tokens = [&](int64_t n) { progress.update(tokens_done += n, all_tokens, note); };
  std::string running_list;
  for (int64_t c = 0; c < n_chunks; ++c) {
    const int64_t start = c * step;
    std::vector<int32_t> chunk(ids.begin() + start, ids.begin() + start + ctx);
    if (bos >= 0) chunk[0] = bos;
    if (base) run_chunk(*engine, base_plan, chunk, first, base_logits, on_tokens, runner.get());
    run_chunk(*engine, plan, chunk, first, logits, on_tokens, runner.get());
    for (int64_t r = 0; r < rows; ++r) {
      const int32_t target = chunk[first + r + 1];
      log_softmax(logits.data() + r * V, V, lq);
      nll.add(-lq[target]);
      if (!base) continue;
      log_softmax(base_logits.data() + r * V, V, lp);
      base_nll.add(-lp[target]);
      double d = 0;
      for (int64_t i = 0; i < V; ++i) d += std::exp(lp[i]) * (lp[i] - lq[i]);
      kl.add(std::max(d, 0.0));
      same_top1 += argmax(lp) == argmax(lq);
    }
    running.push_back(std::exp(nll.mean()));
    char item[48], ppl_now[32];
    std::snprintf(item, sizeof item, "[%lld]%.4f,", static_cast<long long>(c + 1), running.back());
    std::snprintf(ppl_now, sizeof ppl_now, "%.4f", running.back());
    if (progress.enabled()) {
      running_list += item;
      note = "chunk " + std::to_string(c + 1) + "/" + std::to_string(n_chunks) + " | PPL " + ppl_now;
      progress.update(tokens_done, all_tokens, note);
    } else {
      std::fputs(item, running_out);
      std::fflush(running_out);
    }
  }
  progress.finish();
  std::fputs((running_list + "\n").c_str(), running_out);
  // --context-overflow shift|sinks:N: the whole text as one sequence through a context of ctx
  // tokens that drops tokens as it fills; every token from position ctx/2 on is scored.
  Stat stream;
  int stream_shifts = 0;
  if (overflow.mode != ContextOverflow::kStop) {
    Session s = engine->new_session(plan, engine->pool(), ctx, runner.get());
    const int64_t piece = std::max<int64_t>(1, std::min(plan.prefill_chunk, ctx / 4));
    std::vector<float> piece_logits;
    for (int64_t at = 0; at + 1 < N; at += piece) {
      const int64_t m = std::min(piece, N - 1 - at);
      s.append(std::vector<int32_t>(ids.begin() + at, ids.begin() + at + m), &piece_logits);
      for (int64_t r = 0; r < m; ++r) {
        if (at + r < ctx / 2) continue;
        log_softmax(piece_logits.data() + r * V, V, lq);
        stream.add(-lq[ids[static_cast<size_t>(at + r + 1)]]);
      }
    }
    stream_shifts = s.shifts();
  }
  const double ppl = std::exp(nll.mean()), ppl_err = ppl * nll.stderr_mean();
  const double base_ppl = std::exp(base_nll.mean()), base_err = base_ppl * base_nll.stderr_mean();
  const double top1 = kl.n ? 100.0 * same_top1 / kl.n : 0.0;
  if (o.json) {
    nlohmann::ordered_json j;
    j["model"] = o.model_path;
    j["file"] = o.file;
    j["tokens"] = N;
    j["context"] = ctx;
    j["stride"] = o.stride;
    j["chunks"] = n_chunks;
    j["scored"] = nll.n;
    j["kv_dtype"] = kv_name;
    j["ppl"] = ppl;
    j["ppl_stderr"] = ppl_err;
    j["running_ppl"] = running;
    if (base)
      j["compare"] = {{"kv_dtype", kv_type_name(*base)},
                      {"ppl", base_ppl},
                      {"ppl_stderr", base_err},
                      {"ppl_change_percent", 100.0 * (ppl / base_ppl - 1.0)},
                      {"kl_mean", kl.mean()},
                      {"kl_mean_stderr", kl.stderr_mean()},
                      {"kl_max", kl.max},
                      {"top1_agreement_percent", top1}};
    if (stream.n > 0)
      j["stream"] = {{"context_overflow", o.overflow},
                     {"ppl", std::exp(stream.mean())},
                     {"ppl_stderr", std::exp(stream.mean()) * stream.stderr_mean()},
                     {"scored", stream.n},
                     {"shifts", stream_shifts}};
    std::printf("%s\n", j.dump(2).c_str());
    std::fputs(engine->rank_report().c_str(), stderr);  // under mpirun: each rank's plan and peak
    return 0;
  }
  std::printf("Final estimate: PPL = %.4f +/- %.5f (kv %s, %lld tokens scored)\n", ppl, ppl_err,
              kv_name.c_str(), static_cast<long long>(nll.n));
  if (base) {
    std::printf("Baseline (kv %s): PPL = %.4f +/- %.5f; PPL change %+.3f%%\n", kv_type_name(*base),
                base_ppl, base_err, 100.0 * (ppl / base_ppl - 1.0));
    std::printf("KL divergence vs %s: mean %.6g +/- %.2g, max %.6g; top-1 agreement %.3f%%\n",
                kv_type_name(*base), kl.mean(), kl.stderr_mean(), kl.max, top1);
  }
  if (stream.n > 0)
    std::printf("One stream (--context-overflow %s, context %lld, %d shifts): PPL = %.4f +/- %.5f "
                "(%lld tokens scored, from position %lld)\n",
                o.overflow.c_str(), static_cast<long long>(ctx), stream_shifts,
                std::exp(stream.mean()), std::exp(stream.mean()) * stream.stderr_mean(),
                static_cast<long long>(stream.n), static_cast<long long>(ctx / 2));
  std::fputs(engine->rank_report().c_str(), stderr);  // under mpirun: each rank's plan and peak
  return 0;
}

}  // namespace

Runner add_perplexity_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "perplexity", "Perplexity over a text file (scored as llama-perplexity), optionally the KL "
                    "divergence between two KV-cache types");
  auto o = std::make_shared<PplOpts>();
  cmd->add_option("-m,--model", o->model_path, "Hugging Face model folder or GGUF file")->required();
  cmd->add_option("-f,--file", o->file, "Text file to score")->required();
  cmd->add_option("--stride", o->stride,
                  "Score the last S tokens of chunks starting every S tokens (llama.cpp's "
                  "--ppl-stride); 0 or absent: llama-perplexity's halves");
  cmd->add_option("--compare-kv", o->compare_kv,
                  "Also run this KV type (e.g. f32) and report KL divergence and top-1 agreement "
                  "of the next-token distributions against it");
  cmd->add_option("--context-overflow", o->overflow,
                  "Also score the whole text as one sequence through the context, dropping tokens "
                  "as it fills: shift or sinks:N (stop, the default: the windows only)")
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "Print JSON (progress goes to stderr)");
  add_plan_flags(*cmd, o->plan);
  add_weight_memory_flag(*cmd, o->mmap);
  add_progress_flags(*cmd, o->progress);
  add_hook_flags(*cmd, o->hooks, /*capture=*/false);
  return [o] { return perplexity(*o); };
}

}  // namespace longctx::cli
