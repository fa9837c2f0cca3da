// AVX2/FMA/F16C helpers shared by this path's translation units (internal linkage only: include
// only from TUs compiled with the AVX2 flags).
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "core/dtype.h"

namespace longctx::kernels::cpu::avx2 {
namespace {

// Lane mask for the first n (0..8) lanes.
inline __m256i mask8(int64_t n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n > 8 ? 8 : n)), idx);
}

// 8 elements at p + off of dtype DT as f32; only the first n (<= 8) are read, the rest are zero.
template <DType DT>
inline __m256 load8(const void* p, int64_t off, int64_t n = 8) {
  if constexpr (DT == DType::kF32) {
    const float* f = static_cast<const float*>(p) + off;
    return n >= 8 ? _mm256_loadu_ps(f) : _mm256_maskload_ps(f, mask8(n));
  } else {
    const uint16_t* h = static_cast<const uint16_t*>(p) + off;
    __m128i v;
    if (n >= 8) {
      v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(h));
    } else {
      uint16_t tmp[8] = {};
      std::memcpy(tmp, h, static_cast<size_t>(n > 0 ? n : 0) * 2);
      v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(tmp));
    }
    if constexpr (DT == DType::kF16) return _mm256_cvtph_ps(v);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16));
  }
}

inline void store8(float* p, __m256 v, int64_t n) {
  if (n >= 8) {
    _mm256_storeu_ps(p, v);
  } else {
    _mm256_maskstore_ps(p, mask8(n), v);
  }
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// exp(x), Cephes-style (|rel error| < 2 ulp); x below -87.3 gives ~0.
inline __m256 exp_ps(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.33654f)), _mm256_set1_ps(88.37626f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500E-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
  p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.f)));
  // 2^n: n in [-126, 127] after the clamp (n = -127 only for the smallest inputs: scale in two).
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i h = _mm256_srai_epi32(ni, 1);
  const __m256 s1 =
      _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(h, _mm256_set1_epi32(127)), 23));
  const __m256 s2 = _mm256_castsi256_ps(
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, h), _mm256_set1_epi32(127)), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

// Vector traits of this path for the kernels written once over both paths (cpu/attention_tile.h,
// cpu/gemm_f32.h; each lists what it uses).
struct Vec8 {
  using V = __m256;
  static constexpr int kW = 8, kRegs = 16;
  // Attention values: four rows x two vectors (8 accumulators, 4 weights, the value).
  static constexpr int kValueRows = 4, kValueVecs = 2, kFoldFloats = 4;
  static constexpr int kGemmVecs = 2;  // GEMM micro-kernel: 6 x 16 (12 accumulators)
  // Matvec tiles for several x rows: 3 x rows x 1 weight row (12 accumulators, cpu/matvec.h).
  static constexpr int kMatvecX = 3;
  static V zero() { return _mm256_setzero_ps(); }
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V loadu(const float* p) { return _mm256_loadu_ps(p); }
  static void storeu(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V div(V a, V b) { return _mm256_div_ps(a, b); }
  static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V max(V a, V b) { return _mm256_max_ps(a, b); }
  static V exp(V x) { return exp_ps(x); }
  static float first(V v) { return _mm256_cvtss_f32(v); }
  static float reduce_add(V v) { return hsum(v); }
  static float reduce_max(V v) { return hmax(v); }
  template <DType DT>
  static V load(const void* p, int64_t off) {
    return load8<DT>(p, off);
  }
  template <DType DT>
  static V load_n(const void* p, int64_t off, int n) {
    return load8<DT>(p, off, n);
  }
  static void store_n(float* p, V v, int n) { store8(p, v, n); }
  static float f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }
  // 8 bytes at c, zero-extended to 32-bit lanes.
  static __m256i u8(const uint8_t* c) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(c)));
  }
  // The low / high nibbles of 8 bytes at c, as f32.
  static V low_nibbles(const uint8_t* c) {
    return _mm256_cvtepi32_ps(_mm256_and_si256(u8(c), _mm256_set1_epi32(15)));
  }
  static V high_nibbles(const uint8_t* c) {
    return _mm256_cvtepi32_ps(_mm256_srli_epi32(u8(c), 4));
  }
  static V load_i8(const int8_t* p) {
    return _mm256_cvtepi32_ps(
        _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  struct Range {
    __m256i lo, hi;
  };
  static Range range(int lo, int hi) { return {_mm256_set1_epi32(lo), _mm256_set1_epi32(hi)}; }
  static V keep(V x, const Range& r, int g, V fill) {
    const __m256i idx =
        _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(8 * g));
    // lo <= key (not lo > key) and hi > key.
    const __m256i in =
        _mm256_andnot_si256(_mm256_cmpgt_epi32(r.lo, idx), _mm256_cmpgt_epi32(r.hi, idx));
    return _mm256_blendv_ps(fill, x, _mm256_castsi256_ps(in));
  }
  // The four scores of keys 4q..4q+3 (sums of a, b, c, d).
  static void fold_quad(V a, V b, V c, V d, float* w) {
    const V h = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    _mm_store_ps(w, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
  }
  static V fold_group(const float* w) { return _mm256_load_ps(w); }
  static void transpose(V r[8]) {
    V t[8], s[8];
    for (int i = 0; i < 4; ++i) {
      t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; ++i) {
      s[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
      s[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
      s[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
      s[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int i = 0; i < 4; ++i) {
      r[i] = _mm256_permute2f128_ps(s[i], s[4 + i], 0x20);
      r[4 + i] = _mm256_permute2f128_ps(s[i], s[4 + i], 0x31);
    }
  }
  static int slot(int c) { return c; }
};

}  // namespace
}  // namespace longctx::kernels::cpu::avx2
