#include "plan/stage_plan.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"

namespace longctx {

namespace {

// Rank r's stage of `n` layers when its role is that of rank r of `ranks`: the first holds
// [0, n), the last [L - n, L), a middle one n layers from 1 (a stand-in for where it will sit).
StageRange role_stage(int r, int ranks, int n, int L) {
  if (ranks == 1) return {0, L};
  if (r == 0) return {0, n};
  if (r == ranks - 1) return {L - n, L};
  return {1, std::min(L - 1, 1 + n)};
}

size_t extra_for(int r, int ranks, PipelineExtras e) {
  return (r == 0 ? e.first : 0) + (r == ranks - 1 ? e.last : 0);
}

// Rank r of `ranks`: its stage's plan plus what the MPI runtime holds resident in each rank
// (measured with OpenMPI 4.1 on one machine: about 7 MiB at 2 ranks, 2.5 MiB more per further
// rank, mostly the shared-memory transport's segments; priced with room).
MemoryPlan price_rank(const PlanModel& m, StageRange s, const PlanRequest& req,
                      const MemoryBudget& b, int r, int ranks, PipelineExtras e) {
  MemoryPlan p = price_stage(m, s, req, b, extra_for(r, ranks, e));
  const size_t mpi = ranks > 1 ? (size_t{8} << 20) + size_t(ranks - 1) * (size_t{4} << 20) : 0;
  p.overhead += mpi;
  p.total += mpi;
  return p;
}

bool stage_fits(const PlanModel& m, StageRange s, const PlanRequest& req, const MemoryBudget& b,
                int r, int ranks, PipelineExtras e) {
  return price_rank(m, s, req, b, r, ranks, e).fits();
}

}  // namespace

std::vector<StageRange> split_layers(const PlanModel& m, const PlanRequest& req,
                                     const std::vector<MemoryBudget>& budgets,
                                     PipelineExtras extras) {
  const int L = m.cfg.num_hidden_layers;
  const int N = static_cast<int>(budgets.size());
  if (N < 1 || N > L || req.context <= 0 || req.prefill_chunk <= 0) return {};
  // How many layers each rank can hold in its role (the most k whose stage fits).
  std::vector<int> cap(static_cast<size_t>(N));
  for (int r = 0; r < N; ++r) {
    const int most = N == 1 ? L : (r == 0 || r == N - 1 ? L - (N - 1) : L - 2);
    int lo = 0, hi = most;
    if (N == 1) lo = hi = stage_fits(m, {0, L}, req, budgets[0], 0, 1, extras) ? L : 0;
    while (lo < hi) {
      const int mid = (lo + hi + 1) / 2;
      if (stage_fits(m, role_stage(r, N, mid, L), req, budgets[static_cast<size_t>(r)], r, N,
                     extras))
        lo = mid;
      else
        hi = mid - 1;
    }
    if (lo < 1) return {};
    cap[static_cast<size_t>(r)] = lo;
  }
  const int64_t total = std::accumulate(cap.begin(), cap.end(), int64_t{0});
  if (total < L) return {};
  // Layers in proportion to the capacities (largest remainder), each at least 1 and at most its
  // capacity.
  std::vector<int> take(static_cast<size_t>(N));
  std::vector<std::pair<int64_t, int>> rest;
  int given = 0;
  for (int r = 0; r < N; ++r) {
    const int64_t share = int64_t{L} * cap[static_cast<size_t>(r)];
    take[static_cast<size_t>(r)] = std::max<int>(1, static_cast<int>(share / total));
    given += take[static_cast<size_t>(r)];
    rest.push_back({share % total, r});
  }
  std::sort(rest.begin(), rest.end(), std::greater<>());
  for (size_t i = 0; given < L; i = (i + 1) % rest.size()) {
    const int r = rest[i].second;
    if (take[static_cast<size_t>(r)] < cap[static_cast<size_t>(r)]) {
      ++take[static_cast<size_t>(r)];
      ++given;
    }
  }
  while (given > L) {  // the minimum of one layer each overshot: take from the largest
    const auto big = std::max_element(take.begin(), take.end());
    --*big;
    --given;
  }
  // Exact check of every stage at its real position; move a layer from a stage that does not fit
  // to a neighbour that still fits with it, until all fit or no move helps.
  auto stages = [&] {
    std::vector<StageRange> s;
    int at = 0;
    for (int r = 0; r < N; ++r) {
      s.push_back({at, at + take[static_cast<size_t>(r)]});
      at += take[static_cast<size_t>(r)];
    }
    return s;
  };
  auto fits = [&](const std::vector<StageRange>& s, int r) {
    return stage_fits(m, s[static_cast<size_t>(r)], req, budgets[static_cast<size_t>(r)], r, N,
                      extras);
  };
  for (int round = 0; round <= L * N; ++round) {
    const std::vector<StageRange> s = stages();
    int bad = -1;
    for (int r = 0; r < N && bad < 0; ++r)
      if (!fits(s, r)) bad = r;
    if (bad < 0) return s;
    if (take[static_cast<size_t>(bad)] <= 1) return {};
    bool moved = false;
    for (const int to : {bad + 1, bad - 1}) {
      if (to < 0 || to >= N) continue;
      --take[static_cast<size_t>(bad)];
      ++take[static_cast<size_t>(to)];
      if (fits(stages(), to)) {
        moved = true;
        break;
      }
      ++take[static_cast<size_t>(bad)];
      --take[static_cast<size_t>(to)];
    }
    if (!moved) return {};
  }
  return {};
}

PipelinePlan plan_pipeline(const PlanModel& m, const PlanRequest& req,
                           const std::vector<MemoryBudget>& budgets, PipelineExtras extras) {
  const int64_t maxpos = m.cfg.max_position_embeddings;
  // The split (and chunk) for context `ctx`: the asked chunk, or the largest auto chunk that fits.
  auto attempt = [&](int64_t ctx, PipelinePlan& out) {
    PlanRequest r = req;
    r.context = ctx;
    int64_t chunk = req.prefill_chunk > 0 ? std::min(req.prefill_chunk, ctx)
                                          : std::min<int64_t>(kMaxAutoChunk, ctx);
    for (;;) {
      r.prefill_chunk = chunk;
      std::vector<StageRange> s = split_layers(m, r, budgets, extras);
      if (!s.empty()) {
        out.context = ctx;
        out.prefill_chunk = chunk;
        out.stages = std::move(s);
        out.plans.clear();
        for (size_t i = 0; i < out.stages.size(); ++i) {
          out.plans.push_back(price_rank(m, out.stages[i], r, budgets[i], static_cast<int>(i),
                                         static_cast<int>(budgets.size()), extras));
          out.plans.back().chunk_auto = req.prefill_chunk <= 0;
        }
        return true;
      }
      if (req.prefill_chunk > 0 || chunk <= kMinAutoChunk) return false;
      chunk /= 2;
    }
  };
  PipelinePlan out;
  if (req.context > 0) {
    attempt(req.context, out);
    return out;
  }
  if (attempt(maxpos, out)) return out;
  int64_t lo = 0, hi = (maxpos - 1) / kKvBlockTokens;  // blocks; lo fits (or is 0)
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    PipelinePlan probe;
    if (attempt(mid * kKvBlockTokens, probe))
      lo = mid;
    else
      hi = mid - 1;
  }
  if (lo > 0) attempt(lo * kKvBlockTokens, out);
  return out;
}

