// KV-cache element types and their codecs (docs/kv-quantization.md). f32/f16/bf16 store each
// value; int8/int4 store groups of codes with f16 scales:
//   int8 (keys and values): per token along head_dim, groups of G = gcd(head_dim, 32) values;
//         symmetric, code c in [-127, 127], x^ = c * s, s = max|x| / 127 rounded up to f16.
//   int4 values: per token, groups of G values; asymmetric, code c in [0, 15], x^ = m + c * s,
//         m = min x rounded down to f16, s = (max x - m) / 15 rounded up to f16.
//   int4 keys: per channel (KIVI), groups of kKvChannelGroup = 16 consecutive tokens of one
//         channel; same asymmetric code. The newest tokens of a group not yet complete are held
//         in f32 by the cache (KVView::k_pending) and quantized when the group fills.
// Every format guarantees |x - x^| <= s / 2 for finite x up to the f16 range of s and m
// (|x| <= 65504 for int4, 65504 * 127 for int8); beyond it codes saturate. A group holding a NaN or
// an infinity is stored with NaN scales and reads back as NaN (what an f16 cache would propagate).
//
// Layout of one kv head's keys (or values) in a block of `block_size` tokens (a "section"):
//   codes [block_size][code_bytes] then meta [block_size][meta_bytes]
// code_bytes = head_dim x 4, 2, 2, 1 or 1/2 bytes; meta_bytes = the scales (and minima) per token:
// int8 [head_dim/G] f16; int4 values [head_dim/G][scale, min] f16; int4 keys: per group of 16
// tokens [head_dim] f16 scales then [head_dim] f16 minima (head_dim / 4 bytes per token). For
// f32/f16/bf16 meta_bytes is 0 and a section is [block_size][head_dim] as before. int4 packs
// element i of a run of R values (a group of G for values, the head_dim channels of a token for
// keys; i < R/2) in the low nibble of byte i and element i + R/2 in its high nibble.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/dtype.h"
#include "kernels/kv_type.h"
#include "kernels/ops.h"

namespace longctx {

inline constexpr KvType kAllKvTypes[] = {KvType::kF32, KvType::kF16, KvType::kBF16, KvType::kInt8,
                                        KvType::kInt4};
const char* kv_type_name(KvType t);          // "f32", "f16", "bf16", "int8", "int4"
KvType parse_kv_type(const std::string& s);  // Error(kInvalidArg) listing the names
KvType kv_type_of(DType t);
bool kv_type_is_quantized(KvType t);  // int8, int4
// The float dtype of f32/f16/bf16 (Error(kInternal) for int8/int4).
DType kv_float_dtype(KvType t);

}  // namespace longctx

namespace longctx::kernels {

// Whether keys (keys = true) or values of type t are quantized per channel over token groups.
inline bool kv_per_channel(KvType t, bool keys) { return keys && t == KvType::kInt4; }

// Values per quantization group along head_dim: gcd(head_dim, 32).
int kv_group_size(int head_dim);
// Bytes of codes / of scales (+ minima) / of both, for one token of one kv head: exact.
size_t kv_code_bytes(KvType t, int head_dim);
size_t kv_meta_bytes(KvType t, int head_dim, bool keys);
inline size_t kv_row_bytes(KvType t, int head_dim, bool keys) {
  return kv_code_bytes(t, head_dim) + kv_meta_bytes(t, head_dim, keys);
}
// Error(kUnsupported) naming the fix when `t` cannot store rows of head_dim (int4 needs an even
// head_dim), or kInternal when per-channel keys meet a block_size not a multiple of kKvChannelGroup.
void check_kv_type(KvType t, int head_dim, bool keys, int block_size);

// Encodes n rows src[r * src_stride .. + head_dim) into positions [off, off + n) of a section of
// `block_size` tokens (see the layout above), for every per-token format. Scalar: runs once per
// written token.
void kv_encode(KvType t, const float* src, int64_t src_stride, int n, int head_dim, void* section,
               int block_size, int off);
// Encodes one group of kKvChannelGroup keys rows[kKvChannelGroup][head_dim] (int4, per channel) into positions
// [off, off + kKvChannelGroup) of a section; off is a multiple of it.
void kv_encode_key_group(const float* rows, int head_dim, void* section, int block_size, int off);
// Decodes positions [off, off + n) of a section into dst[n][head_dim] f32, on the active SIMD path.
void kv_decode(KvType t, bool keys, const void* section, int block_size, int off, int n,
               int head_dim, float* dst);

// A KVView whose keys and values are stored as k/v (quantized, or of two different dtypes).
// Per-channel int4 keys also need k_pending / k_pending_from set by the caller.
KVView coded_kv_view(KvType k, KvType v, int block_size, int n_kv_heads, int head_dim,
                     const void* const* k_blocks, const void* const* v_blocks, int64_t n_tokens);

}  // namespace longctx::kernels
