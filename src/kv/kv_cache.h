// Key/value cache of one sequence grown in fixed-size blocks as tokens arrive; never sized up
// front from max_position_embeddings. Stores f32, f16, bf16, or int8/int4 groups with their scales
// (converted or quantized on write; keys and values may differ, see kernels/kv_quant.h); the
// attention kernel reads blocks in place through kernels::KVView.
//
// The cache is a block table (per layer, per block index) over a KVBlockPool (kv/block_pool.h):
// its own unlimited pool, or one shared with other sequences, whose prefix cache lets a sequence
// adopt the blocks of a prompt prefix another sequence computed. A block held by anyone else (an
// adopted or published one) is never written: the cache copies it first (copy-on-write).
//
// Sliding-window layers keep only the blocks their next queries can still see: before a forward
// pass over positions [pos0, pos0 + n), blocks wholly before pos0 - window + 1 are recycled (given
// back to the pool), so such a layer holds at most window + n + 2 blocks' worth of tokens however
// long the sequence.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/dtype.h"
#include "core/memory_account.h"
#include "kernels/kv_quant.h"
#include "kernels/ops.h"
#include "kv/block_pool.h"
#include "kv/kv_shape.h"

namespace longctx {

class KVCache {
 public:
  // A cache over a private, unlimited pool: blocks are charged to `account` (when given) before
  // they are allocated. The one place KV types are validated: Error(kUnsupported) when the shape
  // cannot store them (int4 needs an even head_dim and whole groups per block).
  explicit KVCache(const KVCacheShape& shape, MemoryAccount* account = nullptr);
  // A cache drawing blocks from a shared pool (which must outlive it); the shape is the pool's,
  // with `capacity` tokens as this sequence's cap. Admission (KVBlockPool::try_reserve) is the
  // caller's: blocks are allocated without checking it. Every block goes back on destruction.
  KVCache(KVBlockPool& pool, int64_t capacity);
  ~KVCache();
  KVCache(const KVCache&) = delete;
  KVCache& operator=(const KVCache&) = delete;

  const KVCacheShape& shape() const { return shape_; }
  KVBlockPool& pool() const { return *pool_; }
  // Tokens whose keys/values have been written (positions [0, n_tokens())).
  int64_t n_tokens() const { return n_tokens_; }

  // Makes every layer ready for a forward pass over positions [pos0, pos0 + n): recycles blocks a
  // window layer can no longer see, allocates the missing ones, and copies blocks of the range that
  // others hold too (copy-on-write). Error(kOutOfRange) past capacity.
  void prepare(int64_t pos0, int64_t n);
  // Stores keys/values of positions [pos0, pos0 + n) of `layer`; k, v: [n][n_kv_heads][head_dim]
  // f32. Requires prepare(pos0, n). Updates n_tokens() once the last layer is written.
  void write(int layer, int64_t pos0, int64_t n, const float* k, const float* v);
  // View of `layer` holding positions [0, n_valid). Blocks a window layer recycled are null; the
  // attention kernel never reads keys outside a query's window.
  kernels::KVView view(int layer, int64_t n_valid) const;
  // Forgets positions >= n (blocks stay in the table for reuse). truncate(0) always works (and
  // gives every block back to the pool); rewinding to where a window layer's recycled keys would
  // be needed again is Error(kInvalidArg).
  void truncate(int64_t n);

  // Context shift (--context-overflow): forgets positions [keep, keep + drop) and moves the
  // tokens after them down to [keep, n_tokens() - drop). The moved keys are decoded, passed to
  // rotate(keys [m][n_kv_heads][head_dim], m, layer) to be re-rotated for positions `drop`
  // earlier, and encoded again (keys and values of positions from keep's block on are re-encoded;
  // f32/f16/bf16 round-trip exactly). A sliding-window layer moves only what its window can still
  // see. Error(kInvalidArg) for a range outside the held tokens.
  void shift(int64_t keep, int64_t drop,
             const std::function<void(float* keys, int64_t m, int layer)>& rotate);

