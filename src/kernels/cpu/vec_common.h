// Helpers written once over a path's vector traits VT (Vec8 in vmath_avx2.h, Vec16 in
// vmath_avx512.h) for the kernels shared by both paths (cpu/attention_tile.h, cpu/gemm_f32.h).
// Include only from a path's translation unit; everything here has internal linkage.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "core/dtype.h"

namespace longctx::kernels::cpu {
namespace {
namespace vec {

// f(std::integral_constant<int, K>{}) for the K == k in [1, N]; nothing for any other k. Picks the
// instantiation for a count of rows or vectors known only at run time (the last, partial block).
template <int N, class F>
inline void with_const(int k, F&& f) {
  if constexpr (N >= 1) {
    if (k == N)
      f(std::integral_constant<int, N>{});
    else
      with_const<N - 1>(k, f);
  }
}

// Every cache line of [base + off, base + off + bytes) asked for towards L1. The address is formed
// as an integer: callers name rows past the end of a block's allocation (the next tile's, where the
// walk may not go), which a prefetch may name without faulting and pointer arithmetic may not.
inline void prefetch_lines(const void* base, size_t off, size_t bytes) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(base) + off;
  for (size_t o = 0; o < bytes; o += 64)
    __builtin_prefetch(reinterpret_cast<const void*>(a + o), 0, 3);
}

// What a decode tile reads next, asked for as its scores go. A decode step reads each layer's
// cache once, from memory, and the hardware prefetcher does not run ahead over the streams a tile
// alternates between (keys and values; for int8/int4 caches also their scales). So as the scores
// take keys [j0, j0 + n): those keys' values (read after the scores) and the next tile's keys j0 ..
// j0 + n, i.e. the rows after this tile's, where the walk goes while it stays in the block (after
// a block's last tile, whatever follows it). Issued all at once at a tile's start the same
// prefetches stalled on full miss queues (docs/kv-quantization.md, "Prefetch").
struct TileAhead {
  const void* k;  // the tile's first key row
  size_t k_row;   // bytes per key row
  const void* v;  // the tile's first value row
  size_t v_row;
  int n_keys;  // keys in this tile
  void operator()(int j0, int n) const {
    prefetch_lines(v, j0 * v_row, n * v_row);
    prefetch_lines(k, (n_keys + j0) * k_row, n * k_row);
  }
};

// dst[j * ldd + i] = src[i * ld + j] as f32 for i < rows, j < cols (rows, cols <= kW; src elements
// of dtype DT counted from element `off`); lanes i >= rows of each written row are zero.
template <class VT, DType DT>
inline void transpose_block(const void* src, int64_t off, int64_t ld, int rows, int cols,
                            float* dst, int64_t ldd) {
  using V = typename VT::V;
  constexpr int W = VT::kW;
  V v[W];
  for (int i = 0; i < W; ++i) {
    const int64_t o = off + i * ld;
    v[i] = i >= rows   ? VT::zero()
           : cols == W ? VT::template load<DT>(src, o)
                       : VT::template load_n<DT>(src, o, cols);
  }
  VT::transpose(v);
  for (int j = 0; j < cols; ++j) VT::storeu(dst + j * ldd, v[VT::slot(j)]);
}

}  // namespace vec
}  // namespace
}  // namespace longctx::kernels::cpu
