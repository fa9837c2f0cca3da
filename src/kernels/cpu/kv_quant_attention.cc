// Attention over coded KV blocks (int8/int4 groups, or keys and values in different dtypes): the
// driver in cpu/attention.cc walks the tiles as for any cache; each tile either goes to the path's
// attn_tile_quant (quantized decode tiles, decoded in registers) or is decoded (<= kAttnTile rows
// of one kv head) into a thread-local f32 scratch handed to the path's f32 tile. The scratch is
// 2 x kAttnTile x head_dim floats per thread, whatever the context: no full-precision copy of the
// cache exists.
#include <algorithm>
#include <utility>

#include "kernels/cpu/kv_quant.h"
#include "kernels/cpu/scratch.h"
#include "kernels/kv_quant.h"

namespace longctx::kernels {

void kv_decode(KvType t, bool keys, const void* section, int block_size, int off, int n,
               int head_dim, float* dst) {
  const cpu::Isa* isa = &cpu::scalar_isa();
#if defined(LONGCTX_X86_PATHS)
  if (active_simd_path() == SimdPath::kAvx512) isa = &cpu::avx512_isa();
  if (active_simd_path() == SimdPath::kAvx2) isa = &cpu::avx2_isa();
#endif
  const float* rows =
      cpu::kv_decode_section(isa->path, *isa, t, keys, section, block_size, off, n, head_dim, dst);
  if (rows != dst) std::copy(rows, rows + static_cast<size_t>(n) * head_dim, dst);
}

KVView coded_kv_view(KvType k, KvType v, int block_size, int n_kv_heads, int head_dim,
                     const void* const* k_blocks, const void* const* v_blocks, int64_t n_tokens) {
  KVView view;
  view.block_size = block_size;
  view.n_kv_heads = n_kv_heads;
  view.head_dim = head_dim;
  view.k_blocks = k_blocks;
  view.v_blocks = v_blocks;
  view.n_tokens = n_tokens;
  if (k == v && !kv_type_is_quantized(k)) {
    view.dtype = kv_float_dtype(k);  // one float dtype: the paths read it directly
  } else {
    view.coded = true;
    view.k_type = k;
    view.v_type = v;
  }
  return view;
}

}  // namespace longctx::kernels

