// Continuous batching (include/longctx/scheduler.h): one thread runs steps over every admitted
// sequence; HTTP (or any) threads submit requests and read their streams.
#include "longctx/scheduler.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <list>
#include <thread>

#include "core/error.h"
#include "kv/block_pool.h"
#include "longctx/engine.h"
#include "model/rope_freqs.h"
#include "runtime/stop_strings.h"

namespace longctx {

using Clock = std::chrono::steady_clock;

namespace {
double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}
}  // namespace

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kLength: return "length";
    case FinishReason::kStop:
    case FinishReason::kEndOfSequence: return "stop";
    case FinishReason::kCancelled: return "cancelled";
    case FinishReason::kError: return "error";
  }
  return "error";
}

ServePlan plan_serve(const PlannedRun& run, const SchedulerOptions& opt) {
  if (opt.parallel < 1) throw Error(ErrorKind::kInvalidArg, "--parallel must be at least 1");
  if (opt.queue_limit < 0) throw Error(ErrorKind::kInvalidArg, "--queue must be >= 0");
  if (opt.block_tokens < 16 || opt.block_tokens % 16)
    throw Error(ErrorKind::kInvalidArg, "KV block size must be a multiple of 16 tokens");
  const MemoryPlan& plan = run.plan;
  const ModelConfig& cfg = run.config();
  const int parallel = opt.parallel;
  const int64_t step_tokens = opt.step_tokens > 0
                                  ? opt.step_tokens
                                  : std::max<int64_t>(plan.prefill_chunk, opt.parallel);
  if (step_tokens < opt.parallel)
    throw Error(ErrorKind::kInvalidArg, "the step token budget (" + std::to_string(step_tokens) +
                                            ") must hold one decode token per sequence (" +
                                            std::to_string(opt.parallel) + ")");
  ServePlan p;
  p.shape = kv_cache_shape(cfg, plan.kv_k, plan.kv_v, plan.context);
  p.shape.block_size = opt.block_tokens;
  p.context = plan.context;
  p.step_tokens = step_tokens;
  const KVCacheShape& shape = p.shape;
  p.budget = plan.budget.bytes;
  p.block_bytes = shape.bytes_per_layer_block();
  for (int l = 0; l < shape.n_layers; ++l)
    p.blocks_per_sequence += shape.max_blocks(l, plan.context, step_tokens);
  p.fixed = plan.total - plan.kv_total;
  if (step_tokens > plan.prefill_chunk)  // decode rows beyond the plan's chunk
    p.fixed += Activations::bytes_for(cfg, step_tokens) -
               Activations::bytes_for(cfg, plan.prefill_chunk);
  const size_t V = static_cast<size_t>(cfg.vocab_size);
  p.fixed += 2 * V * 4;  // the log-softmax row and the top-logprobs index
  // Logits row, sampler index + probabilities, history, strings.
  p.per_sequence = shape.fixed_bytes() + 12 * V + static_cast<size_t>(plan.context) * 4 + 65536;
  // The pool's partly used last huge page is in the plan's overhead (a 2 MiB page per KV cache).
  const size_t taken = p.fixed + static_cast<size_t>(parallel) * p.per_sequence;
  const int64_t fit =
      p.budget > taken ? static_cast<int64_t>((p.budget - taken) / p.block_bytes) : 0;
  p.pool_blocks = std::min<int64_t>(fit, 2 * int64_t{parallel} * p.blocks_per_sequence);
  if (p.pool_blocks < p.blocks_per_sequence)
    throw Error(ErrorKind::kMemory,
                "serving needs " + format_size(taken) + " for the model and " +
                    std::to_string(parallel) + " sequences' buffers, plus " +
                    format_size(p.blocks_per_sequence * p.block_bytes) +
                    " of KV blocks for one sequence of " + std::to_string(plan.context) +
                    " tokens, but the budget is " + format_size(p.budget) +
                    "; lower -c or --parallel, use --kv-dtype int8, or raise --mem-budget");
  p.pool_bytes = static_cast<size_t>(p.pool_blocks) * p.block_bytes;
  p.total = taken + p.pool_bytes;
  return p;
}

