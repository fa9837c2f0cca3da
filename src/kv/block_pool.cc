#include "kv/block_pool.h"

#include <xxhash.h>

#include <algorithm>
#include <string>

#include "core/error.h"

namespace longctx {

namespace {

// Seed of the first token block's hash (any constant: it only has to be the same every time).
constexpr uint64_t kChainSeed = 0x6c6f6e67637478;  // "longctx"

uint64_t chain_hash(uint64_t prev, const int32_t* tokens, int block_size) {
  return XXH3_64bits_withSeed(tokens, sizeof(int32_t) * static_cast<size_t>(block_size), prev);
}

}  // namespace

KVBlockPool::KVBlockPool(const KVCacheShape& shape, int64_t max_blocks, MemoryAccount* account)
    : shape_(shape),
      max_blocks_(max_blocks),
      account_(account),
      block_bytes_(shape.bytes_per_layer_block()),
      stride_((block_bytes_ + 63) / 64 * 64) {
  if (shape.n_layers <= 0 || shape.n_kv_heads <= 0 || shape.head_dim <= 0 || shape.block_size <= 0)
    throw Error(ErrorKind::kInternal, "KV cache shape has a non-positive dimension");
  if (max_blocks < 0) throw Error(ErrorKind::kInternal, "KV block pool with a negative size");
  kernels::check_kv_type(shape.k_type, shape.head_dim, true, shape.block_size);
  kernels::check_kv_type(shape.v_type, shape.head_dim, false, shape.block_size);
}

KVBlockPool::~KVBlockPool() {
  if (account_) account_->release(data_.size() * block_bytes_);
}

int64_t KVBlockPool::blocks_for(int64_t tokens, int64_t chunk) const {
  int64_t n = 0;
  for (int l = 0; l < shape_.n_layers; ++l) n += shape_.max_blocks(l, tokens, chunk);
  return n;
}

bool KVBlockPool::try_reserve(int64_t blocks) {
  if (blocks < 0) throw Error(ErrorKind::kInternal, "negative KV block reservation");
  std::lock_guard lock(mu_);
  if (max_blocks_ > 0 && reserved_ + blocks > max_blocks_) return false;
  reserved_ += blocks;
  return true;
}

void KVBlockPool::unreserve(int64_t blocks) {
  std::lock_guard lock(mu_);
  if (blocks < 0 || blocks > reserved_)
    throw Error(ErrorKind::kInternal, "KV block pool: unreserving " + std::to_string(blocks) +
                                          " blocks of " + std::to_string(reserved_) + " reserved");
  reserved_ -= blocks;
}

KVBlockPool::Block KVBlockPool::carve() {
  if (account_) account_->charge(block_bytes_, "a KV-cache block");
  if (slabs_.empty() || slab_used_ + stride_ > slabs_.back().size()) {
    // Blocks are carved from slabs on huge pages (decode streams them like the weights); pages
    // are touched only as blocks fill, so at most one huge page per pool sits unused.
    HugePageBuffer slab(kv_slab_bytes(stride_));
    if (!slab.ok()) {
      if (account_) account_->release(block_bytes_);
      throw Error(ErrorKind::kMemory, "cannot allocate a KV-cache block of " +
                                          std::to_string(block_bytes_) +
                                          " bytes; lower -c or --kv-dtype");
    }
    slabs_.push_back(std::move(slab));
    slab_used_ = 0;
  }
  uint8_t* p = slabs_.back().data() + slab_used_;
  slab_used_ += stride_;
  data_.push_back(p);
  seq_refs_.push_back(0);
  entry_of_.push_back(0);
  return {static_cast<int32_t>(data_.size() - 1), p};
}

KVBlockPool::Block KVBlockPool::allocate() {
  std::lock_guard lock(mu_);
  Block b;
  // Reuse first, then carve (memory follows use), then take back what only the cache holds.
  const bool full = max_blocks_ > 0 && static_cast<int64_t>(data_.size()) >= max_blocks_;
  if (full)
    while (free_.empty() && evict_one()) {
    }
  if (!free_.empty()) {
    b.id = free_.back();
    b.data = data_[b.id];
    free_.pop_back();
  } else if (!full) {
    b = carve();
  } else {
    throw Error(ErrorKind::kInternal,
                "KV block pool exhausted: all " + std::to_string(max_blocks_) +
                    " blocks are held by sequences (" + std::to_string(reserved_) +
                    " reserved); a sequence allocated past its reservation");
  }
  seq_refs_[b.id] = 1;
  return b;
}

void KVBlockPool::check_id(int32_t id) const {
  if (id < 0 || id >= static_cast<int32_t>(data_.size()))
    throw Error(ErrorKind::kInternal, "KV block id " + std::to_string(id) + " out of range");
}

void KVBlockPool::add_ref(int32_t id) {
  if (seq_refs_[id]++ > 0) return;
  if (const uint64_t e = entry_of_[id]) {
    Entry& entry = entries_.at(e);
    unlist(e, entry);
    ++entry.n_held;
  }
}

void KVBlockPool::drop_ref(int32_t id) {
  if (seq_refs_[id] <= 0)
    throw Error(ErrorKind::kInternal, "KV block " + std::to_string(id) + " released but not held");
  if (--seq_refs_[id] > 0) return;
  if (const uint64_t e = entry_of_[id]) {
    Entry& entry = entries_.at(e);
    --entry.n_held;
    relist(e, entry);
  } else {
    free_.push_back(id);
  }
}

void KVBlockPool::retain(int32_t id) {
  std::lock_guard lock(mu_);
  check_id(id);
  if (seq_refs_[id] == 0 && entry_of_[id] == 0)
    throw Error(ErrorKind::kInternal, "KV block " + std::to_string(id) + " retained while free");
  add_ref(id);
}

void KVBlockPool::release(int32_t id) {
  std::lock_guard lock(mu_);
  check_id(id);
  drop_ref(id);
}

int32_t KVBlockPool::ref_count(int32_t id) const {
  std::lock_guard lock(mu_);
  check_id(id);
  return seq_refs_[id] + (entry_of_[id] != 0);
}

uint64_t KVBlockPool::find(uint64_t hash, uint64_t parent, const int32_t* tokens) const {
  const auto [lo, hi] = by_hash_.equal_range(hash);
  for (auto it = lo; it != hi; ++it) {
    const Entry& e = entries_.at(it->second);
    if (e.parent == parent && std::equal(e.tokens.begin(), e.tokens.end(), tokens))
      return it->second;
  }
  return 0;
}

void KVBlockPool::touch(const std::vector<uint64_t>& chain) {
  // Root most recent, deepest least: eviction takes a chain from its end.
  const uint64_t k = chain.size();
  for (uint64_t i = 0; i < k; ++i) {
    Entry& e = entries_.at(chain[i]);
    unlist(chain[i], e);
    e.stamp = clock_ + k - i;
    relist(chain[i], e);
  }
  clock_ += k + 1;
}

int64_t KVBlockPool::lookup(const int32_t* tokens, int64_t n_tokens, int64_t max_blocks,
                            std::vector<Block>& out) {
  out.clear();
  const int bs = shape_.block_size, L = shape_.n_layers;
  std::lock_guard lock(mu_);
  std::vector<uint64_t> chain;
  uint64_t h = kChainSeed, parent = 0;
  for (int64_t i = 0; i < max_blocks && (i + 1) * bs <= n_tokens; ++i) {
    h = chain_hash(h, tokens + i * bs, bs);
    parent = find(h, parent, tokens + i * bs);
    if (!parent) break;
    chain.push_back(parent);
  }
  const int64_t m = static_cast<int64_t>(chain.size());
  out.resize(static_cast<size_t>(m * L));
  for (int l = 0; l < L; ++l)
    for (int64_t b = shape_.first_live_block(l, m * bs); b < m; ++b) {
      const int32_t id = entries_.at(chain[b]).blocks[l];
      add_ref(id);
      out[b * L + l] = {id, data_[id]};
    }
  touch(chain);
  hit_tokens_ += m * bs;
  miss_tokens_ += std::max<int64_t>(0, n_tokens - m * bs);
  return m;
}

int64_t KVBlockPool::publish(const int32_t* tokens, int64_t n_blocks, const int32_t* ids) {
  const int bs = shape_.block_size, L = shape_.n_layers;
  std::lock_guard lock(mu_);
  std::vector<uint64_t> chain;
  uint64_t h = kChainSeed, parent = 0;
  for (int64_t i = 0; i < n_blocks; ++i) {
    const int32_t* tok = tokens + i * bs;
    h = chain_hash(h, tok, bs);
    uint64_t id = find(h, parent, tok);
    if (!id) {
      const int32_t* blk = ids + i * L;
      bool usable = true;
      for (int l = 0; l < L && usable; ++l) {
        if (blk[l] >= 0) check_id(blk[l]);
        usable = blk[l] >= 0 && entry_of_[blk[l]] == 0 && seq_refs_[blk[l]] > 0;
      }
      if (!usable) break;
      id = next_entry_++;
      Entry& e = entries_[id];
      e.parent = parent;
      e.hash = h;
      e.tokens.assign(tok, tok + bs);
      e.blocks.assign(blk, blk + L);
      e.n_held = L;  // the caller holds every one
      for (int l = 0; l < L; ++l) entry_of_[blk[l]] = id;
      by_hash_.emplace(h, id);
      if (parent) {
        Entry& p = entries_.at(parent);
        unlist(parent, p);
        p.children.push_back(id);
      }
    }
    chain.push_back(id);
    parent = id;
  }
  touch(chain);
  return static_cast<int64_t>(chain.size());
}

void KVBlockPool::remove_entry(uint64_t root) {
  // The entry and its descendants (unreachable without it), deepest first; a loop, not recursion:
  // a 128k-token prompt in 16-token blocks is a chain of 8192 entries.
  std::vector<uint64_t> order{root};
  for (size_t i = 0; i < order.size(); ++i) {
    const Entry& e = entries_.at(order[i]);
    order.insert(order.end(), e.children.begin(), e.children.end());
  }
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    const uint64_t id = *it;
    Entry& e = entries_.at(id);
    unlist(id, e);
    if (e.parent) {
      Entry& p = entries_.at(e.parent);
      p.children.erase(std::find(p.children.begin(), p.children.end(), id));
      relist(e.parent, p);
    }
    const auto [lo, hi] = by_hash_.equal_range(e.hash);
    for (auto h = lo; h != hi; ++h)
      if (h->second == id) {
        by_hash_.erase(h);
        break;
      }
    for (int32_t b : e.blocks) {
      entry_of_[b] = 0;
      if (seq_refs_[b] == 0) free_.push_back(b);
    }
    entries_.erase(id);
  }
}

