// AVX-512 decode tile over int8 / int4 KV blocks (Isa::attn_tile_quant): scores by VNNI integer
// dot products of query codes and key codes, values by f32 probabilities times value codes with
// the value scales folded into the probabilities (docs/kv-quantization.md, "Decode tiles").
//
// Scores. The query rows are quantized to int8 per 32 dims (x ~ d * code, d = max|x| / 127) and
// vpdpbusd multiplies 16 keys x 4 dims by the codes of one query chunk per instruction, with the
// tile's keys transposed (lane L = key L) once for all query rows:
//   int8 keys (per token, symmetric, groups of 32 dims): the unsigned operand is the code + 128,
//     so per group q . k = dot(k + 128, q) - 128 sum(q); times the key's and the query's scales.
//   int4 keys (per channel over 16-token groups, x^ = m + s c): q . x^ = (q o s) . c + q . m, so
//     per token group the query is quantized as q o s against the unsigned nibble codes, and q . m
//     is added in f32.
// Values. acc += sum_j p_j x^_j, decoded in registers once per tile for every query row (the GQA
// group): int8 x^ = s c, so p s (one product per key and group, not per value) multiplies the
// converted codes; int4 x^ = m + s c adds sum_j p_j m_j per group after the codes.
//
// Only the query is rounded beyond f32: a score moves by at most sum over its groups of
// d/2 x sum|x^| (reference::attention_quant_query is this arithmetic in scalar form).
#include <immintrin.h>

#include "kernels/cpu/attention_tile.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/kv_quant.h"
#include "kernels/cpu/vmath_avx512.h"
#include "kernels/kv_quant.h"

namespace longctx::kernels::cpu::avx512 {
namespace {
namespace vnni {

constexpr int kT = kAttnTile;
constexpr int kMaxHd = 256, kMaxGroups = kMaxHd / 32;
// Query rows of one pass (scores and values keep R rows' accumulators in registers); a tile takes
// at most kMaxRows (decode: one position's GQA group).
constexpr int kPassRows = 8, kMaxRows = 16;

// acc + vpdpbusd(u, the 4 bytes at x in every lane): the broadcast folded into the memory operand
// (GCC emits a separate vpbroadcastd for _mm512_set1_epi32), as in quant_gemm_avx512.cc.
inline __m512i dpbusd_bcast(__m512i acc, __m512i u, const int8_t* x) {
  __asm__("vpdpbusd %2%{1to16%}, %1, %0"
          : "+v"(acc)
          : "v"(u), "m"(*reinterpret_cast<const int32_t*>(x)));
  return acc;
}

// At a tile's start, the next tile's scales (the rows after this tile's, as vec::TileAhead's keys;
// per-channel int4 keys: the token groups after the tile's). The codes follow during the scores
// (vec::TileAhead). Measured on SmolLM2's shape at depth 8192, 2 threads: the int8 tile's share of
// decode time fell from 1.6x to 0.7-0.9x the weight matvecs', and decoding became faster than with
// an f16 cache (docs/kv-quantization.md).
inline void prefetch_next_meta(const QuantTile& c, int nk, int hd) {
  if (c.k_type == KvType::kInt8) {
    const size_t km = kv_meta_bytes(c.k_type, hd, true);
    vec::prefetch_lines(c.k_meta, nk * km, nk * km);
  } else {  // per channel: [hd] scales and [hd] minima per group of kKvChannelGroup tokens
    const size_t g0 = (c.k_first + nk) / kKvChannelGroup, group = static_cast<size_t>(hd) * 4;
    vec::prefetch_lines(c.k_meta, g0 * group,
                        (nk + kKvChannelGroup - 1) / kKvChannelGroup * group);
  }
  const size_t vm = kv_meta_bytes(c.v_type, hd, false);
  vec::prefetch_lines(c.v_meta, nk * vm, nk * vm);
}

inline __m512 abs_ps(__m512 x) {
  return _mm512_castsi512_ps(
      _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fffffff)));
}

// Lane k of the result reduces v[k] for k < 8 (op: max or add over all 16 lanes), at lane
// reduced_lane(k): a tree of shuffles shared by the eight reductions (about 3 instructions each
// instead of 9 for one vector alone, and no serial chain per vector).
inline int reduced_lane(int k) { return 4 * (k % 4) + 2 * (k / 4); }
template <bool kMax>
inline __m512 reduce8(const __m512* v) {
  const auto op = [](__m512 a, __m512 b) { return kMax ? _mm512_max_ps(a, b) : _mm512_add_ps(a, b); };
  __m512 a[4], b[2];
  for (int k = 0; k < 4; ++k)  // blocks 0-1: v[2k] halves combined; blocks 2-3: v[2k+1]
    a[k] = op(_mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], 0x44),
              _mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], 0xee));
  for (int k = 0; k < 2; ++k)  // block q: v[4k + q] in four lanes
    b[k] = op(_mm512_shuffle_f32x4(a[2 * k], a[2 * k + 1], 0x88),
              _mm512_shuffle_f32x4(a[2 * k], a[2 * k + 1], 0xdd));
  // Block q: lanes 0-1 v[q], lanes 2-3 v[4 + q]; then each lane pair summed.
  const __m512 c = op(_mm512_shuffle_ps(b[0], b[1], 0x44), _mm512_shuffle_ps(b[0], b[1], 0xee));
  return op(c, _mm512_shuffle_ps(c, c, 0xb1));
}

