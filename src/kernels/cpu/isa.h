// Internal: the entry points each SIMD path provides. The drivers (ops.cc, cpu/attention.cc) own
// threading and scratch and call these through one table per path. Each path lives in its own
// namespace and translation units compiled with that path's -m flags; those TUs use no std
// containers or other inline library code, so no code built for a higher ISA can leak into a lower
// path through the linker's choice among duplicate inline definitions.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/kv_type.h"
#include "kernels/ops.h"

namespace longctx::kernels::cpu {

// Geometry of the blocked GEMM: x rows per micro-kernel, weight rows per packed panel, and
// input features per packed block (f32 panel / bf16-pair panel).
struct GemmGeometry {
  int mr, nr, kc_f32, kc_bf16;
};
// Scratch of one thread's packed GEMM panel (cpu/gemm_f32.h; the matmul TUs check these).
inline constexpr size_t kAvx512GemmPackBytes = 64 * 256 * sizeof(float);
inline constexpr size_t kAvx2GemmPackBytes = 16 * 256 * sizeof(float);

// One tile of keys for a set of query rows (online-softmax update, see cpu/attention.cc).
struct AttnTile {
  const float* q;  // [rows][head_dim], already multiplied by the softmax scale
  int rows;        // query rows (query positions x heads of one kv group)
  int head_dim;
  DType dtype;    // of k and v
  const void* k;  // [n_keys][head_dim]
  const void* v;  // [n_keys][head_dim]
  int n_keys;     // keys in this tile (<= kAttnTile)
  const int* lo;  // [rows]: keys [lo[r], hi[r]) of the tile are visible to row r (may be empty)
  const int* hi;
  float* m;    // [rows] running max (-inf initially)
  float* l;    // [rows] running sum
  float* acc;  // [rows][head_dim] running weighted sum of values
  float* kf;   // scratch [kAttnTile][head_dim]
  float* vf;   // scratch [kAttnTile][head_dim]
  float* s;    // scratch [rows][kAttnTile]
  // What the path's attn_query_prep made of q for this item's tiles (attn_tile_quant), or null.
  const void* qprep = nullptr;
};
inline constexpr int kAttnTile = 64;
// Tiles with at most this many query rows (decode: one position's GQA group, up to 8 in every
// supported model) are computed from the key and value rows in place; more rows (prefill) pay
// for a converted, transposed copy of the tile shared by all of them.
inline constexpr int kAttnDirectRows = 8;

// Where one tile's quantized keys and values lie in their sections (one kv head's codes and meta
// in a block, kernels/kv_quant.h); the tile's keys are all coded (no int4 key still pending).
// attn_tile_quant takes head dims of at most 256 that are multiples of the vector width where:
// int8: a scale group holds whole vectors; int4 values: half a group does; int4 keys: half a row.
struct QuantTile {
  KvType k_type, v_type;   // kInt8 or kInt4
  const uint8_t* k_codes;  // the tile's first key's codes (rows of kv_code_bytes)
  // int8 keys: the first key's scales (rows of kv_meta_bytes); int4 keys (per channel): the meta
  // of the token group holding the first key, which is key k_first of its group.
  const uint8_t* k_meta;
  int k_first;
  const uint8_t* v_codes;  // the first value's codes
  const uint8_t* v_meta;   // the first value's scales (int4: and minima)
};

// Activations quantized for block-type weights (docs/gguf-kernels.md), made once per matmul call by
// Isa::quantize_act: for each of n rows, cols int8 codes q, one f32 scale d per `group` elements (x
// ~ d * q with d = max|x| / 127 over the group: 32 for Q8_0 / Q4_0 / Q5_0 / Q5_1, one per weight
// block; 256 for the K-quants, one per super-block, so their integer sums run over a whole
// super-block), and the sum of the codes of every 16 elements (bsum) for Q6_K's offset of 32 and
// the minima of the K-quants and Q5_1.
struct QuantAct {
  const int8_t* q;      // [n][cols]
  const float* d;       // [n][cols / group]
  const int16_t* bsum;  // [n][cols / 16]
  int64_t cols;         // a multiple of group
  int group;
};
// Row i of x as a one-row QuantAct.
inline QuantAct act_row(const QuantAct& x, int64_t i) {
  return QuantAct{x.q + i * x.cols, x.d + i * (x.cols / x.group), x.bsum + i * (x.cols / 16),
                  x.cols, x.group};
}
// The activation group of weights of type t (a block type).
inline int act_group(TensorType t) { return block_layout(t).elems == 32 ? 32 : 256; }
// Bytes of QuantAct arrays for n rows (q, d and bsum, each 64-byte aligned).
inline size_t quant_act_bytes(int64_t n, int64_t cols, int group) {
  auto up = [](size_t b) { return (b + 63) & ~size_t{63}; };
  return up(static_cast<size_t>(n * cols)) + up(static_cast<size_t>(n * (cols / group)) * 4) +
         up(static_cast<size_t>(n * (cols / 16)) * 2);
}

struct Isa {
  SimdPath path;
  GemmGeometry gemm_geometry;
  // Rows [r0, r1) of y = x W^T + bias for x [n][w.cols] (the decode path), each weight row
  // streamed once for all x rows, every row summed in the order one x row alone gets (batch
  // invariance: ops.h, matmul). xb: x as bf16 [n][round_up(cols,2)] when w.type
  // is bf16 and bf16_dot (then the dot products use it), else nullptr.
  void (*matvec)(const float* x, const uint16_t* xb, int64_t n, const WeightView& w,
                 const float* bias, float* y, int64_t r0, int64_t r1);
  // Same, cache-blocked with packed weight panels (prefill). xb: x as bf16 [n][round_up(cols,2)]
  // (zero padded) when w.type is bf16 and use_bf16_dot, else unused. pack: scratch of
  // gemm_pack_bytes() bytes.
  void (*gemm)(const float* x, const uint16_t* xb, int64_t n, const WeightView& w,
               const float* bias, float* y, int64_t r0, int64_t r1, void* pack);
  size_t gemm_pack_bytes;
  // Whether matvec() and gemm() use bf16 dot products (activations rounded to bf16) for bf16
  // weights.
  bool bf16_dot;
  // dst[n][ld] bf16 from src[n][cols] f32, zero-padding columns [cols, ld).
  void (*to_bf16_rows)(const float* src, int64_t n, int64_t cols, uint16_t* dst, int64_t ld);
  void (*to_f32)(DType t, const void* src, float* dst, int64_t n);
  void (*rmsnorm_row)(const float* x, const float* weight, int64_t dim, float eps, float* y);
  void (*silu_mul)(const float* gate, const float* up, int64_t n, float* out);
  // Rotates n_vec vectors of head_dim (stride head_dim) with cos/sin [half] (attn_factor folded
  // in).
  void (*rope_apply)(float* x, int64_t n_vec, int head_dim, int half, const float* cs,
                     const float* sn);
  void (*attn_tile)(const AttnTile& t);
  // The tile with quantized keys and values (int8 or int4 each) decoded in registers, no
  // scratch; false (nothing done) for shapes the path's vectors do not tile (QuantTile). Null on
  // paths without one.
  bool (*attn_tile_quant)(const AttnTile& t, const QuantTile& c);
  // Prepares the query rows q [rows][head_dim] of one item (the same for each of its tiles) for
  // attn_tile_quant over keys of type k, into at most attn_query_prep_bytes bytes at out (64-byte
  // aligned); false when there is nothing to prepare (then the tiles get qprep = null). Null on
  // paths without one.
  bool (*attn_query_prep)(const float* q, int rows, int head_dim, KvType k, void* out);
  size_t attn_query_prep_bytes;
  // Sum of x[0..n) (one streaming pass; f32 partial sums).
  float (*sum)(const float* x, int64_t n);
  // x [n][cols] f32 -> QuantAct arrays (cols a multiple of group).
  void (*quantize_act)(const float* x, int64_t n, int64_t cols, int group, int8_t* q, float* d,
                       int16_t* bsum);
  // Rows [r0, r1) of y = x W^T + bias for block-type weights W and x quantized for W's type
  // (QuantAct), integer dot products inside each block (decode): every row summed in the order
  // one x row alone gets (batch invariance), weight rows from L1 after the first x row.
  void (*qmatvec)(const QuantAct& x, int64_t n, const WeightView& w, const float* bias, float* y,
                  int64_t r0, int64_t r1);
  // The same products for many x rows (prefill, n >= 8): panels of 16 weight rows unpacked once
  // and swept by an integer micro-kernel over all x rows (Q8_0 / Q4_0 keeping llama.cpp's f32
  // order: docs/gguf-kernels.md; AVX2: the matvec's dot products 4 x rows at a time, in that
  // order). pack: qgemm_pack_bytes(w.type, w.cols) bytes of scratch. Null where qmatvec takes
  // every n.
  void (*qgemm)(const QuantAct& x, int64_t n, const WeightView& w, const float* bias, float* y,
                int64_t r0, int64_t r1, void* pack);
  size_t (*qgemm_pack_bytes)(TensorType t, int64_t cols);
};

const Isa& scalar_isa();
#if defined(LONGCTX_X86_PATHS)
const Isa& avx2_isa();
const Isa& avx512_isa();
#endif

}  // namespace longctx::kernels::cpu