// ---- RequestStream ----

bool RequestStream::next(SchedulerEvent& ev) {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait(lk, [&] { return !events_.empty() || closed_; });
  if (events_.empty()) return false;
  ev = std::move(events_.front());
  events_.pop_front();
  return true;
}

std::optional<bool> RequestStream::next_for(SchedulerEvent& ev, std::chrono::milliseconds t) {
  std::unique_lock<std::mutex> lk(mu_);
  if (!cv_.wait_for(lk, t, [&] { return !events_.empty() || closed_; })) return std::nullopt;
  if (events_.empty()) return false;
  ev = std::move(events_.front());
  events_.pop_front();
  return true;
}

void RequestStream::cancel() {
  cancelled_.store(true);
  std::function<void()> wake;
  {
    std::lock_guard<std::mutex> lk(mu_);
    wake = on_cancel_;
  }
  if (wake) wake();
}

void RequestStream::push(SchedulerEvent ev) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    events_.push_back(std::move(ev));
  }
  cv_.notify_all();
}

void RequestStream::close(Finish f) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    finish_ = std::move(f);
    closed_ = true;
    on_cancel_ = nullptr;
  }
  cv_.notify_all();
}

// ---- the scheduler ----

struct Scheduler::Impl {
  // One admitted sequence.
  struct Seq {
    std::shared_ptr<RequestStream> stream;
    CompletionRequest req;
    std::unique_ptr<KVCache> kv;
    int64_t reserved = 0;      // blocks reserved in the pool
    size_t fed = 0;            // prompt tokens in the cache (adopted or run)
    int32_t pending = -1;      // sampled token not yet run (decode phase)
    int generated = 0;
    Sampler sampler;
    StreamDecoder text;
    StopStrings stop;
    std::vector<int32_t> history;  // prompt + generated (the sampler's repetition window)
    Finish fin;
    Clock::time_point submitted, admitted;
    bool first_token_sent = false;
    bool done = false;  // set by sample(); step() finishes it

    Seq(const Tokenizer& tok, const SamplerParams& sp, std::vector<std::string> stops)
        : sampler(sp), text(tok), stop(std::move(stops)) {}
  };
  struct Queued {
    std::shared_ptr<RequestStream> stream;
    CompletionRequest req;
    int64_t blocks;  // worst-case blocks it will reserve
    Clock::time_point submitted;
  };

  Engine& engine;
  const Model& model;
  const Tokenizer& tok;
  SchedulerOptions opt;
  int64_t step_tokens = 0;
  int64_t context = 0;
  ServePlan plan;
  bool prefix_ok = false;  // prefix caching is sound for this model (RoPE fixed per position)
  std::unique_ptr<KVBlockPool> pool;
  std::unique_ptr<Activations> act;
  std::vector<float> logits;  // [parallel][V]: consecutive rows, one head matmul per step
  std::vector<float> scratch;     // [V]: log-softmax for logprobs
  std::vector<int32_t> top_idx;  // [V]: the top-logprobs sort, reused by every token

  mutable std::mutex mu;  // guards queue, stats, stopping
  std::condition_variable cv;
  std::deque<Queued> queue;
  SchedulerStats st;
  bool stopping = false;
  std::list<std::unique_ptr<Seq>> running;  // changed by the scheduling thread, under mu
  int64_t admitting = 0;  // reserved by admit(), not yet in `running` (guarded by mu)
  std::thread thread;

  Impl(Engine& e, const SchedulerOptions& o)
      : engine(e), model(e.model()), tok(e.tokenizer()), opt(o) {}

  int64_t worst_blocks(int64_t tokens) const { return pool->blocks_for(tokens, step_tokens); }

