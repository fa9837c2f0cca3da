// Backend-neutral kernel API. Model code calls only these functions; SIMD details stay inside
// src/kernels/ (reference/ holds the scalar versions every optimized path is tested against).
//
// Conventions: activations are f32 and row-major; a weight matrix is row-major [rows][cols] in its
// stored type (f32, f16, bf16 or a GGUF block type: never up-converted as a whole) and is applied
// as y = x * W^T, the layout of a Hugging Face nn.Linear. All accumulation is in f32 (block types:
// int32 inside a block, docs/gguf-kernels.md).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "core/tensor_type.h"
#include "core/thread_pool.h"
#include "kernels/kv_type.h"

namespace longctx::kernels {

// A read-only weight matrix in its stored type: row r starts at data + r * row_bytes bytes.
// row_bytes is cols * element size for the float types and row_bytes(type, cols) for block types
// (cols a multiple of the block size); weight_view() fills it.
struct WeightView {
  TensorType type = TensorType::kF32;
  const void* data = nullptr;
  int64_t rows = 0;       // output features
  int64_t cols = 0;       // input features
  int64_t row_bytes = 0;  // bytes from one row to the next
};

// A view of rows x cols elements of `type` at data, rows packed (row_bytes = row_bytes(type,
// cols)). Error(kShape) when cols is not a multiple of the type's block size.
WeightView weight_view(TensorType type, const void* data, int64_t rows, int64_t cols);

// Decodes n elements (one or more whole blocks) of `t` at src into f32 dst. Error(kShape) when n
// is not a multiple of the block size (docs/gguf-kernels.md lists the block layouts).
void dequantize_row(TensorType t, const void* src, float* dst, int64_t n);
// Encodes n f32 values as `t` at dst (row_bytes(t, n) bytes): Q8_0 and Q4_0 round to nearest
// as ggml's reference quantizers do; the K-quants search each block's scales and minima for the
// least weighted squared error, as ggml's reference K-quantizers do. The float types convert
// (round to nearest even). Error(kShape) when n is not a multiple of the block size.
void quantize_row(TensorType t, const float* src, void* dst, int64_t n);

// y[i][r] = sum_c x[i][c] * W[r][c] (+ bias[r] when bias != nullptr), for i < n.
// x: [n][w.cols], y: [n][w.rows]; bias: [w.rows] f32 or nullptr. Threads split the work.
//
// Two kernel families sum in two fixed orders: the decode kernels (weights streamed once for a
// few rows) and the prefill GEMMs (packed panels). Rows [0, decode_rows) take the decode order,
// the rest the prefill order, and each row's result depends only on that row and its order,
// never on n, on the other rows or on the threads (batch invariance, docs/kernels.md): a
// sequence decoded in a batch gets the bits it gets alone. Without decode_rows the call picks
// default_decode_rows(n): every row decodes below kGemmMinRows rows, none from there on.
inline constexpr int64_t kGemmMinRows = 16;
int64_t default_decode_rows(int64_t n);
void matmul(ThreadPool& pool, const float* x, int64_t n, const WeightView& w, const float* bias,
            float* y);
void matmul(ThreadPool& pool, const float* x, int64_t n, const WeightView& w, const float* bias,
            float* y, int64_t decode_rows);

// Several products of the same x (q/k/v, gate/up): y_j = x W_j^T + bias_j, rows split between
// the two orders as matmul() splits them. The decode rows of all of them go in one pass (one
// synchronization, one weight stream for every matrix); the prefill rows are matmul() per matrix.
// Every W_j has x's cols.
struct MatmulOut {
  const WeightView* w;
  const float* bias;  // or nullptr
  float* y;           // [n][w->rows]
};
void matmul_many(ThreadPool& pool, const float* x, int64_t n, const MatmulOut* outs, int n_outs);
void matmul_many(ThreadPool& pool, const float* x, int64_t n, const MatmulOut* outs, int n_outs,
                 int64_t decode_rows);

// Row `row` of an embedding table (stored type, any TensorType) into f32 dst[w.cols].
void embedding_row(const WeightView& w, int64_t row, float* dst);

// y[i] = x[i] / sqrt(mean(x[i]^2) + eps) * weight, for n rows of `dim`. In place allowed (y == x).
void rmsnorm(const float* x, const float* weight, int64_t n, int64_t dim, float eps, float* y);

// Hugging Face "rotate_half" RoPE, in place. x: [n_tokens][n_heads][head_dim]. For token t at
// position pos[t] and i < rot_dim/2, with angle a = pos[t] * inv_freq[i]:
//   x'[i]           = x[i] * cos(a) * attn_factor - x[i + rot_dim/2] * sin(a) * attn_factor
//   x'[i+rot_dim/2] = x[i+rot_dim/2] * cos(a) * attn_factor + x[i] * sin(a) * attn_factor
// Elements at index >= rot_dim (partial rotary) are left unchanged. Angles are computed in double.
void rope(float* x, int64_t n_tokens, int n_heads, int head_dim, int rot_dim, const int64_t* pos,
          const float* inv_freq, float attn_factor);

// out[i] = silu(gate[i]) * up[i] for n elements; silu(g) = g / (1 + exp(-g)). out may alias gate.
void silu_mul(const float* gate, const float* up, int64_t n, float* out);

// Sum of x[0..n), read once in a streaming pass that threads split (f32 partial sums, combined in
// double). At sizes far above the last-level cache its speed is the machine's read bandwidth.
double sum(ThreadPool& pool, const float* x, int64_t n);

// Key/value cache of one layer as the attention kernel sees it: a list of fixed-size blocks.
// Block b holds positions [b*block_size, (b+1)*block_size); inside a block the layout is
// [n_kv_heads][block_size][head_dim] in `dtype`, so one head's keys in a block are contiguous.
struct KVView {
  DType dtype = DType::kF32;
  int block_size = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  const void* const* k_blocks = nullptr;
  const void* const* v_blocks = nullptr;
  int64_t n_tokens = 0;  // positions [0, n_tokens) are valid
  // Set when keys and values are stored as k_type / v_type instead of `dtype`: int8/int4 groups
  // or two different float types (layout in kernels/kv_quant.h). Attention then dequantizes one
  // tile at a time into a small scratch; no full-precision copy of the cache is made.
  bool coded = false;
  KvType k_type = KvType::kF32, v_type = KvType::kF32;
  // int4 keys (per channel over groups of 16 tokens): positions >= k_pending_from, the group not
  // yet complete, are read in f32 from k_pending [n_kv_heads][16][head_dim].
  const float* k_pending = nullptr;
  int64_t k_pending_from = INT64_MAX;
};

struct AttentionParams {
  int n_heads = 0;     // query heads; query head h reads kv head h / (n_heads / n_kv_heads)
  float scale = 0.f;   // usually 1/sqrt(head_dim)
  int64_t window = 0;  // 0: full causal; else key j visible to query i iff i - j < window
  // Threads the keys of a head are split for (flash-decoding), 0: the pool's. The split fixes the
  // summation order, so a caller that attends on a one-thread pool inside a wider fork-join (a
  // decode batch) passes the wider pool's size and gets the bits one sequence gets alone.
  int split_threads = 0;
};

// Causal attention of n_q queries at positions q_pos0 .. q_pos0 + n_q - 1 against kv.
// q: [n_q][n_heads][head_dim], out: [n_q][n_heads][head_dim]. Key j is visible to query at
// position i iff j <= i and (window == 0 || i - j < window); requires q_pos0 + n_q <= kv.n_tokens.
// No mask is materialized: visibility comes from indices, softmax is online (running max/sum),
// and scratch memory is O(threads x tile), independent of context length.
void attention(ThreadPool& pool, const AttentionParams& p, const float* q, int64_t n_q,
               int64_t q_pos0, const KVView& kv, float* out);

// Bytes of scratch attention() uses for these arguments (all threads together). It depends on the
// thread count, head counts, head_dim and n_q, never on kv.n_tokens (DESIGN.md decision 1).
size_t attention_scratch_bytes(const ThreadPool& pool, const AttentionParams& p, int64_t n_q,
                               const KVView& kv);

// Name of the SIMD path chosen at run time for this CPU ("avx512", "avx2", "scalar").
const char* simd_path();

// SIMD paths, lowest first. The best one the build and the CPU support is chosen at start-up;
// LONGCTX_SIMD=scalar|avx2|avx512 in the environment forces a lower one.
enum class SimdPath : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };
const char* simd_path_name(SimdPath path);
// Highest path this build can produce and this CPU can run.
SimdPath best_simd_path();
SimdPath active_simd_path();
// Switches every kernel to `path` (clamped to best_simd_path()); returns the path in effect.
// For tests and benchmarks: call it while no kernel runs.
SimdPath set_simd_path(SimdPath path);

}  // namespace longctx::kernels
