// AVX-512 prefill over K-quant weights (Isa::qgemm): an integer GEMM on VNNI. Each panel of 16
// weight rows x up to kKC columns is unpacked once into unsigned codes laid out [column / 4][row]
// [4] with its scales, so one vpdpbusd multiplies 4 columns of all 16 rows (the lanes) by 4
// activation codes of one x row (a broadcast), and every unpacked code serves all n x rows.
//
// Per super-block (and x row) the arithmetic is the scalar path's, exact in int32:
//   T = sum over sub-blocks s of sc_s * (sum of code products in s)
//   M = sum over 32-column chunks p of mm_p * (x code sums of p's two 16-column halves)
// with mm the sub-block minimum (Q4_K / Q5_K) or 32 * sc per 16 columns (Q6_K, codes stored
// + 32). Then y += d_x * (d_w * T - dmin_w * M) (Q4_K, Q5_K) or d_x * d_w * (T - M) (Q6_K) in f32
// per super-block: the same products as qmatvec, only the f32 additions in another order.
// (Q8_0 / Q4_0: quant_gemm_q0_avx512.cc, which keeps llama.cpp's f32 order.)
#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/isa.h"
#include "kernels/quant_blocks.h"

namespace longctx::kernels::cpu::avx512 {
namespace {

using namespace quant;

constexpr int kNR = 16;    // weight rows per panel: the lanes of one vector
constexpr int kKC = 1024;  // columns per panel (a multiple of 256: whole blocks of every type)
constexpr int kMX = 8;     // x rows per micro-kernel call
constexpr int G = 256;     // columns per super-block (one x group)
constexpr int kMaxSub = kKC / 16;  // sub-blocks per panel (Q6_K: 16 columns each)

// One panel's unpacked weights, in the thread's pack scratch.
struct Panel {
  uint8_t codes[kKC / 4][kNR][4];
  int32_t sc[kMaxSub][kNR];      // sub-block scales (K-quants)
  int16_t mm[kKC / 32][kNR][2];  // offset / minimum multipliers of each 16-column half
  float d[kKC / G][kNR];         // per super-block
  float dmin[kKC / G][kNR];
  uint8_t row[kKC];  // one row's codes before transposition
};

constexpr int sub_of(TensorType t) { return t == TensorType::kQ6_K ? 16 : 32; }
// Whether the offset has its own scale (dmin) or shares the block's (T - M in int32).
constexpr bool has_dmin(TensorType t) { return t != TensorType::kQ6_K; }

inline float f16(uint16_t h) { return _cvtsh_ss(h); }

// Unpacks columns [k0, k0 + kc) of row `src` (already offset to block k0) into p.row and the
// metadata of panel row i. Plain loops (the compiler vectorizes them).
template <TensorType T>
void unpack_row(const uint8_t* src, int kc, Panel& p, int i) {
  if constexpr (T == TensorType::kQ4_K || T == TensorType::kQ5_K) {
    constexpr bool q5 = T == TensorType::kQ5_K;
    for (int b = 0; b < kc / 256; ++b, src += q5 ? 176 : 144) {
      uint16_t dd[2];
      __builtin_memcpy(dd, src, 4);
      p.d[b][i] = f16(dd[0]);
      p.dmin[b][i] = f16(dd[1]);
      const uint8_t* qh = src + 16;
      const uint8_t* qs = src + (q5 ? 48 : 16);
      for (int s = 0; s < 8; ++s) {
        int sc = 0, m = 0;
        scale_min_k4(s, src + 4, sc, m);
        p.sc[8 * b + s][i] = sc;
        p.mm[8 * b + s][i][0] = p.mm[8 * b + s][i][1] = static_cast<int16_t>(m);
        uint8_t* o = p.row + 256 * b + 32 * s;
        for (int l = 0; l < 32; ++l) {
          uint8_t v = s % 2 == 0 ? qs[32 * (s / 2) + l] & 0xF : qs[32 * (s / 2) + l] >> 4;
          if constexpr (q5) v = static_cast<uint8_t>(v + (((qh[l] >> s) & 1) << 4));
          o[l] = v;
        }
      }
    }
  } else {  // Q6_K
    for (int b = 0; b < kc / 256; ++b, src += 210) {
      const auto* blk = reinterpret_cast<const BlockQ6_K*>(src);
      p.d[b][i] = f16(blk->d);
      for (int j = 0; j < 16; ++j) {
        p.sc[16 * b + j][i] = blk->scales[j];
        p.mm[8 * b + j / 2][i][j % 2] = static_cast<int16_t>(32 * blk->scales[j]);
      }
      uint8_t* o = p.row + 256 * b;
      for (int h = 0; h < 2; ++h)
        for (int k = 0; k < 4; ++k)
          for (int l = 0; l < 32; ++l) {
            const uint8_t lo = blk->ql[64 * h + l + 32 * (k & 1)];
            o[128 * h + 32 * k + l] = static_cast<uint8_t>(
                (k < 2 ? lo & 0xF : lo >> 4) | (((blk->qh[32 * h + l] >> (2 * k)) & 3) << 4));
          }
    }
  }
}

// Rows [r, r + nr) x columns [k0, k0 + kc) of w into p; rows past nr are zero (codes, scales),
// so they add nothing and their lanes are never stored.
template <TensorType T>
void pack(const WeightView& w, int64_t r, int nr, int64_t k0, int kc, Panel& p) {
  constexpr int64_t block_bytes = T == TensorType::kQ4_K ? 144 : T == TensorType::kQ5_K ? 176 : 210;
  const int64_t off = k0 / G * block_bytes;
  for (int i = 0; i < kNR; ++i) {
    if (i < nr) {
      unpack_row<T>(static_cast<const uint8_t*>(w.data) + (r + i) * w.row_bytes + off, kc, p, i);
    } else {
      for (int c = 0; c < kc; ++c) p.row[c] = 0;
      for (int g = 0; g < kc / G; ++g) p.d[g][i] = p.dmin[g][i] = 0.f;
      for (int q = 0; q < kc / 32; ++q) p.mm[q][i][0] = p.mm[q][i][1] = 0;
      for (int s = 0; s < kc / 16; ++s) p.sc[s][i] = 0;
    }
    for (int c4 = 0; c4 < kc / 4; ++c4) __builtin_memcpy(p.codes[c4][i], p.row + 4 * c4, 4);
  }
}

// acc + vpdpbusd(w, the 4 bytes at x in every lane), with the broadcast folded into the
// instruction's memory operand (GCC emits a separate vpbroadcastd for _mm512_set1_epi32: twice
// the instructions of the micro-kernel's inner loop).
inline __m512i dpbusd_bcast(__m512i acc, __m512i w, const int8_t* x) {
  __asm__("vpdpbusd %2%{1to16%}, %1, %0"
          : "+v"(acc)
          : "v"(w), "m"(*reinterpret_cast<const int32_t*>(x)));
  return acc;
}

inline __m512i bcast4(const void* p) {
  int v;
  __builtin_memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// y[i][0..nr) (+)= the panel's columns times x rows [0, MX): x codes xq (stride ldq, at column
// k0), scales xd (stride ldd, at group k0 / G), code sums xs (stride lds, at k0 / 16).
template <TensorType T, int MX>
void ukernel(const Panel& p, int kc, const int8_t* xq, int64_t ldq, const float* xd, int64_t ldd,
             const int16_t* xs, int64_t lds, float* y, int64_t ldy, int nr, bool first,
             const float* bias) {
  constexpr int S = sub_of(T);
  const __mmask16 mask = static_cast<__mmask16>((1u << nr) - 1);
  __m512 acc[MX];
  for (int i = 0; i < MX; ++i)
    acc[i] = first ? (bias ? _mm512_maskz_loadu_ps(mask, bias) : _mm512_setzero_ps())
                   : _mm512_maskz_loadu_ps(mask, y + i * ldy);
  const int8_t* xr[MX];
  for (int i = 0; i < MX; ++i) xr[i] = xq + i * ldq;
  for (int g = 0; g < kc / G; ++g) {
    __m512i t[MX], s[MX];
    for (int i = 0; i < MX; ++i) t[i] = _mm512_setzero_si512();
    for (int sb = 0; sb < G / S; ++sb) {
      const int c0 = g * G + sb * S;
      const uint8_t(*wc)[kNR][4] = p.codes + c0 / 4;
      for (int i = 0; i < MX; ++i) s[i] = _mm512_setzero_si512();
#pragma GCC unroll 8
      for (int u = 0; u < S / 4; ++u) {
        const __m512i wv = _mm512_load_si512(wc[u]);
        for (int i = 0; i < MX; ++i) s[i] = dpbusd_bcast(s[i], wv, xr[i] + c0 + 4 * u);
      }
      const __m512i sc = _mm512_load_si512(p.sc[c0 / S]);
      for (int i = 0; i < MX; ++i) t[i] = _mm512_add_epi32(t[i], _mm512_mullo_epi32(s[i], sc));
    }
    // M: minima / offsets times the x code sums, two 16-column halves per 32 columns.
    for (int i = 0; i < MX; ++i) s[i] = _mm512_setzero_si512();
    for (int q = g * G / 32; q < (g + 1) * G / 32; ++q) {
      const __m512i mv = _mm512_load_si512(p.mm[q]);
      for (int i = 0; i < MX; ++i)
        s[i] = _mm512_dpwssd_epi32(s[i], mv, bcast4(xs + i * lds + 2 * q));
    }
    const __m512 dv = _mm512_load_ps(p.d[g]);
    if constexpr (has_dmin(T)) {
      const __m512 mv = _mm512_load_ps(p.dmin[g]);
      for (int i = 0; i < MX; ++i) {
        const __m512 dx = _mm512_set1_ps(xd[i * ldd + g]);
        acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t[i]), _mm512_mul_ps(dv, dx), acc[i]);
        acc[i] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(s[i]), _mm512_mul_ps(mv, dx), acc[i]);
      }
    } else {
      for (int i = 0; i < MX; ++i)
        acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(t[i], s[i])),
                                 _mm512_mul_ps(dv, _mm512_set1_ps(xd[i * ldd + g])), acc[i]);
    }
  }
  for (int i = 0; i < MX; ++i) _mm512_mask_storeu_ps(y + i * ldy, mask, acc[i]);
}

