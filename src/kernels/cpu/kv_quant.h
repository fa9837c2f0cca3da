// Internal: decoders of int8/int4 KV rows on each SIMD path, and the attention tile over coded
// (quantized or mixed-dtype) KV blocks that cpu/attention.cc calls for a KVView with `coded` set.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/isa.h"
#include "kernels/kv_type.h"

namespace longctx::kernels::reference {
// Positions [off, off + n) of a section -> dst [n][head_dim]: codes points at position off's
// codes, meta at the section's meta area (kernels/kv_quant.h).
void kv_decode_rows(KvType t, bool keys, const uint8_t* codes, const uint8_t* meta, int off, int n,
                    int head_dim, float* dst);
}  // namespace longctx::kernels::reference

namespace longctx::kernels::cpu {

#if defined(LONGCTX_X86_PATHS)
// Per path: kv_decode_rows (as reference::kv_decode_rows) and attn_tile_quant
// (Isa::attn_tile_quant).
#define LONGCTX_DECLARE_KV_KERNELS                                                             \
  void kv_decode_rows(KvType t, bool keys, const uint8_t* codes, const uint8_t* meta, int off, \
                      int n, int head_dim, float* dst);                                        \
  bool attn_tile_quant(const AttnTile& t, const QuantTile& c);
namespace avx2 {
LONGCTX_DECLARE_KV_KERNELS
}
namespace avx512 {
LONGCTX_DECLARE_KV_KERNELS
// Isa::attn_query_prep: int8 codes of the query rows for attn_tile_quant's integer scores.
bool attn_query_prep(const float* q, int rows, int head_dim, KvType k, void* out);
inline constexpr size_t kAttnQueryPrepBytes = 16 * 256 + 2 * 16 * 8 * 4;
}
#undef LONGCTX_DECLARE_KV_KERNELS
#endif

// Decodes positions [off, off + n) of a section (kernels/kv_quant.h) into dst[n][head_dim] on
// `path`. Returns dst, or the section's own rows when they are already f32 (no copy).
const float* kv_decode_section(SimdPath path, const Isa& isa, KvType t, bool keys,
                               const void* section, int block_size, int off, int n, int head_dim,
                               float* dst);

// One item's reading of a coded cache: bytes per token of a kv head's key / value codes and
// scales (kernels/kv_quant.h), and its query rows as the path prepared them for attn_tile_quant
// (Isa::attn_query_prep; null when not prepared). Made by coded_attn_begin.
struct CodedItem {
  size_t k_code = 0, k_meta = 0, v_code = 0, v_meta = 0;
  const void* qprep = nullptr;
};

// Before the tiles of one item: its query rows q [rows][head_dim] (already scaled), prepared once
// for every tile where the path prepares them (in a thread-local scratch, valid until this
// thread's next call).
CodedItem coded_attn_begin(const Isa& isa, const KVView& kv, const float* q, int rows);

// t.k / t.v point at the kv blocks (not at a head's rows): the tile of head g's keys and values
// at positions [off, off + t.n_keys) of the block. Quantized decode tiles go to
// isa.attn_tile_quant where it takes them; otherwise they are decoded (int4 keys past
// kv.k_pending_from: from kv.k_pending) into a thread-local f32 scratch of
// 2 x kAttnTile x head_dim floats and the path's f32 tile runs on them.
void coded_attn_tile(const Isa& isa, AttnTile t, const KVView& kv, const CodedItem& item, int g,
                     int64_t j);

// Bytes of that scratch and of the prepared queries for all threads.
size_t coded_attn_scratch(const Isa& isa, int threads, const KVView& kv);

}  // namespace longctx::kernels::cpu
