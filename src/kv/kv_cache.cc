#include "kv/kv_cache.h"

#include <cstdlib>
#include <string>

#include "core/error.h"

namespace longctx {

namespace {
size_t per_layer_half(const KVCacheShape& s) {  // bytes of K (or V) of one layer in one block
  return static_cast<size_t>(s.n_kv_heads) * s.block_size * s.head_dim * dtype_size(s.dtype);
}
}  // namespace

size_t KVCacheShape::bytes_per_token() const {
  return static_cast<size_t>(n_layers) * n_kv_heads * head_dim * dtype_size(dtype) * 2;
}

size_t KVCacheShape::bytes_per_block() const { return bytes_per_token() * block_size; }

KVCache::KVCache(const KVCacheShape& shape, MemoryAccount* account)
    : shape_(shape), account_(account) {
  if (shape.n_layers <= 0 || shape.n_kv_heads <= 0 || shape.head_dim <= 0 || shape.block_size <= 0)
    throw Error(ErrorKind::kInternal, "KV cache shape has a non-positive dimension");
  k_ptrs_.resize(shape.n_layers);
  v_ptrs_.resize(shape.n_layers);
}

KVCache::~KVCache() {
  if (account_) account_->release(allocated_bytes());
}

void* KVCache::k_block(int layer, size_t b) const {
  return blocks_[b].get() + per_layer_half(shape_) * (2 * static_cast<size_t>(layer));
}
void* KVCache::v_block(int layer, size_t b) const {
  return blocks_[b].get() + per_layer_half(shape_) * (2 * static_cast<size_t>(layer) + 1);
}

void KVCache::reserve(int64_t n) {
  if (n > shape_.capacity)
    throw Error(ErrorKind::kOutOfRange,
                "context is full: " + std::to_string(n) + " tokens requested but the context is " +
                    std::to_string(shape_.capacity) + " tokens; raise it with -c N");
  const size_t need = static_cast<size_t>((n + shape_.block_size - 1) / shape_.block_size);
  while (blocks_.size() < need) {
    const size_t bytes = shape_.bytes_per_block();
    if (account_) account_->charge(bytes, "a KV-cache block");
    void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p) {
      if (account_) account_->release(bytes);
      throw Error(ErrorKind::kMemory, "cannot allocate a KV-cache block of " +
                                          std::to_string(bytes) + " bytes; lower -c or --kv-dtype");
    }
    blocks_.emplace_back(static_cast<uint8_t*>(p), std::free);
    const size_t b = blocks_.size() - 1;
    for (int l = 0; l < shape_.n_layers; ++l) {
      k_ptrs_[l].push_back(k_block(l, b));
      v_ptrs_[l].push_back(v_block(l, b));
    }
  }
}

void KVCache::write(int layer, int64_t pos0, int64_t n, const float* k, const float* v) {
  const int64_t bs = shape_.block_size;
  const int hd = shape_.head_dim, nkv = shape_.n_kv_heads;
  const size_t es = dtype_size(shape_.dtype);
  if (pos0 + n > static_cast<int64_t>(blocks_.size()) * bs)
    throw Error(ErrorKind::kInternal, "KV write past reserved blocks");
  for (int64_t t = 0; t < n; ++t) {
    const int64_t pos = pos0 + t;
    const size_t b = static_cast<size_t>(pos / bs);
    const int64_t off = pos % bs;
    auto* kb = static_cast<uint8_t*>(k_block(layer, b));
    auto* vb = static_cast<uint8_t*>(v_block(layer, b));
    for (int h = 0; h < nkv; ++h) {
      const size_t dst = ((static_cast<size_t>(h) * bs + off) * hd) * es;
      const size_t src = (static_cast<size_t>(t) * nkv + h) * hd;
      from_f32(shape_.dtype, k + src, kb + dst, hd);
      from_f32(shape_.dtype, v + src, vb + dst, hd);
    }
  }
  if (layer == shape_.n_layers - 1 && pos0 + n > n_tokens_) n_tokens_ = pos0 + n;
}

kernels::KVView KVCache::view(int layer, int64_t n_valid) const {
  kernels::KVView v;
  v.dtype = shape_.dtype;
  v.block_size = shape_.block_size;
  v.n_kv_heads = shape_.n_kv_heads;
  v.head_dim = shape_.head_dim;
  v.k_blocks = k_ptrs_[layer].data();
  v.v_blocks = v_ptrs_[layer].data();
  v.n_tokens = n_valid;
  return v;
}

void KVCache::truncate(int64_t n) {
  if (n < n_tokens_) n_tokens_ = n < 0 ? 0 : n;
}

}  // namespace longctx
