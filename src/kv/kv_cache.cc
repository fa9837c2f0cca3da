#include "kv/kv_cache.h"

#include <algorithm>
#include <numeric>
#include <string>

#include "core/error.h"
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

KVCache::KVCache(const KVCacheShape& shape, MemoryAccount* account)
    : shape_(shape), account_(account) {
  if (shape.n_layers <= 0 || shape.n_kv_heads <= 0 || shape.head_dim <= 0 || shape.block_size <= 0)
    throw Error(ErrorKind::kInternal, "KV cache shape has a non-positive dimension");
  kernels::check_kv_type(shape.k_type, shape.head_dim, true, shape.block_size);
  kernels::check_kv_type(shape.v_type, shape.head_dim, false, shape.block_size);
  blocks_.resize(shape.n_layers);
  k_ptrs_.resize(shape.n_layers);
  v_ptrs_.resize(shape.n_layers);
  first_live_.assign(shape.n_layers, 0);
  if (const size_t fixed = shape.fixed_bytes()) {
    if (account_) account_->charge(fixed, "the KV cache's f32 group of newest int4 keys");
    pending_.assign(fixed / sizeof(float), 0.f);
    pending_from_.assign(shape.n_layers, 0);
  }
}

KVCache::~KVCache() {
  if (account_) account_->release(allocated_bytes());
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

uint8_t* KVCache::take_block() {
  if (!free_.empty()) {
    uint8_t* b = free_.back();
    free_.pop_back();
    return b;
  }
  const size_t bytes = shape_.bytes_per_layer_block();
  const size_t stride = (bytes + 63) / 64 * 64;
  if (account_) account_->charge(bytes, "a KV-cache block");
  if (slabs_.empty() || slab_used_ + stride > slabs_.back().size()) {
    // Blocks are carved from slabs on huge pages (decode streams them like the weights); pages
    // are touched only as blocks fill, so at most one huge page per cache sits unused.
    HugePageBuffer slab(kv_slab_bytes(stride));
    if (!slab.ok()) {
      if (account_) account_->release(bytes);
      throw Error(ErrorKind::kMemory, "cannot allocate a KV-cache block of " +
                                          std::to_string(bytes) + " bytes; lower -c or --kv-dtype");
    }
    slabs_.push_back(std::move(slab));
    slab_used_ = 0;
  }
  uint8_t* p = slabs_.back().data() + slab_used_;
  slab_used_ += stride;
  ++n_allocated_;
  return p;
}

void KVCache::prepare(int64_t pos0, int64_t n) {
  const int64_t end = pos0 + n;
  if (end > shape_.capacity)
    throw Error(ErrorKind::kOutOfRange,
                "context is full: " + std::to_string(end) + " tokens requested but the context is " +
                    std::to_string(shape_.capacity) + " tokens; raise it with -c N");
  const int64_t bs = shape_.block_size;
  const size_t half = shape_.key_block_bytes();
  for (int l = 0; l < shape_.n_layers; ++l) {
    auto& blocks = blocks_[l];
    const int64_t w = shape_.window(l);
    if (w > 0) {
      // The earliest key any query in [pos0, end) can see is pos0 - w + 1.
      const int64_t keep_from = std::max<int64_t>(0, pos0 - w + 1) / bs;
      for (int64_t b = first_live_[l]; b < std::min<int64_t>(keep_from, blocks.size()); ++b) {
        if (blocks[b]) free_.push_back(blocks[b]);
        blocks[b] = nullptr;
        k_ptrs_[l][b] = v_ptrs_[l][b] = nullptr;
      }
      first_live_[l] = std::max(first_live_[l], keep_from);
    }
    const size_t need = static_cast<size_t>((end + bs - 1) / bs);
    while (blocks.size() < need) {
      blocks.push_back(nullptr);
      k_ptrs_[l].push_back(nullptr);
      v_ptrs_[l].push_back(nullptr);
    }
    for (size_t b = static_cast<size_t>(first_live_[l]); b < need; ++b) {
      if (blocks[b]) continue;
      blocks[b] = take_block();
      k_ptrs_[l][b] = blocks[b];
      v_ptrs_[l][b] = blocks[b] + half;
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
    if (b >= blocks.size() || !blocks[b])
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
  if (n == 0) {  // start over: every block goes back to the free list
    for (int l = 0; l < shape_.n_layers; ++l) {
      for (auto& b : blocks_[l])
        if (b) free_.push_back(b);
      blocks_[l].clear();
      k_ptrs_[l].clear();
      v_ptrs_[l].clear();
      first_live_[l] = 0;
    }
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

size_t KVCache::live_bytes() const {
  size_t live = 0;
  for (const auto& blocks : blocks_)
    for (const uint8_t* b : blocks) live += b != nullptr;
  return live * shape_.bytes_per_layer_block();
}

}  // namespace longctx