// Query codes of R rows: code[i][32g + k] ~ x / scale[i][g]; sum128[i][g] = 128 x the group's
// code sum (the offset of int8 keys read as unsigned).
struct QueryCodes {
  alignas(64) int8_t code[kMaxRows][kMaxHd];
  float scale[kMaxRows][kMaxGroups];
  int32_t sum128[kMaxRows][kMaxGroups];
};

// x[0..32) (two vectors) -> 32 codes at out; returns the scale (0 for a zero group). The codes are
// rint(x * (127 / max|x|)), as reference::attention_quant_query rounds them.
inline float quantize32(__m512 x0, __m512 x1, int8_t* out, int32_t* sum) {
  const float amax = _mm512_reduce_max_ps(_mm512_max_ps(abs_ps(x0), abs_ps(x1)));
  const __m512 inv = _mm512_set1_ps(amax > 0.f ? 127.f / amax : 0.f);
  const __m512i c0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, inv));
  const __m512i c1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, inv));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm512_cvtepi32_epi8(c0));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 16), _mm512_cvtepi32_epi8(c1));
  if (sum) *sum = 128 * _mm512_reduce_add_epi32(_mm512_add_epi32(c0, c1));
  return amax / 127.f;
}

// A tile's f16 metadata [key][S] (S per key: scales, or int4 values' [scale, minimum] pairs) as
// f32 [S][kT], so that lanes are keys. S a power of two <= 16: each pair of converted vectors
// holds 32 / S keys' entries, picked by one two-source permute per offset.
template <int S>
void widen_transposed(const uint16_t* meta, int nk, float* out) {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int j0 = 0; j0 < nk; j0 += 16) {
    __m512 f[S > 1 ? S : 2];  // keys j0 .. j0 + 15, [key][S]; past nk: zero
    const int n = (nk - j0 < 16 ? nk - j0 : 16) * S;
    for (int v = 0; v < (S > 1 ? S : 1); ++v)
      f[v] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask16(n - 16 * v), meta + j0 * S + 16 * v));
    for (int o = 0; o < S; ++o) {
      __m512 r = f[0];
      if constexpr (S > 1) {
        constexpr int per = 32 / S;  // lanes per pair of vectors
        const __m512i idx = _mm512_and_si512(
            _mm512_add_epi32(_mm512_mullo_epi32(lane, _mm512_set1_epi32(S)), _mm512_set1_epi32(o)),
            _mm512_set1_epi32(31));
        r = _mm512_permutex2var_ps(f[0], idx, f[1]);
        for (int q = 1; q < S / 2; ++q)
          r = _mm512_mask_mov_ps(r, static_cast<__mmask16>(((1u << per) - 1) << (q * per)),
                                 _mm512_permutex2var_ps(f[2 * q], idx, f[2 * q + 1]));
      }
      _mm512_storeu_ps(out + o * kT + j0, r);
    }
  }
}

