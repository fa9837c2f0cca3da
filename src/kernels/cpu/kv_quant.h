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
namespace avx2 {
void kv_decode_rows(KvType t, bool keys, const uint8_t* codes, const uint8_t* meta, int off, int n,
                    int head_dim, float* dst);
}
namespace avx512 {
void kv_decode_rows(KvType t, bool keys, const uint8_t* codes, const uint8_t* meta, int off, int n,
                    int head_dim, float* dst);
// The tile with int8 keys and values read in registers (codes [n_keys][head_dim], f16 scales
// [n_keys][head_dim / G]), no scratch; false (nothing done) unless head_dim is a multiple of 16
// and at most 256.
bool attn_tile_int8(const AttnTile& t, const int8_t* k_codes, const uint16_t* k_scales,
                    const int8_t* v_codes, const uint16_t* v_scales);
}
#endif

// Decodes positions [off, off + n) of a section (kernels/kv_quant.h) into dst[n][head_dim] on
// `path`. Returns dst, or the section's own rows when they are already f32 (no copy).
const float* kv_decode_section(SimdPath path, const Isa& isa, KvType t, bool keys,
                               const void* section, int block_size, int off, int n, int head_dim,
                               float* dst);

// t.k / t.v point at the kv blocks (not at a head's rows): decodes head g's keys and values of
// positions [off, off + t.n_keys) of the block (int4 keys past kv.k_pending_from: from
// kv.k_pending) into a thread-local f32 scratch of
// 2 x kAttnTile x head_dim floats and runs the path's f32 tile on them.
void coded_attn_tile(const Isa& isa, AttnTile t, const KVView& kv, int g, int64_t j);

// Bytes of that scratch for all threads.
size_t coded_attn_scratch(int threads, const KVView& kv);

}  // namespace longctx::kernels::cpu
