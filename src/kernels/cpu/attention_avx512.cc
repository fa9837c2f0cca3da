// AVX-512 attention tile: the online-softmax update of every query row for one tile of keys and
// values. Decode-sized tiles (up to 8 rows: one position's GQA group) read key and value rows
// directly, converting each once into registers; larger (prefill) tiles convert the keys into a
// transposed f32 tile so 16 keys' scores come out of one vector of FMAs.
#include <immintrin.h>

#include "kernels/cpu/isa.h"
#include "kernels/cpu/vmath_avx512.h"
#include "kernels/kv_quant.h"

namespace longctx::kernels::cpu::avx512 {
namespace {

constexpr int kT = kAttnTile;  // 64 keys = 4 vectors of scores

// kt[d][j] = K[j][d] for j < n_keys (zero up to the next multiple of 16), d < hd.
template <DType DT>
void transpose_keys(const void* k, int n_keys, int hd, float* kt) {
  int slot[16];
  for (int c = 0; c < 16; ++c) slot[c] = transpose_slot(c);
  for (int j0 = 0; j0 < n_keys; j0 += 16) {
    for (int d0 = 0; d0 < hd; d0 += 16) {
      const __mmask16 m = mask16(hd - d0);
      __m512 r[16];
      for (int j = 0; j < 16; ++j)
        r[j] = j0 + j < n_keys ? load16<DT>(k, static_cast<int64_t>(j0 + j) * hd + d0, m)
                               : _mm512_setzero_ps();
      transpose16(r);
      const int dn = hd - d0 < 16 ? hd - d0 : 16;
      for (int d = 0; d < dn; ++d) _mm512_storeu_ps(kt + (d0 + d) * kT + j0, r[slot[d]]);
    }
  }
}

template <DType DT>
void convert_values(const void* v, int n, float* dst) {
  for (int i = 0; i < n; i += 16) {
    const __mmask16 m = mask16(n - i);
    _mm512_mask_storeu_ps(dst + i, m, load16<DT>(v, i, m));
  }
}

// Bits [lo, hi) of a 64-bit mask, split into four 16-lane masks.
inline uint64_t range_bits(int lo, int hi) {
  if (hi <= lo) return 0;
  const uint64_t up = hi >= 64 ? ~uint64_t{0} : ((uint64_t{1} << hi) - 1);
  return up & ~((uint64_t{1} << lo) - 1);
}

// Scores of rows r (and r+1 when two) against key groups [0, ng): s[row][j] = q[row] . k[j].
template <int NR>
inline void scores(const float* q, int hd, const float* kt, int ng, float* s) {
  for (int g0 = 0; g0 < ng; g0 += 4) {
    __m512 acc[NR][4];
    for (int i = 0; i < NR; ++i)
      for (int g = 0; g < 4; ++g) acc[i][g] = _mm512_setzero_ps();
    const int gn = ng - g0 < 4 ? ng - g0 : 4;
    for (int d = 0; d < hd; ++d) {
      const float* kd = kt + d * kT + g0 * 16;
      for (int i = 0; i < NR; ++i) {
        const __m512 b = _mm512_set1_ps(q[i * hd + d]);
        for (int g = 0; g < 4; ++g)
          if (g < gn) acc[i][g] = _mm512_fmadd_ps(b, _mm512_loadu_ps(kd + g * 16), acc[i][g]);
      }
    }
    for (int i = 0; i < NR; ++i)
      for (int g = 0; g < gn; ++g) _mm512_storeu_ps(s + i * kT + (g0 + g) * 16, acc[i][g]);
  }
}

// acc[row] += sum_{j in [lo, hi)} p[row][j] * v[j], for NR rows sharing the value loads.
template <int NR>
inline void accumulate_values(const float* p, const float* vf, int hd, int lo, int hi, float* acc) {
  for (int d0 = 0; d0 < hd; d0 += 64) {
    const int nv = (hd - d0 + 15) / 16 < 4 ? (hd - d0 + 15) / 16 : 4;
    __mmask16 m[4];
    __m512 a[NR][4];
    for (int c = 0; c < 4; ++c) {
      m[c] = mask16(hd - d0 - 16 * c);
      for (int i = 0; i < NR; ++i)
        a[i][c] =
            c < nv ? _mm512_maskz_loadu_ps(m[c], acc + i * hd + d0 + 16 * c) : _mm512_setzero_ps();
    }
    for (int j = lo; j < hi; ++j) {
      const float* vj = vf + j * hd + d0;
      __m512 pv[NR];
      for (int i = 0; i < NR; ++i) pv[i] = _mm512_set1_ps(p[i * kT + j]);
      for (int c = 0; c < 4; ++c) {
        if (c >= nv) break;
        const __m512 v = _mm512_maskz_loadu_ps(m[c], vj + 16 * c);
        for (int i = 0; i < NR; ++i) a[i][c] = _mm512_fmadd_ps(pv[i], v, a[i][c]);
      }
    }
    for (int c = 0; c < nv; ++c)
      for (int i = 0; i < NR; ++i) _mm512_mask_storeu_ps(acc + i * hd + d0 + 16 * c, m[c], a[i][c]);
  }
}

// Online-softmax update of one row: scores s[0..kT) -> probabilities in place (zero outside
// [lo, hi)); rescales acc by exp(m_old - m_new). Returns false if the row sees no key here.
inline bool softmax_row(float* s, int lo, int hi, float* m, float* l, float* acc, int hd) {
  if (hi <= lo) return false;
  const uint64_t bits = range_bits(lo, hi);
  __m512 mx = _mm512_set1_ps(-__builtin_inff());
  for (int g = 0; g < 4; ++g)
    mx = _mm512_mask_max_ps(mx, static_cast<__mmask16>(bits >> (16 * g)), mx,
                            _mm512_loadu_ps(s + 16 * g));
  const float m_tile = _mm512_reduce_max_ps(mx);
  const float m_new = *m > m_tile ? *m : m_tile;
  const __m512 vm = _mm512_set1_ps(m_new);
  __m512 sum = _mm512_setzero_ps();
  for (int g = 0; g < 4; ++g) {
    const __mmask16 k = static_cast<__mmask16>(bits >> (16 * g));
    const __m512 e = _mm512_maskz_mov_ps(k, exp_ps(_mm512_sub_ps(_mm512_loadu_ps(s + 16 * g), vm)));
    _mm512_storeu_ps(s + 16 * g, e);
    sum = _mm512_add_ps(sum, e);
  }
  if (*m != -__builtin_inff() && *m != m_new) {
    const float corr = _mm512_cvtss_f32(exp_ps(_mm512_set1_ps(*m - m_new)));
    *l *= corr;
    const __m512 vc = _mm512_set1_ps(corr);
    for (int d = 0; d < hd; d += 16) {
      const __mmask16 k = mask16(hd - d);
      _mm512_mask_storeu_ps(acc + d, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, acc + d), vc));
    }
  }
  *l += _mm512_reduce_add_ps(sum);
  *m = m_new;
  return true;
}