// widen_transposed for S known only at run time (S = hd / 32 or twice it, <= 16); false for an S
// that is not a power of two (head dims like 96), which takes the scalar conversion.
inline void widen_meta(const void* meta, int nk, int S, float* out) {
  const auto* m = static_cast<const uint16_t*>(meta);
  switch (S) {
    case 1: return widen_transposed<1>(m, nk, out);
    case 2: return widen_transposed<2>(m, nk, out);
    case 4: return widen_transposed<4>(m, nk, out);
    case 8: return widen_transposed<8>(m, nk, out);
    case 16: return widen_transposed<16>(m, nk, out);
    default:
      for (int j = 0; j < nk; ++j)
        for (int o = 0; o < S; ++o) out[o * kT + j] = _cvtsh_ss(m[j * S + o]);
  }
}

// ---- keys ----

// kt[c]: lane L holds the 4 bytes of chunk c (dims 4c .. 4c + 3) of key L, for c < hd / 4.
struct KeyChunks {
  __m512i kt[kMaxHd / 4];
};

// 16 rows of `bytes` (<= 64) bytes at row + L * stride (rows L >= n: zero) -> kt[0 .. bytes / 4),
// each byte XOR flip. transpose16 leaves former column c in r[c] (transpose_slot is the identity).
inline void transpose_rows(const uint8_t* row, size_t stride, int n, int bytes, __m512i flip,
                           __m512i* kt) {
  __m512 r[16];
  if (n == 16 && bytes == 64) {
    for (int L = 0; L < 16; ++L) r[L] = _mm512_loadu_ps(row + L * stride);
  } else {
    const __mmask64 m = bytes == 64 ? ~__mmask64{0} : (__mmask64{1} << bytes) - 1;
    for (int L = 0; L < 16; ++L)
      r[L] = L < n ? _mm512_castsi512_ps(_mm512_maskz_loadu_epi8(m, row + L * stride))
                   : _mm512_setzero_ps();
  }
  transpose16(r);
  for (int c = 0; c < bytes / 4; ++c) kt[c] = _mm512_xor_si512(_mm512_castps_si512(r[c]), flip);
}

// int4 keys: 16 packed rows of hd / 2 bytes (channel i < hd/2 in the low nibble of byte i,
// channel hd/2 + i in its high nibble) -> the unsigned codes of every chunk. Rows L outside
// [first, first + n) are zero. Returns whether the lanes hold the keys in kPairOrder instead of
// 0 .. 15 (head_dim 64).
inline bool int4_key_chunks(const uint8_t* rows, int first, int n, int hd, KeyChunks& k) {
  const int half = hd / 2;
  const __m512i lo4 = _mm512_set1_epi8(0x0f);
  auto nibbles = [&](int c, __m512i x) {  // packed dword c: chunks c (low) and half/4 + c (high)
    k.kt[c] = _mm512_and_si512(x, lo4);
    k.kt[half / 4 + c] = _mm512_and_si512(_mm512_srli_epi16(x, 4), lo4);
  };
  const uint32_t valid = ((1u << n) - 1) << first;
  if (half == 32) {
    // Keys 2m and 2m + 1 fill one 64-byte load; an 8 x 16 dword transpose (24 shuffles, not a
    // 16 x 16 one's 64) leaves lane order kPairOrder.
    __m512i r[8], t[8], u[8];
    for (int m = 0; m < 8; ++m) {
      const __mmask64 mask = ((valid >> (2 * m)) & 1 ? 0xffffffffull : 0) |
                             ((valid >> (2 * m + 1)) & 1 ? 0xffffffff00000000ull : 0);
      r[m] = mask == ~0ull ? _mm512_loadu_si512(rows + 64 * m)
                           : _mm512_maskz_loadu_epi8(mask, rows + 64 * m);
    }
    for (int q = 0; q < 8; q += 2) {
      t[q] = _mm512_unpacklo_epi32(r[q], r[q + 1]);
      t[q + 1] = _mm512_unpackhi_epi32(r[q], r[q + 1]);
    }
    for (int q = 0; q < 8; q += 4) {  // u[q + x], block b: dword 4b + x of r[q .. q + 3]
      u[q] = _mm512_unpacklo_epi64(t[q], t[q + 2]);
      u[q + 1] = _mm512_unpackhi_epi64(t[q], t[q + 2]);
      u[q + 2] = _mm512_unpacklo_epi64(t[q + 1], t[q + 3]);
      u[q + 3] = _mm512_unpackhi_epi64(t[q + 1], t[q + 3]);
    }
    // Dword c = 4b + x: blocks b and b + 2 (keys 2m and 2m + 1) of u[x] (m < 4) and u[4 + x].
    for (int x = 0; x < 4; ++x) {
      nibbles(x, _mm512_shuffle_i32x4(u[x], u[4 + x], 0x88));
      nibbles(4 + x, _mm512_shuffle_i32x4(u[x], u[4 + x], 0xdd));
    }
    return true;
  }
  for (int b = 0; b < half; b += 64) {
    const int bytes = half - b < 64 ? half - b : 64;
    __m512 r[16];
    const __mmask64 m = bytes == 64 ? ~__mmask64{0} : (__mmask64{1} << bytes) - 1;
    for (int L = 0; L < 16; ++L)
      r[L] = (valid >> L) & 1 ? _mm512_castsi512_ps(_mm512_maskz_loadu_epi8(m, rows + L * half + b))
                              : _mm512_setzero_ps();
    transpose16(r);
    for (int c = 0; c < bytes / 4; ++c) nibbles(b / 4 + c, _mm512_castps_si512(r[c]));
  }
  return false;
}

