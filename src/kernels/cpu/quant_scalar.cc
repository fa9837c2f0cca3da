// The scalar path's block-type matvec: the integer arithmetic the SIMD paths (cpu/quant_dot.h)
// vectorize, written plainly. Per weight block, the products of weight codes and activation codes
// are summed exactly in int32, scaled by the block's sub-scales in int32 (the K-quants), then by
// the f32 scales of weights and activations.
#include "kernels/cpu/isa.h"
#include "kernels/cpu/quant_act.h"
#include "kernels/quant_blocks.h"

namespace longctx::kernels::cpu::scalar {

using namespace quant;

namespace {

// Dot product of one weight row with one quantized x row (QuantAct row pointers).
float row_dot(TensorType t, const uint8_t* w, int64_t cols, const int8_t* xq, const float* xd,
              const int16_t* xs) {
  float acc = 0.f;
  switch (t) {
    case TensorType::kQ8_0:
      for (int64_t b = 0; b < cols / kQK; ++b, xq += kQK) {
        const auto& blk = reinterpret_cast<const BlockQ8_0*>(w)[b];
        int32_t s = 0;
        for (int l = 0; l < kQK; ++l) s += blk.qs[l] * xq[l];
        acc += f16_to_f32(blk.d) * xd[b] * static_cast<float>(s);
      }
      break;
    case TensorType::kQ4_0:
      for (int64_t b = 0; b < cols / kQK; ++b, xq += kQK) {
        const auto& blk = reinterpret_cast<const BlockQ4_0*>(w)[b];
        int32_t s = 0;
        for (int l = 0; l < 16; ++l)
          s += ((blk.qs[l] & 0xF) - 8) * xq[l] + ((blk.qs[l] >> 4) - 8) * xq[l + 16];
        acc += f16_to_f32(blk.d) * xd[b] * static_cast<float>(s);
      }
      break;
    case TensorType::kQ5_0:
    case TensorType::kQ5_1:
      for (int64_t b = 0; b < cols / kQK; ++b, xq += kQK, xs += 2) {
        const bool q51 = t == TensorType::kQ5_1;
        const uint8_t* blk = w + b * block32_bytes(t);
        const uint8_t* qs = blk + block32_qs_at(t);
        int32_t s = 0;
        for (int l = 0; l < kQK; ++l) s += (q5_code(qs, qs - 4, l) - (q51 ? 0 : 16)) * xq[l];
        uint16_t dm[2];
        __builtin_memcpy(dm, blk, 4);
        acc += f16_to_f32(dm[0]) * xd[b] * static_cast<float>(s);
        // Q5_1's minimum times the block's activations: m * d_x * (sum of the x codes).
        if (q51) acc += f16_to_f32(dm[1]) * xd[b] * static_cast<float>(xs[0] + xs[1]);
      }
      break;
    case TensorType::kQ4_K:
    case TensorType::kQ5_K:
      for (int64_t b = 0; b < cols / kQKK; ++b, xq += kQKK, xs += 16) {
        const bool q5 = t == TensorType::kQ5_K;
        const uint16_t* dd = reinterpret_cast<const uint16_t*>(w + b * (q5 ? 176 : 144));
        const uint8_t* scales = reinterpret_cast<const uint8_t*>(dd + 2);
        const uint8_t* qh = q5 ? scales + 12 : nullptr;
        const uint8_t* qs = scales + 12 + (q5 ? 32 : 0);
        int32_t sum = 0, mins = 0;
        for (int s = 0; s < 8; ++s) {
          int sc = 0, m = 0;
          scale_min_k4(s, scales, sc, m);
          int32_t dot = 0;
          for (int l = 0; l < 32; ++l) {
            int v = s % 2 == 0 ? qs[32 * (s / 2) + l] & 0xF : qs[32 * (s / 2) + l] >> 4;
            if (qh) v += ((qh[l] >> s) & 1) << 4;
            dot += v * xq[32 * s + l];
          }
          sum += sc * dot;
          mins += m * (xs[2 * s] + xs[2 * s + 1]);
        }
        acc += xd[b] * (f16_to_f32(dd[0]) * static_cast<float>(sum) -
                        f16_to_f32(dd[1]) * static_cast<float>(mins));
      }
      break;
    case TensorType::kQ6_K:
      for (int64_t b = 0; b < cols / kQKK; ++b, xq += kQKK, xs += 16) {
        const auto& blk = reinterpret_cast<const BlockQ6_K*>(w)[b];
        int32_t sum = 0, off = 0;
        for (int e = 0; e < kQKK; e += 16) {
          int32_t dot = 0;
          for (int l = e; l < e + 16; ++l) {
            const int h = l / 128, k = (l % 128) / 32, j = l % 32;
            const uint8_t lo = blk.ql[64 * h + j + 32 * (k & 1)];
            const int v =
                (k < 2 ? lo & 0xF : lo >> 4) | (((blk.qh[32 * h + j] >> (2 * k)) & 3) << 4);
            dot += v * xq[l];
          }
          sum += blk.scales[e / 16] * dot;
          off += blk.scales[e / 16] * xs[e / 16];
        }
        acc += xd[b] * f16_to_f32(blk.d) * static_cast<float>(sum - 32 * off);
      }
      break;
    default:
      break;
  }
  return acc;
}

}  // namespace

void quantize_act(const float* x, int64_t n, int64_t cols, int group, int8_t* q, float* d,
                  int16_t* bsum) {
  quantize_act_rows(x, n, cols, group, q, d, bsum);
}

void qmatvec(const QuantAct& x, int64_t n, const WeightView& w, const float* bias, float* y,
             int64_t r0, int64_t r1) {
  const int64_t cols = x.cols, ng = cols / x.group;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* wr = static_cast<const uint8_t*>(w.data) + r * w.row_bytes;
    for (int64_t i = 0; i < n; ++i)
      y[i * w.rows + r] =
          row_dot(w.type, wr, cols, x.q + i * cols, x.d + i * ng, x.bsum + i * (cols / 16)) +
          (bias ? bias[r] : 0.f);
  }
}

}  // namespace longctx::kernels::cpu::scalar
