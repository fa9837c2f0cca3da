// longctx plan: price a configuration without loading weights.
#include <cstdio>
#include <fstream>
#include <sstream>
#include <nlohmann/json.hpp>
#include <string>

#include "commands.h"
#include "config/model_config.h"
#include "core/error.h"
#include "model/presets.h"
#include "model/rope_freqs.h"
#include "plan/memory_plan.h"
#include "plan/plan_json.h"
#include "plan/stage_plan.h"
#include "plan_options.h"

namespace longctx::cli {

namespace {

struct PlanOpts {
  std::string model_path, config_file, preset, weights_dtype = "bf16";
  PlanFlags flags;
  int batch = 1;
  int ranks = 1;
  bool json = false;
};

PlanModel resolve_model(const PlanOpts& o) {
  const int given = !o.model_path.empty() + !o.config_file.empty() + !o.preset.empty();
  if (given != 1)
    throw Error(ErrorKind::kInvalidArg,
                "say which model to plan for with exactly one of -m PATH, --config FILE or "
                "--preset NAME");
  if (!o.model_path.empty()) return plan_model_from_path(o.model_path);
  const size_t wbytes = dtype_size(parse_dtype(o.weights_dtype));
  if (!o.preset.empty()) {
    const Preset& p = find_preset(o.preset);
    return plan_model_from_config(parse_model_config(p.config_json, "preset " + p.name), wbytes,
                                  p.name);
  }
  return plan_model_from_config(
      parse_model_config(read_config_file(o.config_file, "config.json (--config)"), o.config_file),
      wbytes, o.config_file);
}

std::string row(const std::string& item, size_t bytes) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "| %-44s | %15zu | %11s |\n", item.c_str(), bytes,
                format_size(bytes).c_str());
  return buf;
}

std::string layers_text(StageRange s, const ModelConfig& c) {
  std::string t = s.end - s.first == 1 ? "layer " + std::to_string(s.first)
                                       : "layers " + std::to_string(s.first) + "-" +
                                             std::to_string(s.end - 1);
  if (s.has_embed()) t = "embeddings, " + t;
  if (s.has_head(c)) t += ", head";
  return t;
}

// plan --ranks N: each rank's stage priced against its own budget (plan/stage_plan.h).
int plan_ranks(const PlanOpts& o, const PlanModel& m, const PlanRequest& req) {
  std::vector<MemoryBudget> budgets;
  for (int r = 0; r < o.ranks; ++r)
    budgets.push_back(memory_budget_from_flag(budget_flag_for_rank(o.flags.mem_budget, r)));
  const PipelinePlan pp = plan_pipeline(m, req, budgets);
  const ModelConfig& c = m.cfg;
  nlohmann::ordered_json largest = nlohmann::ordered_json::object();
  for (KvType t : kAllKvTypes) {
    PlanRequest one = req;
    one.context = 0;
    one.kv = t;
    one.kv_k = one.kv_v = t;
    largest[kv_type_name(t)] = plan_pipeline(m, one, budgets).context;
  }
  if (!pp.fits()) {
    if (o.json) std::printf("%s\n", nlohmann::ordered_json{{"fits", false},
                                                          {"largest_context", largest}}.dump(2).c_str());
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", pipeline_refusal(m, req, budgets).c_str());
    return 1;
  }
  if (o.json) {
    nlohmann::ordered_json j = {{"fits", true},
                                {"ranks", o.ranks},
                                {"context", pp.context},
                                {"prefill_chunk", pp.prefill_chunk},
                                {"kv", kv_setting_name(pp.plans[0].kv_k, pp.plans[0].kv_v)}};
    for (size_t r = 0; r < pp.stages.size(); ++r) {
      const MemoryPlan& p = pp.plans[r];
      j["per_rank"].push_back({{"rank", r},
                               {"first_layer", pp.stages[r].first},
                               {"end_layer", pp.stages[r].end},
                               {"weights", p.weights},
                               {"kv_cache", p.kv_total},
                               {"activations", p.activations + p.scratch},
                               {"overhead", p.overhead},
                               {"total", p.total},
                               {"budget", p.budget.bytes}});
    }
    j["largest_context"] = largest;
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("plan for %s (%s, %d layers) on %d ranks | context %lld | kv %s | prefill chunk "
              "%lld\n\n",
              m.name.c_str(), c.model_type.c_str(), c.num_hidden_layers, o.ranks,
              static_cast<long long>(pp.context),
              kv_setting_name(pp.plans[0].kv_k, pp.plans[0].kv_v).c_str(),
              static_cast<long long>(pp.prefill_chunk));
  std::printf("| rank | stage                          |     weights |    KV cache | activations |"
              "    overhead |       total |      budget |\n"
              "|------|--------------------------------|-------------|-------------|-------------|"
              "-------------|-------------|-------------|\n");
  for (size_t r = 0; r < pp.stages.size(); ++r) {
    const MemoryPlan& p = pp.plans[r];
    std::printf("| %4zu | %-30s | %11s | %11s | %11s | %11s | %11s | %11s |\n", r,
                layers_text(pp.stages[r], c).c_str(), format_size(p.weights).c_str(),
                format_size(p.kv_total).c_str(), format_size(p.activations + p.scratch).c_str(),
                format_size(p.overhead).c_str(), format_size(p.total).c_str(),
                format_size(p.budget.bytes).c_str());
  }
  std::printf("\nlargest context that fits on these %d ranks:", o.ranks);
  for (auto& [name, v] : largest.items())
    std::printf(" %s %lld;", name.c_str(), v.get<long long>());
  std::printf("\nper token and hop: %lld bytes of activations (hidden_size x 4) down the "
              "pipeline; %lld bytes of logits back from the last rank per sampled token\n",
              static_cast<long long>(c.hidden_size * 4), static_cast<long long>(c.vocab_size * 4));
  return 0;
}

}  // namespace

