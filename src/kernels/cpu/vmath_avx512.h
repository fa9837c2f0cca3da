// AVX-512 helpers shared by this path's translation units (internal linkage only: include only
// from TUs compiled with the AVX-512 flags).
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "core/dtype.h"

namespace longctx::kernels::cpu::avx512 {
namespace {

inline __mmask16 mask16(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xffff)
                 : (n <= 0 ? static_cast<__mmask16>(0) : static_cast<__mmask16>((1u << n) - 1));
}

// 16 elements at p + off (f32, f16 or bf16) as f32 (f16: vcvtph2ps; bf16: widen and shift); `m`
// masks the loaded elements (others are zero).
template <DType DT>
inline __m512 load16(const void* p, int64_t off, __mmask16 m) {
  if constexpr (DT == DType::kF32) {
    return _mm512_maskz_loadu_ps(m, static_cast<const float*>(p) + off);
  } else {
    const __m256i h = _mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(p) + off);
    if constexpr (DT == DType::kF16) {
      return _mm512_cvtph_ps(h);
    } else {
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
  }
}
template <DType DT>
inline __m512 load16(const void* p, int64_t off) {
  if constexpr (DT == DType::kF32) {
    return _mm512_loadu_ps(static_cast<const float*>(p) + off);
  } else {
    const __m256i h =
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(p) + off));
    if constexpr (DT == DType::kF16) {
      return _mm512_cvtph_ps(h);
    } else {
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
  }
}

// exp(x) for x in float range, Cephes-style: |rel error| < 2 ulp; x below -87.3 gives ~0.
inline __m512 exp_ps(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.33654f)), _mm512_set1_ps(88.37626f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500E-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
  p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.f)));
  return _mm512_scalef_ps(p, n);
}

// In-register transpose of 16 vectors of 16 32-bit lanes, up to a fixed permutation of the
// output vectors: afterwards r[transpose_slot(c)] holds former column c.
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    const __m512 a = t[4 * i], b = t[4 * i + 1], c = t[4 * i + 2], d = t[4 * i + 3];
    r[4 * i] = _mm512_shuffle_ps(a, c, 0x44);
    r[4 * i + 1] = _mm512_shuffle_ps(a, c, 0xee);
    r[4 * i + 2] = _mm512_shuffle_ps(b, d, 0x44);
    r[4 * i + 3] = _mm512_shuffle_ps(b, d, 0xee);
  }
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j) {
      t[8 * i + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + 4 + j], 0x88);
      t[8 * i + 4 + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + 4 + j], 0xdd);
    }
  for (int j = 0; j < 8; ++j) {
    r[j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);
    r[8 + j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xdd);
  }
}

// Slot of column c after transpose16 (found once by transposing a matrix of column indices).
inline int transpose_slot(int c) {
  static const struct Slots {
    int slot[16];
    Slots() {
      alignas(64) float m[16];
      __m512 r[16];
      for (int i = 0; i < 16; ++i) {
        for (int j = 0; j < 16; ++j) m[j] = static_cast<float>(j);
        r[i] = _mm512_load_ps(m);
      }
      transpose16(r);
      for (int v = 0; v < 16; ++v) {
        _mm512_store_ps(m, r[v]);
        slot[static_cast<int>(m[0])] = v;
      }
    }
  } s;
  return s.slot[c];
}