template <TensorType T>
void qgemm_t(const QuantAct& x, int64_t n, const WeightView& w, const float* bias, float* y,
             int64_t r0, int64_t r1, Panel& p) {
  const int64_t cols = x.cols, ng = cols / G, ns = cols / 16;
  for (int64_t r = r0; r < r1; r += kNR) {
    const int nr = static_cast<int>(r1 - r < kNR ? r1 - r : kNR);
    for (int64_t k0 = 0; k0 < cols; k0 += kKC) {
      const int kc = static_cast<int>(cols - k0 < kKC ? cols - k0 : kKC);
      pack<T>(w, r, nr, k0, kc, p);
      const bool first = k0 == 0;
      const float* b = bias ? bias + r : nullptr;
      auto call = [&](int64_t i, auto mx) {
        ukernel<T, decltype(mx)::value>(p, kc, x.q + i * cols + k0, cols, x.d + i * ng + k0 / G, ng,
                                        x.bsum + i * ns + k0 / 16, ns, y + i * w.rows + r, w.rows,
                                        nr, first, b);
      };
      int64_t i = 0;
      for (; i + kMX <= n; i += kMX) call(i, std::integral_constant<int, kMX>{});
      switch (n - i) {
        case 7:
          call(i, std::integral_constant<int, 7>{});
          break;
        case 6:
          call(i, std::integral_constant<int, 6>{});
          break;
        case 5:
          call(i, std::integral_constant<int, 5>{});
          break;
        case 4:
          call(i, std::integral_constant<int, 4>{});
          break;
        case 3:
          call(i, std::integral_constant<int, 3>{});
          break;
        case 2:
          call(i, std::integral_constant<int, 2>{});
          break;
        case 1:
          call(i, std::integral_constant<int, 1>{});
          break;
        default:
          break;
      }
    }
  }
}

}  // namespace

