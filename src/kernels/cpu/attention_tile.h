// The attention tile of every SIMD path, written once over a vector-traits type VT: the
// online-softmax update of every query row for one tile of keys and values (cpu/attention.cc
// walks the tiles). Include only from a path's translation unit (attention_avx2.cc,
// attention_avx512.cc), whose vmath header defines the path's VT (Vec8, Vec16); everything here
// has internal linkage, so code built for one ISA never stands in for another's.
//
// Decode-sized tiles (up to kAttnDirectRows rows: one position's GQA group) read key and value
// rows in place, converting each once into registers for all rows; larger (prefill) tiles
// convert the keys into a transposed f32 tile so kW keys' scores come out of one vector of FMAs.
//
// VT provides, for vectors V of kW floats:
//   kW, kRegs (vector registers of the ISA), kValueRows x kValueVecs (rows x vectors of columns
//   accumulated together in the value step), kFoldFloats (see fold_quad);
//   zero, set1, loadu, storeu, fmadd, mul, sub, add, max, exp, first (lane 0), reduce_add,
//   reduce_max; load<DT>(p, off): kW elements of dtype DT as f32; load_n<DT>(p, off, n): the first
//   n (1..kW), zero above; store_n(p, v, n); load_i8(codes): kW int8 codes as f32;
//   low_nibbles(bytes) / high_nibbles(bytes): the low / high 4 bits of kW bytes as f32;
//   Range range(lo, hi) and keep(x, range, g, fill): lanes L of vector g (keys g*kW + L) with
//   lo <= g*kW + L < hi from x, the others from fill (0 <= lo < hi <= kAttnTile);
//   fold_quad(a, b, c, d, w): stores kFoldFloats floats at w from which fold_group(w') rebuilds
//   the kW key scores of a group, where a..d are the partial dot products of keys 4q..4q+3 and
//   quad q writes at w' + q * kFoldFloats;
//   transpose(r[kW]): in-register transpose, after which r[slot(c)] holds former column c.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/vec_common.h"
#include "kernels/kv_quant.h"