int ranks_needed(const PlanModel& m, const PlanRequest& req, const MemoryBudget& budget) {
  const int most = std::min(64, m.cfg.num_hidden_layers);
  for (int n = 2; n <= most; ++n) {
    PlanRequest r = req;
    if (r.prefill_chunk <= 0) r.prefill_chunk = std::min<int64_t>(kMaxAutoChunk, r.context);
    if (!split_layers(m, r, std::vector<MemoryBudget>(static_cast<size_t>(n), budget)).empty())
      return n;
  }
  return 0;
}

std::string pipeline_refusal(const PlanModel& m, const PlanRequest& req,
                             const std::vector<MemoryBudget>& budgets, PipelineExtras extras) {
  const int N = static_cast<int>(budgets.size());
  const int L = m.cfg.num_hidden_layers;
  std::string s;
  if (N > L)
    return std::to_string(N) + " ranks but the model has only " + std::to_string(L) +
           " layers: run with at most " + std::to_string(L) + " ranks (mpirun -np " +
           std::to_string(L) + ")";
  // What an even split would cost each rank, against its budget.
  PlanRequest r = req;
  if (r.context <= 0) r.context = std::min<int64_t>(m.cfg.max_position_embeddings, kKvBlockTokens);
  if (r.prefill_chunk <= 0) r.prefill_chunk = std::min<int64_t>(kMaxAutoChunk, r.context);
  s = "context " + std::to_string(r.context) + " (" +
      kv_setting_name(r.key_type(), r.value_type()) + ") does not fit on " + std::to_string(N) +
      " ranks. Split evenly, each would need:";
  for (int i = 0; i < N; ++i) {
    const StageRange st{i * L / N, (i + 1) * L / N};
    const MemoryPlan p = price_rank(m, st, r, budgets[static_cast<size_t>(i)], i, N, extras);
    s += (i ? "; " : " ") + std::string("rank ") + std::to_string(i) + " (layers " +
         std::to_string(st.first) + "-" + std::to_string(st.end - 1) + ") " +
         format_size(p.total) + " of " + format_size(p.budget.bytes);
  }
  s += ".";
  std::vector<std::string> fit;
  PlanRequest auto_ctx = req;
  auto_ctx.context = 0;
  const PipelinePlan smaller = plan_pipeline(m, auto_ctx, budgets, extras);
  if (smaller.fits() && smaller.context < r.context)
    fit.push_back("-c " + std::to_string(smaller.context) + " on these " + std::to_string(N) +
                  " ranks");
  for (int n = N + 1; n <= std::min(64, L); ++n) {
    std::vector<MemoryBudget> more = budgets;
    more.resize(static_cast<size_t>(n), budgets.back());
    if (!split_layers(m, r, more, extras).empty()) {
      fit.push_back(std::to_string(n) + " ranks (mpirun -np " + std::to_string(n) +
                    ", the last budget repeated)");
      break;
    }
  }
  if (!fit.empty()) {
    s += " These fit:";
    for (size_t i = 0; i < fit.size(); ++i) s += (i ? "; " : " ") + fit[i];
    s += ".";
  } else {
    s += " No context fits on up to " + std::to_string(std::min(64, L)) +
         " ranks of these budgets: the embeddings or the output head alone do not fit one rank.";
  }
  return s;
}

std::string budget_flag_for_rank(const std::string& flag, int rank) {
  std::vector<std::string> items;
  size_t at = 0;
  for (;;) {
    const size_t comma = flag.find(',', at);
    items.push_back(flag.substr(at, comma == std::string::npos ? std::string::npos : comma - at));
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  for (const std::string& it : items)
    if (it.empty())
      throw Error(ErrorKind::kInvalidArg,
                  "--mem-budget '" + flag +
                      "' has an empty entry; give one size (or auto) per rank, separated by "
                      "commas, e.g. --mem-budget 12GiB,8GiB");
  return items[std::min<size_t>(static_cast<size_t>(std::max(rank, 0)), items.size() - 1)];
}

}  // namespace longctx