// ---- few rows (decode, GQA groups <= 8): no transpose, rows converted in registers ----

// Row loaders for the direct tile: 16 values of key/value row j from column c, as f32.
template <DType DT>
struct FloatRows {
  const void* p;
  int hd;
  __m512 operator()(int j, int c) const { return load16<DT>(p, static_cast<int64_t>(j) * hd + c); }
};

// int8 rows with one scale per group of 2^gshift columns (>= 16; kernels/kv_quant.h), decoded in
// registers: the cache is read once, at one byte per value. `scales` are the tile's f16 scales
// already widened to f32 ([row][groups]), so each 16 values cost a broadcast load, two
// conversions and one multiply shared by every query row.
struct Int8Rows {
  const int8_t* codes;
  const float* scales;
  int hd, groups, gshift;
  __m512 operator()(int j, int c) const {
    const __m128i q =
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + static_cast<size_t>(j) * hd + c));
    return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)),
                         _mm512_set1_ps(scales[j * groups + (c >> gshift)]));
  }
};

// Four 16-lane vectors of partial dot products (keys 4q .. 4q+3 of a group of 16) in one vector:
// lane L of the result holds four floats whose sum is key 4q+L's score.
inline __m512 fold4(__m512 a, __m512 b, __m512 c, __m512 d) {
  const __m512 ab = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
  const __m512 cd = _mm512_add_ps(_mm512_shuffle_f32x4(c, d, 0x44), _mm512_shuffle_f32x4(c, d, 0xEE));
  return _mm512_add_ps(_mm512_shuffle_f32x4(ab, cd, 0x88), _mm512_shuffle_f32x4(ab, cd, 0xDD));
}