namespace longctx::kernels::cpu {

const float* kv_decode_section(SimdPath path, const Isa& isa, KvType t, bool keys,
                               const void* section, int block_size, int off, int n, int head_dim,
                               float* dst) {
  const auto* base = static_cast<const uint8_t*>(section);
  const size_t cb = kv_code_bytes(t, head_dim);
  const uint8_t* codes = base + static_cast<size_t>(off) * cb;
  const uint8_t* meta = base + static_cast<size_t>(block_size) * cb;
  if (!kv_type_is_quantized(t)) {
    if (t == KvType::kF32) return reinterpret_cast<const float*>(codes);
    isa.to_f32(kv_float_dtype(t), codes, dst, static_cast<int64_t>(n) * head_dim);
    return dst;
  }
  switch (path) {
#if defined(LONGCTX_X86_PATHS)
    case SimdPath::kAvx512:
      avx512::kv_decode_rows(t, keys, codes, meta, off, n, head_dim, dst);
      break;
    case SimdPath::kAvx2:
      avx2::kv_decode_rows(t, keys, codes, meta, off, n, head_dim, dst);
      break;
#endif
    default:
      reference::kv_decode_rows(t, keys, codes, meta, off, n, head_dim, dst);
  }
  return dst;
}

CodedItem coded_attn_begin(const Isa& isa, const KVView& kv, const float* q, int rows) {
  const int hd = kv.head_dim;
  CodedItem item;
  item.k_code = kv_code_bytes(kv.k_type, hd);
  item.k_meta = kv_meta_bytes(kv.k_type, hd, true);
  item.v_code = kv_code_bytes(kv.v_type, hd);
  item.v_meta = kv_meta_bytes(kv.v_type, hd, false);
  if (isa.attn_query_prep && kv_type_is_quantized(kv.k_type) && kv_type_is_quantized(kv.v_type)) {
    thread_local Scratch prep;
    void* out = prep.get(isa.attn_query_prep_bytes);
    if (isa.attn_query_prep(q, rows, hd, kv.k_type, out)) item.qprep = out;
  }
  return item;
}

void coded_attn_tile(const Isa& isa, AttnTile t, const KVView& kv, const CodedItem& item, int g,
                     int64_t j) {
  const int hd = kv.head_dim, bs = kv.block_size, off = static_cast<int>(j % bs);
  const size_t k_sec = (item.k_code + item.k_meta) * bs, v_sec = (item.v_code + item.v_meta) * bs;
  // Quantized keys and values, few query rows (decode: the heads of one GQA group): decoded in
  // registers where the path can, so the cache is read once at its coded size (decode at long
  // context is bound by those reads). Many rows (prefill) share one decoded, transposed tile below,
  // as do int4 keys still pending in f32: a tile holding both coded and pending keys is cut in two,
  // so that coded keys are read the same way whatever the tiling (the online softmax takes any
  // partition of the keys).
  const bool quant = isa.attn_tile_quant && kv_type_is_quantized(kv.k_type) &&
                     kv_type_is_quantized(kv.v_type);
  if (quant && j < kv.k_pending_from && kv.k_pending_from < j + t.n_keys && t.rows <= 64) {
    const int n1 = static_cast<int>(kv.k_pending_from - j);
    int lo[2][64], hi[2][64];
    for (int r = 0; r < t.rows; ++r) {
      lo[0][r] = std::min(t.lo[r], n1);
      hi[0][r] = std::min(t.hi[r], n1);
      lo[1][r] = std::max(t.lo[r] - n1, 0);
      hi[1][r] = std::max(t.hi[r] - n1, 0);
    }
    AttnTile a = t;
    a.n_keys = n1;
    a.lo = lo[0];
    a.hi = hi[0];
    coded_attn_tile(isa, a, kv, item, g, j);
    a.n_keys = t.n_keys - n1;
    a.lo = lo[1];
    a.hi = hi[1];
    coded_attn_tile(isa, a, kv, item, g, j + n1);
    return;
  }
  if (quant && (!kv_per_channel(kv.k_type, true) || j + t.n_keys <= kv.k_pending_from)) {
    const auto* ks = static_cast<const uint8_t*>(t.k) + g * k_sec;
    const auto* vs = static_cast<const uint8_t*>(t.v) + g * v_sec;
    const uint8_t* vm = vs + bs * item.v_code + off * item.v_meta;
    QuantTile c{kv.k_type, kv.v_type, ks + off * item.k_code, ks + bs * item.k_code, 0,
                vs + off * item.v_code, vm};
    if (kv_per_channel(kv.k_type, true)) {
      c.k_meta += static_cast<size_t>(off / kKvChannelGroup) * hd * 4;  // [hd] scales, [hd] minima
      c.k_first = off % kKvChannelGroup;
    } else {
      c.k_meta += off * item.k_meta;
    }
    t.qprep = item.qprep;
    if (isa.attn_tile_quant(t, c)) return;
  }
  thread_local Scratch scratch;
  auto* kq = static_cast<float*>(scratch.get(2 * round_up64(sizeof(float) * kAttnTile * hd)));
  float* vq = kq + round_up64(sizeof(float) * kAttnTile * hd) / sizeof(float);
  // Keys [j, j + n): quantized up to k_pending_from, the rest from the f32 pending group.
  const int n_coded = static_cast<int>(std::clamp<int64_t>(kv.k_pending_from - j, 0, t.n_keys));
  const float* k = kv_decode_section(isa.path, isa, kv.k_type, true,
                                     static_cast<const uint8_t*>(t.k) + g * k_sec, bs, off,
                                     n_coded, hd, kq);
  if (n_coded < t.n_keys) {
    if (k != kq) std::copy(k, k + static_cast<size_t>(n_coded) * hd, kq);
    const float* pend = kv.k_pending + (static_cast<size_t>(g) * kKvChannelGroup +
                                        (j + n_coded - kv.k_pending_from)) * hd;
    std::copy(pend, pend + static_cast<size_t>(t.n_keys - n_coded) * hd,
              kq + static_cast<size_t>(n_coded) * hd);
    k = kq;
  }
  t.k = k;
  t.v = kv_decode_section(isa.path, isa, kv.v_type, false,
                          static_cast<const uint8_t*>(t.v) + g * v_sec, bs, off, t.n_keys, hd, vq);
  t.dtype = DType::kF32;
  isa.attn_tile(t);
}

size_t coded_attn_scratch(const Isa& isa, int threads, const KVView& kv) {
  if (!kv.coded) return 0;
  return static_cast<size_t>(threads) *
         (2 * round_up64(sizeof(float) * kAttnTile * static_cast<size_t>(kv.head_dim)) +
          round_up64(isa.attn_query_prep ? isa.attn_query_prep_bytes : 0));
}

}  // namespace longctx::kernels::cpu
