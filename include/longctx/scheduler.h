// Continuous batching over one Engine: many sequences share the model and one KV block pool.
// Every step runs one forward pass over the weights for a batch made of every running sequence's
// next decode token plus prefill chunks of sequences still reading their prompts, up to a token
// budget per step. A request is admitted only when the pool can hold its prompt + max_tokens
// (blocks are reserved at admission, so a running sequence never waits for memory and is never
// thrown away); until then it waits in a bounded queue. Full KV blocks of prompts are kept in a
// prefix cache (reference-counted, evicted least-recently-used when blocks run out), so a shared
// document or system prompt is prefilled once.
//
//   Scheduler sched(*engine, {.parallel = 8, .queue_limit = 64});
//   auto stream = sched.submit(request);          // throws Error when refused (see submit)
//   SchedulerEvent ev;
//   while (stream->next(ev)) { ... ev.text ... }   // blocks; false once finished
//   stream->finish();                              // reason, usage
//
// Front ends (the HTTP server, Python) tokenize and template; the scheduler runs token ids.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <functional>

#include "config/model_config.h"
#include "kv/kv_cache.h"
#include "plan/memory_plan.h"
#include "runtime/sampler.h"

namespace longctx {

class Engine;
struct PlannedRun;

struct SchedulerOptions {
  int parallel = 4;       // sequences running at once at most (--parallel)
  int queue_limit = 64;   // requests waiting for admission at most; beyond: Error(kBusy)
  // Tokens one step runs at most (decode tokens + prefill chunks); 0: the plan's prefill chunk.
  int64_t step_tokens = 0;
  bool prefix_cache = true;  // share full prompt blocks between sequences
  // Tokens per KV block: prefixes are shared in whole blocks and a sequence's last block is
  // partly empty, so serving uses smaller blocks than a single session (kKvBlockTokens).
  int block_tokens = 64;
};

// How a server's memory is laid out (docs/serve.md, "Admission and memory"):
//   fixed    = the plan's total without its KV cache (weights, activations for the step's rows,
//              kernel scratch, overhead)
//   per_seq  = what each running sequence holds besides KV blocks: its logits row, the sampler's
//              buffers, its token history, int4 keys' pending group (KVCacheShape::fixed_bytes)
//   pool     = blocks x block bytes: min(what the budget leaves after fixed + parallel x per_seq,
//              2 x parallel full-context sequences)
// Error(kMemory) when the pool cannot hold one sequence of the full context.
struct ServePlan {
  KVCacheShape shape;       // of the pool: the plan's KV types, SchedulerOptions::block_tokens
  int64_t context = 0;      // tokens one sequence may hold
  int64_t step_tokens = 0;  // rows of one step (SchedulerOptions::step_tokens resolved)
  int64_t pool_blocks = 0;
  int64_t blocks_per_sequence = 0;  // worst case of one full-context sequence
  size_t block_bytes = 0, fixed = 0, per_sequence = 0, pool_bytes = 0, total = 0, budget = 0;
};
// From the plan alone (nothing loaded), so a server refuses before it listens. Error(kInvalidArg)
// for options out of range.
ServePlan plan_serve(const PlannedRun& run, const SchedulerOptions& opt);

struct CompletionRequest {
  std::vector<int32_t> prompt;  // token ids, BOS included when the model wants one; not empty
  int max_tokens = 16;          // tokens to generate at most (> 0)
  SamplerParams sampler;        // temperature 0: greedy
  std::vector<std::string> stop;  // stop strings: generation ends before the first match
  bool ignore_eos = false;
  // Token ids that end the generation besides the model's end-of-sequence ids (a chat template's
  // end-of-turn token); like them, not part of the text, and ignored with ignore_eos.
  std::vector<int32_t> stop_tokens;
  // >= 0: each token event carries its log-probability and this many most likely tokens; -1: none.
  int logprobs = -1;
};

// One generated token, in order. `text` is the complete UTF-8 the token finished (may be empty
// while a multi-byte character or a possible stop string is held back). A last event with token
// -1 may carry text released at the end (held back for a stop string that never came, before an
// end-of-sequence token).
struct SchedulerEvent {
  int32_t token = -1;
  std::string text;
  float logprob = 0.f;  // with logprobs >= 0: log-probability of `token` under the model (before
                        // the sampling settings)
  std::vector<std::pair<int32_t, float>> top;  // the `logprobs` most likely tokens, best first
};

enum class FinishReason { kLength, kStop, kEndOfSequence, kCancelled, kError };
// OpenAI's finish_reason: "length", "stop" (stop string or end of sequence), "cancelled", "error".
const char* finish_reason_name(FinishReason r);

struct Finish {
  FinishReason reason = FinishReason::kLength;
  std::string error;            // kError: what went wrong
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;    // prompt tokens served from the prefix cache
  int64_t completion_tokens = 0;
  double queued_s = 0;          // submit to admission
  double time_to_first_token_s = 0;  // submit to the first token event
  double total_s = 0;
};

// The stream of one request. Thread-safe: the scheduler pushes, one consumer pops.
class RequestStream {
 public:
  // Blocks until the next event (true) or the end of the request (false: see finish()).
  bool next(SchedulerEvent& ev);
  // As next(), waiting at most `timeout`; nullopt when nothing came in time.
  std::optional<bool> next_for(SchedulerEvent& ev, std::chrono::milliseconds timeout);
  // Stops the request (client gone): its blocks are freed within one step. Idempotent.
  void cancel();
  bool cancelled() const { return cancelled_.load(); }
  // Valid once next() returned false.
  const Finish& finish() const { return finish_; }

 private:
  friend class Scheduler;
  void push(SchedulerEvent ev);
  void close(Finish f);

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<SchedulerEvent> events_;
  bool closed_ = false;
  Finish finish_;
  std::atomic<bool> cancelled_{false};
  std::function<void()> on_cancel_;  // wakes the scheduler
};

struct SchedulerStats {
  int64_t running = 0, queued = 0;
  int64_t kv_blocks_total = 0, kv_blocks_used = 0, kv_blocks_cached = 0;  // cached: evictable
  int64_t kv_block_bytes = 0;
  int64_t requests_ok = 0, requests_cancelled = 0, requests_error = 0;
  int64_t rejected_too_long = 0, rejected_busy = 0;
  int64_t prompt_tokens = 0, cached_prompt_tokens = 0, generated_tokens = 0;
  int64_t steps = 0;
  int64_t context = 0;        // tokens one sequence may hold (prompt + max_tokens)
  int64_t budget_bytes = 0;   // the plan's budget
  int64_t planned_bytes = 0;  // ServePlan::total
};

class Scheduler {
 public:
  // Starts the scheduling thread over `engine` (which must outlive it), with the KV block pool
  // plan_serve(engine.planned(), opt) sizes (Error(kMemory) when it cannot hold one sequence).
  Scheduler(Engine& engine, const SchedulerOptions& opt);
  ~Scheduler();  // cancels everything, joins the thread
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues `req`. Throws, before anything is queued:
  //  Error(kInvalidArg)  empty prompt, max_tokens <= 0, bad sampler settings, token id outside
  //                      the vocabulary;
  //  Error(kOutOfRange)  prompt + max_tokens beyond the context (message names the token count,
  //                      the context and the largest max_tokens that fits);
  //  Error(kBusy)        the queue is full (retry later).
  std::shared_ptr<RequestStream> submit(CompletionRequest req);

  SchedulerStats stats() const;
  const SchedulerOptions& options() const { return opt_; }
  const ServePlan& serve_plan() const;

 private:
  struct Impl;
  SchedulerOptions opt_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace longctx