// Sixteen scores from four fold4 results (keys 0-3, 4-7, 8-11, 12-15), in key order.
inline __m512 fold16(__m512 w0, __m512 w1, __m512 w2, __m512 w3) {
  const __m512 z0 = _mm512_add_ps(_mm512_shuffle_ps(w0, w1, 0x44), _mm512_shuffle_ps(w0, w1, 0xEE));
  const __m512 z1 = _mm512_add_ps(_mm512_shuffle_ps(w2, w3, 0x44), _mm512_shuffle_ps(w2, w3, 0xEE));
  // Element 4L + p now holds key 4p + L.
  const __m512 f =
      _mm512_add_ps(_mm512_shuffle_ps(z0, z1, 0x88), _mm512_shuffle_ps(z0, z1, 0xDD));
  const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  return _mm512_permutexvar_ps(idx, f);
}

// s[i][j] = q[i] . k[j] for R rows and keys j < nk (hd a multiple of 16). Each key row is
// loaded and converted once for all R rows; 16 keys' partial products fold into one vector.
// NC > 0: hd == 16 * NC, with the query rows held in registers; NC == 0: any multiple of 16.
template <class KL, int R, int NC>
void scores_direct(const float* q, int hd, const KL& k, int nk, float* s) {
  __m512 qr[R][NC > 0 ? NC : 1];
  if constexpr (NC > 0)
    for (int i = 0; i < R; ++i)
      for (int c = 0; c < NC; ++c) qr[i][c] = _mm512_loadu_ps(q + i * hd + 16 * c);
  auto query = [&](int i, int c) {
    if constexpr (NC > 0)
      return qr[i][c / 16];
    else
      return _mm512_loadu_ps(q + i * hd + c);
  };
  alignas(64) float wbuf[R][4][16];  // fold4 results of one group of 16 keys
  for (int j0 = 0; j0 < nk; j0 += 16) {
    for (int quad = 0; quad < 4; ++quad) {
      // Keys past the end repeat the last one: their scores are never read (the tile's visible
      // ranges end at nk), and the loop keeps 4 x R independent accumulators with no branch.
      int js[4];
      for (int u = 0; u < 4; ++u) js[u] = j0 + 4 * quad + u < nk ? j0 + 4 * quad + u : nk - 1;
      __m512 a[R][4];
      for (int i = 0; i < R; ++i)
        for (int u = 0; u < 4; ++u) a[i][u] = _mm512_setzero_ps();
      for (int c = 0; c < (NC > 0 ? 16 * NC : hd); c += 16) {
        for (int u = 0; u < 4; ++u) {
          const __m512 kv = k(js[u], c);
          for (int i = 0; i < R; ++i) a[i][u] = _mm512_fmadd_ps(kv, query(i, c), a[i][u]);
        }
      }
      for (int i = 0; i < R; ++i)
        _mm512_store_ps(wbuf[i][quad], fold4(a[i][0], a[i][1], a[i][2], a[i][3]));
    }
    for (int i = 0; i < R; ++i)
      _mm512_storeu_ps(s + i * kT + j0,
                       fold16(_mm512_load_ps(wbuf[i][0]), _mm512_load_ps(wbuf[i][1]),
                              _mm512_load_ps(wbuf[i][2]), _mm512_load_ps(wbuf[i][3])));
  }
}

// acc[i] += sum_{j in [lo, hi)} p[i][j] * v[j] for R rows, NV vectors of columns from d0; each
// value vector is loaded and converted once for all rows.
template <class VL, int R, int NV>
inline void values_direct(const float* p, const VL& v, int hd, int d0, int lo, int hi,
                          float* acc) {
  __m512 a[R][NV];
  for (int i = 0; i < R; ++i)
    for (int c = 0; c < NV; ++c) a[i][c] = _mm512_loadu_ps(acc + i * hd + d0 + 16 * c);
  for (int j = lo; j < hi; ++j) {
    __m512 pj[R];
    for (int i = 0; i < R; ++i) pj[i] = _mm512_set1_ps(p[i * kT + j]);
    for (int c = 0; c < NV; ++c) {
      const __m512 x = v(j, d0 + 16 * c);
      for (int i = 0; i < R; ++i) a[i][c] = _mm512_fmadd_ps(pj[i], x, a[i][c]);
    }
  }
  for (int i = 0; i < R; ++i)
    for (int c = 0; c < NV; ++c) _mm512_storeu_ps(acc + i * hd + d0 + 16 * c, a[i][c]);
}