// sf[i] (lanes = keys) += for the NG (1 or 2) 32-dim groups from g: (dot(kt, code[i]) - off[i][g])
// x w[g] x scale[i][g] (int8 keys: w = the keys' scales, off = sum128; int4: w = 1, off = 0). Two
// groups at once give 2R independent accumulator chains.
template <int R, int NG, bool kInt8>
inline void dot_groups(const KeyChunks& k, const QueryCodes& qc, int row0, int g, const __m512* w,
                       __m512* sf) {
  __m512i acc[NG][R];
  for (int h = 0; h < NG; ++h)
    for (int i = 0; i < R; ++i) acc[h][i] = _mm512_setzero_si512();
  for (int c = 0; c < 8; ++c)
    for (int h = 0; h < NG; ++h) {
      const __m512i kv = k.kt[8 * (g + h) + c];
      for (int i = 0; i < R; ++i)
        acc[h][i] = dpbusd_bcast(acc[h][i], kv, qc.code[row0 + i] + 32 * (g + h) + 4 * c);
    }
  for (int h = 0; h < NG; ++h)
    for (int i = 0; i < R; ++i) {
      __m512i a = acc[h][i];
      __m512 s = _mm512_set1_ps(qc.scale[row0 + i][g + h]);
      if constexpr (kInt8) {
        a = _mm512_sub_epi32(a, _mm512_set1_epi32(qc.sum128[row0 + i][g + h]));
        s = _mm512_mul_ps(w[g + h], s);
      }
      sf[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a), s, sf[i]);
    }
}

template <int R, bool kInt8>
inline void dot_all(const KeyChunks& k, const QueryCodes& qc, int row0, int groups,
                    const __m512* w, __m512* sf) {
  int g = 0;
  for (; g + 2 <= groups; g += 2) dot_groups<R, 2, kInt8>(k, qc, row0, g, w, sf);
  if (g < groups) dot_groups<R, 1, kInt8>(k, qc, row0, g, w, sf);
}

void quantize_rows(const float* q, int rows, int hd, QueryCodes& qc) {
  for (int i = 0; i < rows; ++i)
    for (int g = 0; g < hd / 32; ++g) {
      const float* x = q + i * hd + 32 * g;
      qc.scale[i][g] = quantize32(_mm512_loadu_ps(x), _mm512_loadu_ps(x + 16), qc.code[i] + 32 * g,
                                  &qc.sum128[i][g]);
    }
}

// t.s[i][j] for int8 keys: km = the tile's key scales widened to f32, [groups][kT].
template <int R>
void scores_int8(const AttnTile& t, const QuantTile& c, const QueryCodes& qc, int row0,
                 const float* km, const vec::TileAhead& ahead) {
  const int hd = t.head_dim, groups = hd / 32;
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  KeyChunks k;
  for (int j0 = 0; j0 < t.n_keys; j0 += 16) {
    const int n = t.n_keys - j0 < 16 ? t.n_keys - j0 : 16;
    if (row0 == 0) ahead(j0, n);
    for (int b = 0; b < hd; b += 64)
      transpose_rows(c.k_codes + static_cast<size_t>(j0) * hd + b, hd, n,
                     hd - b < 64 ? hd - b : 64, flip, k.kt + b / 4);
    __m512 w[kMaxGroups], sf[R];
    for (int g = 0; g < groups; ++g) w[g] = _mm512_loadu_ps(km + g * kT + j0);
    for (int i = 0; i < R; ++i) sf[i] = _mm512_setzero_ps();
    dot_all<R, true>(k, qc, row0, groups, w, sf);
    for (int i = 0; i < R; ++i) _mm512_storeu_ps(t.s + (row0 + i) * kT + j0, sf[i]);
  }
}