// Declares one path's entry points inside its namespace (cpu::scalar, cpu::avx2, cpu::avx512).
#define LONGCTX_DECLARE_ISA_KERNELS                                                                \
  void matvec(const float* x, const uint16_t* xb, int64_t n, const WeightView& w,                  \
              const float* bias, float* y, int64_t r0, int64_t r1);                                \
  void gemm(const float* x, const uint16_t* xb, int64_t n, const WeightView& w, const float* bias, \
            float* y, int64_t r0, int64_t r1, void* pack);                                         \
  void to_bf16_rows(const float* src, int64_t n, int64_t cols, uint16_t* dst, int64_t ld);         \
  void to_f32(DType t, const void* src, float* dst, int64_t n);                                    \
  void rmsnorm_row(const float* x, const float* weight, int64_t dim, float eps, float* y);         \
  void silu_mul(const float* gate, const float* up, int64_t n, float* out);                        \
  void rope_apply(float* x, int64_t n_vec, int head_dim, int half, const float* cs,                \
                  const float* sn);                                                                \
  void attn_tile(const AttnTile& t);                                                               \
  float sum(const float* x, int64_t n);                                                            \
  void quantize_act(const float* x, int64_t n, int64_t cols, int group, int8_t* q, float* d,       \
                    int16_t* bsum);                                                                \
  void qmatvec(const QuantAct& x, int64_t n, const WeightView& w, const float* bias, float* y,     \
               int64_t r0, int64_t r1);
