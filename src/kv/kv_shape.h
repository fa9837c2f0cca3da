// The shape of a KV cache (layers, heads, storage types, block size, windows) and what it costs:
// the single description the cache, the block pool and the memory planner all price from.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/kv_quant.h"

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
  int block_size = kKvBlockTokens;    // tokens per block
  int64_t capacity = 0;               // context cap in tokens: past it is an Error(kOutOfRange)
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
  // The first block a forward pass from position pos0 can read in `layer`: 0 for full attention;
  // a window layer's earliest visible key is pos0 - window + 1, and blocks before it are recycled.
  int64_t first_live_block(int layer, int64_t pos0) const {
    const int64_t w = window(layer);
    return w > 0 ? std::max<int64_t>(0, pos0 - w + 1) / block_size : 0;
  }
};

// Bytes of one slab of KV blocks of `stride` bytes: a whole number of blocks and, where that
// stays under 64 MiB per repeat, a whole number of 2 MiB huge pages of at least 16 MiB, so that
// no huge page between two slabs sits partly used (a 3 MiB Phi-3 block in 16 MiB slabs would
// leave 1 MiB of every slab's last huge page touched and empty: 6% of the cache). Otherwise as
// many blocks as fit in 16 MiB (at least one): less than one block unused per slab.
size_t kv_slab_bytes(size_t stride);

}  // namespace longctx