// Scores of rows [0, rows) in passes of at most C rows, each with its queries in registers (NC
// vectors per row; NC == 0: loaded from L1): a pass reloads the tile's key rows from L1, which
// costs less than reloading a query for every product.
template <class KL, int C, int NC>
void scores_passes(const float* q, int rows, int hd, const KL& k, int nk, float* s) {
  for (int r = 0; r < rows; r += C) {
    const float* qr = q + static_cast<size_t>(r) * hd;
    float* sr = s + static_cast<size_t>(r) * kT;
    switch (rows - r < C ? rows - r : C) {
      case 1:
        scores_direct<KL, 1, NC>(qr, hd, k, nk, sr);
        break;
      case 2:
        if constexpr (C >= 2) scores_direct<KL, 2, NC>(qr, hd, k, nk, sr);
        break;
      case 3:
        if constexpr (C >= 3) scores_direct<KL, 3, NC>(qr, hd, k, nk, sr);
        break;
      default:
        if constexpr (C >= 4) scores_direct<KL, 4, NC>(qr, hd, k, nk, sr);
        break;
    }
  }
}

// acc[i] += sum_{j in [lo, hi)} p[i][j] * v[j] over every column, for R rows.
template <class VL, int R>
void values_rows(const float* p, const VL& v, int hd, int lo, int hi, float* acc) {
  int d0 = 0;
  for (; d0 + 64 <= hd; d0 += 64) values_direct<VL, R, 4>(p, v, hd, d0, lo, hi, acc);
  switch ((hd - d0) / 16) {
    case 3:
      values_direct<VL, R, 3>(p, v, hd, d0, lo, hi, acc);
      break;
    case 2:
      values_direct<VL, R, 2>(p, v, hd, d0, lo, hi, acc);
      break;
    case 1:
      values_direct<VL, R, 1>(p, v, hd, d0, lo, hi, acc);
      break;
    default:
      break;
  }
}

// The online-softmax update of every row of a tile whose scores are in t.s, then the values in
// groups of at most 4 rows over the union of their visible ranges (each value vector loaded and
// converted once per group; hd a multiple of 16).
template <class VL>
void softmax_values(const AttnTile& t, const VL& vl) {
  const int hd = t.head_dim;
  for (int r0 = 0; r0 < t.rows; r0 += 4) {
    const int n = t.rows - r0 < 4 ? t.rows - r0 : 4;
    int lo = kT, hi = 0;
    for (int i = r0; i < r0 + n; ++i) {
      float* si = t.s + static_cast<size_t>(i) * kT;
      if (softmax_row(si, t.lo[i], t.hi[i], t.m + i, t.l + i, t.acc + static_cast<size_t>(i) * hd,
                      hd)) {
        lo = t.lo[i] < lo ? t.lo[i] : lo;
        hi = t.hi[i] > hi ? t.hi[i] : hi;
      } else {
        for (int g = 0; g < 4; ++g) _mm512_storeu_ps(si + 16 * g, _mm512_setzero_ps());
      }
    }
    if (hi <= lo) continue;
    const float* p = t.s + static_cast<size_t>(r0) * kT;
    float* acc = t.acc + static_cast<size_t>(r0) * hd;
    switch (n) {
      case 1:
        values_rows<VL, 1>(p, vl, hd, lo, hi, acc);
        break;
      case 2:
        values_rows<VL, 2>(p, vl, hd, lo, hi, acc);
        break;
      case 3:
        values_rows<VL, 3>(p, vl, hd, lo, hi, acc);
        break;
      default:
        values_rows<VL, 4>(p, vl, hd, lo, hi, acc);
        break;
    }
  }
}

