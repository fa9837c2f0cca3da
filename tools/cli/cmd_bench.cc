// longctx bench: prompt and generation speed like llama-bench, next to the bandwidth roofline.
//
// Tests: for every KV dtype x thread count x depth d, "pp P" times a P-token prompt and "tg N"
// times N single-token decode steps, each after d tokens already in the KV cache (filled once by
// an untimed prefill and rewound to d before every repetition). Output: a markdown table or, with
// --json, a JSON array with llama-bench's field names where they mean the same thing.
#include <algorithm>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <optional>
#include <string>
#include <vector>

#include "build_info.h"
#include "commands.h"
#include "dist/mpi.h"
#include "config/model_config.h"
#include "core/error.h"
#include "core/huge_pages.h"
#include "core/proc_stats.h"
#include "default_model.h"
#include "kernels/ops.h"
#include "config/arch.h"
#include "model/decoder.h"
#include "longctx/engine.h"
#include "plan_options.h"

namespace longctx::cli {

namespace {

struct BenchOpts {
  std::string model_path;
  std::vector<int64_t> n_prompt{512}, n_gen{128}, n_depth{0};
  std::vector<std::string> kv_dtypes{"f16"};
  std::vector<int> threads;  // empty: all cores
  int reps = 5;
  bool json = false;
  bool force_ctx = false;
  bool mmap = false;
  std::string prefill_chunk = "auto", mem_budget = "auto";
};

struct TestResult {
  std::string kv;
  int threads = 0;
  int64_t n_prompt = 0, n_gen = 0, n_depth = 0, n_batch = 0;
  std::vector<double> samples_ns, samples_ts;
  double avg_ns = 0, stddev_ns = 0, avg_ts = 0, stddev_ts = 0;
  double bytes_per_token = 0;  // tg only: weights + KV read per decoded token
  double read_bw = 0;          // bytes/s: the probe right after a tg test, else the first probe
  size_t peak_rss = 0;
  std::string test_time;
};

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / static_cast<double>(v.size());
}

double stddev(const std::vector<double>& v) {  // sample standard deviation, as llama-bench
  if (v.size() < 2) return 0;
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("model name", 0) == 0) {
      const size_t c = line.find(':');
      if (c != std::string::npos) return line.substr(line.find_first_not_of(' ', c + 1));
    }
  return "unknown";
}

// Gives memory a previous configuration freed back to the system (glibc keeps freed heap pages
// resident otherwise, and the next configuration's cache would come on top of the last one's).
// VmHWM is never reset: every peak bench reports is the process's true peak so far, the one the
// budget must hold (and what wait4 / /proc/PID/status show to whoever watches the process).
void release_freed_memory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// "1.10 B", "134.5 M".
std::string format_params(size_t n) {
  return n >= 1000000000 ? fmt("%.2f B", n / 1e9) : fmt("%.1f M", n / 1e6);
}

// The probe's buffer is a whole number of huge pages (what it maps), and 64 MiB or more when the
// budget allows. Its pool's threads are priced like the plan prices the engine's (stacks touched).
constexpr size_t kProbeGranule = HugePageBuffer::kHugePage;
constexpr size_t kProbeWanted = size_t{64} << 20;
constexpr size_t kThreadStackBytes = size_t{256} << 10;

// Bytes one decode step reads: every weight except an untied embedding table (of which it reads
// one row), and the keys and values every layer's query can see at position `pos`.
struct ReadModel {
  size_t weight_bytes = 0;
  ModelConfig cfg;

  double kv_bytes_at(KvType kv, int64_t pos) const {
    // Keys + values of one token in one layer, as stored (int8/int4 scales included).
    const double per_token_layer = static_cast<double>(kv_bytes_per_token_layer(cfg, kv, kv));
    double keys = 0;
    for (int l = 0; l < cfg.num_hidden_layers; ++l) {
      const int64_t w = l < static_cast<int>(cfg.layer_window.size()) ? cfg.layer_window[l] : 0;
      keys += static_cast<double>(w > 0 ? std::min(pos + 1, w) : pos + 1);
    }
    return keys * per_token_layer;
  }
  // Mean over the decode steps at positions depth .. depth + n_gen - 1.
  double per_token(KvType kv, int64_t depth, int64_t n_gen) const {
    double s = 0;
    for (int64_t i = 0; i < n_gen; ++i) s += kv_bytes_at(kv, depth + i);
    return static_cast<double>(weight_bytes) + s / static_cast<double>(std::max<int64_t>(1, n_gen));
  }
};