size_t qgemm_q0_pack_bytes(int64_t cols);
void qgemm_q0(const QuantAct& x, int64_t n, const WeightView& w, const float* bias, float* y,
              int64_t r0, int64_t r1, void* pack);

size_t qgemm_pack_bytes(TensorType t, int64_t cols) {
  return act_group(t) == 32 ? qgemm_q0_pack_bytes(cols) : sizeof(Panel);
}

void qgemm(const QuantAct& x, int64_t n, const WeightView& w, const float* bias, float* y,
           int64_t r0, int64_t r1, void* pack) {
  Panel& p = *static_cast<Panel*>(pack);
  switch (w.type) {
    case TensorType::kQ8_0:
    case TensorType::kQ4_0:
    case TensorType::kQ5_0:
    case TensorType::kQ5_1:
      return qgemm_q0(x, n, w, bias, y, r0, r1, pack);
    case TensorType::kQ4_K:
      return qgemm_t<TensorType::kQ4_K>(x, n, w, bias, y, r0, r1, p);
    case TensorType::kQ5_K:
      return qgemm_t<TensorType::kQ5_K>(x, n, w, bias, y, r0, r1, p);
    case TensorType::kQ6_K:
      return qgemm_t<TensorType::kQ6_K>(x, n, w, bias, y, r0, r1, p);
    default:
      return;
  }
}

}  // namespace longctx::kernels::cpu::avx512
