// AVX-512 prefill over Q8_0 / Q4_0 / Q5_0 / Q5_1 weights (part of Isa::qgemm): an integer GEMM on
// VNNI that keeps llama.cpp's f32 order. llama.cpp multiplies these types in prefill with tinyBLAS:
// per output, 8 f32 lanes, lane k accumulating fma(d_w * d_x, (int) sum of the products of columns
// 4k..4k+3 of the block, lane) over the blocks in order, then the 8 lanes summed as ((l0 + l4) +
// (l2 + l6)) + ((l1 + l5) + (l3 + l7)). AVX2's prefill (cpu/quant_dot.h) does the same, and the
// peaked test models move by a tenth of a percent of perplexity under any other order
// (docs/gguf-kernels.md). Here the 16 lanes of a vector are 16 weight rows and each output keeps
// its 8 lane accumulators as 8 vectors: one vpdpbusd per 4 columns gives exactly tinyBLAS's int
// lane for 16 rows at once, with the panel of 16 unpacked weight rows (all columns: the 8
// accumulators of an output live in registers from the first block to the last) reused by all n x
// rows.
//
// Codes are unsigned in the panel (Q8_0: w + 128 as w ^ 0x80; Q4_0: the nibble, value q - 8; Q5_0:
// the 5-bit code, value q - 16), so each lane's integer is vpdpbusd(u, x) - off * (sum of the 4 x
// codes), off = 128, 8 or 16, exact. Q5_1 (value d q + m) has no offset; its minima add
// m * d_x * (the block's x code sum) per block in a ninth accumulator, added after the 8 lanes.
// llama.cpp's order for Q5_0 / Q5_1 was not checked (no golden file holds them).
#include <immintrin.h>

#include <cstdint>
#include <type_traits>

#include "kernels/cpu/isa.h"
#include "kernels/quant_blocks.h"

namespace longctx::kernels::cpu::avx512 {
namespace {

constexpr int kNR = 16;  // weight rows per panel: the lanes of one vector
constexpr int kMX = 3;   // x rows per micro-kernel call: 24 accumulators

inline float f16(uint16_t h) { return _cvtsh_ss(h); }

// acc + vpdpbusd(w, the 4 bytes at x in every lane), the broadcast folded into the instruction
// (GCC emits a separate vpbroadcastd for _mm512_set1_epi32).
inline __m512i dpbusd_bcast(__m512i acc, __m512i w, const int8_t* x) {
  __asm__("vpdpbusd %2%{1to16%}, %1, %0"
          : "+v"(acc)
          : "v"(w), "m"(*reinterpret_cast<const int32_t*>(x)));
  return acc;
}

// The panel in the thread's scratch (q0_pack_bytes): codes [cols / 4][16][4], d [cols / 32][16],
// the x rows' offsets [kMX][cols / 4], one row's codes before transposition, Q5_1's minima
// [cols / 32][16].
struct PanelQ0 {
  uint8_t (*codes)[kNR][4];
  float (*d)[kNR];
  int32_t* off;
  uint8_t* row;
  float (*m)[kNR];
};

PanelQ0 panel_at(void* mem, int64_t cols) {
  auto* p = static_cast<uint8_t*>(mem);
  return PanelQ0{reinterpret_cast<uint8_t(*)[kNR][4]>(p),
                 reinterpret_cast<float(*)[kNR]>(p + 16 * cols),
                 reinterpret_cast<int32_t*>(p + 18 * cols), p + 21 * cols,
                 reinterpret_cast<float(*)[kNR]>(p + 22 * cols)};
}

template <TensorType T>
void pack(const WeightView& w, int64_t r, int nr, const PanelQ0& p) {
  const int64_t cols = w.cols, nb = cols / 32;
  for (int i = 0; i < kNR; ++i) {
    const uint8_t* src = static_cast<const uint8_t*>(w.data) + (r + i) * w.row_bytes;
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* o = p.row + 32 * b;
      if (i >= nr) {
        p.d[b][i] = 0.f;
        p.m[b][i] = 0.f;
        for (int l = 0; l < 32; ++l) o[l] = 0;
        continue;
      }
      uint16_t dh;
      __builtin_memcpy(&dh, src, 2);
      p.d[b][i] = f16(dh);
      if constexpr (T == TensorType::kQ8_0) {
        for (int l = 0; l < 32; ++l) o[l] = static_cast<uint8_t>(src[2 + l] ^ 0x80);
        src += 34;
      } else if constexpr (T == TensorType::kQ4_0) {
        for (int l = 0; l < 16; ++l) o[l] = src[2 + l] & 0xF, o[l + 16] = src[2 + l] >> 4;
        src += 18;
      } else {
        constexpr int qs_at = quant::block32_qs_at(T);
        if constexpr (T == TensorType::kQ5_1) {
          uint16_t mh;
          __builtin_memcpy(&mh, src + offsetof(quant::BlockQ5_1, m), 2);
          p.m[b][i] = f16(mh);
        }
        for (int l = 0; l < 32; ++l)
          o[l] = static_cast<uint8_t>(quant::q5_code(src + qs_at, src + qs_at - 4, l));
        src += quant::block32_bytes(T);
      }
    }
    for (int64_t c4 = 0; c4 < cols / 4; ++c4) __builtin_memcpy(p.codes[c4][i], p.row + 4 * c4, 4);
  }
}

// y[i][0..nr) for x rows [0, MX) (codes xq, stride cols; f16-rounded scales xd, stride nb; code
// sums of 16 xs, stride cols / 16).
template <TensorType T, int MX>
void ukernel(const PanelQ0& p, int64_t cols, const int8_t* xq, const float* xd, const int16_t* xs,
             float* y, int64_t ldy, int nr, const float* bias) {
  // The value of an unsigned panel code is code - off; Q5_1's is d * code + m.
  constexpr uint8_t kOff = T == TensorType::kQ8_0   ? 0x80
                           : T == TensorType::kQ4_0 ? 8
                           : T == TensorType::kQ5_0 ? 16
                                                    : 0;
  const int64_t nb = cols / 32;
  // off * (sum of each 4 x codes), 16 groups of 4 per vpdpbusd (the last vector may be half).
  if constexpr (kOff != 0)
    for (int i = 0; i < MX; ++i)
      for (int64_t c = 0; c < cols; c += 64) {
        const bool half = cols - c < 64;
        const __m512i xv = _mm512_maskz_loadu_epi8(half ? 0xFFFFFFFFull : ~0ull, xq + i * cols + c);
        const __m512i o = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(kOff), xv);
        _mm512_mask_storeu_epi32(p.off + i * (cols / 4) + c / 4, half ? 0xFF : 0xFFFF, o);
      }
  __m512 acc[MX][8], accm[MX];
  for (int i = 0; i < MX; ++i) {
    accm[i] = _mm512_setzero_ps();
    for (int k = 0; k < 8; ++k) acc[i][k] = _mm512_setzero_ps();
  }
  for (int64_t b = 0; b < nb; ++b) {
    const __m512 dv = _mm512_load_ps(p.d[b]);
    __m512 s[MX];
    for (int i = 0; i < MX; ++i) s[i] = _mm512_mul_ps(dv, _mm512_set1_ps(xd[i * nb + b]));
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) {
      const __m512i wv = _mm512_load_si512(p.codes[8 * b + k]);
      for (int i = 0; i < MX; ++i) {
        __m512i v = dpbusd_bcast(_mm512_setzero_si512(), wv, xq + i * cols + 32 * b + 4 * k);
        if constexpr (kOff != 0)
          v = _mm512_sub_epi32(v, _mm512_set1_epi32(p.off[i * (cols / 4) + 8 * b + k]));
        acc[i][k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v), s[i], acc[i][k]);
      }
    }
    if constexpr (T == TensorType::kQ5_1) {  // m * d_x * (the block's x codes summed)
      const __m512 mv = _mm512_load_ps(p.m[b]);
      for (int i = 0; i < MX; ++i) {
        const int16_t* xb = xs + i * (cols / 16) + 2 * b;
        accm[i] = _mm512_fmadd_ps(mv, _mm512_set1_ps(xd[i * nb + b] * float(xb[0] + xb[1])),
                                  accm[i]);
      }
    }
  }
  const __mmask16 mask = static_cast<__mmask16>((1u << nr) - 1);
  const __m512 bv = bias ? _mm512_maskz_loadu_ps(mask, bias) : _mm512_setzero_ps();
  for (int i = 0; i < MX; ++i) {
    const __m512 t0 = _mm512_add_ps(acc[i][0], acc[i][4]), t1 = _mm512_add_ps(acc[i][1], acc[i][5]);
    const __m512 t2 = _mm512_add_ps(acc[i][2], acc[i][6]), t3 = _mm512_add_ps(acc[i][3], acc[i][7]);
    __m512 v = _mm512_add_ps(_mm512_add_ps(t0, t2), _mm512_add_ps(t1, t3));
    if constexpr (T == TensorType::kQ5_1) v = _mm512_add_ps(v, accm[i]);
    _mm512_mask_storeu_ps(y + i * ldy, mask, _mm512_add_ps(v, bv));
  }
}