// Horizontal reductions queued 8 at a time into one reduce8 tree; each result goes to its float.
template <bool kMax>
struct Reductions {
  __m512 v[8];
  float* dst[8];
  int n = 0;
  void add(__m512 x, float* d) {
    v[n] = x;
    dst[n++] = d;
    if (n == 8) flush();
  }
  void flush() {
    if (n == 0) return;
    for (int k = n; k < 8; ++k) v[k] = _mm512_setzero_ps();
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, reduce8<kMax>(v));
    for (int k = 0; k < n; ++k) *dst[k] = lanes[reduced_lane(k)];
    n = 0;
  }
};

// t.s[i][j] for int4 keys (per channel): per token group, the rows' q o s quantized, plus q . m.
// km: the tile's token groups' [scales][minima] widened to f32, 2 x hd per group. The scales of
// every token group of the tile are found first, so that their reductions and divisions overlap.
template <int R>
void scores_int4(const AttnTile& t, const QuantTile& c, int row0, const float* km,
                 const vec::TileAhead& ahead) {
  const int hd = t.head_dim, half = hd / 2, groups = hd / 32, kf = c.k_first;
  const int n_tg = (kf + t.n_keys + kKvChannelGroup - 1) / kKvChannelGroup;  // <= 5
  const int per_tg = R * groups;  // (row, group) pairs of a token group
  alignas(64) float scale[5 * kPassRows * kMaxGroups + 16], inv[5 * kPassRows * kMaxGroups + 16];
  float mdot[5][R];
  Reductions<true> maxima;
  Reductions<false> sums;
  for (int tg = 0; tg < n_tg; ++tg) {
    const float* s = km + static_cast<size_t>(tg) * 2 * hd;
    for (int i = 0; i < R; ++i) {
      const float* q = t.q + (row0 + i) * hd;
      __m512 md = _mm512_setzero_ps();
      for (int g = 0; g < groups; ++g) {
        const __m512 q0 = _mm512_loadu_ps(q + 32 * g), q1 = _mm512_loadu_ps(q + 32 * g + 16);
        md = _mm512_fmadd_ps(q0, _mm512_loadu_ps(s + hd + 32 * g), md);
        md = _mm512_fmadd_ps(q1, _mm512_loadu_ps(s + hd + 32 * g + 16), md);
        maxima.add(_mm512_max_ps(abs_ps(_mm512_mul_ps(q0, _mm512_loadu_ps(s + 32 * g))),
                                 abs_ps(_mm512_mul_ps(q1, _mm512_loadu_ps(s + 32 * g + 16)))),
                   scale + tg * per_tg + i * groups + g);
      }
      sums.add(md, &mdot[tg][i]);
    }
  }
  maxima.flush();
  sums.flush();
  // Scales max / 127 and factors 127 / max (0 for a zero group), as quantize32 divides.
  for (int p = 0; p < n_tg * per_tg; p += 16) {
    const __m512 a = _mm512_loadu_ps(scale + p);
    _mm512_storeu_ps(inv + p, _mm512_maskz_div_ps(_mm512_cmp_ps_mask(a, _mm512_setzero_ps(), _CMP_GT_OQ),
                                                  _mm512_set1_ps(127.f), a));
    _mm512_storeu_ps(scale + p, _mm512_div_ps(a, _mm512_set1_ps(127.f)));
  }
  QueryCodes qc;
  KeyChunks k;
  const __m512i unpair = _mm512_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15);
  for (int tg = 0; tg < n_tg; ++tg) {
    // Lanes L <-> tile keys 16 tg - kf + L; valid: [first, first + n).
    const int j0 = 16 * tg - kf, first = j0 < 0 ? -j0 : 0;
    const int n = (t.n_keys - j0 < 16 ? t.n_keys - j0 : 16) - first;
    const float* s = km + static_cast<size_t>(tg) * 2 * hd;
    for (int i = 0; i < R; ++i)
      for (int g = 0; g < groups; ++g) {
        const float* q = t.q + (row0 + i) * hd + 32 * g;
        const __m512 f = _mm512_set1_ps(inv[tg * per_tg + i * groups + g]);
        for (int h = 0; h < 2; ++h)
          _mm_storeu_si128(reinterpret_cast<__m128i*>(qc.code[i] + 32 * g + 16 * h),
                           _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(
                               _mm512_mul_ps(_mm512_loadu_ps(q + 16 * h),
                                             _mm512_loadu_ps(s + 32 * g + 16 * h)),
                               f))));
        qc.scale[i][g] = scale[tg * per_tg + i * groups + g];
      }
    if (row0 == 0) ahead(j0 + first, n);
    const bool pair_order =
        int4_key_chunks(c.k_codes + static_cast<ptrdiff_t>(j0) * half, first, n, hd, k);
    __m512 sf[R];
    for (int i = 0; i < R; ++i) sf[i] = _mm512_set1_ps(mdot[tg][i]);
    dot_all<R, false>(k, qc, 0, groups, nullptr, sf);
    const __mmask16 valid = static_cast<__mmask16>(((1u << n) - 1) << first);
    for (int i = 0; i < R; ++i)  // kPairOrder: lanes hold keys 0 2 4 6 1 3 5 7 8 10 12 14 9 ...
      _mm512_mask_storeu_ps(t.s + (row0 + i) * kT + j0, valid,
                            pair_order ? _mm512_permutexvar_ps(unpair, sf[i]) : sf[i]);
  }
}