// The machine's read bandwidth in bytes/s: best of several streaming reads over `bytes`.
double measure_read_bandwidth(int threads, size_t bytes, int passes) {
  // On huge pages like the resident weights: the roofline is the best the machine reads.
  const int64_t n = static_cast<int64_t>(bytes / sizeof(float));
  HugePageBuffer mem(static_cast<size_t>(n) * sizeof(float));
  if (!mem.ok())
    throw Error(ErrorKind::kMemory, "cannot map " + format_size(bytes) +
                                        " for the bandwidth probe; lower --mem-budget");
  float* buf = reinterpret_cast<float*>(mem.data());
  std::fill(buf, buf + n, 1.f);
  ThreadPool pool(threads);
  double best = 0, check = 0;
  kernels::sum(pool, buf, n);  // warm-up
  for (int i = 0; i < passes; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    check += kernels::sum(pool, buf, n);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, static_cast<double>(bytes) / s);
  }
  if (check != static_cast<double>(passes) * static_cast<double>(n))
    throw Error(ErrorKind::kInternal, "bandwidth probe summed wrong");
  return best;
}

void check_list(const std::vector<int64_t>& v, const char* flag, int64_t min) {
  if (v.empty()) throw Error(ErrorKind::kInvalidArg, std::string(flag) + " needs at least one value");
  for (int64_t x : v)
    if (x < min)
      throw Error(ErrorKind::kInvalidArg, std::string(flag) + " values must be >= " +
                                              std::to_string(min) + ", got " + std::to_string(x));
}

std::string test_name(const TestResult& r) {
  std::string s = r.n_gen > 0 ? "tg" + std::to_string(r.n_gen) : "pp" + std::to_string(r.n_prompt);
  if (r.n_depth > 0) s += " @ d" + std::to_string(r.n_depth);
  return s;
}