template <TensorType T>
void qgemm_t(const QuantAct& x, int64_t n, const WeightView& w, const float* bias, float* y,
             int64_t r0, int64_t r1, const PanelQ0& p) {
  const int64_t cols = x.cols, nb = cols / 32, n16 = cols / 16;
  for (int64_t r = r0; r < r1; r += kNR) {
    const int nr = static_cast<int>(r1 - r < kNR ? r1 - r : kNR);
    pack<T>(w, r, nr, p);
    const float* b = bias ? bias + r : nullptr;
    auto call = [&](auto mx, int64_t i) {
      ukernel<T, decltype(mx)::value>(p, cols, x.q + i * cols, x.d + i * nb, x.bsum + i * n16,
                                      y + i * w.rows + r, w.rows, nr, b);
    };
    int64_t i = 0;
    for (; i + kMX <= n; i += kMX) call(std::integral_constant<int, kMX>{}, i);
    if (n - i == 2)
      call(std::integral_constant<int, 2>{}, i);
    else if (n - i == 1)
      call(std::integral_constant<int, 1>{}, i);
  }
}

}  // namespace

size_t qgemm_q0_pack_bytes(int64_t cols) { return static_cast<size_t>(24 * cols); }

void qgemm_q0(const QuantAct& x, int64_t n, const WeightView& w, const float* bias, float* y,
              int64_t r0, int64_t r1, void* pack) {
  const PanelQ0 p = panel_at(pack, x.cols);
  switch (w.type) {
    case TensorType::kQ8_0:
      return qgemm_t<TensorType::kQ8_0>(x, n, w, bias, y, r0, r1, p);
    case TensorType::kQ4_0:
      return qgemm_t<TensorType::kQ4_0>(x, n, w, bias, y, r0, r1, p);
    case TensorType::kQ5_0:
      return qgemm_t<TensorType::kQ5_0>(x, n, w, bias, y, r0, r1, p);
    case TensorType::kQ5_1:
      return qgemm_t<TensorType::kQ5_1>(x, n, w, bias, y, r0, r1, p);
    default:
      return;
  }
}

}  // namespace longctx::kernels::cpu::avx512