// Vector traits of this path for the kernels written once over both paths (cpu/attention_tile.h,
// cpu/gemm_f32.h; each lists what it uses).
struct Vec16 {
  using V = __m512;
  static constexpr int kW = 16, kRegs = 32;
  static constexpr int kValueRows = 4, kValueVecs = 4, kFoldFloats = 16;  // attention
  static constexpr int kGemmVecs = 4;  // GEMM micro-kernel: 6 x 64 (24 accumulators)
  // Matvec tiles for several x rows: 4 x rows x 1 weight row (16 accumulators, cpu/matvec.h).
  static constexpr int kMatvecX = 4;
  static V zero() { return _mm512_setzero_ps(); }
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V loadu(const float* p) { return _mm512_loadu_ps(p); }
  static void storeu(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V div(V a, V b) { return _mm512_div_ps(a, b); }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V max(V a, V b) { return _mm512_max_ps(a, b); }
  static V exp(V x) { return exp_ps(x); }
  static float first(V v) { return _mm512_cvtss_f32(v); }
  static float reduce_add(V v) { return _mm512_reduce_add_ps(v); }
  static float reduce_max(V v) { return _mm512_reduce_max_ps(v); }
  template <DType DT>
  static V load(const void* p, int64_t off) {
    return load16<DT>(p, off);
  }
  template <DType DT>
  static V load_n(const void* p, int64_t off, int n) {
    return load16<DT>(p, off, mask16(n));
  }
  static void store_n(float* p, V v, int n) { _mm512_mask_storeu_ps(p, mask16(n), v); }
  static float f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }
  // 16 bytes at c, zero-extended to 32-bit lanes.
  static __m512i u8(const uint8_t* c) {
    return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c)));
  }
  // The low / high nibbles of 16 bytes at c, as f32.
  static V low_nibbles(const uint8_t* c) {
    return _mm512_cvtepi32_ps(_mm512_and_si512(u8(c), _mm512_set1_epi32(15)));
  }
  static V high_nibbles(const uint8_t* c) {
    return _mm512_cvtepi32_ps(_mm512_srli_epi32(u8(c), 4));
  }
  static V load_i8(const int8_t* p) {
    return _mm512_cvtepi32_ps(
        _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  // Bits [lo, hi) of the tile's 64 keys.
  using Range = uint64_t;
  static Range range(int lo, int hi) {
    const uint64_t up = hi >= 64 ? ~uint64_t{0} : ((uint64_t{1} << hi) - 1);
    return up & ~((uint64_t{1} << lo) - 1);
  }
  static V keep(V x, Range r, int g, V fill) {
    return _mm512_mask_mov_ps(fill, static_cast<__mmask16>(r >> (16 * g)), x);
  }
  // fold4: lane L of the result holds four floats whose sum is key 4q+L's score.
  static void fold_quad(V a, V b, V c, V d, float* w) {
    const V ab = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
    const V cd = _mm512_add_ps(_mm512_shuffle_f32x4(c, d, 0x44), _mm512_shuffle_f32x4(c, d, 0xEE));
    _mm512_store_ps(
        w, _mm512_add_ps(_mm512_shuffle_f32x4(ab, cd, 0x88), _mm512_shuffle_f32x4(ab, cd, 0xDD)));
  }
  // Sixteen scores from the four fold4 results (keys 0-3, 4-7, 8-11, 12-15), in key order.
  static V fold_group(const float* w) {
    const V w0 = _mm512_load_ps(w), w1 = _mm512_load_ps(w + 16), w2 = _mm512_load_ps(w + 32),
            w3 = _mm512_load_ps(w + 48);
    const V z0 = _mm512_add_ps(_mm512_shuffle_ps(w0, w1, 0x44), _mm512_shuffle_ps(w0, w1, 0xEE));
    const V z1 = _mm512_add_ps(_mm512_shuffle_ps(w2, w3, 0x44), _mm512_shuffle_ps(w2, w3, 0xEE));
    // Element 4L + p now holds key 4p + L.
    const V f = _mm512_add_ps(_mm512_shuffle_ps(z0, z1, 0x88), _mm512_shuffle_ps(z0, z1, 0xDD));
    const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    return _mm512_permutexvar_ps(idx, f);
  }
  static void transpose(V r[16]) { transpose16(r); }
  static int slot(int c) { return transpose_slot(c); }
};

}  // namespace
}  // namespace longctx::kernels::cpu::avx512