Runner add_plan_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "plan", "Price a configuration (weights, KV cache, activations) without loading weights");
  auto o = std::make_shared<PlanOpts>();
  std::string names;
  for (const auto& p : presets()) names += (names.empty() ? "" : ", ") + p.name;
  cmd->add_option("-m,--model", o->model_path, "Hugging Face model folder or GGUF file (reads headers only)");
  cmd->add_option("--config", o->config_file, "A config.json file");
  cmd->add_option("--preset", o->preset, "Built-in config: " + names);
  cmd->add_option("--weights-dtype", o->weights_dtype,
                  "Weight dtype for --config/--preset: f32, f16, bf16")
      ->capture_default_str();
  cmd->add_option("--batch", o->batch, "Sequences held at once")->capture_default_str();
  cmd->add_option("--ranks", o->ranks,
                  "Plan a pipeline over N MPI ranks (mpirun -np N): each rank's layers, KV cache "
                  "and total against its budget; --mem-budget A,B,... gives one per rank")
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "Print JSON");
  add_plan_flags(*cmd, o->flags);
  return [o] {
    const PlanModel m = resolve_model(*o);
    if (o->batch < 1) throw Error(ErrorKind::kInvalidArg, "--batch must be >= 1");
    const MemoryBudget budget =
        o->ranks > 1 ? MemoryBudget{} : memory_budget_from_flag(o->flags.mem_budget);
    EngineOptions eo = engine_options(o->flags);
    eo.force_ctx = true;
    PlanRequest req = plan_request(eo, m.cfg);
    req.batch = o->batch;
    if (o->ranks < 1 || o->ranks > 4096)
      throw Error(ErrorKind::kInvalidArg, "--ranks must be between 1 and 4096, not " +
                                              std::to_string(o->ranks));
    if (o->ranks > 1) {
      if (o->batch > 1)
        throw Error(ErrorKind::kInvalidArg, "--ranks plans one sequence; leave --batch out");
      return plan_ranks(*o, m, req);
    }
    const MemoryPlan p = make_plan(m, req, budget);
    const ModelConfig& c = m.cfg;
    const size_t mask = mask_elements(c, p.context);
    const size_t mask_max = mask_elements(c, c.max_position_embeddings);
    nlohmann::ordered_json largest = nlohmann::ordered_json::object();
    for (KvType t : kAllKvTypes) {
      PlanRequest one = req;
      one.batch = 1;
      largest[kv_type_name(t)] = {{"context", largest_context(m, one, t, budget)}};
    }
    if (o->json) {
      std::printf("%s\n", plan_json(m, req, budget, p).c_str());
      return p.fits() ? 0 : 1;
    }
    std::printf("plan for %s (%s, %d layers, %d kv heads x %d) | context %lld | batch %d | kv %s\n\n",
                m.name.c_str(), c.model_type.c_str(), c.num_hidden_layers, c.num_key_value_heads,
                c.head_dim, static_cast<long long>(p.context), p.batch,
                kv_setting_name(p.kv_k, p.kv_v).c_str());
    std::string t = "| item                                         |           bytes |       human |\n"
                    "|----------------------------------------------|-----------------|-------------|\n";
    t += row("weights", p.weights);
    t += row("KV cache per token (all layers)", p.kv_bytes_per_token);
    t += row("KV cache, full attention (" + std::to_string(p.full_layers) + " layers)", p.kv_full);
    t += row("KV cache, sliding window (" + std::to_string(p.window_layers) + " layers)",
             p.kv_window);
    t += row("KV cache total", p.kv_total);
    t += row("activations (prefill chunk " + std::to_string(p.prefill_chunk) + ")", p.activations);
    t += row("kernel scratch", p.scratch);
    t += row("fixed overhead", p.overhead);
    t += row("total", p.total);
    t += row("budget", p.budget.bytes);
    std::fputs(t.c_str(), stdout);
    std::printf("| %-44s | %15lld | %11s |\n", "headroom", static_cast<long long>(p.headroom()),
                (p.headroom() < 0 ? "-" + format_size(size_t(-p.headroom()))
                                  : format_size(size_t(p.headroom()))).c_str());
    std::printf("\nbudget: %s\n", p.budget.source.c_str());
    std::printf("rope: %s\n", rope_summary(c, 0).c_str());
    if (p.window_layers > 0)
      std::printf("note: sliding-window layers hold only the blocks their window and one prefill "
                  "chunk span\n");
    std::printf("largest context that fits at batch 1:");
    for (auto& [name, v] : largest.items())
      std::printf(" %s %lld;", name.c_str(), v["context"].get<long long>());
    std::printf("\nprefill chunk: %lld (%s)\n", static_cast<long long>(p.prefill_chunk),
                p.chunk_auto ? "auto" : "fixed");
    std::printf("mask avoided: a precomputed mask per layer would hold %d x %lld^2 = %zu elements "
                "(%s at 1 byte each); at max_position_embeddings %lld: %zu elements (%s)\n",
                c.num_hidden_layers, static_cast<long long>(p.context), mask,
                format_size(mask).c_str(), static_cast<long long>(c.max_position_embeddings),
                mask_max, format_size(mask_max).c_str());
    if (!p.fits()) {
      std::fflush(stdout);
      std::fprintf(stderr, "error: %s\n", refusal_message(m, req, p).c_str());
      return 1;
    }
    return 0;
  };
}

}  // namespace longctx::cli
