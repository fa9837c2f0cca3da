// Key/value cache grown in fixed-size blocks as tokens arrive; never sized up front from
// max_position_embeddings. Stores f32, f16 or bf16 (converted on write); the attention kernel reads
// blocks in place through kernels::KVView.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/dtype.h"
#include "core/memory_account.h"
#include "kernels/ops.h"

namespace longctx {

// Tokens per KV block: a context costs whole blocks.
inline constexpr int kKvBlockTokens = 256;

struct KVCacheShape {
  int n_layers = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  DType dtype = DType::kF16;
  int block_size = kKvBlockTokens;  // tokens per block
  int64_t capacity = 0;    // context cap in tokens: writing past it is an Error(kOutOfRange)

  // Bytes one token costs over all layers (keys + values).
  size_t bytes_per_token() const;
  // Bytes of one block over all layers.
  size_t bytes_per_block() const;
};

class KVCache {
 public:
  // Blocks are charged to `account` (when given) before they are allocated.
  explicit KVCache(const KVCacheShape& shape, MemoryAccount* account = nullptr);
  ~KVCache();
  KVCache(const KVCache&) = delete;
  KVCache& operator=(const KVCache&) = delete;

  const KVCacheShape& shape() const { return shape_; }
  // Tokens whose keys/values are stored (positions [0, n_tokens())).
  int64_t n_tokens() const { return n_tokens_; }

  // Makes room for positions [0, n): allocates the missing blocks. Error(kOutOfRange) past capacity.
  void reserve(int64_t n);
  // Stores keys/values of positions [pos0, pos0 + n) of `layer`; k, v: [n][n_kv_heads][head_dim]
  // f32. Requires reserve(pos0 + n). Updates n_tokens() once the last layer is written.
  void write(int layer, int64_t pos0, int64_t n, const float* k, const float* v);
  // View of `layer` holding positions [0, n_valid).
  kernels::KVView view(int layer, int64_t n_valid) const;
  // Forgets positions >= n (blocks stay allocated for reuse).
  void truncate(int64_t n);

  size_t allocated_bytes() const { return blocks_.size() * shape_.bytes_per_block(); }

 private:
  void* k_block(int layer, size_t b) const;
  void* v_block(int layer, size_t b) const;

  KVCacheShape shape_;
  MemoryAccount* account_;
  int64_t n_tokens_ = 0;
  // One allocation per block, holding every layer: [layer][k|v][n_kv_heads][block_size][head_dim].
  std::vector<std::unique_ptr<uint8_t, void (*)(void*)>> blocks_;
  // Per layer, pointers to each block's K and V part (what KVView exposes).
  std::vector<std::vector<const void*>> k_ptrs_, v_ptrs_;
};

}  // namespace longctx
