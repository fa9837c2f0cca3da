#include "dist/pipeline.h"

#include <xxhash.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/error.h"
#include "core/memory_account.h"
#include "core/proc_stats.h"
#include "core/thread_pool.h"
#include "dist/mpi.h"
#include "kv/kv_cache.h"

namespace longctx::dist {

namespace {

using nlohmann::json;

std::string job_text(const Job& j, const std::vector<StageRange>& stages = {}) {
  const PlanRequest& r = j.request;
  json o = {{"model", j.model_path},
            {"mem_budget", j.mem_budget},
            {"context", r.context},
            {"kv_k", static_cast<int>(r.key_type())},
            {"kv_v", static_cast<int>(r.value_type())},
            {"chunk", r.prefill_chunk},
            {"threads", r.threads},
            {"threads_auto", j.threads_auto},
            {"weights", static_cast<int>(j.weights)},
            {"extra_first", j.extras.first},
            {"extra_last", j.extras.last}};
  for (const StageRange& st : stages) o["stages"].push_back({st.first, st.end});
  return o.dump();
}

std::vector<StageRange> stages_from_text(const std::string& text) {
  std::vector<StageRange> out;
  const json o = json::parse(text);  // held: a range-for over a temporary's member dangles
  for (const auto& st : o.at("stages"))
    out.push_back({st.at(0).get<int>(), st.at(1).get<int>()});
  return out;
}

Job job_from_text(const std::string& text) {
  const json o = json::parse(text);
  Job j;
  j.model_path = o.at("model").get<std::string>();
  j.mem_budget = o.at("mem_budget").get<std::string>();
  j.request.context = o.at("context").get<int64_t>();
  j.request.kv = static_cast<KvType>(o.at("kv_k").get<int>());
  j.request.kv_k = static_cast<KvType>(o.at("kv_k").get<int>());
  j.request.kv_v = static_cast<KvType>(o.at("kv_v").get<int>());
  j.request.prefill_chunk = o.at("chunk").get<int64_t>();
  j.request.threads = o.at("threads").get<int>();
  j.threads_auto = o.at("threads_auto").get<bool>();
  j.weights = static_cast<WeightMemory>(o.at("weights").get<int>());
  j.extras.first = o.at("extra_first").get<size_t>();
  j.extras.last = o.at("extra_last").get<size_t>();
  return j;
}

// Fixed-size strings in the records ranks exchange.
template <size_t N>
void put(char (&dst)[N], const std::string& s) {
  std::memset(dst, 0, N);
  std::memcpy(dst, s.data(), std::min(N - 1, s.size()));
}

// What each rank reports after planning or loading.
struct Report {
  int32_t ok = 0;
  uint64_t fingerprint = 0, argv_hash = 0;
  uint64_t budget_bytes = 0;
  char budget_source[96] = {};
  char host[64] = {};
  char message[640] = {};
};

std::vector<Report> gather(const Report& mine) {
  const std::vector<uint8_t> all = allgather(&mine, sizeof mine);
  std::vector<Report> out(static_cast<size_t>(size()));
  std::memcpy(out.data(), all.data(), all.size());
  return out;
}

std::string who(int r, const Report& rep) {
  return "rank " + std::to_string(r) + " (" + std::string(rep.host) + ")";
}

// The first failed rank's report as an Error; nothing when all succeeded.
void throw_first_failure(const std::vector<Report>& reps, const char* doing) {
  for (size_t r = 0; r < reps.size(); ++r)
    if (!reps[r].ok)
      throw Error(ErrorKind::kIo, who(static_cast<int>(r), reps[r]) + " could not " + doing +
                                      ": " + reps[r].message);
}

// Every rank: plans its share of `job` and reports; rank 0 decides and broadcasts the split.
// Returns false on ranks > 0 when the run was refused (they go back to waiting).
bool plan_collective(const Job& job, RankPlans& out) {
  Report mine;
  put(mine.host, host());
  const std::string key = argv_key();
  mine.argv_hash = XXH64(key.data(), key.size(), 0);
  try {
    const MemoryBudget b = memory_budget_from_flag(budget_flag_for_rank(job.mem_budget, rank()));
    out.model = plan_model_from_path(job.model_path);
    mine.fingerprint = out.model.fingerprint;
    mine.budget_bytes = b.bytes;
    put(mine.budget_source, b.source);
    mine.ok = 1;
  } catch (const std::exception& e) {
    put(mine.message, e.what());
  }
  const std::vector<Report> reps = gather(mine);
  // Rank 0 decides; the others learn the split (or that there is none) from its broadcast.
  std::vector<int64_t> split(static_cast<size_t>(3 + 2 * size()), 0);  // ok, context, chunk, ranges
  if (rank() == 0) {
    try {
      throw_first_failure(reps, "plan");
      for (size_t r = 1; r < reps.size(); ++r) {
        if (reps[r].argv_hash != reps[0].argv_hash)
          throw Error(ErrorKind::kInvalidArg,
                      who(static_cast<int>(r), reps[r]) +
                          " was started with other arguments than rank 0 (only --mem-budget may "
                          "differ between ranks); start every rank with the same command");
        if (reps[r].fingerprint != reps[0].fingerprint)
          throw Error(ErrorKind::kConfig,
                      who(static_cast<int>(r), reps[r]) + " has other model files at " +
                          job.model_path +
                          " than rank 0 (their config or tensor directory differ); every machine "
                          "needs the same files at the same path");
      }
      for (size_t r = 0; r < reps.size(); ++r) {
        MemoryBudget b;
        b.bytes = reps[r].budget_bytes;
        b.source = std::string(reps[r].budget_source) + " on " + who(static_cast<int>(r), reps[r]);
        out.budgets.push_back(b);
      }
      out.plan = plan_pipeline(out.model, job.request, out.budgets, job.extras);
      if (!out.plan.fits())
        throw Error(ErrorKind::kMemory,
                    pipeline_refusal(out.model, job.request, out.budgets, job.extras));
      split[0] = 1;
      split[1] = out.plan.context;
      split[2] = out.plan.prefill_chunk;
      for (int r = 0; r < size(); ++r) {
        split[static_cast<size_t>(3 + 2 * r)] = out.plan.stages[static_cast<size_t>(r)].first;
        split[static_cast<size_t>(4 + 2 * r)] = out.plan.stages[static_cast<size_t>(r)].end;
      }
    } catch (const Error& e) {
      bcast(split.data(), split.size() * sizeof(int64_t));
      throw;
    }
  }
  bcast(split.data(), split.size() * sizeof(int64_t));
  if (!split[0]) return false;
  if (rank() != 0) {
    out.plan.context = split[1];
    out.plan.prefill_chunk = split[2];
    for (int r = 0; r < size(); ++r)
      out.plan.stages.push_back({static_cast<int>(split[static_cast<size_t>(3 + 2 * r)]),
                                 static_cast<int>(split[static_cast<size_t>(4 + 2 * r)])});
    MemoryBudget b;
    b.bytes = mine.budget_bytes;
    b.source = mine.budget_source;
    out.budgets.assign(static_cast<size_t>(size()), b);
  }
  return true;
}

// Every rank: loads its stage and reports. Rank 0 throws the first failure; the others return
// null then.
std::unique_ptr<Model> load_collective(const RankPlans& plans, const Job& job) {
  Report mine;
  put(mine.host, host());
  std::unique_ptr<Model> model;
  try {
    model = Model::load(job.model_path, job.weights,
                        plans.plan.stages[static_cast<size_t>(rank())]);
    mine.ok = 1;
  } catch (const std::exception& e) {
    put(mine.message, e.what());
  }
  const std::vector<Report> reps = gather(mine);
  for (const Report& r : reps)
    if (!r.ok) {
      if (rank() == 0) throw_first_failure(reps, "load its layers");
      return nullptr;
    }
  return model;
}

void send_header(const Header& h) { send(&h, sizeof h, rank() + 1, kTagHeader); }

}  // namespace

RankPlans plan_ranks(const Job& job) {
  const std::string text = job_text(job);
  Header h;
  h.op = Op::kPlan;
  h.n = static_cast<int64_t>(text.size());
  send_header(h);
  send(text.data(), text.size(), 1, kTagPayload);
  RankPlans out;
  plan_collective(job, out);
  return out;
}

std::unique_ptr<Model> load_ranks(const RankPlans& plans, const Job& job) {
  // The job and split travel again: rank 0 may have planned other settings since (perplexity's
  // baseline KV type), and every rank must load the split rank 0 runs.
  const std::string text = job_text(job, plans.plan.stages);
  Header h;
  h.op = Op::kLoad;
  h.n = static_cast<int64_t>(text.size());
  send_header(h);
  send(text.data(), text.size(), 1, kTagPayload);
  return load_collective(plans, job);
}

int Pipeline::open(int64_t context, int64_t chunk, KvType k, KvType v) {
  Header h;
  h.op = Op::kOpen;
  h.session = next_id_++;
  h.context = context;
  h.chunk = chunk;
  h.kv_k = static_cast<int32_t>(k);
  h.kv_v = static_cast<int32_t>(v);
  send_header(h);
  return h.session;
}

void Pipeline::forward(int session, const float* x, int64_t n, int64_t pos0, int64_t rope_len,
                       LogitsWanted wanted, float* dest) {
  if (wanted != LogitsWanted::kNone) {
    const int64_t rows = wanted == LogitsWanted::kAll ? n : 1;
    irecv(dest, static_cast<size_t>(rows * vocab_) * sizeof(float), size() - 1, kTagLogits);
  }
  Header h;
  h.op = Op::kForward;
  h.session = session;
  h.n = n;
  h.pos0 = pos0;
  h.rope_len = rope_len;
  h.logits = wanted;
  send_header(h);
  send(x, static_cast<size_t>(n * hidden_) * sizeof(float), 1, kTagPayload);
}

void Pipeline::wait() { wait_all(); }

void Pipeline::truncate(int session, int64_t n) {
  Header h;
  h.op = Op::kTruncate;
  h.session = session;
  h.n = n;
  send_header(h);
}

void Pipeline::close(int session) {
  Header h;
  h.op = Op::kClose;
  h.session = session;
  send_header(h);
}

namespace {
std::vector<size_t> gather_peaks() {
  const uint64_t mine = peak_rss_bytes();
  const std::vector<uint8_t> all = allgather(&mine, sizeof mine);
  std::vector<size_t> out(static_cast<size_t>(size()));
  for (size_t r = 0; r < out.size(); ++r) {
    uint64_t v = 0;
    std::memcpy(&v, all.data() + r * sizeof v, sizeof v);
    out[r] = static_cast<size_t>(v);
  }
  return out;
}
}  // namespace

std::vector<size_t> Pipeline::peak_rss() {
  Header h;
  h.op = Op::kStats;
  send_header(h);
  return gather_peaks();
}

namespace {

// One session's state on a worker rank: its stage's KV cache and activation buffers.
struct WorkerSession {
  MemoryAccount account;
  KVCache kv;
  Activations act;
  std::vector<float> logits;
  WorkerSession(const Model& m, size_t limit, const KVCacheShape& shape, int64_t chunk)
      : account(limit), kv(shape, &account), act(m.config(), chunk, &account) {}
};

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "longctx: rank %d (%s): %s\n", rank(), host().c_str(), what.c_str());
  abort_all(1);
}

}  // namespace