bool KVBlockPool::evict_one() {
  if (!evictable_.empty()) {
    remove_entry(evictable_.begin()->second);
    return true;
  }
  // No leaf is free of sequences, yet a block may be held by the cache alone (a window layer's
  // block its sequence recycled): take the least recently used entry holding one, and the
  // descendants that would be unreachable without it. Rare, so a scan.
  uint64_t best = 0, best_stamp = UINT64_MAX;
  for (const auto& [id, e] : entries_)
    if (e.n_held < shape_.n_layers && e.stamp < best_stamp) {
      best = id;
      best_stamp = e.stamp;
    }
  if (!best) return false;
  remove_entry(best);
  return true;
}

void KVBlockPool::clear_prefix_cache() {
  std::lock_guard lock(mu_);
  std::vector<uint64_t> roots;
  for (const auto& [id, e] : entries_)
    if (!e.parent) roots.push_back(id);
  for (uint64_t id : roots) remove_entry(id);
}

int64_t KVBlockPool::carved() const {
  std::lock_guard lock(mu_);
  return static_cast<int64_t>(data_.size());
}

KVBlockPool::Stats KVBlockPool::stats() const {
  std::lock_guard lock(mu_);
  Stats s;
  s.carved = static_cast<int64_t>(data_.size());
  s.total = max_blocks_ > 0 ? max_blocks_ : s.carved;
  for (size_t i = 0; i < data_.size(); ++i) {
    if (seq_refs_[i] > 0)
      ++s.used;
    else if (entry_of_[i])
      ++s.cached_only;
  }
  s.free = static_cast<int64_t>(free_.size()) + (s.total - s.carved);
  s.reserved = reserved_;
  s.entries = static_cast<int64_t>(entries_.size());
  s.block_bytes = static_cast<int64_t>(block_bytes_);
  s.hit_tokens = hit_tokens_;
  s.miss_tokens = miss_tokens_;
  return s;
}

void KVBlockPool::charge(size_t bytes, const char* what) {
  if (!account_) return;
  std::lock_guard lock(mu_);
  account_->charge(bytes, what);
}

void KVBlockPool::uncharge(size_t bytes) {
  if (!account_) return;
  std::lock_guard lock(mu_);
  account_->release(bytes);
}

}  // namespace longctx
