// One pool of fixed-size KV blocks for one KVCacheShape, shared by the sequences of a server
// (continuous batching), with a prefix cache of full prompt blocks. A block is one layer's keys and
// values of shape.block_size tokens (KVCacheShape::bytes_per_layer_block()); a KVCache is a
// per-sequence table of such blocks, one row per layer.
//
// Blocks are carved lazily from huge-page slabs (kv_slab_bytes) as KVCache always did, so resident
// memory follows use, and each is charged to the MemoryAccount before it is carved; the pool
// releases the charge when it is destroyed. Blocks are reference-counted: a sequence holding a
// block in its table owns one reference, a prefix-cache entry owns one; a block whose count drops
// to 0 goes back to the free list (memory stays carved, for the next allocation).
//
// Admission (the reservation rule). Before a sequence starts it reserves its worst-case block
// count, blocks_for(prompt + max_tokens, chunk) = sum over layers of
// KVCacheShape::max_blocks(layer, tokens, chunk), with try_reserve(); the sum of outstanding
// reservations never exceeds max_blocks(). Blocks the sequence shares from the prefix cache count
// inside its own reservation: sharing saves prefill, not admission room. So the blocks sequences
// hold never exceed max_blocks(), and when a reserved sequence allocates, a block is always free,
// not yet carved, or held by the prefix cache alone: allocate() then evicts least-recently-used
// prefix-cache entries until one is free. If none can be found the invariant is broken (a
// sequence allocated past its reservation): Error(kInternal).
//
// Prefix cache. An entry is one full token block of a prompt, keyed by a chained hash over the
// prompt's blocks (hash_i = XXH3_64(tokens of block i, seed = hash_{i-1})) and its parent entry;
// it stores the tokens, compared exactly on lookup (a hash collision never gives a false hit), and
// holds one reference to each layer's block of that token block. Eviction is least recently used
// among leaves (entries without cached children) whose blocks no sequence holds; every lookup or
// publish touches the whole chain from its root, children before parents, so a child is never
// more recently used than its parent. When no such leaf exists but some block is held by the
// cache alone (a sliding-window layer's block the sequence recycled), the least recently used
// entry holding one is evicted together with its descendants, which would be unreachable.
//
// Thread-safe: one mutex, taken a few times per sequence per step. A KVCache over the pool is used
// by one thread at a time. The pool must outlive every KVCache drawing from it.
#pragma once

#include <cstdint>
#include <mutex>
#include <set>
#include <unordered_map>
#include <vector>

#include "core/huge_pages.h"
#include "core/memory_account.h"
#include "kv/kv_shape.h"

namespace longctx {

class KVBlockPool {
 public:
  struct Block {
    int32_t id = -1;          // -1: none
    uint8_t* data = nullptr;  // [k: n_kv_heads sections][v: n_kv_heads sections]
  };

  struct Stats {
    int64_t total = 0;        // max_blocks(), or the blocks carved so far when unlimited
    int64_t carved = 0;       // blocks taken from slabs (their bytes are charged)
    int64_t used = 0;         // blocks some sequence holds (shared or not)
    int64_t cached_only = 0;  // blocks only the prefix cache holds: evictable
    int64_t free = 0;         // on the free list, plus not yet carved under max_blocks()
    int64_t reserved = 0;     // outstanding reservations
    int64_t entries = 0;      // prefix-cache entries (token blocks)
    int64_t block_bytes = 0;  // bytes of one block (one layer's keys + values)
    int64_t hit_tokens = 0;   // prompt tokens served from the prefix cache
    int64_t miss_tokens = 0;  // prompt tokens looked up and not found
  };

  // max_blocks 0: unlimited (blocks are carved as needed; the prefix cache is never evicted, see
  // clear_prefix_cache). The one place KV types are validated: Error(kUnsupported) when the shape
  // cannot store them (int4 needs an even head_dim and whole groups of 16 tokens per block).
  explicit KVBlockPool(const KVCacheShape& shape, int64_t max_blocks = 0,
                       MemoryAccount* account = nullptr);
  ~KVBlockPool();
  KVBlockPool(const KVBlockPool&) = delete;
  KVBlockPool& operator=(const KVBlockPool&) = delete;