  void loop();
  void step();
  // Under the lock: drops cancelled queued requests and reserves blocks for those that fit now
  // (counted in `admitting` until start() has made them running sequences).
  std::vector<Queued> admit();
  void start(std::vector<Queued> taken);
  void sample(Seq& s, float* row);
  void finish(std::list<std::unique_ptr<Seq>>::iterator it, FinishReason r, std::string err = {});
};

Scheduler::Scheduler(Engine& engine, const SchedulerOptions& opt)
    : opt_(opt), impl_(std::make_unique<Impl>(engine, opt)) {
  Impl& m = *impl_;
  m.plan = plan_serve(engine.planned(), opt);
  const ServePlan& sp = m.plan;
  const MemoryPlan& plan = engine.plan();
  const ModelConfig& cfg = engine.config();
  m.context = sp.context;
  m.step_tokens = sp.step_tokens;
  const RopeType rt = cfg.rope_scaling.type;
  m.prefix_ok = opt.prefix_cache && rt != RopeType::kLongRope && rt != RopeType::kDynamic;
  const KVCacheShape& shape = sp.shape;
  m.pool = std::make_unique<KVBlockPool>(shape, sp.pool_blocks);
  m.act = std::make_unique<Activations>(cfg, m.step_tokens);
  m.logits.assign(static_cast<size_t>(opt.parallel) * cfg.vocab_size, 0.f);
  m.scratch.assign(static_cast<size_t>(cfg.vocab_size), 0.f);
  m.top_idx.assign(static_cast<size_t>(cfg.vocab_size), 0);
  m.st.context = m.context;
  m.st.kv_blocks_total = sp.pool_blocks;
  m.st.kv_block_bytes = static_cast<int64_t>(shape.bytes_per_layer_block());
  m.st.budget_bytes = static_cast<int64_t>(plan.budget.bytes);
  m.st.planned_bytes = static_cast<int64_t>(sp.total);
  m.thread = std::thread([&m] { m.loop(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lk(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

std::shared_ptr<RequestStream> Scheduler::submit(CompletionRequest req) {
  Impl& m = *impl_;
  const int64_t n = static_cast<int64_t>(req.prompt.size());
  if (n == 0) throw Error(ErrorKind::kInvalidArg, "the prompt is empty");
  if (req.max_tokens <= 0) throw Error(ErrorKind::kInvalidArg, "max_tokens must be at least 1");
  if (req.logprobs < -1 || req.logprobs > 20)
    throw Error(ErrorKind::kInvalidArg, "logprobs must be between 0 and 20");
  validate(req.sampler);
  const int64_t V = m.model.vocab_size();
  for (int32_t t : req.prompt)
    if (t < 0 || t >= V)
      throw Error(ErrorKind::kInvalidArg, "token id " + std::to_string(t) +
                                              " is outside the vocabulary [0, " +
                                              std::to_string(V) + ")");
  if (n + req.max_tokens > m.context) {
    {
      std::lock_guard<std::mutex> lk(m.mu);
      ++m.st.rejected_too_long;
    }
    if (n >= m.context)
      throw Error(ErrorKind::kOutOfRange,
                  "the prompt has " + std::to_string(n) + " tokens but the context is " +
                      std::to_string(m.context) + " tokens; shorten the prompt to at most " +
                      std::to_string(m.context - 1) + " tokens");
    throw Error(ErrorKind::kOutOfRange,
                "the prompt has " + std::to_string(n) + " tokens and max_tokens is " +
                    std::to_string(req.max_tokens) + ": " + std::to_string(n + req.max_tokens) +
                    " tokens exceed the context of " + std::to_string(m.context) +
                    "; at most " + std::to_string(m.context - n) +
                    " tokens can be generated after this prompt (set max_tokens <= " +
                    std::to_string(m.context - n) + ")");
  }
  auto stream = std::make_shared<RequestStream>();
  {
    std::lock_guard<std::mutex> lk(m.mu);
    // Requests the next step admits into free slots are not waiting: they do not count.
    const int64_t free_slots = std::max<int64_t>(
        0, opt_.parallel - static_cast<int64_t>(m.running.size()) - m.admitting);
    if (static_cast<int64_t>(m.queue.size()) >= opt_.queue_limit + free_slots) {
      ++m.st.rejected_busy;
      throw Error(ErrorKind::kBusy, "the server is busy: " + std::to_string(m.queue.size()) +
                                        " requests are waiting (the queue holds " +
                                        std::to_string(opt_.queue_limit) + "); retry later");
    }
    const int64_t blocks = m.worst_blocks(n + req.max_tokens);
    m.queue.push_back(Impl::Queued{stream, std::move(req), blocks, Clock::now()});
    m.st.queued = static_cast<int64_t>(m.queue.size());
    stream->on_cancel_ = [&m] { m.cv.notify_all(); };
  }
  m.cv.notify_all();
  return stream;
}

const ServePlan& Scheduler::serve_plan() const { return impl_->plan; }

SchedulerStats Scheduler::stats() const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  SchedulerStats s = impl_->st;
  const KVBlockPool::Stats p = impl_->pool->stats();
  s.kv_blocks_used = p.used;
  s.kv_blocks_cached = p.cached_only;
  return s;
}

void Scheduler::Impl::loop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lk(mu);
      if (stopping) break;
      // Idle: wait for a request (cancellations of queued requests also wake us).
      if (running.empty())
        cv.wait_for(lk, std::chrono::milliseconds(200),
                    [&] { return stopping || !queue.empty(); });
      if (stopping) break;
    }
    try {
      start(admit());
      if (!running.empty()) step();
    } catch (const std::exception& e) {
      // A failed step fails its sequences, never the process; their blocks go back.
      for (auto it = running.begin(); it != running.end();) {
        auto next = std::next(it);
        finish(it, FinishReason::kError, e.what());
        it = next;
      }
    }
  }
  // Shutting down: everything still queued or running ends as cancelled.
  for (auto it = running.begin(); it != running.end();) {
    auto next = std::next(it);
    finish(it, FinishReason::kCancelled);
    it = next;
  }
  std::lock_guard<std::mutex> lk(mu);
  for (Queued& q : queue) {
    Finish f;
    f.reason = FinishReason::kCancelled;
    f.prompt_tokens = static_cast<int64_t>(q.req.prompt.size());
    q.stream->close(f);
  }
  queue.clear();
}

std::vector<Scheduler::Impl::Queued> Scheduler::Impl::admit() {
  std::lock_guard<std::mutex> lk(mu);
  // Queued requests whose client left go at once.
  for (auto it = queue.begin(); it != queue.end();) {
    if (it->stream->cancelled()) {
      Finish f;
      f.reason = FinishReason::kCancelled;
      f.prompt_tokens = static_cast<int64_t>(it->req.prompt.size());
      f.queued_s = f.total_s = seconds(it->submitted, Clock::now());
      it->stream->close(f);
      ++st.requests_cancelled;
      it = queue.erase(it);
    } else {
      ++it;
    }
  }
  // First come, first served: the head waits until its blocks are free (no overtaking, so a long
  // request is not starved by short ones).
  std::vector<Queued> taken;
  while (!queue.empty() && static_cast<int>(running.size() + taken.size()) < opt.parallel &&
         pool->try_reserve(queue.front().blocks)) {
    taken.push_back(std::move(queue.front()));
    queue.pop_front();
  }
  admitting = static_cast<int64_t>(taken.size());
  st.queued = static_cast<int64_t>(queue.size());
  return taken;
}

void Scheduler::Impl::start(std::vector<Queued> taken) {
  // Outside the lock: adopting a prefix and priming the text decoder with a long prompt take
  // time that submit() and stats() should not wait for.
  std::vector<std::unique_ptr<Seq>> started;
  int64_t prompt_tokens = 0, cached = 0;
  for (Queued& q : taken) {
    auto s = std::make_unique<Seq>(tok, q.req.sampler, q.req.stop);
    s->stream = q.stream;
    s->reserved = q.blocks;
    s->submitted = q.submitted;
    s->admitted = Clock::now();
    s->kv = std::make_unique<KVCache>(*pool, context);
    s->req = std::move(q.req);
    const int64_t n = static_cast<int64_t>(s->req.prompt.size());
    if (prefix_ok) s->fed = static_cast<size_t>(s->kv->adopt_prefix(s->req.prompt.data(), n));
    s->fin.prompt_tokens = n;
    s->fin.cached_tokens = static_cast<int64_t>(s->fed);
    s->fin.queued_s = seconds(s->submitted, s->admitted);
    prompt_tokens += n;
    cached += static_cast<int64_t>(s->fed);
    // The decoder sees the prompt first, so the continuation keeps its leading space.
    for (int32_t id : s->req.prompt) s->text.push(id);
    s->history = s->req.prompt;
    started.push_back(std::move(s));
  }
  std::lock_guard<std::mutex> lk(mu);
  for (auto& s : started) running.push_back(std::move(s));
  admitting = 0;
  st.prompt_tokens += prompt_tokens;
  st.cached_prompt_tokens += cached;
  st.running = static_cast<int64_t>(running.size());
}

void Scheduler::Impl::step() {
  // Clients gone: free their blocks before anything else.
  for (auto it = running.begin(); it != running.end();) {
    auto next = std::next(it);
    if ((*it)->stream->cancelled()) finish(it, FinishReason::kCancelled);
    it = next;
  }
  if (running.empty()) return;

  const RopeScaling& rs = model.config().rope_scaling;
  const int64_t V = model.vocab_size();
  std::vector<BatchEntry> batch;
  std::vector<Seq*> owner;
  int64_t rows = 0;
  int wanted = 0;
  // Every decoding sequence gets its token (one row each), then prefills share what is left.
  for (auto& s : running) {
    if (s->pending < 0) continue;
    BatchEntry e;
    e.kv = s->kv.get();
    e.tokens = &s->pending;
    e.n = 1;
    batch.push_back(e);
    owner.push_back(s.get());
    ++rows;
  }
  for (auto& s : running) {
    if (s->pending >= 0 || rows >= step_tokens) continue;
    const size_t left = s->req.prompt.size() - s->fed;
    BatchEntry e;
    e.kv = s->kv.get();
    e.tokens = s->req.prompt.data() + s->fed;
    e.n = std::min<int64_t>(static_cast<int64_t>(left), step_tokens - rows);
    batch.push_back(e);
    owner.push_back(s.get());
    rows += e.n;
  }
  // Logits rows in batch order for the entries that sample after this step.
  for (size_t i = 0; i < batch.size(); ++i) {
    Seq& s = *owner[i];
    const int64_t planned = static_cast<int64_t>(s.req.prompt.size()) + s.req.max_tokens;
    batch[i].rope_len = rope_length(rs, s.kv->n_tokens() + batch[i].n, planned);
    const bool samples = s.pending >= 0 || s.fed + batch[i].n == s.req.prompt.size();
    if (samples) batch[i].logits = logits.data() + static_cast<size_t>(wanted++) * V;
  }
  model.forward_batch(engine.pool(), batch.data(), static_cast<int>(batch.size()), *act);
  {
    std::lock_guard<std::mutex> lk(mu);
    ++st.steps;
    st.generated_tokens += wanted;  // each entry with logits samples one token below
  }

  for (size_t i = 0; i < batch.size(); ++i) {
    Seq& s = *owner[i];
    if (s.pending < 0) {
      s.fed += static_cast<size_t>(batch[i].n);
      // Later requests share the full blocks read so far; after every chunk, before a window
      // layer recycles its early blocks.
      if (prefix_ok) s.kv->publish_prefix(s.req.prompt.data(), static_cast<int64_t>(s.fed));
    }
    if (batch[i].logits) sample(s, batch[i].logits);
  }
  for (auto it = running.begin(); it != running.end();) {
    auto next = std::next(it);
    Seq& s = **it;
    if (s.done) finish(it, s.fin.reason);
    it = next;
  }
}

void Scheduler::Impl::sample(Seq& s, float* row) {
  const int64_t V = model.vocab_size();
  SchedulerEvent ev;
  if (s.req.logprobs >= 0) {  // log-softmax of the raw logits, before the sampler changes them
    float mx = row[0];
    for (int64_t v = 1; v < V; ++v) mx = std::max(mx, row[v]);
    double sum = 0;
    for (int64_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(row[v] - mx));
    const float lse = mx + static_cast<float>(std::log(sum));
    for (int64_t v = 0; v < V; ++v) scratch[v] = row[v] - lse;
  }
  const int32_t t = s.sampler.sample(row, V, s.history);
  ++s.generated;
  s.history.push_back(t);
  s.pending = t;
  auto done = [&](FinishReason r) {
    s.fin.reason = r;
    s.done = true;
  };
  const std::vector<int32_t>& eos = engine.eos_ids();
  const std::vector<int32_t>& extra = s.req.stop_tokens;
  if (!s.req.ignore_eos && (std::find(eos.begin(), eos.end(), t) != eos.end() ||
                            std::find(extra.begin(), extra.end(), t) != extra.end())) {
    // The end-of-sequence token is not text; what the stop matcher held back is.
    ev.text = s.stop.flush(s.text.flush());
    if (!ev.text.empty()) s.stream->push(std::move(ev));
    return done(FinishReason::kEndOfSequence);
  }
  ev.token = t;
  if (s.req.logprobs >= 0) {
    ev.logprob = scratch[t];
    const int k = std::min<int>(s.req.logprobs, static_cast<int>(V));
    if (k > 0) {
      std::vector<int32_t>& idx = top_idx;
      for (int64_t v = 0; v < V; ++v) idx[v] = static_cast<int32_t>(v);
      std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                        [&](int32_t a, int32_t b) { return scratch[a] > scratch[b]; });
      for (int j = 0; j < k; ++j) ev.top.emplace_back(idx[j], scratch[idx[j]]);
    }
  }
  const StopStrings::Result r = s.stop.push(s.text.push(t));
  ev.text = r.text;
  const bool last = r.matched || s.generated >= s.req.max_tokens;
  if (last && !r.matched) ev.text += s.stop.flush(s.text.flush());
  if (!s.first_token_sent) {
    s.first_token_sent = true;
    s.fin.time_to_first_token_s = seconds(s.submitted, Clock::now());
  }
  s.stream->push(std::move(ev));
  if (r.matched) return done(FinishReason::kStop);
  if (s.generated >= s.req.max_tokens) return done(FinishReason::kLength);
}

void Scheduler::Impl::finish(std::list<std::unique_ptr<Seq>>::iterator it, FinishReason r,
                             std::string err) {
  Seq& s = **it;
  Finish f = s.fin;
  f.reason = r;
  f.error = std::move(err);
  f.completion_tokens = s.generated;
  f.total_s = seconds(s.submitted, Clock::now());
  s.kv.reset();  // blocks back to the pool (the prefix cache keeps what it shares)
  pool->unreserve(s.reserved);
  const std::shared_ptr<RequestStream> stream = s.stream;
  {
    std::lock_guard<std::mutex> lk(mu);
    switch (r) {
      case FinishReason::kCancelled: ++st.requests_cancelled; break;
      case FinishReason::kError: ++st.requests_error; break;
      default: ++st.requests_ok; break;
    }
    running.erase(it);
    st.running = static_cast<int64_t>(running.size());
  }
  stream->close(f);  // last: a reader that sees the end also sees the stats and the free blocks
}

}  // namespace longctx