namespace longctx::kernels::cpu {
namespace {
namespace attn {

constexpr int kT = kAttnTile;  // keys per tile

// ---- few rows (decode): rows read in place ----

// Row loaders: kW values of key/value row j from column c, as f32.
template <class VT, DType DT>
struct FloatRows {
  const void* p;
  int hd;
  typename VT::V operator()(int j, int c) const {
    return VT::template load<DT>(p, static_cast<int64_t>(j) * hd + c);
  }
};

// Key rows of a float cache with what the tile reads next (vec::TileAhead), asked for by
// scores_direct as it goes.
template <class VT, DType DT>
struct FloatKeyRowsAhead : FloatRows<VT, DT> {
  vec::TileAhead ahead;
};

// int8 rows with one scale per group of 2^gshift columns (>= kW; kernels/kv_quant.h), decoded in
// registers: the cache is read once, at one byte per value. `scales` are the tile's f16 scales
// already widened to f32 ([row][groups]), so each kW values cost a broadcast load, two
// conversions and one multiply shared by every query row.
template <class VT>
struct Int8Rows {
  const int8_t* codes;
  const float* scales;
  int hd, groups, gshift;
  typename VT::V operator()(int j, int c) const {
    return VT::mul(VT::load_i8(codes + static_cast<size_t>(j) * hd + c),
                   VT::set1(scales[j * groups + (c >> gshift)]));
  }
};

// int4 keys quantized per channel over groups of kKvChannelGroup tokens: byte i of a row holds
// channel i (low nibble) and channel i + hd/2 (high nibble). `sm` holds, for each token group the
// tile touches from the one holding row 0 (its key `first`), hd f32 scales then hd f32 minima.
template <class VT>
struct Int4KeyRows {
  const uint8_t* codes;
  const float* sm;
  int hd, first;
  typename VT::V operator()(int j, int c) const {
    const int half = hd >> 1;
    const uint8_t* row = codes + static_cast<size_t>(j) * half;
    const typename VT::V q =
        c < half ? VT::low_nibbles(row + c) : VT::high_nibbles(row + (c - half));
    const float* g = sm + static_cast<size_t>((first + j) / kKvChannelGroup) * 2 * hd;
    return VT::fmadd(q, VT::loadu(g + c), VT::loadu(g + hd + c));
  }
};

// int4 values quantized per token in groups of 2^gshift values: byte i of a group holds element i
// (low nibble) and element i + half a group (high nibble). `sm`: f32 [row][group][scale, minimum].
template <class VT>
struct Int4ValueRows {
  const uint8_t* codes;
  const float* sm;
  int hd, groups, gshift;
  typename VT::V operator()(int j, int c) const {
    const int g = c >> gshift, i = c & ((1 << gshift) - 1), half = 1 << (gshift - 1);
    const uint8_t* p = codes + static_cast<size_t>(j) * (hd >> 1) + g * half;
    const typename VT::V q = i < half ? VT::low_nibbles(p + i) : VT::high_nibbles(p + (i - half));
    const float* m = sm + (static_cast<size_t>(j) * groups + g) * 2;
    return VT::fmadd(q, VT::set1(m[0]), VT::set1(m[1]));
  }
};

// s[i][j] = q[i] . k[j] for R rows and keys j < nk (hd a multiple of kW). Each key row is loaded
// and converted once for all R rows; kW keys' partial products fold into one vector.
// NC > 0: hd == kW * NC, with the query rows held in registers; NC == 0: loaded from L1.
template <class VT, class KL, int R, int NC>
void scores_direct(const float* q, int hd, const KL& k, int nk, float* s, bool first_pass) {
  using V = typename VT::V;
  constexpr int W = VT::kW, kQuads = W / 4;
  V qr[R][NC > 0 ? NC : 1];
  if constexpr (NC > 0)
    for (int i = 0; i < R; ++i)
      for (int c = 0; c < NC; ++c) qr[i][c] = VT::loadu(q + i * hd + W * c);
  auto query = [&](int i, int c) {
    if constexpr (NC > 0)
      return qr[i][c / W];
    else
      return VT::loadu(q + i * hd + c);
  };
  alignas(64) float wbuf[R][kQuads * VT::kFoldFloats];  // fold_quad results of one key group
  for (int j0 = 0; j0 < nk; j0 += W) {
    if constexpr (requires { k.ahead(0, 0); })
      if (first_pass) k.ahead(j0, nk - j0 < W ? nk - j0 : W);
    for (int quad = 0; quad < kQuads; ++quad) {
      // Keys past the end repeat the last one: their scores are never read (the tile's visible
      // ranges end at nk), and the loop keeps 4 x R independent accumulators with no branch.
      int js[4];
      for (int u = 0; u < 4; ++u) js[u] = j0 + 4 * quad + u < nk ? j0 + 4 * quad + u : nk - 1;
      V a[R][4];
      for (int i = 0; i < R; ++i)
        for (int u = 0; u < 4; ++u) a[i][u] = VT::zero();
      for (int c = 0; c < (NC > 0 ? W * NC : hd); c += W) {
        for (int u = 0; u < 4; ++u) {
          const V kv = k(js[u], c);
          for (int i = 0; i < R; ++i) a[i][u] = VT::fmadd(kv, query(i, c), a[i][u]);
        }
      }
      for (int i = 0; i < R; ++i)
        VT::fold_quad(a[i][0], a[i][1], a[i][2], a[i][3], wbuf[i] + quad * VT::kFoldFloats);
    }
    for (int i = 0; i < R; ++i) VT::storeu(s + i * kT + j0, VT::fold_group(wbuf[i]));
  }
}

// Scores of rows [0, rows) in passes of at most C rows, each with its queries in registers (NC
// vectors per row; NC == 0: loaded from L1): a pass reloads the tile's key rows from L1, which
// costs less than reloading a query for every product.
template <class VT, class KL, int C, int NC>
void scores_passes(const float* q, int rows, int hd, const KL& k, int nk, float* s) {
  for (int r = 0; r < rows; r += C) {
    const float* qr = q + static_cast<size_t>(r) * hd;
    float* sr = s + static_cast<size_t>(r) * kT;
    vec::with_const<C>(rows - r < C ? rows - r : C, [&](auto R) {
      scores_direct<VT, KL, decltype(R)::value, NC>(qr, hd, k, nk, sr, r == 0);
    });
  }
}

// acc[i] += sum_{j in [lo, hi)} p[i][j] * v[j] for R rows, NV vectors of columns from d0; each
// value vector is loaded and converted once for all rows.
template <class VT, class VL, int R, int NV>
inline void values_direct(const float* p, const VL& v, int hd, int d0, int lo, int hi, float* acc) {
  using V = typename VT::V;
  constexpr int W = VT::kW;
  V a[R][NV];
  for (int i = 0; i < R; ++i)
    for (int c = 0; c < NV; ++c) a[i][c] = VT::loadu(acc + i * hd + d0 + W * c);
  for (int j = lo; j < hi; ++j) {
    V pj[R];
    for (int i = 0; i < R; ++i) pj[i] = VT::set1(p[i * kT + j]);
    for (int c = 0; c < NV; ++c) {
      const V x = v(j, d0 + W * c);
      for (int i = 0; i < R; ++i) a[i][c] = VT::fmadd(pj[i], x, a[i][c]);
    }
  }
  for (int i = 0; i < R; ++i)
    for (int c = 0; c < NV; ++c) VT::storeu(acc + i * hd + d0 + W * c, a[i][c]);
}

// acc[i] += sum_{j in [lo, hi)} p[i][j] * v[j] over every column (hd a multiple of kW), R rows.
template <class VT, class VL, int R>
void values_rows(const float* p, const VL& v, int hd, int lo, int hi, float* acc) {
  constexpr int W = VT::kW, NV = VT::kValueVecs;
  static_assert(NV >= 1 && NV <= 4);
  int d0 = 0;
  for (; d0 + NV * W <= hd; d0 += NV * W) values_direct<VT, VL, R, NV>(p, v, hd, d0, lo, hi, acc);
  vec::with_const<NV - 1>((hd - d0) / W, [&](auto nv) {
    values_direct<VT, VL, R, decltype(nv)::value>(p, v, hd, d0, lo, hi, acc);
  });
}

// Online-softmax update of one row: scores s[0..kT) -> probabilities in place (zero outside
// [lo, hi)); rescales acc by exp(m_old - m_new). Returns false if the row sees no key here.
template <class VT>
inline bool softmax_row(float* s, int lo, int hi, float* m, float* l, float* acc, int hd) {
  using V = typename VT::V;
  constexpr int W = VT::kW;
  if (hi <= lo) return false;
  const typename VT::Range range = VT::range(lo, hi);
  const V ninf = VT::set1(-__builtin_inff());
  V mx = ninf;
  for (int g = 0; g < kT / W; ++g) mx = VT::max(mx, VT::keep(VT::loadu(s + W * g), range, g, ninf));
  const float m_tile = VT::reduce_max(mx);
  const float m_new = *m > m_tile ? *m : m_tile;
  const V vm = VT::set1(m_new);
  V sum = VT::zero();
  for (int g = 0; g < kT / W; ++g) {
    const V e = VT::keep(VT::exp(VT::sub(VT::loadu(s + W * g), vm)), range, g, VT::zero());
    VT::storeu(s + W * g, e);
    sum = VT::add(sum, e);
  }
  if (*m != -__builtin_inff() && *m != m_new) {
    const V vc = VT::exp(VT::set1(*m - m_new));
    *l *= VT::first(vc);
    for (int d = 0; d < hd; d += W) {
      if (hd - d >= W)
        VT::storeu(acc + d, VT::mul(VT::loadu(acc + d), vc));
      else
        VT::store_n(acc + d, VT::mul(VT::template load_n<DType::kF32>(acc, d, hd - d), vc), hd - d);
    }
  }
  *l += VT::reduce_add(sum);
  *m = m_new;
  return true;
}

// The online-softmax update of every row of a tile whose scores are in t.s, then the values in
// groups of at most kValueRows rows over the union of their visible ranges (each value vector
// loaded and converted once per group; hd a multiple of kW).
template <class VT, class VL>
void softmax_values(const AttnTile& t, const VL& vl) {
  constexpr int W = VT::kW, G = VT::kValueRows;
  static_assert(G >= 1 && G <= 4);
  const int hd = t.head_dim;
  for (int r0 = 0; r0 < t.rows; r0 += G) {
    const int n = t.rows - r0 < G ? t.rows - r0 : G;
    int lo = kT, hi = 0;
    for (int i = r0; i < r0 + n; ++i) {
      float* si = t.s + static_cast<size_t>(i) * kT;
      if (softmax_row<VT>(si, t.lo[i], t.hi[i], t.m + i, t.l + i,
                          t.acc + static_cast<size_t>(i) * hd, hd)) {
        lo = t.lo[i] < lo ? t.lo[i] : lo;
        hi = t.hi[i] > hi ? t.hi[i] : hi;
      } else {
        for (int g = 0; g < kT / W; ++g) VT::storeu(si + W * g, VT::zero());
      }
    }
    if (hi <= lo) continue;
    const float* p = t.s + static_cast<size_t>(r0) * kT;
    float* acc = t.acc + static_cast<size_t>(r0) * hd;
    vec::with_const<G>(
        n, [&](auto R) { values_rows<VT, VL, decltype(R)::value>(p, vl, hd, lo, hi, acc); });
  }
}

// Query rows per register pass of tile_direct's scores: with 32 registers, the queries stay in
// registers beside the 4 x C accumulators at head dims of 4 and 8 vectors; with 16 registers, 3
// rows' accumulators and the key take 13.
template <class VT>
constexpr int score_pass_rows(int hd) {
  if constexpr (VT::kRegs >= 32) return hd == 4 * VT::kW ? 3 : hd == 8 * VT::kW ? 2 : 4;
  return 3;
}

// One tile for any number of rows (hd a multiple of kW) without a transpose: scores in register
// passes, the online softmax per row, then the values (later row groups find the tile in L1).
template <class VT, class KL, class VL>
void tile_direct(const AttnTile& t, const KL& kl, const VL& vl) {
  const int hd = t.head_dim;
  constexpr int W = VT::kW, C = score_pass_rows<VT>(0);
  if constexpr (VT::kRegs >= 32) {
    constexpr int C4 = score_pass_rows<VT>(4 * W), C8 = score_pass_rows<VT>(8 * W);
    if (hd == 4 * W)
      scores_passes<VT, KL, C4, 4>(t.q, t.rows, hd, kl, t.n_keys, t.s);
    else if (hd == 8 * W)
      scores_passes<VT, KL, C8, 8>(t.q, t.rows, hd, kl, t.n_keys, t.s);
    else
      scores_passes<VT, KL, C, 0>(t.q, t.rows, hd, kl, t.n_keys, t.s);
  } else {
    scores_passes<VT, KL, C, 0>(t.q, t.rows, hd, kl, t.n_keys, t.s);
  }
  softmax_values<VT>(t, vl);
}

// ---- many rows (prefill): transposed key tile shared by all rows ----

// kt[d][j] = K[j][d] for j < n_keys (zero up to the next multiple of kW), d < hd.
template <class VT, DType DT>
void transpose_keys(const void* k, int n_keys, int hd, float* kt) {
  constexpr int W = VT::kW;
  for (int j0 = 0; j0 < n_keys; j0 += W)
    for (int d0 = 0; d0 < hd; d0 += W)
      vec::transpose_block<VT, DT>(k, static_cast<int64_t>(j0) * hd + d0, hd,
                                   n_keys - j0 < W ? n_keys - j0 : W, hd - d0 < W ? hd - d0 : W,
                                   kt + d0 * kT + j0, kT);
}

template <class VT, DType DT>
void convert_values(const void* v, int n, float* dst) {
  constexpr int W = VT::kW;
  int i = 0;
  for (; i + W <= n; i += W) VT::storeu(dst + i, VT::template load<DT>(v, i));
  if (i < n) VT::store_n(dst + i, VT::template load_n<DT>(v, i, n - i), n - i);
}

// Scores of NR rows against key vectors [0, ng) of the transposed tile: s[row][j] = q[row] . k[j].
template <class VT, int NR>
inline void scores_transposed(const float* q, int hd, const float* kt, int ng, float* s) {
  using V = typename VT::V;
  constexpr int W = VT::kW;
  for (int g0 = 0; g0 < ng; g0 += 4) {
    V acc[NR][4];
    for (int i = 0; i < NR; ++i)
      for (int g = 0; g < 4; ++g) acc[i][g] = VT::zero();
    const int gn = ng - g0 < 4 ? ng - g0 : 4;
    for (int d = 0; d < hd; ++d) {
      const float* kd = kt + d * kT + g0 * W;
      for (int i = 0; i < NR; ++i) {
        const V b = VT::set1(q[i * hd + d]);
        for (int g = 0; g < 4; ++g)
          if (g < gn) acc[i][g] = VT::fmadd(b, VT::loadu(kd + g * W), acc[i][g]);
      }
    }
    for (int i = 0; i < NR; ++i)
      for (int g = 0; g < gn; ++g) VT::storeu(s + i * kT + (g0 + g) * W, acc[i][g]);
  }
}

// acc[row] += sum_{j in [lo, hi)} p[row][j] * v[j] for NR rows sharing the value loads, any hd
// (the last vector of columns partial).
template <class VT, int NR>
inline void accumulate_values(const float* p, const float* vf, int hd, int lo, int hi, float* acc) {
  using V = typename VT::V;
  constexpr int W = VT::kW;
  for (int d0 = 0; d0 < hd; d0 += 4 * W) {
    const int nv = (hd - d0 + W - 1) / W < 4 ? (hd - d0 + W - 1) / W : 4;
    int cn[4];
    V a[NR][4];
    for (int c = 0; c < 4; ++c) {
      const int left = hd - d0 - W * c;
      cn[c] = left < W ? left : W;
      for (int i = 0; i < NR; ++i)
        a[i][c] =
            c < nv ? VT::template load_n<DType::kF32>(acc + i * hd, d0 + W * c, cn[c]) : VT::zero();
    }
    for (int j = lo; j < hi; ++j) {
      const float* vj = vf + j * hd + d0;
      V pv[NR];
      for (int i = 0; i < NR; ++i) pv[i] = VT::set1(p[i * kT + j]);
      for (int c = 0; c < 4; ++c) {
        if (c >= nv) break;
        const V v = VT::template load_n<DType::kF32>(vj, W * c, cn[c]);
        for (int i = 0; i < NR; ++i) a[i][c] = VT::fmadd(pv[i], v, a[i][c]);
      }
    }
    for (int c = 0; c < nv; ++c)
      for (int i = 0; i < NR; ++i) VT::store_n(acc + i * hd + d0 + W * c, a[i][c], cn[c]);
  }
}

template <class VT, DType DT>
void tile(const AttnTile& t) {
  constexpr int W = VT::kW;
  const int hd = t.head_dim, nk = t.n_keys;
  if (hd % W == 0 && t.rows <= kAttnDirectRows) {
    const size_t row = static_cast<size_t>(hd) * (DT == DType::kF32 ? 4 : 2);
    return tile_direct<VT>(t, FloatKeyRowsAhead<VT, DT>{{t.k, hd}, {t.k, row, t.v, row, nk}},
                           FloatRows<VT, DT>{t.v, hd});
  }
  transpose_keys<VT, DT>(t.k, nk, hd, t.kf);
  const float* vf = static_cast<const float*>(t.v);
  if constexpr (DT != DType::kF32) {
    convert_values<VT, DT>(t.v, nk * hd, t.vf);
    vf = t.vf;
  }
  const int ng = (nk + W - 1) / W;
  int r = 0;
  for (; r + 2 <= t.rows; r += 2)
    scores_transposed<VT, 2>(t.q + r * hd, hd, t.kf, ng, t.s + r * kT);
  if (r < t.rows) scores_transposed<VT, 1>(t.q + r * hd, hd, t.kf, ng, t.s + r * kT);
  if (hd % W == 0) return softmax_values<VT>(t, FloatRows<VT, DType::kF32>{vf, hd});
  // Softmax per row, then values two rows at a time over the union of their visible ranges.
  for (r = 0; r < t.rows; r += 2) {
    const int two = r + 1 < t.rows;
    bool live[2] = {false, false};
    for (int i = 0; i <= two; ++i)
      live[i] = softmax_row<VT>(t.s + (r + i) * kT, t.lo[r + i], t.hi[r + i], t.m + r + i,
                                t.l + r + i, t.acc + (r + i) * hd, hd);
    if (two && live[0] && live[1]) {
      const int lo = t.lo[r] < t.lo[r + 1] ? t.lo[r] : t.lo[r + 1];
      const int hi = t.hi[r] > t.hi[r + 1] ? t.hi[r] : t.hi[r + 1];
      accumulate_values<VT, 2>(t.s + r * kT, vf, hd, lo, hi, t.acc + r * hd);
    } else {
      for (int i = 0; i <= two; ++i)
        if (live[i])
          accumulate_values<VT, 1>(t.s + (r + i) * kT, vf, hd, t.lo[r + i], t.hi[r + i],
                                   t.acc + (r + i) * hd);
    }
  }
}

// The path's attn_tile (isa.h).
template <class VT>
void any_tile(const AttnTile& t) {
  switch (t.dtype) {
    case DType::kF32:
      tile<VT, DType::kF32>(t);
      break;
    case DType::kF16:
      tile<VT, DType::kF16>(t);
      break;
    case DType::kBF16:
      tile<VT, DType::kBF16>(t);
      break;
  }
}

// The tile with keys of type KT and values of type VT2 (int8 / int4), metadata already widened
// into km / vm. One flattened function per pair: with the loaders inlined into the score and
// value loops their fields stay in registers (out-of-line loops, or all four pairs in one
// function, measured 5-10% slower on int8 tiles).
template <class VT, KvType KT, KvType VT2>
[[gnu::flatten, gnu::noinline]] void quant_pair(const AttnTile& t, const QuantTile& c,
                                                const float* km, const float* vm, int groups,
                                                int gshift) {
  const int hd = t.head_dim;
  const auto keys = [&] {
    if constexpr (KT == KvType::kInt4)
      return Int4KeyRows<VT>{c.k_codes, km, hd, c.k_first};
    else
      return Int8Rows<VT>{reinterpret_cast<const int8_t*>(c.k_codes), km, hd, groups, gshift};
  }();
  const auto values = [&] {
    if constexpr (VT2 == KvType::kInt4)
      return Int4ValueRows<VT>{c.v_codes, vm, hd, groups, gshift};
    else
      return Int8Rows<VT>{reinterpret_cast<const int8_t*>(c.v_codes), vm, hd, groups, gshift};
  }();
  tile_direct<VT>(t, keys, values);
}

// The path's attn_tile_quant (isa.h): int8 / int4 keys and values decoded in registers, each
// value read once from the cache; the tile's scales (and minima) are widened to f32 first.
template <class VT>
bool quant_tile(const AttnTile& t, const QuantTile& c) {
  constexpr int W = VT::kW;
  const int hd = t.head_dim, nk = t.n_keys;
  const int G = kv_group_size(hd), groups = hd / G,
            gshift = __builtin_ctz(static_cast<unsigned>(G));
  auto fits = [&](KvType type, bool keys) {
    if (type == KvType::kInt8) return G % W == 0;
    if (type == KvType::kInt4) return keys ? hd % (2 * W) == 0 : G % (2 * W) == 0;
    return false;
  };
  // Each register pass of the scores decodes every key again: cheap for int8 codes, not for
  // per-channel int4 ones, which take the caller's decoded f32 tile when the rows need more than
  // one pass (measured: GQA 8 int4 tiles ran ~1.5x slower in registers, int8 ones ~10% faster).
  const int max_rows = c.k_type == KvType::kInt4 ? score_pass_rows<VT>(hd) : kAttnDirectRows;
  if (hd % W != 0 || hd > 256 || t.rows > max_rows || !fits(c.k_type, true) ||
      !fits(c.v_type, false))
    return false;
  // Widened metadata: int8 [key][groups] scales (groups <= 32: G >= kW >= 8), int4 values
  // [key][groups][2] (groups <= 16: G >= 2 kW), int4 keys [token group][2][hd] over at most 5
  // token groups (a tile of 64 keys from key 15 of a group).
  alignas(64) float km[5 * 2 * 256], vm[kT * 32];
  const bool k4 = c.k_type == KvType::kInt4;
  const int k_floats =
      k4 ? (c.k_first + nk + kKvChannelGroup - 1) / kKvChannelGroup * 2 * hd : nk * groups;
  convert_values<VT, DType::kF16>(c.k_meta, k_floats, km);
  const int v_floats = nk * groups * (c.v_type == KvType::kInt4 ? 2 : 1);
  convert_values<VT, DType::kF16>(c.v_meta, v_floats, vm);
  using K = KvType;
  if (k4 && c.v_type == K::kInt4)
    quant_pair<VT, K::kInt4, K::kInt4>(t, c, km, vm, groups, gshift);
  else if (k4)
    quant_pair<VT, K::kInt4, K::kInt8>(t, c, km, vm, groups, gshift);
  else if (c.v_type == K::kInt4)
    quant_pair<VT, K::kInt8, K::kInt4>(t, c, km, vm, groups, gshift);
  else
    quant_pair<VT, K::kInt8, K::kInt8>(t, c, km, vm, groups, gshift);
  return true;
}

}  // namespace attn
}  // namespace
}  // namespace longctx::kernels::cpu
