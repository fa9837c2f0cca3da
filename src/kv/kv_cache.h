// Key/value cache grown in fixed-size blocks as tokens arrive; never sized up front from
// max_position_embeddings. Stores f32, f16, bf16, or int8/int4 groups with their scales (converted
// or quantized on write; keys and values may differ, see kernels/kv_quant.h); the attention kernel
// reads blocks in place through kernels::KVView.
//
// Sliding-window layers keep only the blocks their next queries can still see: before a forward
// pass over positions [pos0, pos0 + n), blocks wholly before pos0 - window + 1 are recycled, so
// such a layer holds at most window + n + 2 blocks' worth of tokens however long the sequence.
#pragma once

#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "core/huge_pages.h"
#include "core/memory_account.h"
#include "kernels/kv_quant.h"
#include "kernels/ops.h"

namespace longctx {

// Tokens per KV block: a context costs whole blocks.
inline constexpr int kKvBlockTokens = 256;

struct KVCacheShape {
  int n_layers = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  // How keys and values are stored (f32, f16, bf16, int8 or int4 groups; may differ). KVCache
  // checks that head_dim and block_size suit them.
  KvType k_type = KvType::kF16, v_type = KvType::kF16;
  int block_size = kKvBlockTokens;  // tokens per block
  int64_t capacity = 0;             // context cap in tokens: past it is an Error(kOutOfRange)
  std::vector<int64_t> layer_window;  // per layer, 0 = full attention; empty = all full

  int64_t window(int layer) const {
    return layer < static_cast<int>(layer_window.size()) ? layer_window[layer] : 0;
  }
  // Bytes one token costs over all layers (keys + values, scales included): exact.
  size_t bytes_per_token() const;
  // Bytes of one layer's block (keys + values of block_size tokens); the keys come first and take
  // key_block_bytes().
  size_t bytes_per_layer_block() const;
  size_t key_block_bytes() const;
  // Bytes held whatever the length: int4 keys keep the newest, not yet complete group of 16
  // tokens in f32 per layer and kv head (0 for every other type).
  size_t fixed_bytes() const;
  // Blocks a layer holds at most while a sequence of `context` tokens is run in chunks of
  // `chunk` tokens (full layers: every block; window layers: only what the window can see).
  int64_t max_blocks(int layer, int64_t context, int64_t chunk) const;
};

// Bytes of one slab of KV blocks of `stride` bytes: a whole number of blocks and, where that
// stays under 64 MiB per repeat, a whole number of 2 MiB huge pages of at least 16 MiB, so that
// no huge page between two slabs sits partly used (a 3 MiB Phi-3 block in 16 MiB slabs would
// leave 1 MiB of every slab's last huge page touched and empty: 6% of the cache). Otherwise as
// many blocks as fit in 16 MiB (at least one): less than one block unused per slab.
size_t kv_slab_bytes(size_t stride);

class KVCache {
 public:
  // Blocks are charged to `account` (when given) before they are allocated. The one place KV
  // types are validated: Error(kUnsupported) when the shape cannot store them (int4 needs an even
  // head_dim and whole groups per block).
  explicit KVCache(const KVCacheShape& shape, MemoryAccount* account = nullptr);
  ~KVCache();
  KVCache(const KVCache&) = delete;
  KVCache& operator=(const KVCache&) = delete;

  const KVCacheShape& shape() const { return shape_; }
  // Tokens whose keys/values have been written (positions [0, n_tokens())).
  int64_t n_tokens() const { return n_tokens_; }

  // Makes every layer ready for a forward pass over positions [pos0, pos0 + n): recycles blocks a
  // window layer can no longer see and allocates the missing ones (reusing recycled blocks first).
  // Error(kOutOfRange) past capacity.
  void prepare(int64_t pos0, int64_t n);
  // Stores keys/values of positions [pos0, pos0 + n) of `layer`; k, v: [n][n_kv_heads][head_dim]
  // f32. Requires prepare(pos0, n). Updates n_tokens() once the last layer is written.
  void write(int layer, int64_t pos0, int64_t n, const float* k, const float* v);
  // View of `layer` holding positions [0, n_valid). Blocks a window layer recycled are null; the
  // attention kernel never reads keys outside a query's window.
  kernels::KVView view(int layer, int64_t n_valid) const;
  // Forgets positions >= n (blocks stay allocated for reuse). truncate(0) always works; rewinding
  // to where a window layer's recycled keys would be needed again is Error(kInvalidArg).
  void truncate(int64_t n);

  // Bytes of blocks allocated (live and recycled) plus shape().fixed_bytes().
  size_t allocated_bytes() const {
    return n_allocated_ * shape_.bytes_per_layer_block() + shape_.fixed_bytes();
  }
  // Bytes of blocks holding tokens now.
  size_t live_bytes() const;

 private:
  uint8_t* take_block();

  KVCacheShape shape_;
  MemoryAccount* account_;
  int64_t n_tokens_ = 0;
  size_t n_allocated_ = 0;
  // Per layer, per block index: [k: n_kv_heads x block_size x head_dim][v: same], or null.
  std::vector<std::vector<uint8_t*>> blocks_;
  std::vector<std::vector<const void*>> k_ptrs_, v_ptrs_;  // what KVView exposes
  std::vector<int64_t> first_live_;  // per layer, first block not recycled
  std::vector<uint8_t*> free_;       // recycled blocks
  std::vector<HugePageBuffer> slabs_;  // blocks live here, carved in order
  size_t slab_used_ = 0;               // bytes carved from slabs_.back()
  // int4 keys: per layer, [n_kv_heads][16][head_dim] f32 keys of positions [pending_from_[l],
  // pending_from_[l] + 16) (the group being filled), quantized into the block when it completes.
  std::vector<float> pending_;
  std::vector<int64_t> pending_from_;
};

}  // namespace longctx