int run_worker() {
  const int me = rank();
  const bool last = me == size() - 1;
  Job job;
  RankPlans plans;
  std::unique_ptr<Model> model;
  std::unique_ptr<ThreadPool> pool;
  std::map<int, std::unique_ptr<WorkerSession>> sessions;
  auto pass_on = [&](const Header& h) {
    if (!last) send(&h, sizeof h, me + 1, kTagHeader);
  };
  // A header with a text payload (the job): received, then passed on with it.
  auto relay_text = [&](const Header& h) {
    std::string text(static_cast<size_t>(h.n), '\0');
    recv(text.data(), text.size(), me - 1, kTagPayload);
    pass_on(h);
    if (!last) send(text.data(), text.size(), me + 1, kTagPayload);
    return text;
  };
  for (;;) {
    Header h;
    recv(&h, sizeof h, me - 1, kTagHeader);
    try {
      switch (h.op) {
        case Op::kPlan: {
          job = job_from_text(relay_text(h));
          plans = RankPlans{};
          sessions.clear();
          model.reset();
          if (!plan_collective(job, plans)) plans = RankPlans{};
          break;
        }
        case Op::kLoad: {
          const std::string text = relay_text(h);
          job = job_from_text(text);
          plans.plan.stages = stages_from_text(text);
          sessions.clear();
          model.reset();
          model = load_collective(plans, job);
          if (model)
            pool = std::make_unique<ThreadPool>(
                job.threads_auto ? static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))
                                 : job.request.threads);
          break;
        }
        case Op::kOpen: {
          pass_on(h);
          if (!model) die("a session was opened before the model loaded");
          PlanRequest r = job.request;
          r.context = h.context;
          r.prefill_chunk = h.chunk;
          r.kv_k = static_cast<KvType>(h.kv_k);
          r.kv_v = static_cast<KvType>(h.kv_v);
          const StageRange st = model->stage();
          const MemoryPlan p = price_stage(plans.model, st, r,
                                           plans.budgets.empty() ? MemoryBudget{} : plans.budgets[0],
                                           last ? job.extras.last : 0);
          sessions[h.session] = std::make_unique<WorkerSession>(
              *model, p.kv_total + p.activations,
              model->kv_shape(*r.kv_k, *r.kv_v, h.context), std::min(h.chunk, h.context));
          break;
        }
        case Op::kForward: {
          const auto it = sessions.find(h.session);
          if (it == sessions.end()) die("a forward pass for an unknown session");
          WorkerSession& s = *it->second;
          const int64_t H = model->config().hidden_size, V = model->vocab_size();
          if (h.n <= 0 || h.n > s.act.max_tokens()) die("a forward chunk larger than its buffers");
          recv(s.act.x.data(), static_cast<size_t>(h.n * H) * sizeof(float), me - 1, kTagPayload);
          const bool all = h.logits == LogitsWanted::kAll;
          if (last) s.logits.resize(static_cast<size_t>((all ? h.n : 1) * V));
          model->forward(*pool, nullptr, h.n, h.pos0, s.kv, s.act, last ? s.logits.data() : nullptr,
                         all, h.rope_len, nullptr);
          if (!last) {
            pass_on(h);
            send(s.act.x.data(), static_cast<size_t>(h.n * H) * sizeof(float), me + 1,
                 kTagPayload);
          } else if (h.logits != LogitsWanted::kNone) {
            send(s.logits.data(), s.logits.size() * sizeof(float), 0, kTagLogits);
          }
          break;
        }
        case Op::kTruncate: {
          pass_on(h);
          const auto it = sessions.find(h.session);
          if (it != sessions.end()) it->second->kv.truncate(h.n);
          break;
        }
        case Op::kClose:
          pass_on(h);
          sessions.erase(h.session);
          break;
        case Op::kStats:
          pass_on(h);
          gather_peaks();
          break;
        case Op::kExit:
          pass_on(h);
          return 0;
        default:
          die("an unknown message from rank " + std::to_string(me - 1));
      }
    } catch (const std::exception& e) {
      die(e.what());
    }
  }
}

}  // namespace longctx::dist