  const KVCacheShape& shape() const { return shape_; }
  int64_t max_blocks() const { return max_blocks_; }
  size_t block_bytes() const { return block_bytes_; }
  // What a sequence of `tokens` tokens run in chunks of `chunk` reserves (the rule above).
  int64_t blocks_for(int64_t tokens, int64_t chunk) const;

  // Admission: false (nothing reserved) when the outstanding reservations plus `blocks` would
  // exceed max_blocks(); always true when unlimited.
  bool try_reserve(int64_t blocks);
  void unreserve(int64_t blocks);

  // A block with one reference (the caller's); its contents are whatever it held last.
  Block allocate();
  void retain(int32_t id);
  void release(int32_t id);
  // References held now: sequences' plus one when a prefix-cache entry holds it.
  int32_t ref_count(int32_t id) const;

  // Prefix cache: walks the chain of cached entries matching tokens[0..), at most max_blocks token
  // blocks, and returns their count m. `out` gets m x n_layers blocks ([token block][layer]), each
  // retained for the caller, except blocks a sliding-window layer can no longer see from position
  // m x block_size (KVCacheShape::first_live_block), which are returned as Block{}. Counts m x
  // block_size hit tokens and n_tokens minus those as misses.
  int64_t lookup(const int32_t* tokens, int64_t n_tokens, int64_t max_blocks,
                 std::vector<Block>& out);
  // Registers the chain of n_blocks full token blocks tokens[0, n_blocks x block_size) whose
  // blocks are ids[token block x n_layers + layer] (the caller holds them). Entries already
  // cached are touched, whatever blocks they hold; a missing one is added with the caller's blocks,
  // or the chain ends there when one of them is -1 (a recycled window block) or already belongs
  // to another entry. Returns the length of the cached chain now.
  int64_t publish(const int32_t* tokens, int64_t n_blocks, const int32_t* ids);
  // Drops every entry (blocks no sequence holds go back to the free list).
  void clear_prefix_cache();

  Stats stats() const;     // a pass over every block: for reports, not for every step
  int64_t carved() const;  // blocks taken from slabs so far

  // For KVCache's per-sequence f32 group of int4 keys: charges / releases the pool's account.
  void charge(size_t bytes, const char* what);
  void uncharge(size_t bytes);

 private:
  struct Entry {
    uint64_t parent = 0;  // 0: the first token block of a prompt
    uint64_t hash = 0;
    uint64_t stamp = 0;           // last use; larger is more recent
    std::vector<int32_t> tokens;  // block_size
    std::vector<int32_t> blocks;  // n_layers
    std::vector<uint64_t> children;
    int n_held = 0;  // of `blocks`, those some sequence also holds
  };

  Block carve();  // mu_ held
  bool evict_one();
  void remove_entry(uint64_t root);
  uint64_t find(uint64_t hash, uint64_t parent, const int32_t* tokens) const;
  void touch(const std::vector<uint64_t>& chain);
  void add_ref(int32_t id);
  void drop_ref(int32_t id);
  void check_id(int32_t id) const;
  // (stamp, id) of the entries eviction takes first: leaves whose blocks no sequence holds.
  void unlist(uint64_t id, const Entry& e) { evictable_.erase({e.stamp, id}); }
  void relist(uint64_t id, const Entry& e) {
    if (e.children.empty() && e.n_held == 0) evictable_.insert({e.stamp, id});
  }

  const KVCacheShape shape_;
  const int64_t max_blocks_;
  MemoryAccount* const account_;
  const size_t block_bytes_, stride_;

  mutable std::mutex mu_;
  std::vector<HugePageBuffer> slabs_;  // blocks live here, carved in order
  size_t slab_used_ = 0;               // bytes carved from slabs_.back()
  std::vector<uint8_t*> data_;         // per block id
  std::vector<int32_t> seq_refs_;      // per block id: references held by sequences
  std::vector<uint64_t> entry_of_;     // per block id: the prefix-cache entry holding it, or 0
  std::vector<int32_t> free_;
  int64_t reserved_ = 0;

  std::unordered_map<uint64_t, Entry> entries_;
  std::unordered_multimap<uint64_t, uint64_t> by_hash_;  // chained hash -> entry ids
  std::set<std::pair<uint64_t, uint64_t>> evictable_;
  uint64_t next_entry_ = 1, clock_ = 0;
  int64_t hit_tokens_ = 0, miss_tokens_ = 0;
};

}  // namespace longctx
