// End-to-end figures for continuous batching (issue 18), in one process, no HTTP:
//  - aggregate decode throughput with 1, 2, 4, 8 sequences running, for each KV type given;
//  - time to first token of a request whose 2048-token prefix another request already read,
//    against the same request with the prefix cache off;
//  - the process's peak RSS against the serving plan.
// Usage: serve_bench -m MODEL [--kv f16,int8] [--tokens 64] [--prompt 32] [--prefix 2048]
//                    [-t THREADS] [--mem-budget SIZE] [--rounds 3]
// Prints a table and one JSON object per figure (lines starting with '{').
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/proc_stats.h"
#include "kernels/kv_quant.h"
#include "longctx/engine.h"
#include "longctx/scheduler.h"

namespace lc = longctx;
using Clock = std::chrono::steady_clock;

namespace {

std::vector<int32_t> prompt_of(int64_t n, uint32_t seed, int64_t vocab) {
  std::vector<int32_t> p;
  for (int64_t i = 0; i < n; ++i) {
    seed = seed * 1664525u + 1013904223u;
    p.push_back(static_cast<int32_t>(3 + (seed >> 8) % static_cast<uint32_t>(vocab - 3)));
  }
  return p;
}

// Runs `running` requests of max_tokens `tokens` together; returns the aggregate decode tokens
// per second over the window where all of them were decoding.
double throughput(lc::Engine& engine, int running, int tokens, int64_t prompt) {
  lc::SchedulerOptions so;
  so.parallel = running;
  so.prefix_cache = false;
  lc::Scheduler sched(engine, so);
  std::vector<std::shared_ptr<lc::RequestStream>> streams;
  for (int i = 0; i < running; ++i) {
    lc::CompletionRequest r;
    r.prompt = prompt_of(prompt, 17 + i, engine.model().vocab_size());
    r.max_tokens = tokens;
    r.ignore_eos = true;
    streams.push_back(sched.submit(std::move(r)));
  }
  // Every event's arrival time, per stream (read concurrently so that timestamps are fair).
  std::vector<std::vector<Clock::time_point>> at(running);
  std::vector<std::thread> readers;
  for (int i = 0; i < running; ++i)
    readers.emplace_back([&, i] {
      lc::SchedulerEvent ev;
      while (streams[i]->next(ev))
        if (ev.token >= 0) at[i].push_back(Clock::now());
    });
  for (auto& t : readers) t.join();
  Clock::time_point from = at[0].front(), to = at[0].back();
  for (const auto& a : at) {
    from = std::max(from, a.front());
    to = std::min(to, a.back());
  }
  int64_t n = 0;
  for (const auto& a : at)
    for (const auto& t : a) n += (t > from && t <= to);
  return n / std::max(1e-9, std::chrono::duration<double>(to - from).count());
}

double ttft(lc::Scheduler& sched, std::vector<int32_t> prompt) {
  lc::CompletionRequest r;
  r.prompt = std::move(prompt);
  r.max_tokens = 1;
  r.ignore_eos = true;
  auto s = sched.submit(std::move(r));
  lc::SchedulerEvent ev;
  while (s->next(ev)) {
  }
  return s->finish().time_to_first_token_s;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, ',');) out.push_back(x);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model, kvs = "f16,int8", budget = "auto";
  int tokens = 64, threads = 0, rounds = 3;
  int64_t prompt = 32, prefix = 2048;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "-m") model = val();
    else if (a == "--kv") kvs = val();
    else if (a == "--tokens") tokens = std::stoi(val());
    else if (a == "--prompt") prompt = std::stoll(val());
    else if (a == "--prefix") prefix = std::stoll(val());
    else if (a == "-t") threads = std::stoi(val());
    else if (a == "--rounds") rounds = std::max(1, std::stoi(val()));
    else if (a == "--mem-budget") budget = val();
    else {
      std::fprintf(stderr, "unknown argument %s (see the comment at the top of serve_bench.cc)\n",
                   a.c_str());
      return 2;
    }
  }
  if (model.empty()) {
    std::fprintf(stderr, "usage: serve_bench -m MODEL [--kv f16,int8] [--tokens N] ...\n");
    return 2;
  }
  try {
    for (const std::string& kvname : split(kvs)) {
      lc::EngineOptions o;
      o.model_path = model;
      o.kv = lc::parse_kv_type(kvname);
      o.threads = threads;
      o.mem_budget = budget;
      o.context = std::max<int64_t>(prefix + 2 * prompt + tokens, 4096);
      o.tokenizer = true;
      auto engine = lc::Engine::open(o);
      // The machine's memory bandwidth swings minute to minute: each round measures 1, 2, 4 and 8
      // running back to back, a ratio is taken within its round, and the medians are reported.
      const std::vector<int> counts = {1, 2, 4, 8};
      std::vector<std::vector<double>> tps(counts.size()), ratio(counts.size());
      for (int round = 0; round < rounds; ++round)
        for (size_t c = 0; c < counts.size(); ++c) {
          tps[c].push_back(throughput(*engine, counts[c], tokens, prompt));
          ratio[c].push_back(tps[c].back() / tps[0].back());
        }
      for (size_t c = 0; c < counts.size(); ++c) {
        std::string each;
        for (double r : ratio[c]) {
          char buf[16];
          std::snprintf(buf, sizeof buf, " %.2f", r);
          each += buf;
        }
        std::printf("kv %-5s running %d: %8.1f tok/s aggregate (%.2fx one sequence; rounds:%s)\n",
                    kvname.c_str(), counts[c], median(tps[c]), median(ratio[c]), each.c_str());
        std::printf("{\"figure\":\"decode_throughput\",\"kv\":\"%s\",\"running\":%d,"
                    "\"tok_per_s\":%.2f,\"vs_one\":%.3f,\"rounds\":%d}\n",
                    kvname.c_str(), counts[c], median(tps[c]), median(ratio[c]), rounds);
      }
      // Time to first token behind a shared prefix.
      lc::SchedulerOptions so;
      so.parallel = 2;
      lc::Scheduler cached(*engine, so);
      const std::vector<int32_t> doc = prompt_of(prefix, 5, engine->model().vocab_size());
      auto with_tail = [&](uint32_t seed) {
        std::vector<int32_t> p = doc;
        for (int32_t t : prompt_of(prompt, seed, engine->model().vocab_size())) p.push_back(t);
        return p;
      };
      const double first = ttft(cached, with_tail(1));
      const double second = ttft(cached, with_tail(2));
      std::printf("kv %-5s TTFT, %lld-token shared prefix: first %.3f s, second %.3f s (%.1fx)\n",
                  kvname.c_str(), static_cast<long long>(prefix), first, second, first / second);
      std::printf("{\"figure\":\"ttft_shared_prefix\",\"kv\":\"%s\",\"prefix\":%lld,"
                  "\"first_s\":%.4f,\"second_s\":%.4f,\"ratio\":%.2f}\n",
                  kvname.c_str(), static_cast<long long>(prefix), first, second, first / second);
      const lc::ServePlan& sp = cached.serve_plan();
      const size_t peak = lc::peak_rss_bytes();
      std::printf("peak RSS so far %.1f MiB; serving plan %.1f MiB (pool %lld blocks of %zu B)\n",
                  peak / 1048576.0, sp.total / 1048576.0,
                  static_cast<long long>(sp.pool_blocks), sp.block_bytes);
      std::printf("{\"figure\":\"peak_rss\",\"kv\":\"%s\",\"peak_rss\":%zu,\"plan_total\":%zu}\n",
                  kvname.c_str(), peak, sp.total);
    }
  } catch (const lc::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
