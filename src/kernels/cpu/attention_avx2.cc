// AVX2 attention tile: cpu/attention_tile.h over 8-lane vectors and 16 registers.
#include <immintrin.h>

#include "kernels/cpu/isa.h"
#include "kernels/cpu/vmath_avx2.h"

namespace longctx::kernels::cpu::avx2 {
namespace {

struct V8 {
  using V = __m256;
  // 16 registers: values four rows x two vectors (8 accumulators, 4 weights, the value).
  static constexpr int kW = 8, kRegs = 16, kValueRows = 4, kValueVecs = 2, kFoldFloats = 4;
  static V zero() { return _mm256_setzero_ps(); }
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V loadu(const float* p) { return _mm256_loadu_ps(p); }
  static void storeu(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
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

#include "kernels/cpu/attention_tile.h"

namespace longctx::kernels::cpu::avx2 {

bool attn_tile_int8(const AttnTile& t, const int8_t* k_codes, const uint16_t* k_scales,
                    const int8_t* v_codes, const uint16_t* v_scales) {
  return attn::int8_tile<V8>(t, k_codes, k_scales, v_codes, v_scales);
}

void attn_tile(const AttnTile& t) { attn::any_tile<V8>(t); }

}  // namespace longctx::kernels::cpu::avx2
