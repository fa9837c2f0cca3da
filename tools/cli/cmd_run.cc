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
#include "kernels/ops.h"
#include "model/decoder.h"
#include "runtime/sampler.h"
#include "runtime/session.h"
#include "tokenizer/tokenizer.h"

namespace longctx::cli {

namespace {

struct RunOpts {
  std::string model_dir, prompt, prompt_file, kv_dtype = "f16";
  int n_predict = 128;
  int64_t ctx = 0;
  bool force_ctx = false;
  int64_t prefill_chunk = 256;
  int threads = 0;
  bool ignore_eos = false;
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

// The context cap: -c when given (refused past max_position_embeddings unless forced), else the
// model's maximum. The KV cache grows as tokens arrive, so the cap allocates nothing.
int64_t choose_context(const ModelConfig& cfg, const RunOpts& o) {
  if (o.ctx < 0) throw Error(ErrorKind::kInvalidArg, "-c must be a positive number of tokens");
  if (o.ctx == 0) return cfg.max_position_embeddings;
  if (o.ctx > cfg.max_position_embeddings && !o.force_ctx)
    throw Error(ErrorKind::kOutOfRange,
                "context " + std::to_string(o.ctx) + " exceeds the model's max_position_embeddings (" +
                    std::to_string(cfg.max_position_embeddings) +
                    "); positions past it were never trained and output degrades. Use -c " +
                    std::to_string(cfg.max_position_embeddings) +
                    " or less, or add --force-ctx to run anyway");
  return o.ctx;
}

int run(const RunOpts& o) {
  validate(o.sp);
  if (o.n_predict < 0) throw Error(ErrorKind::kInvalidArg, "-n must be >= 0");
  if (o.prefill_chunk <= 0)
    throw Error(ErrorKind::kInvalidArg, "--prefill-chunk must be a positive number of tokens");
  const DType kv_dtype = parse_dtype(o.kv_dtype);

  std::string dir = o.model_dir, prompt = o.prompt;
  bool random_weights = false;
  if (dir.empty()) {
    const DefaultModel d = resolve_default_model();
    dir = d.dir;
    random_weights = d.random;
    if (prompt.empty() && o.prompt_file.empty()) prompt = d.prompt;
  }
  if (!o.prompt_file.empty()) prompt = read_file(o.prompt_file);

  const ModelConfig cfg = load_model_config(dir);
  const int64_t ctx = choose_context(cfg, o);
  const auto tok = load_tokenizer(dir);
  const std::vector<int32_t> ids = tok->encode(prompt, true);
  if (ids.empty())
    throw Error(ErrorKind::kInvalidArg, "the prompt is empty and the tokenizer adds no BOS; "
                                        "give a prompt with -p TEXT");
  if (static_cast<int64_t>(ids.size()) >= ctx)
    throw Error(ErrorKind::kOutOfRange, "the prompt has " + std::to_string(ids.size()) +
                                            " tokens but the context is " + std::to_string(ctx) +
                                            "; raise -c or shorten the prompt");

  const auto model = Model::load(dir);
  ThreadPool pool(o.threads);
  SessionOptions so;
  so.context = ctx;
  so.prefill_chunk = o.prefill_chunk;
  so.kv_dtype = kv_dtype;
  Session session(*model, pool, so);
  Sampler sampler(o.sp);

  if (random_weights)
    std::fprintf(stderr,
                 "note: %s has random weights: the text is meaningless, speed and memory are "
                 "real\n", dir.c_str());
  std::fprintf(stderr, "model %s (%s, %d layers) | ctx %lld | kv %s | prefill chunk %lld | "
               "threads %d | simd %s\n", dir.c_str(), cfg.model_type.c_str(),
               cfg.num_hidden_layers, static_cast<long long>(ctx), dtype_name(kv_dtype),
               static_cast<long long>(std::min(o.prefill_chunk, ctx)), pool.size(),
               kernels::simd_path());
  std::fputs(prompt.c_str(), stdout);
  std::fflush(stdout);

  std::vector<int32_t> history = ids;
  std::vector<int> eos = cfg.eos_token_ids;
  if (tok->eos_id() >= 0) eos.push_back(tok->eos_id());

  auto t0 = std::chrono::steady_clock::now();
  std::vector<float> logits = session.append(ids);
  const double prefill_s = seconds_since(t0);

  StreamDecoder stream(*tok);
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
  cmd->add_option("-c,--ctx", o->ctx,
                  "Context cap in tokens (default: max_position_embeddings); the KV cache grows "
                  "as tokens arrive");
  cmd->add_flag("--force-ctx", o->force_ctx, "Allow -c beyond max_position_embeddings");
  cmd->add_option("--prefill-chunk", o->prefill_chunk, "Prompt tokens per forward pass")
      ->capture_default_str();
  cmd->add_option("--kv-dtype", o->kv_dtype, "KV-cache precision: f32, f16, bf16")
      ->capture_default_str();
  cmd->add_option("-t,--threads", o->threads, "Threads (default: all cores)");
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