// ---- values ----

// The two vectors of value columns d .. d + 31 (one group) of key j, as codes (int8: x^ / s;
// int4: (x^ - m) / s).
struct Int8Values {
  const int8_t* codes;
  int hd;
  void operator()(int j, int d, __m512* x) const {
    const int8_t* p = codes + static_cast<size_t>(j) * hd + d;
    x[0] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
    x[1] = _mm512_cvtepi32_ps(
        _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16))));
  }
};
// Byte i of a group: element i (low nibble), element i + 16 (high). A nibble becomes a float by
// a 16-entry table lookup (vpermps reads only the low 4 bits of each index): a shuffle, where a
// conversion would compete with the FMAs for the floating-point pipes.
struct Int4Values {
  const uint8_t* codes;
  int hd;
  __m512 table = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  void operator()(int j, int d, __m512* x) const {
    const __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128(
        reinterpret_cast<const __m128i*>(codes + static_cast<size_t>(j) * (hd / 2) + d / 2)));
    x[0] = _mm512_permutexvar_ps(b, table);
    x[1] = _mm512_permutexvar_ps(_mm512_srli_epi32(b, 4), table);
  }
};

// acc[i][d0 .. d0 + 32 NG) += sum_{j in [lo, hi)} ps[g][i][j] x_j for R rows, NG groups of
// columns from d0; ps[g] = the probabilities times group g's scales ([row][kT], row stride rs).
template <class VL, int R, int NG>
inline void values_pass(const float* ps, int rs, const VL& vl, int hd, int d0, int lo, int hi,
                        float* acc) {
  __m512 a[R][2 * NG];
  for (int i = 0; i < R; ++i)
    for (int c = 0; c < 2 * NG; ++c) a[i][c] = _mm512_loadu_ps(acc + i * hd + d0 + 16 * c);
  const float* pg = ps + static_cast<size_t>(d0 / 32) * rs * kT;
  for (int j = lo; j < hi; ++j) {
    __m512 x[2 * NG];
    for (int h = 0; h < NG; ++h) vl(j, d0 + 32 * h, x + 2 * h);
    for (int i = 0; i < R; ++i)
      for (int h = 0; h < NG; ++h) {
        const __m512 p = _mm512_set1_ps(pg[(static_cast<size_t>(h) * rs + i) * kT + j]);
        a[i][2 * h] = _mm512_fmadd_ps(p, x[2 * h], a[i][2 * h]);
        a[i][2 * h + 1] = _mm512_fmadd_ps(p, x[2 * h + 1], a[i][2 * h + 1]);
      }
  }
  for (int i = 0; i < R; ++i)
    for (int c = 0; c < 2 * NG; ++c) _mm512_storeu_ps(acc + i * hd + d0 + 16 * c, a[i][c]);
}

