// AVX-512 attention tile: cpu/attention_tile.h over 16-lane vectors and 32 registers.
#include <immintrin.h>

#include "kernels/cpu/isa.h"
#include "kernels/cpu/vmath_avx512.h"

namespace longctx::kernels::cpu::avx512 {
namespace {

struct V16 {
  using V = __m512;
  static constexpr int kW = 16, kRegs = 32, kValueRows = 4, kValueVecs = 4, kFoldFloats = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V loadu(const float* p) { return _mm512_loadu_ps(p); }
  static void storeu(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
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

#include "kernels/cpu/attention_tile.h"

namespace longctx::kernels::cpu::avx512 {

bool attn_tile_int8(const AttnTile& t, const int8_t* k_codes, const uint16_t* k_scales,
                    const int8_t* v_codes, const uint16_t* v_scales) {
  return attn::int8_tile<V16>(t, k_codes, k_scales, v_codes, v_scales);
}

void attn_tile(const AttnTile& t) { attn::any_tile<V16>(t); }

}  // namespace longctx::kernels::cpu::avx512
