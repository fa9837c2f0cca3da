// Internal: the attention driver (cpu/attention.cc) behind kernels::attention.
#pragma once

#include "kernels/cpu/isa.h"

namespace longctx::kernels::cpu {

// Bytes of scratch attention_run uses with `threads` threads; independent of kv.n_tokens.
size_t attention_scratch(int threads, const AttentionParams& p, int64_t n_q, const KVView& kv);

void attention_run(const Isa& isa, ThreadPool& pool, const AttentionParams& p, const float* q,
                   int64_t n_q, int64_t q_pos0, const KVView& kv, float* out);

}  // namespace longctx::kernels::cpu