int run_bench(const BenchOpts& o) {
  check_list(o.n_prompt, "-p", 0);
  check_list(o.n_gen, "-n", 0);
  check_list(o.n_depth, "-d", 0);
  if (o.reps < 1) throw Error(ErrorKind::kInvalidArg, "-r must be >= 1 repetition");
  if (o.kv_dtypes.empty()) throw Error(ErrorKind::kInvalidArg, "--kv-dtype needs a value");
  std::vector<int> threads = o.threads;
  if (threads.empty()) threads.push_back(ThreadPool::default_threads());
  for (int t : threads)
    if (t < 1) throw Error(ErrorKind::kInvalidArg, "-t values must be >= 1, got " + std::to_string(t));
  const int64_t max_p = *std::max_element(o.n_prompt.begin(), o.n_prompt.end());
  const int64_t max_n = *std::max_element(o.n_gen.begin(), o.n_gen.end());
  const int64_t max_d = *std::max_element(o.n_depth.begin(), o.n_depth.end());
  if (max_p == 0 && max_n == 0)
    throw Error(ErrorKind::kInvalidArg, "nothing to run: -p and -n are all 0; give -p 512 or -n 128");

  std::string dir = o.model_path;
  if (dir.empty()) dir = resolve_default_model().dir;

  // Plan every configuration before anything is allocated: the deepest test must fit.
  // The tg warm-up appends 2 tokens past the depth, so -n 1 needs 2 positions too.
  const int64_t ctx = max_d + std::max({max_p, max_n, max_n > 0 ? int64_t{2} : int64_t{0}});
  const int64_t max_pos = plan_model_from_path(dir).cfg.max_position_embeddings;
  if (ctx > max_pos && !o.force_ctx)
    throw Error(ErrorKind::kOutOfRange,
                "the deepest test needs " + std::to_string(ctx) + " positions (depth " +
                    std::to_string(max_d) + " + " + std::to_string(std::max(max_p, max_n)) +
                    " tokens) but the model's max_position_embeddings is " +
                    std::to_string(max_pos) + "; lower -d/-p/-n or add --force-ctx");
  struct Config {
    KvType kv;
    int threads;
    PlannedRun run;
  };
  std::vector<Config> configs;
  int64_t headroom = INT64_MAX;
  for (const std::string& name : o.kv_dtypes) {
    const KvType kv = parse_kv_type(name);
    for (int t : threads) {
      PlanFlags f;
      f.ctx = ctx;
      f.kv_dtype = name;
      f.prefill_chunk = o.prefill_chunk;
      f.mem_budget = o.mem_budget;
      f.threads = t;
      EngineOptions eo = engine_options(f);
      eo.model_path = dir;
      eo.force_ctx = true;  // checked above, in bench's words
      eo.weights = weight_memory(o.mmap);
      eo.tokenizer = false;  // bench feeds random token ids
      PlannedRun run;
      try {
        run = Engine::plan_only(eo);
      } catch (const Error& e) {
        if (e.kind() != ErrorKind::kMemory) throw;
        throw Error(ErrorKind::kMemory, "the deepest test (" + std::to_string(ctx) +
                                            " tokens, kv " + kv_type_name(kv) + ", " +
                                            std::to_string(t) + " threads) does not fit: " +
                                            e.what());
      }
      headroom = std::min(headroom, run.plan.headroom());
      configs.push_back({kv, t, run});
    }
  }
  // The read-bandwidth probe's buffer is part of every configuration's plan: the per-test probes
  // run while the weights and a session's cache are resident. It gets what the tightest plan
  // leaves (whole huge pages, at most 1 GiB) after the probe pool's thread stacks (and those of
  // the engine's pool, which stays beside a configuration's own one when thread counts differ);
  // below 64 MiB (8x a large last-level cache) the figure may be cache bandwidth, and bench says
  // so.
  const int hw = ThreadPool::default_threads();
  const bool second_pool = std::any_of(configs.begin(), configs.end(), [&](const Config& c) {
    return c.threads != configs.front().threads;
  });
  const size_t probe_threads =
      size_t(hw + (second_pool ? configs.front().threads : 0)) * kThreadStackBytes;
  const size_t left = headroom > static_cast<int64_t>(probe_threads)
                          ? static_cast<size_t>(headroom) - probe_threads
                          : 0;
  const size_t bw_bytes = std::min(size_t{1} << 30, left / kProbeGranule * kProbeGranule);
  if (bw_bytes < kProbeGranule) {
    const size_t need = kProbeGranule + probe_threads;
    const size_t have = static_cast<size_t>(std::max<int64_t>(headroom, 0));
    throw Error(ErrorKind::kMemory,
                "the read-bandwidth probe needs " + format_size(need) +
                    " beside the deepest test, but its plan leaves " + format_size(have) + " of " +
                    format_size(configs.front().run.budget.bytes) + "; raise --mem-budget by " +
                    format_size(need - have) + " (by " + format_size(kProbeWanted + need - have) +
                    " for a probe that measures memory, not cache), or lower -d/-p/-n");
  }
  if (bw_bytes < kProbeWanted)
    std::fprintf(stderr,
                 "note: the read-bandwidth probe gets %s, what --mem-budget leaves; below %s it "
                 "may measure cache, not memory (raise --mem-budget by %s for a true roofline)\n",
                 format_size(bw_bytes).c_str(), format_size(kProbeWanted).c_str(),
                 format_size(kProbeWanted - bw_bytes).c_str());
  for (Config& c : configs) {
    EngineOptions eo = c.run.options;
    eo.extra_bytes = bw_bytes + probe_threads;
    eo.extra_what = "the read-bandwidth probe";
    c.run = Engine::plan_only(eo);  // fits: the probe takes at most what the plan left
  }
  const PlanModel& pm = configs.front().run.model;
  const ModelConfig& cfg = pm.cfg;

  // Read bandwidth, with every core this process may use, over the planned buffer.
  const double bw = measure_read_bandwidth(hw, bw_bytes, 5);
  FILE* info = o.json ? stderr : stdout;
  std::fprintf(info, "read bandwidth: %.1f GB/s (%d threads, %s buffer, best of 5) | simd %s | %s\n",
               bw / 1e9, hw, format_size(bw_bytes).c_str(), kernels::simd_path(),
               cpu_model().c_str());
  std::fflush(info);

  const auto engine = Engine::load(configs.front().run);
  const Model* model = &engine->model();
  ReadModel rm;
  rm.cfg = cfg;
  TensorType wtype = TensorType::kF32;
  size_t wtype_bytes = 0;
  {
    std::vector<size_t> by_dtype(256, 0);  // by TensorType (a uint8_t)
    for (const auto& [name, t] : model->weights().tensors()) {
      rm.weight_bytes += t.nbytes;
      const auto d = static_cast<size_t>(t.type);
      if ((by_dtype[d] += t.nbytes) > wtype_bytes) {
        wtype_bytes = by_dtype[d];
        wtype = t.type;
      }
    }
    // By the names of the weights' format: a GGUF file's table is token_embd.weight.
    if (!cfg.tie_word_embeddings)
      if (const auto* e = model->weights().find(model->tensor_names().embed))
        rm.weight_bytes -= e->nbytes;
  }
  const size_t n_params = count_parameters(cfg);
  const std::string model_type =
      cfg.model_type + " " + format_params(n_params) + " " + tensor_type_name(wtype);

  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(cfg.vocab_size - 1));
  auto tokens = [&](int64_t n) {
    std::vector<int32_t> v(static_cast<size_t>(n));
    for (auto& x : v) x = tok(rng);
    return v;
  };
  using clock = std::chrono::steady_clock;

  std::vector<TestResult> results;
  for (const Config& c : configs) {
    release_freed_memory();
    // The engine's pool serves its thread count; other counts get their own (one at a time).
    std::optional<ThreadPool> own;
    ThreadPool& pool = engine->pool().size() == c.threads ? engine->pool() : own.emplace(c.threads);
    // LongRoPE: long factors from the start (planned ctx), no recompute mid-test.
    Session session = engine->new_session(c.run.plan, pool, ctx);
    for (int64_t d : o.n_depth) {
      auto rewind = [&] {  // back to depth d; refill when a window layer recycled what d needs
        try {
          session.truncate(d);
          return;
        } catch (const Error&) {
        }
        session.reset();
        if (d > 0) session.append(tokens(d));
      };
      session.reset();
      if (d > 0) session.append(tokens(d));  // untimed fill
      std::vector<TestResult> tests;
      for (int64_t p : o.n_prompt)
        if (p > 0) {
          TestResult t;
          t.n_prompt = p;
          tests.push_back(t);
        }
      for (int64_t n : o.n_gen)
        if (n > 0) {
          TestResult t;
          t.n_gen = n;
          tests.push_back(t);
        }
      for (TestResult r : tests) {
        r.kv = kv_type_name(c.kv);
        r.threads = c.threads;
        r.n_depth = d;
        r.n_batch = c.run.plan.prefill_chunk;
        r.test_time = utc_now();
        // Warm-up (untimed): a short prompt or two decode steps.
        session.append(tokens(r.n_gen > 0 ? 1 : std::min<int64_t>(r.n_prompt, 32)));
        if (r.n_gen > 0) session.append(tokens(1));
        for (int rep = 0; rep < o.reps; ++rep) {
          rewind();
          const auto t0 = clock::now();
          if (r.n_gen > 0) {
            for (int64_t i = 0; i < r.n_gen; ++i) session.append(tokens(1));
          } else {
            session.append(tokens(r.n_prompt));
          }
          const double ns = std::chrono::duration<double, std::nano>(clock::now() - t0).count();
          r.samples_ns.push_back(ns);
          r.samples_ts.push_back(1e9 * static_cast<double>(r.n_gen + r.n_prompt) / ns);
        }
        rewind();
        r.avg_ns = mean(r.samples_ns);
        r.stddev_ns = stddev(r.samples_ns);
        r.avg_ts = mean(r.samples_ts);
        r.stddev_ts = stddev(r.samples_ts);
        if (r.n_gen > 0) r.bytes_per_token = rm.per_token(c.kv, d, r.n_gen);
        // A shared machine's bandwidth drifts over minutes: each decode test gets its own probe,
        // taken right after it, in the planned buffer (at most 256 MiB, which keeps it quick).
        r.read_bw = r.n_gen > 0 ? measure_read_bandwidth(hw, std::min(bw_bytes, size_t{256} << 20), 3)
                                : bw;
        r.peak_rss = peak_rss_bytes();  // the process's peak so far, probes included
        std::fprintf(stderr, "  %s kv %s t %d: %.2f tok/s", test_name(r).c_str(), r.kv.c_str(),
                     r.threads, r.avg_ts);
        if (r.n_gen > 0) std::fprintf(stderr, " (read bandwidth after it: %.1f GB/s)", r.read_bw / 1e9);
        std::fputs("\n", stderr);
        results.push_back(r);
      }
    }
  }

  size_t plan_total = 0;  // the largest configuration's
  for (const Config& c : configs) plan_total = std::max(plan_total, c.run.plan.total);
  std::fprintf(stderr, "plan %s of %s | peak RSS %s\n", format_size(plan_total).c_str(),
               format_size(configs.front().run.budget.bytes).c_str(),
               format_size(peak_rss_bytes()).c_str());
  if (o.json) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const TestResult& r : results) {
      nlohmann::ordered_json j;
      j["build_commit"] = build_commit();
      j["cpu_info"] = cpu_model();
      j["backends"] = "CPU";
      j["simd"] = kernels::simd_path();
      j["model_filename"] = dir;
      j["model_type"] = model_type;
      j["model_size"] = pm.weight_bytes;
      j["model_n_params"] = n_params;
      j["n_batch"] = r.n_batch;
      j["n_ubatch"] = r.n_batch;
      j["n_threads"] = r.threads;
      j["type_k"] = r.kv;
      j["type_v"] = r.kv;
      j["flash_attn"] = true;
      j["use_mmap"] = !model->weights_resident();
      j["n_prompt"] = r.n_prompt;
      j["n_gen"] = r.n_gen;
      j["n_depth"] = r.n_depth;
      j["test_time"] = r.test_time;
      j["avg_ns"] = static_cast<uint64_t>(r.avg_ns);
      j["stddev_ns"] = static_cast<uint64_t>(r.stddev_ns);
      j["avg_ts"] = r.avg_ts;
      j["stddev_ts"] = r.stddev_ts;
      nlohmann::ordered_json ns = nlohmann::ordered_json::array();
      for (double x : r.samples_ns) ns.push_back(static_cast<uint64_t>(x));
      j["samples_ns"] = ns;
      j["samples_ts"] = r.samples_ts;
      j["read_bw_gbps"] = r.read_bw / 1e9;
      if (r.n_gen > 0) {
        j["bytes_per_token"] = static_cast<uint64_t>(r.bytes_per_token);
        j["eff_gbps"] = r.bytes_per_token * r.avg_ts / 1e9;
        j["roofline_frac"] = r.bytes_per_token * r.avg_ts / r.read_bw;
      } else {
        j["bytes_per_token"] = nullptr;
        j["eff_gbps"] = nullptr;
        j["roofline_frac"] = nullptr;
      }
      j["peak_rss_bytes"] = r.peak_rss;
      out.push_back(j);
    }
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("\n| model | size | params | kv | threads | test | t/s | GB/s | roofline | peak RSS |\n"
              "| --- | ---: | ---: | --- | ---: | --- | ---: | ---: | ---: | ---: |\n");
  for (const TestResult& r : results) {
    const bool tg = r.n_gen > 0;
    std::printf("| %s | %s | %s | %s | %d | %s | %.2f ± %.2f | %s | %s | %s |\n",
                model_type.c_str(), format_size(pm.weight_bytes).c_str(),
                format_params(n_params).c_str(), r.kv.c_str(), r.threads, test_name(r).c_str(),
                r.avg_ts, r.stddev_ts,
                tg ? fmt("%.1f", r.bytes_per_token * r.avg_ts / 1e9).c_str() : "-",
                tg ? fmt("%.0f%%", 100 * r.bytes_per_token * r.avg_ts / r.read_bw).c_str() : "-",
                format_size(r.peak_rss).c_str());
  }
  return 0;
}

}  // namespace

