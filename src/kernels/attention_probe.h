// The attention probe: exact attention-pattern rows for chosen queries over the KV cache as
// stored, for the hook points (docs/hooks.md). Kept out of ops.h, which the SIMD translation
// units include: those use no std containers or std::function (kernels/cpu/isa.h).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "kernels/ops.h"

namespace longctx::kernels {

// One query row of attention_probe(): query t (index among the n_q queries) of query head `head`
// sees keys [lo, hi); s[j - lo] = scale x q . k_j for those keys, read from the same stored keys
// attention() reads. m = max of s, l = sum of exp(s - m) (in double): the softmax statistics, so
// p_j = exp(s[j - lo] - m) / l exactly.
struct ProbeRow {
  int head;
  int64_t t;
  int64_t lo, hi;
  const float* s;
  double m, l;
};

// Exact attention-pattern rows without a context x context tensor: for each query index in
// `queries` (ascending, each < n_q) and every head, computes the row's scores over its visible
// keys (causal, window) and calls fn with them. q: [n_q][n_heads][head_dim] rotated queries at
// positions q_pos0 .. q_pos0 + n_q - 1, as attention() takes them. Threads split the kv heads: fn
// runs concurrently for heads of different kv groups, never for two rows of the same head at once,
// and rows of one head come in query order. Scratch: threads x (heads per group x visible keys +
// one key tile) floats.
void attention_probe(ThreadPool& pool, const AttentionParams& p, const float* q, int64_t n_q,
                     int64_t q_pos0, const KVView& kv, const std::vector<int64_t>& queries,
                     const std::function<void(const ProbeRow&)>& fn);
// Bytes of scratch attention_probe() allocates for rows seeing up to max_keys keys.
size_t attention_probe_scratch(int threads, const AttentionParams& p, const KVView& kv,
                               int64_t max_keys);

}  // namespace longctx::kernels