  // Prefix cache (KVBlockPool). On an empty cache, maps the longest chain of cached full blocks
  // matching tokens[0, n) into the table, at most (n - 1) / block_size blocks so that at least
  // one token is left to run (its logits are needed); sets n_tokens() and returns it. A window
  // layer maps only the blocks a pass from there can see. Error(kInvalidArg) when not empty.
  int64_t adopt_prefix(const int32_t* tokens, int64_t n);
  // Registers the full blocks covering tokens [0, n) (n <= n_tokens(); tokens are the ones this
  // cache holds) in the pool's prefix cache; blocks already cached are touched. The chain ends at
  // the first token block one of whose window-layer blocks was already recycled, so a sequence
  // over sliding-window layers should publish after each prefill chunk.
  void publish_prefix(const int32_t* tokens, int64_t n);

  // The pool's id of `layer`'s block number `block`, or -1 (none, or recycled).
  int32_t block_id(int layer, int64_t block) const {
    const auto& ids = ids_[layer];
    return block >= 0 && block < static_cast<int64_t>(ids.size()) ? ids[block] : -1;
  }

  // Saved state (runtime/prompt_cache.h). A layer's blocks [first_live_block(l), blocks_held(l))
  // hold its keys and values of positions [0, n_tokens()); a window layer has recycled the
  // earlier ones. block_bytes is null for a block not held.
  int64_t first_live_block(int layer) const { return first_live_[layer]; }
  int64_t blocks_held(int layer) const {
    return (n_tokens_ + shape_.block_size - 1) / shape_.block_size;
  }
  const uint8_t* block_bytes(int layer, int64_t block) const {
    return block >= 0 && block < static_cast<int64_t>(blocks_[layer].size()) ? blocks_[layer][block]
                                                                               : nullptr;
  }
  // int4 keys: the f32 keys of the group being filled (n_kv_heads x 16 x head_dim floats per
  // layer, all layers) and where each layer's group starts; empty for other key types.
  const std::vector<float>& pending_keys() const { return pending_; }
  const std::vector<int64_t>& pending_from() const { return pending_from_; }
  // On an empty cache: n tokens held, layer l's blocks [first[l], blocks_held) allocated and
  // filled by fill(layer, block, bytes) (bytes_per_layer_block bytes each), the int4 pending
  // keys and group starts copied in (ignored for other key types). Error(kInvalidArg) when the
  // cache is not empty or n exceeds its capacity; on any error (fill's included) the cache is
  // left empty.
  void restore(int64_t n, const std::vector<int64_t>& first,
               const std::function<void(int layer, int64_t block, uint8_t* bytes)>& fill,
               const std::vector<float>& pending, const std::vector<int64_t>& pending_from);

  // Private pool: bytes of every block carved (live and recycled); shared pool: bytes of the
  // blocks in this table. Plus shape().fixed_bytes().
  size_t allocated_bytes() const;
  // Bytes of blocks in the table (holding tokens now or kept after truncate()).
  size_t live_bytes() const;

 private:
  void init();
  void release_all();
  void set_block(int layer, size_t b, KVBlockPool::Block blk, bool shared);
  void copy_on_write(int layer, size_t b);

  std::unique_ptr<KVBlockPool> own_pool_;  // the private pool, or null
  KVBlockPool* pool_;
  KVCacheShape shape_;
  int64_t n_tokens_ = 0;
  // Per layer, per block index: [k: n_kv_heads x block_size x head_dim][v: same], or null.
  std::vector<std::vector<uint8_t*>> blocks_;
  std::vector<std::vector<int32_t>> ids_;  // the pool's ids of blocks_, -1 for null
  // Whether the block may be held by others too (adopted or published): checked before writing.
  std::vector<std::vector<uint8_t>> shared_;
  std::vector<std::vector<const void*>> k_ptrs_, v_ptrs_;  // what KVView exposes
  std::vector<int64_t> first_live_;  // per layer, first block not recycled
  // int4 keys: per layer, [n_kv_heads][16][head_dim] f32 keys of positions [pending_from_[l],
  // pending_from_[l] + 16) (the group being filled), quantized into the block when it completes.
  std::vector<float> pending_;
  std::vector<int64_t> pending_from_;
};

}  // namespace longctx