// One tile for any number of rows (hd a multiple of 16) without a transpose: scores in register
// passes, the online softmax per row, then values in groups of at most 4 rows (each value vector
// converted once per group; later groups find the tile in L1).
template <class KL, class VL>
void tile_direct(const AttnTile& t, const KL& kl, const VL& vl) {
  const int hd = t.head_dim;
  // Query rows in registers when they fit beside the 4 x C accumulators.
  if (hd == 64)
    scores_passes<KL, 3, 4>(t.q, t.rows, hd, kl, t.n_keys, t.s);
  else if (hd == 128)
    scores_passes<KL, 2, 8>(t.q, t.rows, hd, kl, t.n_keys, t.s);
  else
    scores_passes<KL, 4, 0>(t.q, t.rows, hd, kl, t.n_keys, t.s);
  softmax_values(t, vl);
}

// ---- many rows (prefill): transposed key tile shared by all rows ----

template <DType DT>
void tile(const AttnTile& t) {
  const int hd = t.head_dim, nk = t.n_keys;
  if (hd % 16 == 0 && t.rows <= kAttnDirectRows)
    return tile_direct(t, FloatRows<DT>{t.k, hd}, FloatRows<DT>{t.v, hd});
  transpose_keys<DT>(t.k, nk, hd, t.kf);
  const float* vf = static_cast<const float*>(t.v);
  if constexpr (DT != DType::kF32) {
    convert_values<DT>(t.v, nk * hd, t.vf);
    vf = t.vf;
  }
  const int ng = (nk + 15) / 16;
  int r = 0;
  for (; r + 2 <= t.rows; r += 2) scores<2>(t.q + r * hd, hd, t.kf, ng, t.s + r * kT);
  if (r < t.rows) scores<1>(t.q + r * hd, hd, t.kf, ng, t.s + r * kT);
  if (hd % 16 == 0) return softmax_values(t, FloatRows<DType::kF32>{vf, hd});
  // Softmax per row, then values two rows at a time over the union of their visible ranges.
  for (r = 0; r < t.rows; r += 2) {
    const int two = r + 1 < t.rows;
    bool live[2] = {false, false};
    for (int i = 0; i <= two; ++i)
      live[i] = softmax_row(t.s + (r + i) * kT, t.lo[r + i], t.hi[r + i], t.m + r + i, t.l + r + i,
                            t.acc + (r + i) * hd, hd);
    if (two && live[0] && live[1]) {
      const int lo = t.lo[r] < t.lo[r + 1] ? t.lo[r] : t.lo[r + 1];
      const int hi = t.hi[r] > t.hi[r + 1] ? t.hi[r] : t.hi[r + 1];
      accumulate_values<2>(t.s + r * kT, vf, hd, lo, hi, t.acc + r * hd);
    } else {
      for (int i = 0; i <= two; ++i)
        if (live[i])
          accumulate_values<1>(t.s + (r + i) * kT, vf, hd, t.lo[r + i], t.hi[r + i],
                               t.acc + (r + i) * hd);
    }
  }
}

}  // namespace

bool attn_tile_int8(const AttnTile& t, const int8_t* k_codes, const uint16_t* k_scales,
                    const int8_t* v_codes, const uint16_t* v_scales) {
  const int hd = t.head_dim;
  if (hd % 16 != 0 || hd > 256) return false;
  const int G = kv_group_size(hd);  // 16 or 32 when hd % 16 == 0
  const int groups = hd / G, gshift = G == 32 ? 5 : 4;
  // The tile's scales in f32: at most 64 keys x 16 groups each for keys and values.
  alignas(64) float ks[kT * 16], vs[kT * 16];
  const int n_sc = t.n_keys * groups;
  for (int i = 0; i < n_sc; i += 16) {
    const __mmask16 m = mask16(n_sc - i);
    _mm512_mask_storeu_ps(ks + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, k_scales + i)));
    _mm512_mask_storeu_ps(vs + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, v_scales + i)));
  }
  const Int8Rows kl{k_codes, ks, hd, groups, gshift};
  const Int8Rows vl{v_codes, vs, hd, groups, gshift};
  tile_direct(t, kl, vl);
  return true;
}

void attn_tile(const AttnTile& t) {
  switch (t.dtype) {
    case DType::kF32:
      tile<DType::kF32>(t);
      break;
    case DType::kF16:
      tile<DType::kF16>(t);
      break;
    case DType::kBF16:
      tile<DType::kBF16>(t);
      break;
  }
}

}  // namespace longctx::kernels::cpu::avx512
