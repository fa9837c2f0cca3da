// A Session is one sequence being run through a model: its KV cache, its activation buffers and
// its position. Prompts are always run in chunks (DESIGN.md decision 4): one chunk and many
// chunks give the same logits.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kv/kv_cache.h"
#include "model/decoder.h"

namespace longctx {

struct SessionOptions {
  int64_t context = 0;        // cap on tokens held (prompt + generated); required > 0
  int64_t prefill_chunk = 256;
  DType kv_dtype = DType::kF16;
  // Keys / values stored as another KV type (int8, int4, or keys and values apart); unset:
  // kv_dtype.
  std::optional<KvType> kv_k, kv_v;
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
};

class Session {
 public:
  Session(const Model& model, ThreadPool& pool, const SessionOptions& opt);

  // Runs `tokens` after what the session holds, prefill_chunk tokens at a time, and returns the
  // next-token logits after the last one ([vocab]). When all_logits is given it receives
  // [tokens.size()][vocab]: the logits after every token. Error(kOutOfRange) when the tokens do
  // not fit in the context (nothing is run then).
  const std::vector<float>& append(const std::vector<int32_t>& tokens,
                                   std::vector<float>* all_logits = nullptr);

  int64_t n_past() const { return kv_.n_tokens(); }
  int64_t context() const { return opt_.context; }
  const KVCache& kv() const { return kv_; }
  const Model& model() const { return model_; }
  const MemoryAccount& memory() const { return account_; }
  // How often the whole cache was recomputed (LongRoPE crossing from short to long factors).
  int recomputes() const { return recomputes_; }
  void reset() { kv_.truncate(0); }
  // Forgets positions >= n (see KVCache::truncate), e.g. to rerun a benchmark from a fixed depth.
  void truncate(int64_t n) { kv_.truncate(n); }

 private:
  const Model& model_;
  ThreadPool& pool_;
  SessionOptions opt_;
  MemoryAccount account_;
  KVCache kv_;
  Activations act_;
  std::vector<float> logits_;
  std::vector<float> chunk_logits_;
  std::vector<int32_t> history_;  // LongRoPE on short factors: the tokens held, for a recompute
  int64_t rope_len_ = 0;          // the rope length the cached keys were rotated with
  int recomputes_ = 0;

  void run(const int32_t* tokens, int64_t n, int64_t rope_len, float* all_logits);
};

}  // namespace longctx
