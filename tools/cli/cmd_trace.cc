// longctx trace: run a prompt once and capture named activations (hook points) into a
// safetensors file as the prompt streams through: the header first (every size is known up
// front), each chunk's rows as the chunk completes, to a temporary renamed at the end. Memory
// stays bounded by the chunk whatever the prompt length; attention patterns come as chosen query
// rows and O(heads x pos) reductions, never a context x context tensor (docs/hooks.md).
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "commands.h"
#include "core/error.h"
#include "core/proc_stats.h"
#include "hook_options.h"
#include "hooks/file_sink.h"
#include "hooks/hook_files.h"
#include "hooks/hook_runner.h"
#include "io/weights.h"
#include "longctx/engine.h"
#include "plan_options.h"
#include "runtime/progress.h"

namespace longctx::cli {

namespace {

struct TraceOpts {
  std::string model_path, prompt, prompt_file, out, dtype = "f32";
  bool mmap = false, force_ctx = false;
  PlanFlags plan;
  HookFlags hooks;
  ProgressMode progress = ProgressMode::kAuto;
};

std::string read_prompt(const TraceOpts& o) {
  return o.prompt_file.empty() ? o.prompt : read_text_file(o.prompt_file, "-f", o.plan.mem_budget);
}

int trace(const TraceOpts& o) {
  if (o.model_path.empty()) throw Error(ErrorKind::kInvalidArg, "say which model with -m PATH (a Hugging Face folder or a .gguf file)");
  if (o.prompt.empty() == o.prompt_file.empty())
    throw Error(ErrorKind::kInvalidArg,
                "give the prompt with -p TEXT or -f FILE, exactly one "
                "of them");
  if (o.out.empty()) throw Error(ErrorKind::kInvalidArg, "say where to write with -o OUT.safetensors");
  const DType out_dtype = parse_dtype(o.dtype);
  const std::string prompt = read_prompt(o);

  // The prompt's length sizes every capture, so the tokenizer comes first (it is small and the
  // plan counts it); nothing else is loaded before the plan says yes.
  EngineOptions eo = engine_options(o.plan);
  eo.model_path = o.model_path;
  eo.force_ctx = o.force_ctx;
  eo.weights = weight_memory(o.mmap);
  const ModelConfig cfg = plan_model_from_path(o.model_path).cfg;
  auto tok = load_tokenizer(o.model_path);
  const std::vector<int32_t> ids = tok->encode(prompt, true);
  const int64_t T = static_cast<int64_t>(ids.size());
  if (T == 0)
    throw Error(ErrorKind::kInvalidArg, "the prompt is empty and the tokenizer adds no BOS");
  if (eo.context == 0) eo.context = T;  // the cache holds the prompt, nothing more
  if (eo.context < T)
    throw Error(ErrorKind::kOutOfRange, "the prompt has " + std::to_string(T) +
                                            " tokens but -c is " + std::to_string(eo.context) +
                                            "; raise -c or leave it out");

  hooks::HookRequest req = hook_request(o.hooks, cfg);
  hooks::HookRunner runner(cfg, req, T);  // validates slices, queries, patches
  const PlanRequest pr = plan_request(eo, cfg);
  const int64_t chunk = pr.prefill_chunk > 0 ? pr.prefill_chunk : kMaxAutoChunk;
  eo.extra_bytes = hooks::HookRunner::memory_bytes(cfg, runner.request(), T, chunk, pr.threads) +
                   hooks::FileSink::memory_bytes();
  eo.extra_what = "hook captures";

  // The output: its size is known now; a full hook_pattern is refused where it cannot fit.
  std::vector<io::TensorSpec> specs = {{"tokens", "I64", {1, T}}};
  uint64_t pattern_bytes = 0;
  for (const hooks::CaptureTensor& t : runner.tensors()) {
    specs.push_back({t.name, t.is_int64 ? "I64" : hooks::safetensors_dtype(out_dtype), t.shape});
    if (t.name.ends_with("hook_pattern") || t.name.ends_with("hook_attn_scores"))
      pattern_bytes += static_cast<uint64_t>(t.numel()) * dtype_size(out_dtype);
  }
  const PlannedRun planned = Engine::plan_only(eo);
  if (req.pattern_queries.empty() && pattern_bytes > planned.budget.bytes)
    throw Error(ErrorKind::kMemory,
                "full attention patterns over " + std::to_string(runner.last() - runner.first()) +
                    " queries x " + std::to_string(T) + " keys take " +
                    format_size(pattern_bytes) + ", more than the memory budget (" +
                    format_size(planned.budget.bytes) +
                    "); capture chosen rows with --pattern-queries (e.g. -1,-2), or the "
                    "reductions blocks.*.attn.pattern_key_mass / pattern_entropy, or narrow --pos");
  // Where the rows start: a patch from this file lands at the positions it was captured at.
  const std::map<std::string, std::string> meta = {
      {hooks::kPosFirstKey, std::to_string(runner.first())}};
  const uint64_t file_bytes = io::SafetensorsWriter::bytes_for(specs, meta);
  const uint64_t free_bytes = io::free_bytes_at(o.out);
  if (file_bytes > free_bytes)
    throw Error(ErrorKind::kIo, o.out + " would take " + format_size(file_bytes) + " but its file "
                                "system has " + format_size(free_bytes) +
                                " free; free space, write elsewhere (-o), narrow --pos or "
                                "--hooks, or use --dtype f16");
  io::SafetensorsWriter writer(o.out, specs, meta);  // reserves the file: a full disk fails here

  const auto engine = Engine::load(planned, std::move(tok));
  hooks::FileSink sink(writer, out_dtype);
  {
    std::vector<int64_t> tokens(ids.begin(), ids.end());
    writer.write(0, 0, tokens.data(), tokens.size() * sizeof(int64_t));
  }
  runner.set_sink(&sink);
  Session session = engine->new_session(T, &runner);
  Progress progress("trace", planned.plan.total, o.progress);
  session.set_on_progress([&](int64_t done, int64_t total) { progress.update(done, total); });
  const auto t0 = std::chrono::steady_clock::now();
  session.append(ids);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  progress.finish();
  runner.finish();
  writer.commit();
  std::fprintf(stderr,
               "trace: %zu tensors (%s) to %s | prompt %lld tok | %.1f tok/s | plan %s of %s | "
               "peak RSS %.1f MiB\n",
               specs.size(), format_size(file_bytes).c_str(), o.out.c_str(),
               static_cast<long long>(T), T / std::max(secs, 1e-9),
               format_size(planned.plan.total).c_str(), format_size(planned.budget.bytes).c_str(),
               peak_rss_bytes() / 1048576.0);
  return 0;
}

}  // namespace

Runner add_trace_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "trace", "Capture hook activations (TransformerLens names) of a prompt to a safetensors file");
  auto o = std::make_shared<TraceOpts>();
  cmd->add_option("-m,--model", o->model_path, "Hugging Face model folder or GGUF file")->required();
  cmd->add_option("-p,--prompt", o->prompt, "Prompt text");
  cmd->add_option("-f,--file", o->prompt_file, "Read the prompt from a file");
  cmd->add_option("-o,--out", o->out, "Output .safetensors file")->required();
  cmd->add_option("--dtype", o->dtype, "Stored dtype of the captures: f32, f16, bf16")
      ->capture_default_str();
  add_hook_flags(*cmd, o->hooks, /*capture=*/true);
  add_plan_flags(*cmd, o->plan);
  add_weight_memory_flag(*cmd, o->mmap);
  add_progress_flags(*cmd, o->progress);
  cmd->add_flag("--force-ctx", o->force_ctx, "Allow -c beyond max_position_embeddings");
  return [o] { return trace(*o); };
}

}  // namespace longctx::cli
