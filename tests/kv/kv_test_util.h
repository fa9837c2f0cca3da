// Helpers for the KV pool tests: keys/values that depend on the whole token prefix (as a model's
// do, so two sequences agree exactly where their prompts agree), a chunked prefill that writes
// them into a KVCache, and what the attention kernel reads back from a cache.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/kv_quant.h"
#include "kv/kv_cache.h"

namespace longctx::testing {

inline uint64_t mix(uint64_t x) {  // splitmix64's finalizer
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Keys and values of positions [0, tokens.size()) for every layer: k[l], v[l] are
// [n_tokens][n_kv_heads][head_dim]; position p's rows depend on tokens[0..p] and p only.
struct PrefixKV {
  std::vector<std::vector<float>> k, v;

  PrefixKV(const KVCacheShape& s, const std::vector<int32_t>& tokens) {
    const size_t row = size_t(s.n_kv_heads) * s.head_dim, n = tokens.size();
    k.assign(s.n_layers, std::vector<float>(n * row));
    v.assign(s.n_layers, std::vector<float>(n * row));
    uint64_t h = 12345;
    for (size_t p = 0; p < n; ++p) {
      h = mix(h ^ uint64_t(uint32_t(tokens[p])));
      for (int l = 0; l < s.n_layers; ++l) {
        std::mt19937 rng(uint32_t(mix(h + l)));
        std::uniform_real_distribution<float> d(-2.f, 2.f);
        for (size_t i = 0; i < row; ++i) {
          k[l][p * row + i] = d(rng) * float(1 + i % 5) + float(i % 3);  // channels differ
          v[l][p * row + i] = d(rng);
        }
      }
    }
  }
};

// Runs positions [from, to) through `kv` in chunks of `chunk` (prepare, then every layer's
// write), publishing the prefix after each chunk when asked (as a server would).
inline void prefill(KVCache& kv, const std::vector<int32_t>& tokens, const PrefixKV& x,
                    int64_t from, int64_t to, int64_t chunk, bool publish = false) {
  const KVCacheShape& s = kv.shape();
  const size_t row = size_t(s.n_kv_heads) * s.head_dim;
  for (int64_t pos = from; pos < to; pos += chunk) {
    const int64_t n = std::min(chunk, to - pos);
    kv.prepare(pos, n);
    for (int l = 0; l < s.n_layers; ++l)
      kv.write(l, pos, n, x.k[l].data() + pos * row, x.v[l].data() + pos * row);
    if (publish) kv.publish_prefix(tokens.data(), kv.n_tokens());
  }
}

// What attention reads for position p of `layer` (keys or values), [n_kv_heads][head_dim]:
// decoded from the block, or int4 keys' f32 pending group. Empty when the block was recycled.
inline std::vector<float> stored_row(const KVCache& kv, int layer, int64_t p, bool keys) {
  const KVCacheShape& s = kv.shape();
  const kernels::KVView w = kv.view(layer, kv.n_tokens());
  const int hd = s.head_dim, T = kernels::kKvChannelGroup;
  std::vector<float> out(size_t(s.n_kv_heads) * hd);
  if (keys && p >= w.k_pending_from) {
    for (int h = 0; h < s.n_kv_heads; ++h)
      std::memcpy(out.data() + size_t(h) * hd,
                  w.k_pending + (size_t(h) * T + (p - w.k_pending_from)) * hd, hd * sizeof(float));
    return out;
  }
  // Not (keys ? a : b)[p / block_size]: GCC 12 with -fsanitize=undefined miscompiles that
  // subscript (it read null here while both arrays held the block).
  const void* const* blocks = keys ? w.k_blocks : w.v_blocks;
  const void* block = blocks[p / s.block_size];
  if (!block) return {};
  const KvType t = keys ? s.k_type : s.v_type;
  const size_t sec = kernels::kv_row_bytes(t, hd, keys) * s.block_size;
  for (int h = 0; h < s.n_kv_heads; ++h)
    kernels::kv_decode(t, keys, static_cast<const uint8_t*>(block) + h * sec, s.block_size,
                       int(p % s.block_size), 1, hd, out.data() + size_t(h) * hd);
  return out;
}

}  // namespace longctx::testing
