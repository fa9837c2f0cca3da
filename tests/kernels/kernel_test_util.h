// Helpers for the kernel tests: random data, a paged KV cache in any dtype, SIMD path loops.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "kernels/ops.h"

namespace longctx::kernels::testing {

inline std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Every SIMD path this build can produce and this CPU can run.
inline std::vector<SimdPath> runnable_paths() {
  std::vector<SimdPath> out;
  for (SimdPath p : {SimdPath::kScalar, SimdPath::kAvx2, SimdPath::kAvx512})
    if (p <= best_simd_path()) out.push_back(p);
  return out;
}

// Restores the start-up path when a test ends.
struct PathGuard {
  SimdPath saved = active_simd_path();
  ~PathGuard() { set_simd_path(saved); }
};

// Values stored in `t` (bytes) and the same values read back as f32.
struct Stored {
  std::vector<uint8_t> bytes;
  std::vector<float> f32;
};

inline Stored store(DType t, const std::vector<float>& v) {
  Stored s;
  s.bytes.resize(v.size() * dtype_size(t));
  from_f32(t, v.data(), s.bytes.data(), v.size());
  s.f32.resize(v.size());
  to_f32(t, s.bytes.data(), s.f32.data(), v.size());
  return s;
}

// A KV cache of one layer in blocks of `block_size`: k/v given as [n_tokens][n_kv][hd] f32.
struct PagedKV {
  std::vector<std::vector<uint8_t>> k_mem, v_mem;
  std::vector<const void*> k_ptrs, v_ptrs;
  std::vector<float> k_f32, v_f32;  // values after the dtype round trip, [n_tokens][n_kv][hd]
  KVView view;

  PagedKV(DType t, int block_size, int n_kv, int hd, int64_t n_tokens, uint32_t seed) {
    const auto k = random_floats(n_tokens * n_kv * hd, seed, -2.f, 2.f);
    const auto v = random_floats(n_tokens * n_kv * hd, seed + 1);
    const int64_t n_blocks = (n_tokens + block_size - 1) / block_size;
    const size_t es = dtype_size(t), block_elems = static_cast<size_t>(n_kv) * block_size * hd;
    k_f32.resize(k.size());
    v_f32.resize(v.size());
    for (int64_t b = 0; b < n_blocks; ++b) {
      // Unused tail positions hold NaN bit patterns: the kernel must never read them.
      k_mem.emplace_back(block_elems * es, 0xff);
      v_mem.emplace_back(block_elems * es, 0xff);
    }
    for (int64_t j = 0; j < n_tokens; ++j)
      for (int g = 0; g < n_kv; ++g) {
        const size_t src = (j * n_kv + g) * hd;
        const size_t dst = ((g * static_cast<size_t>(block_size)) + j % block_size) * hd;
        from_f32(t, k.data() + src, k_mem[j / block_size].data() + dst * es, hd);
        from_f32(t, v.data() + src, v_mem[j / block_size].data() + dst * es, hd);
        to_f32(t, k_mem[j / block_size].data() + dst * es, k_f32.data() + src, hd);
        to_f32(t, v_mem[j / block_size].data() + dst * es, v_f32.data() + src, hd);
      }
    for (auto& m : k_mem) k_ptrs.push_back(m.data());
    for (auto& m : v_mem) v_ptrs.push_back(m.data());
    view = KVView{t, block_size, n_kv, hd, k_ptrs.data(), v_ptrs.data(), n_tokens};
  }
};

}  // namespace longctx::kernels::testing