Runner add_bench_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "bench", "Measure prompt and generation speed (like llama-bench) against the read-bandwidth "
               "roofline");
  auto o = std::make_shared<BenchOpts>();
  cmd->add_option("-m,--model", o->model_path,
                  "Hugging Face model folder or GGUF file (default: as for run)");
  cmd->add_option("-p,--n-prompt", o->n_prompt, "Prompt lengths to time, comma separated (0: none)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("-n,--n-gen", o->n_gen, "Generation lengths to time, comma separated (0: none)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("-d,--n-depth", o->n_depth,
                  "Tokens already in the KV cache before each test, comma separated")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--kv-dtype", o->kv_dtypes, "KV-cache precisions, comma separated: f32,f16,bf16,int8,int4")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("-t,--threads", o->threads, "Thread counts, comma separated (default: all cores)")
      ->delimiter(',');
  cmd->add_option("-r,--repetitions", o->reps, "Repetitions of each test")->capture_default_str();
  cmd->add_flag("--json", o->json, "Print a JSON array (one object per test) instead of a table");
  cmd->add_option("--prefill-chunk", o->prefill_chunk,
                  "Prompt tokens per forward pass, or auto (as the planner picks)")
      ->capture_default_str();
  cmd->add_option("--mem-budget", o->mem_budget, "Memory budget, e.g. 12GiB, or auto")
      ->capture_default_str();
  cmd->add_flag("--force-ctx", o->force_ctx, "Allow depth + tokens beyond max_position_embeddings");
  add_weight_memory_flag(*cmd, o->mmap);
  return [o] {
    if (dist::pipelined())
      throw Error(ErrorKind::kUnsupported,
                  "bench measures one process (its bandwidth probe and thread sweeps are per "
                  "machine); under mpirun time `run` instead, whose summary gives prefill and "
                  "decode tokens/s (docs/distributed.md)");
    return run_bench(*o);
  };
}

}  // namespace longctx::cli
