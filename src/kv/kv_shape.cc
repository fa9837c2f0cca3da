#include "kv/kv_shape.h"

#include <numeric>

#include "core/huge_pages.h"

namespace longctx {

size_t KVCacheShape::bytes_per_token() const {
  return static_cast<size_t>(n_layers) * n_kv_heads *
         (kernels::kv_row_bytes(k_type, head_dim, true) +
          kernels::kv_row_bytes(v_type, head_dim, false));
}

size_t KVCacheShape::key_block_bytes() const {
  return static_cast<size_t>(n_kv_heads) * block_size *
         kernels::kv_row_bytes(k_type, head_dim, true);
}

size_t KVCacheShape::bytes_per_layer_block() const {
  return key_block_bytes() + static_cast<size_t>(n_kv_heads) * block_size *
                                 kernels::kv_row_bytes(v_type, head_dim, false);
}

size_t KVCacheShape::fixed_bytes() const {
  if (!kernels::kv_per_channel(k_type, true)) return 0;
  return static_cast<size_t>(n_layers) * n_kv_heads * kernels::kKvChannelGroup * head_dim *
         sizeof(float);
}

int64_t KVCacheShape::max_blocks(int layer, int64_t context, int64_t chunk) const {
  const int64_t all = (context + block_size - 1) / block_size;
  const int64_t w = window(layer);
  if (w <= 0) return all;
  // Live keys before a chunk: [pos0 - w + 1, pos0 + chunk), spread over at most this many blocks.
  const int64_t span = w - 1 + std::min(chunk, context);
  return std::min(all, (span + block_size - 1) / block_size + 1);
}

size_t kv_slab_bytes(size_t stride) {
  constexpr size_t kHuge = HugePageBuffer::kHugePage;
  constexpr size_t kMin = size_t{16} << 20, kMaxUnit = size_t{64} << 20;
  // The fewest blocks that end on a huge-page boundary (e.g. 2 of 3 MiB, 32 of 192 KiB).
  const size_t unit = kHuge / std::gcd(stride, kHuge) * stride;
  if (unit <= kMaxUnit) return unit * ((kMin + unit - 1) / unit);
  // A stride with few factors of two (int8/int4 rows carry scales): as many blocks as fit in
  // 16 MiB, so each slab wastes less than one block inside its last huge page.
  return std::max<size_t>(1, kMin / stride) * stride;
}

}  // namespace longctx
