// Plain scalar reference of every kernel in ops.h: one thread, no SIMD, written for clarity.
// Optimized paths (src/kernels/cpu/) are tested against these; accumulation is in f32 as in ops.h.
#pragma once

#include <cstdint>

#include "kernels/ops.h"

namespace longctx::kernels::reference {

// Element `i` of a buffer of dtype `t`, as f32.
float load_f32(DType t, const void* data, int64_t i);

// Any TensorType; block types are decoded to f32 a row at a time (x stays f32).
void matmul(const float* x, int64_t n, const WeightView& w, const float* bias, float* y);
void embedding_row(const WeightView& w, int64_t row, float* dst);
// GGUF block types (kernels/quant_blocks.h) and the float types; n a multiple of the block size
// (unchecked: ops.h's dequantize_row / quantize_row check it).
void dequantize_row(TensorType t, const void* src, float* dst, int64_t n);
void quantize_row(TensorType t, const float* src, void* dst, int64_t n);
void rmsnorm(const float* x, const float* weight, int64_t n, int64_t dim, float eps, float* y);
void rope(float* x, int64_t n_tokens, int n_heads, int head_dim, int rot_dim, const int64_t* pos,
          const float* inv_freq, float attn_factor);
void silu_mul(const float* gate, const float* up, int64_t n, float* out);
double sum(const float* x, int64_t n);
// One query at a time with online softmax; scratch O(head_dim).
void attention(const AttentionParams& p, const float* q, int64_t n_q, int64_t q_pos0,
               const KVView& kv, float* out);
// Attention over a coded cache with int8 / int4 keys and values (head_dim a multiple of 32), as
// the AVX-512 decode tile computes it: the scores of coded keys use the query (times p.scale)
// quantized to int8 per 32 dims, codes rint(x * 127 / max|x|) and scale max|x| / 127, against the
// key codes (int4 keys: x = q o s per token group, plus q . m); keys still pending in f32, the
// softmax and the values are exact.
void attention_quant_query(const AttentionParams& p, const float* q, int64_t n_q, int64_t q_pos0,
                           const KVView& kv, float* out);

}  // namespace longctx::kernels::reference
