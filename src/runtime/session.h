// A Session is one sequence being run through a model: its KV cache, its activation buffers and
// its position. Prompts are always run in chunks (DESIGN.md decision 4): one chunk and many
// chunks give the same logits.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "dist/pipeline.h"
#include "kv/kv_cache.h"
#include "model/decoder.h"

namespace longctx {

// What a session does when a sequence outgrows its context (--context-overflow).
struct ContextOverflow {
  enum Mode { kStop, kShift, kSinks } mode = kStop;
  // kStop: appending past the context is Error(kOutOfRange) (a generation ends there).
  // kShift: keep the first token, drop the older half of the rest (llama.cpp's context shift).
  // kSinks: keep the first `sinks` tokens (attention sinks) and the newest ones, dropping the
  // oldest others an eighth of the context at a time (StreamingLLM's window, slid in steps).
  int64_t sinks = 4;
};
// "stop", "shift" or "sinks:N"; Error(kInvalidArg) naming the choices otherwise.
ContextOverflow parse_context_overflow(const std::string& text);
std::string context_overflow_name(const ContextOverflow& o);

struct SessionOptions {
  int64_t context = 0;        // cap on tokens held (prompt + generated); required > 0
  int64_t prefill_chunk = 256;
  // How keys and values are stored (f32, f16, bf16, int8, int4; they may differ).
  KvType kv_k = KvType::kF16, kv_v = KvType::kF16;
  // Bytes the memory plan allows for KV blocks and activation buffers; 0: unlimited. Going past it
  // is Error(kInternal): the plan under-priced something.
  size_t memory_limit = 0;
  // Tokens the caller expects the sequence to reach (prompt + tokens to generate); 0: unknown.
  // With LongRoPE scaling, a plan beyond original_max_position_embeddings uses the long factors
  // from the first token, so no recompute is needed when the generation crosses that length.
  int64_t planned_tokens = 0;
  // Called with a one-line message when the session does something costly the caller did not ask
  // for (recomputing the whole cache when a LongRoPE sequence crosses into long factors).
  std::function<void(const std::string&)> on_notice;
  // Called after each prefill chunk of an append() with the tokens of that call run so far and
  // its total (e.g. 512 of 29000); not for a recompute of the cached tokens. Null: not called.
  std::function<void(int64_t done, int64_t total)> on_progress;
  // Hook points the forward passes fire (captures, patches, steering); null: none. Not owned.
  hooks::ForwardHooks* hooks = nullptr;
  // Under mpirun, rank 0's link to the other stages (the model is then rank 0's stage and the
  // logits come from the last rank); null: the whole model runs here. Not owned.
  dist::Pipeline* pipeline = nullptr;
  // Past the context: stop (an error), or drop tokens from the cache and re-rotate the rest.
  ContextOverflow overflow;
};

class Session {
 public:
  Session(const Model& model, ThreadPool& pool, const SessionOptions& opt);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Runs `tokens` after what the session holds, prefill_chunk tokens at a time, and returns the
  // next-token logits after the last one ([vocab]). When all_logits is given it receives
  // [tokens.size()][vocab]: the logits after every token. Error(kOutOfRange) when the tokens do
  // not fit in the context (nothing is run then).
  const std::vector<float>& append(const std::vector<int32_t>& tokens,
                                   std::vector<float>* all_logits = nullptr);

  int64_t n_past() const { return kv_.n_tokens(); }
  // The tokens the session holds (positions [0, n_past())).
  const std::vector<int32_t>& tokens() const { return history_; }
  // The rope length the cached keys were rotated with (runtime/prompt_cache.h).
  int64_t rope_len() const { return rope_len_; }
  // On an empty session: the KV state of `tokens` as KVCache::restore takes it, keys rotated
  // for rope length `rope_len` (runtime/prompt_cache.h loads files through this).
  void restore_state(int64_t n, const std::vector<int64_t>& first,
                     const std::function<void(int, int64_t, uint8_t*)>& fill,
                     const std::vector<float>& pending, const std::vector<int64_t>& pending_from,
                     const std::vector<int32_t>& tokens, int64_t rope_len);
  int64_t context() const { return opt_.context; }
  const SessionOptions& options() const { return opt_; }
  const KVCache& kv() const { return kv_; }
  const Model& model() const { return model_; }
  const MemoryAccount& memory() const { return account_; }
  // How often the whole cache was recomputed (LongRoPE crossing from short to long factors).
  int recomputes() const { return recomputes_; }
  // How often the context overflowed and tokens were dropped (options().overflow), and how many.
  int shifts() const { return shifts_; }
  int64_t dropped() const { return dropped_; }
  // Whether appending past the context drops tokens instead of failing.
  bool keeps_going() const { return opt_.overflow.mode != ContextOverflow::kStop; }
  // Replaces SessionOptions::on_progress (e.g. a Generator reports its prefill, then stops).
  void set_on_progress(std::function<void(int64_t, int64_t)> f) { opt_.on_progress = std::move(f); }
  void reset() { truncate(0); }
  // Forgets positions >= n (see KVCache::truncate), e.g. to rerun a benchmark from a fixed depth.
  void truncate(int64_t n);

 private:
  const Model& model_;
  ThreadPool& pool_;
  SessionOptions opt_;
  MemoryAccount account_;
  KVCache kv_;
  Activations act_;
  std::vector<float> logits_;
  std::vector<float> chunk_logits_;
  std::vector<int32_t> history_;  // the tokens held (prompt caches; a LongRoPE recompute)
  int64_t rope_len_ = 0;          // the rope length the cached keys were rotated with
  int recomputes_ = 0;
  int remote_ = 0;  // the session's id on the other pipeline ranks (opt_.pipeline)
  int shifts_ = 0;
  int64_t dropped_ = 0;

  // Drops tokens as options().overflow says, so that `m` more fit. Error(kOutOfRange) when m
  // exceeds what the context holds beside the kept tokens.
  void make_room(int64_t m);

  // `report`: call on_progress after each chunk.
  void run(const int32_t* tokens, int64_t n, int64_t rope_len, float* all_logits, bool report);
};

}  // namespace longctx