// The online softmax of every row, then acc += p x^ for rows in passes of kPassRows. vm: the
// tile's value scales widened to f32, [groups][kT] (int4: [groups][scale, minimum][kT]).
template <KvType VT2>
void softmax_values(const AttnTile& t, const QuantTile& c, const float* vm) {
  constexpr bool k4 = VT2 == KvType::kInt4;
  const int hd = t.head_dim, groups = hd / 32, rows = t.rows;
  int lo = kT, hi = 0;
  for (int i = 0; i < rows; ++i) {
    float* si = t.s + static_cast<size_t>(i) * kT;
    if (attn::softmax_row<Vec16>(si, t.lo[i], t.hi[i], t.m + i, t.l + i,
                                 t.acc + static_cast<size_t>(i) * hd, hd)) {
      lo = t.lo[i] < lo ? t.lo[i] : lo;
      hi = t.hi[i] > hi ? t.hi[i] : hi;
    } else {
      for (int g = 0; g < kT / 16; ++g) _mm512_storeu_ps(si + 16 * g, _mm512_setzero_ps());
    }
  }
  if (hi <= lo) return;
  // ps[g][i][j] = p[i][j] x s[j][g] in the tile's f32 value scratch ([groups][rows][kT] floats,
  // within kAttnTile x head_dim); int4: bias[i][g] = sum_j p[i][j] m[j][g].
  float* ps = t.vf;
  float bias[kMaxRows][kMaxGroups];
  const int per = k4 ? 2 : 1;  // vm rows per group: scales (int4: then minima)
  for (int g = 0; g < groups; ++g)
    for (int j0 = 0; j0 < kT; j0 += 16) {
      const __m512 s = _mm512_loadu_ps(vm + per * g * kT + j0);
      for (int i = 0; i < rows; ++i)
        _mm512_storeu_ps(ps + (static_cast<size_t>(g) * rows + i) * kT + j0,
                         _mm512_mul_ps(_mm512_loadu_ps(t.s + i * kT + j0), s));
    }
  if constexpr (k4) {
    // Only the keys of [lo, hi): the others have p = 0, but a NaN minimum would still count.
    const Vec16::Range keys = Vec16::range(lo, hi);
    for (int g = 0; g < groups; ++g) {
      __m512 m[kT / 16];
      for (int j0 = 0; j0 < kT; j0 += 16)
        m[j0 / 16] = Vec16::keep(_mm512_loadu_ps(vm + (2 * g + 1) * kT + j0), keys, j0 / 16,
                                 _mm512_setzero_ps());
      for (int i = 0; i < rows; ++i) {
        __m512 b = _mm512_setzero_ps();
        for (int j0 = 0; j0 < kT; j0 += 16)
          b = _mm512_fmadd_ps(_mm512_loadu_ps(t.s + i * kT + j0), m[j0 / 16], b);
        bias[i][g] = _mm512_reduce_add_ps(b);
      }
    }
  }
  const auto vl = [&] {
    if constexpr (k4)
      return Int4Values{c.v_codes, hd};
    else
      return Int8Values{reinterpret_cast<const int8_t*>(c.v_codes), hd};
  }();
  for (int r0 = 0; r0 < rows; r0 += kPassRows) {
    const int n = rows - r0 < kPassRows ? rows - r0 : kPassRows;
    float* acc = t.acc + static_cast<size_t>(r0) * hd;
    vec::with_const<kPassRows>(n, [&](auto Rc) {
      constexpr int R = decltype(Rc)::value;
      constexpr int NG = R <= 6 ? 2 : 1;  // R x 2 NG accumulators and 2 NG values in registers
      int d0 = 0;
      for (; d0 + 32 * NG <= hd; d0 += 32 * NG)
        values_pass<decltype(vl), R, NG>(ps + r0 * kT, rows, vl, hd, d0, lo, hi, acc);
      if (d0 < hd) values_pass<decltype(vl), R, 1>(ps + r0 * kT, rows, vl, hd, d0, lo, hi, acc);
    });
  }
  if constexpr (k4)
    for (int i = 0; i < rows; ++i)
      for (int d = 0; d < hd; d += 16) {
        float* a = t.acc + static_cast<size_t>(i) * hd + d;
        _mm512_storeu_ps(a, _mm512_add_ps(_mm512_loadu_ps(a), _mm512_set1_ps(bias[i][d / 32])));
      }
}

