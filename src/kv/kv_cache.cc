#include "kv/kv_cache.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "core/error.h"

namespace longctx {

KVCache::KVCache(const KVCacheShape& shape, MemoryAccount* account)
    : own_pool_(std::make_unique<KVBlockPool>(shape, 0, account)),
      pool_(own_pool_.get()),
      shape_(shape) {
  init();
}

KVCache::KVCache(KVBlockPool& pool, int64_t capacity) : pool_(&pool), shape_(pool.shape()) {
  shape_.capacity = capacity;
  init();
}

void KVCache::init() {
  blocks_.resize(shape_.n_layers);
  ids_.resize(shape_.n_layers);
  shared_.resize(shape_.n_layers);
  k_ptrs_.resize(shape_.n_layers);
  v_ptrs_.resize(shape_.n_layers);
  first_live_.assign(shape_.n_layers, 0);
  if (const size_t fixed = shape_.fixed_bytes()) {
    pool_->charge(fixed, "the KV cache's f32 group of newest int4 keys");
    pending_.assign(fixed / sizeof(float), 0.f);
    pending_from_.assign(shape_.n_layers, 0);
  }
}

KVCache::~KVCache() {
  try {
    release_all();
  } catch (const Error&) {
    // Only a broken pool invariant throws here; nothing sensible is left to do in a destructor.
  }
  pool_->uncharge(shape_.fixed_bytes());
  // own_pool_, destroyed next, releases the charge of the blocks it carved.
}

void KVCache::release_all() {
  for (int l = 0; l < shape_.n_layers; ++l) {
    for (int32_t id : ids_[l])
      if (id >= 0) pool_->release(id);
    blocks_[l].clear();
    ids_[l].clear();
    shared_[l].clear();
    k_ptrs_[l].clear();
    v_ptrs_[l].clear();
    first_live_[l] = 0;
  }
}

size_t KVCache::allocated_bytes() const {
  const size_t blocks = own_pool_ ? static_cast<size_t>(own_pool_->carved())
                                  : live_bytes() / shape_.bytes_per_layer_block();
  return blocks * shape_.bytes_per_layer_block() + shape_.fixed_bytes();
}

void KVCache::set_block(int layer, size_t b, KVBlockPool::Block blk, bool shared) {
  blocks_[layer][b] = blk.data;
  ids_[layer][b] = blk.id;
  shared_[layer][b] = shared;
  k_ptrs_[layer][b] = blk.data;
  v_ptrs_[layer][b] = blk.data ? blk.data + shape_.key_block_bytes() : nullptr;
}

void KVCache::copy_on_write(int layer, size_t b) {
  const int32_t old = ids_[layer][b];
  // Held by this cache alone (the others let go): write in place. Nobody can take a new
  // reference meanwhile: only the prefix cache hands blocks out, and it no longer holds this one.
  if (pool_->ref_count(old) == 1) {
    shared_[layer][b] = 0;
    return;
  }
  const KVBlockPool::Block copy = pool_->allocate();
  // A shared block never changes, so it can be read without the pool's lock.
  std::memcpy(copy.data, blocks_[layer][b], shape_.bytes_per_layer_block());
  set_block(layer, b, copy, false);
  pool_->release(old);
}

void KVCache::prepare(int64_t pos0, int64_t n) {
  const int64_t end = pos0 + n;
  if (end > shape_.capacity)
    throw Error(ErrorKind::kOutOfRange,
                "context is full: " + std::to_string(end) + " tokens requested but the context is " +
                    std::to_string(shape_.capacity) + " tokens; raise it with -c N");
  const int64_t bs = shape_.block_size;
  // Every layer gives back first, so that a full shared pool finds those blocks when allocating.
  for (int l = 0; l < shape_.n_layers; ++l) {
    // A window layer's earliest visible key is pos0 - w + 1: earlier blocks go back to the pool.
    const int64_t keep_from = shape_.first_live_block(l, pos0);
    for (int64_t b = first_live_[l]; b < std::min<int64_t>(keep_from, blocks_[l].size()); ++b) {
      if (ids_[l][b] >= 0) pool_->release(ids_[l][b]);
      set_block(l, static_cast<size_t>(b), {}, false);
    }
    first_live_[l] = std::max(first_live_[l], keep_from);
  }
  for (int l = 0; l < shape_.n_layers; ++l) {
    auto& blocks = blocks_[l];
    const size_t need = static_cast<size_t>((end + bs - 1) / bs);
    if (blocks.size() < need) {
      blocks.resize(need, nullptr);
      ids_[l].resize(need, -1);
      shared_[l].resize(need, 0);
      k_ptrs_[l].resize(need, nullptr);
      v_ptrs_[l].resize(need, nullptr);
    }
    for (size_t b = static_cast<size_t>(first_live_[l]); b < need; ++b) {
      if (!blocks[b]) {
        set_block(l, b, pool_->allocate(), false);
      } else if (shared_[l][b] && static_cast<int64_t>(b) >= pos0 / bs) {
        // The pass writes into it (int4 keys re-quantize a reopened group in pos0's block too).
        copy_on_write(l, b);
      }
    }
  }
}

void KVCache::write(int layer, int64_t pos0, int64_t n, const float* k, const float* v) {
  const int64_t bs = shape_.block_size;
  const int hd = shape_.head_dim, nkv = shape_.n_kv_heads;
  const KvType kt = shape_.k_type, vt = shape_.v_type;
  const size_t k_sec = kernels::kv_row_bytes(kt, hd, true) * bs;
  const size_t v_sec = kernels::kv_row_bytes(vt, hd, false) * bs;
  const bool per_channel = kernels::kv_per_channel(kt, true);
  constexpr int T = kernels::kKvChannelGroup;
  const size_t half = shape_.key_block_bytes();
  const int64_t stride = static_cast<int64_t>(nkv) * hd;
  auto& blocks = blocks_[layer];
  // Runs of tokens inside one block: [t, t + run).
  for (int64_t t = 0, run = 0; t < n; t += run) {
    const int64_t pos = pos0 + t;
    const size_t b = static_cast<size_t>(pos / bs);
    if (b >= blocks.size() || !blocks[b] || shared_[layer][b])
      throw Error(ErrorKind::kInternal, "KV write to a block that prepare() did not make ready");
    const int off = static_cast<int>(pos % bs);
    run = std::min<int64_t>(n - t, bs - off);
    uint8_t* kb = blocks[b];
    uint8_t* vb = blocks[b] + half;
    for (int h = 0; h < nkv; ++h) {
      const size_t src = static_cast<size_t>(t * stride + h * hd);
      if (!per_channel)
        kernels::kv_encode(kt, k + src, stride, static_cast<int>(run), hd, kb + h * k_sec, bs, off);
      kernels::kv_encode(vt, v + src, stride, static_cast<int>(run), hd, vb + h * v_sec, bs, off);
    }
    if (!per_channel) continue;
    // int4 keys: fill the pending group; quantize it into the block when its tokens are all in.
    float* pend = pending_.data() + static_cast<size_t>(layer) * nkv * T * hd;
    for (int64_t r = 0; r < run; ++r) {
      const int64_t p = pos + r;
      for (int h = 0; h < nkv; ++h)
        std::copy(k + (t + r) * stride + h * hd, k + (t + r) * stride + (h + 1) * hd,
                  pend + (static_cast<size_t>(h) * T + p % T) * hd);
      if (p % T != T - 1) continue;
      for (int h = 0; h < nkv; ++h)
        kernels::kv_encode_key_group(pend + static_cast<size_t>(h) * T * hd, hd, kb + h * k_sec,
                                     bs, static_cast<int>((p - (T - 1)) % bs));
      pending_from_[layer] = p + 1;
    }
  }
  if (layer == shape_.n_layers - 1 && pos0 + n > n_tokens_) n_tokens_ = pos0 + n;
}

kernels::KVView KVCache::view(int layer, int64_t n_valid) const {
  kernels::KVView v = kernels::coded_kv_view(shape_.k_type, shape_.v_type,
                                             shape_.block_size, shape_.n_kv_heads, shape_.head_dim,
                                             k_ptrs_[layer].data(), v_ptrs_[layer].data(), n_valid);
  if (!pending_.empty()) {
    v.k_pending = pending_.data() + static_cast<size_t>(layer) * shape_.n_kv_heads *
                                        kernels::kKvChannelGroup * shape_.head_dim;
    v.k_pending_from = pending_from_[layer];
  }
  return v;
}

void KVCache::truncate(int64_t n) {
  if (n < 0) n = 0;
  if (n >= n_tokens_) return;
  if (n == 0) {  // start over: every block goes back to the pool
    release_all();
    std::fill(pending_from_.begin(), pending_from_.end(), 0);
    n_tokens_ = 0;
    return;
  }
  for (int l = 0; l < shape_.n_layers; ++l) {
    const int64_t w = shape_.window(l);
    if (w > 0 && std::max<int64_t>(0, n - w + 1) < first_live_[l] * shape_.block_size)
      throw Error(ErrorKind::kInvalidArg,
                  "cannot rewind to position " + std::to_string(n) +
                      ": a sliding-window layer already dropped keys that position needs");
  }
  // int4 keys: a rewind into a quantized group reopens it; its kept keys come back dequantized.
  constexpr int T = kernels::kKvChannelGroup;
  const int hd = shape_.head_dim, bs = shape_.block_size;
  for (size_t l = 0; l < pending_from_.size(); ++l) {
    const int64_t from = n / T * T;
    if (from >= pending_from_[l]) continue;
    const uint8_t* block = blocks_[l][static_cast<size_t>(from / bs)];
    const size_t k_sec = kernels::kv_row_bytes(KvType::kInt4, hd, true) * bs;
    float* pend = pending_.data() + l * shape_.n_kv_heads * T * hd;
    if (block && n > from)
      for (int h = 0; h < shape_.n_kv_heads; ++h)
        kernels::kv_decode(KvType::kInt4, true, block + h * k_sec, bs, static_cast<int>(from % bs),
                           static_cast<int>(n - from), hd, pend + static_cast<size_t>(h) * T * hd);
    pending_from_[l] = from;
  }
  n_tokens_ = n;
}

int64_t KVCache::adopt_prefix(const int32_t* tokens, int64_t n) {
  if (n_tokens_ != 0)
    throw Error(ErrorKind::kInvalidArg, "adopt_prefix needs an empty KV cache (it holds " +
                                            std::to_string(n_tokens_) + " tokens)");
  release_all();  // blocks prepare() made ready but nothing wrote
  const int64_t bs = shape_.block_size;
  // At least one token is left to run, and the prefix fits the cap.
  const int64_t max_blocks = std::min(n - 1, shape_.capacity) / bs;
  if (max_blocks <= 0) return 0;
  std::vector<KVBlockPool::Block> got;
  const int64_t m = pool_->lookup(tokens, n, max_blocks, got);
  if (m == 0) return 0;
  const int L = shape_.n_layers;
  for (int l = 0; l < L; ++l) {
    blocks_[l].assign(m, nullptr);
    ids_[l].assign(m, -1);
    shared_[l].assign(m, 0);
    k_ptrs_[l].assign(m, nullptr);
    v_ptrs_[l].assign(m, nullptr);
    // A window layer got only the blocks a pass from m x bs can see (the rest are Block{}).
    first_live_[l] = shape_.first_live_block(l, m * bs);
    for (int64_t b = 0; b < m; ++b) set_block(l, b, got[b * L + l], got[b * L + l].data != nullptr);
  }
  n_tokens_ = m * bs;
  // int4 keys: the prefix ends on a whole block, so on a whole group: nothing is pending.
  std::fill(pending_from_.begin(), pending_from_.end(), n_tokens_);
  return n_tokens_;
}

void KVCache::publish_prefix(const int32_t* tokens, int64_t n) {
  if (n < 0 || n > n_tokens_)
    throw Error(ErrorKind::kInvalidArg, "publish_prefix of " + std::to_string(n) +
                                            " tokens but the KV cache holds " +
                                            std::to_string(n_tokens_));
  const int L = shape_.n_layers;
  const int64_t nb = n / shape_.block_size;
  if (nb == 0) return;
  std::vector<int32_t> ids(static_cast<size_t>(nb * L), -1);
  for (int64_t b = 0; b < nb; ++b)
    for (int l = 0; l < L; ++l)
      if (b < static_cast<int64_t>(ids_[l].size())) ids[b * L + l] = ids_[l][b];
  pool_->publish(tokens, nb, ids.data());
  // Whatever the cache took, these blocks may now be shared: copy before writing into them.
  for (int l = 0; l < L; ++l)
    for (int64_t b = 0; b < nb && b < static_cast<int64_t>(ids_[l].size()); ++b)
      if (ids_[l][b] >= 0) shared_[l][b] = 1;
}

void KVCache::shift(int64_t keep, int64_t drop,
                    const std::function<void(float*, int64_t, int)>& rotate) {
  const int64_t n = n_tokens_;
  if (keep < 0 || drop <= 0 || keep + drop > n)
    throw Error(ErrorKind::kInvalidArg, "context shift of " + std::to_string(drop) +
                                            " tokens after " + std::to_string(keep) +
                                            " outside the " + std::to_string(n) + " held");
  const int64_t bs = shape_.block_size, end = n - drop;
  const int nkv = shape_.n_kv_heads, hd = shape_.head_dim;
  const int64_t row = static_cast<int64_t>(nkv) * hd;
  const bool per_channel = kernels::kv_per_channel(shape_.k_type, true);
  const size_t k_sec = kernels::kv_row_bytes(shape_.k_type, hd, true) * bs;
  const size_t v_sec = kernels::kv_row_bytes(shape_.v_type, hd, false) * bs;
  const size_t half = shape_.key_block_bytes();
  std::vector<float> k, v;
  for (int l = 0; l < shape_.n_layers; ++l) {
    // The rows to rewrite: from keep's block (whole key groups) to the new end. A window layer
    // holds only [first_live * bs, n); rows it does not hold stay zero (no query sees them).
    const int64_t lo_old = first_live_[l] * bs;
    const int64_t from = std::max(keep / bs * bs, std::max<int64_t>(0, lo_old - drop) / bs * bs);
    const int64_t m = end - from;
    k.assign(static_cast<size_t>(std::max<int64_t>(m, 0) * row), 0.f);
    v.assign(k.size(), 0.f);
    // Old position of new row p: p below keep stays, p at or past keep comes from p + drop.
    auto decode_row = [&](int64_t old_pos, float* kd, float* vd) {
      if (old_pos < lo_old) return;
      const uint8_t* blk = blocks_[l][static_cast<size_t>(old_pos / bs)];
      if (!blk) return;
      const int off = static_cast<int>(old_pos % bs);
      for (int h = 0; h < nkv; ++h) {
        kernels::kv_decode(shape_.v_type, false, blk + half + h * v_sec, static_cast<int>(bs), off,
                           1, hd, vd + h * hd);
        if (per_channel && old_pos >= pending_from_[l]) {
          const float* pend = pending_.data() + (static_cast<size_t>(l) * nkv + h) *
                                                    kernels::kKvChannelGroup * hd;
          std::copy(pend + (old_pos % kernels::kKvChannelGroup) * hd,
                    pend + (old_pos % kernels::kKvChannelGroup + 1) * hd, kd + h * hd);
        } else {
          kernels::kv_decode(shape_.k_type, true, blk + h * k_sec, static_cast<int>(bs), off, 1,
                             hd, kd + h * hd);
        }
      }
    };
    for (int64_t p = from; p < end; ++p) {
      const size_t r = static_cast<size_t>((p - from) * row);
      decode_row(p < keep ? p : p + drop, k.data() + r, v.data() + r);
    }
    const int64_t moved0 = std::max(keep, from);  // first new position whose key moved
    if (end > moved0)
      rotate(k.data() + static_cast<size_t>((moved0 - from) * row), end - moved0, l);
    // Blocks from `from` on are rebuilt from fresh ones; the layer's live range starts there.
    for (size_t b = static_cast<size_t>(from / bs); b < blocks_[l].size(); ++b) {
      if (ids_[l][b] >= 0) pool_->release(ids_[l][b]);
      set_block(l, b, {}, false);
    }
    const size_t need = static_cast<size_t>((end + bs - 1) / bs);
    blocks_[l].resize(std::max(need, static_cast<size_t>(from / bs)), nullptr);
    ids_[l].resize(blocks_[l].size(), -1);
    shared_[l].resize(blocks_[l].size(), 0);
    k_ptrs_[l].resize(blocks_[l].size(), nullptr);
    v_ptrs_[l].resize(blocks_[l].size(), nullptr);
    first_live_[l] = std::min(first_live_[l], from / bs);
    for (size_t b = static_cast<size_t>(from / bs); b < need; ++b)
      set_block(l, b, pool_->allocate(), false);
    if (per_channel) pending_from_[l] = from;  // a whole group: write() refills from here
    if (m > 0) write(l, from, m, k.data(), v.data());
  }
  n_tokens_ = end;
}

void KVCache::restore(int64_t n, const std::vector<int64_t>& first,
                      const std::function<void(int, int64_t, uint8_t*)>& fill,
                      const std::vector<float>& pending, const std::vector<int64_t>& pending_from) {
  if (n_tokens_ != 0)
    throw Error(ErrorKind::kInvalidArg, "restoring a KV cache that holds " +
                                            std::to_string(n_tokens_) + " tokens");
  if (n < 0 || n > shape_.capacity)
    throw Error(ErrorKind::kOutOfRange, "a saved state of " + std::to_string(n) +
                                            " tokens does not fit the context (" +
                                            std::to_string(shape_.capacity) + ")");
  const int L = shape_.n_layers;
  if (static_cast<int>(first.size()) != L)
    throw Error(ErrorKind::kInvalidArg, "a saved state with another number of layers");
  release_all();
  const int64_t bs = shape_.block_size, need = (n + bs - 1) / bs;
  try {
    for (int l = 0; l < L; ++l) {
      const auto nb = static_cast<size_t>(need);
      blocks_[l].assign(nb, nullptr);
      ids_[l].assign(nb, -1);
      shared_[l].assign(nb, 0);
      k_ptrs_[l].assign(nb, nullptr);
      v_ptrs_[l].assign(nb, nullptr);
      first_live_[l] = std::clamp<int64_t>(first[l], 0, need);
      for (int64_t b = first_live_[l]; b < need; ++b) {
        set_block(l, static_cast<size_t>(b), pool_->allocate(), false);
        fill(l, b, blocks_[l][static_cast<size_t>(b)]);
      }
    }
    if (!pending_.empty()) {
      if (pending.size() != pending_.size() || pending_from.size() != pending_from_.size())
        throw Error(ErrorKind::kInvalidArg, "a saved state without its int4 pending keys");
      pending_ = pending;
      pending_from_ = pending_from;
    }
  } catch (...) {
    release_all();
    n_tokens_ = 0;
    throw;
  }
  n_tokens_ = n;
}

size_t KVCache::live_bytes() const {
  size_t live = 0;
  for (const auto& blocks : blocks_)
    for (const uint8_t* b : blocks) live += b != nullptr;
  return live * shape_.bytes_per_layer_block();
}

}  // namespace longctx