// HD > 0: t.head_dim == HD, known to the compiler in every loop the tile inlines.
template <KvType KT, KvType VT2, int HD>
[[gnu::flatten, gnu::noinline]] void tile(const AttnTile& tile_in, const QuantTile& c) {
  AttnTile t = tile_in;
  if constexpr (HD > 0) t.head_dim = HD;
  const int hd = t.head_dim, nk = t.n_keys, groups = hd / 32;
  prefetch_next_meta(c, nk, hd);
  const vec::TileAhead ahead{c.k_codes, kv_code_bytes(c.k_type, hd), c.v_codes,
                             kv_code_bytes(c.v_type, hd), nk};
  // Widened metadata: int8 keys [groups][kT] scales; int4 keys [token group][scales, minima][hd]
  // over at most 5 token groups; values [groups][kT] (int4: [groups][scale, minimum][kT]).
  alignas(64) float km[5 * 2 * kMaxHd], vm[2 * kMaxGroups * kT];
  if constexpr (KT == KvType::kInt4)
    attn::convert_values<Vec16, DType::kF16>(
        c.k_meta, (c.k_first + nk + kKvChannelGroup - 1) / kKvChannelGroup * 2 * hd, km);
  else
    widen_meta(c.k_meta, nk, groups, km);
  widen_meta(c.v_meta, nk, VT2 == KvType::kInt4 ? 2 * groups : groups, vm);
  QueryCodes local;
  const QueryCodes* qc = static_cast<const QueryCodes*>(t.qprep);
  if (KT == KvType::kInt8 && !qc) {
    quantize_rows(t.q, t.rows, hd, local);
    qc = &local;
  }
  for (int r0 = 0; r0 < t.rows; r0 += kPassRows)
    vec::with_const<kPassRows>(t.rows - r0 < kPassRows ? t.rows - r0 : kPassRows, [&](auto R) {
      if constexpr (KT == KvType::kInt8)
        scores_int8<decltype(R)::value>(t, c, *qc, r0, km, ahead);
      else
        scores_int4<decltype(R)::value>(t, c, r0, km, ahead);
    });
  softmax_values<VT2>(t, c, vm);
}

}  // namespace vnni
}  // namespace

static_assert(sizeof(vnni::QueryCodes) <= kAttnQueryPrepBytes);

bool attn_query_prep(const float* q, int rows, int head_dim, KvType k, void* out) {
  if (k != KvType::kInt8 || head_dim % 32 != 0 || head_dim > vnni::kMaxHd || rows > vnni::kMaxRows)
    return false;
  vnni::quantize_rows(q, rows, head_dim, *static_cast<vnni::QueryCodes*>(out));
  return true;
}

bool attn_tile_quant(const AttnTile& t, const QuantTile& c) {
  using K = KvType;
  if (t.head_dim % 32 == 0 && t.head_dim <= vnni::kMaxHd && t.rows <= vnni::kMaxRows) {
    const auto run = [&](auto hd) {
      constexpr int HD = decltype(hd)::value;
      if (c.k_type == K::kInt8 && c.v_type == K::kInt8) vnni::tile<K::kInt8, K::kInt8, HD>(t, c);
      else if (c.k_type == K::kInt8) vnni::tile<K::kInt8, K::kInt4, HD>(t, c);
      else if (c.v_type == K::kInt8) vnni::tile<K::kInt4, K::kInt8, HD>(t, c);
      else vnni::tile<K::kInt4, K::kInt4, HD>(t, c);
    };
    // The common head dims get tiles compiled for them; others take the general one.
    if (t.head_dim == 64) run(std::integral_constant<int, 64>{});
    else if (t.head_dim == 128) run(std::integral_constant<int, 128>{});
    else run(std::integral_constant<int, 0>{});
    return true;
  }
  return attn::quant_tile<Vec16>(t, c);
}

}  // namespace longctx::kernels::cpu::avx512
