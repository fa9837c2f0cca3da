// Scalar reference decoders of the GGUF block types (kernels/quant_blocks.h), written from the
// format's formulas; the tests check them against hand-built blocks and llama.cpp's files.
#include <cstring>
#include <type_traits>

#include "core/dtype.h"
#include "kernels/quant_blocks.h"
#include "kernels/reference/reference.h"

namespace longctx::kernels::reference {

using namespace quant;

namespace {

void dequant_q8_0(const BlockQ8_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = f16_to_f32(b[i].d);
    for (int l = 0; l < kQK; ++l) y[l] = d * b[i].qs[l];
  }
}

void dequant_q4_0(const BlockQ4_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = f16_to_f32(b[i].d);
    for (int l = 0; l < 16; ++l) {
      y[l] = d * ((b[i].qs[l] & 0xF) - 8);
      y[l + 16] = d * ((b[i].qs[l] >> 4) - 8);
    }
  }
}

// Q5_0 (x = d (q - 16)) and Q5_1 (x = d q + m).
template <class B>
void dequant_q5(const B* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = f16_to_f32(b[i].d);
    for (int l = 0; l < kQK; ++l) {
      const int q = q5_code(b[i].qs, b[i].qh, l);
      if constexpr (std::is_same_v<B, BlockQ5_0>)
        y[l] = d * (q - 16);
      else
        y[l] = d * q + f16_to_f32(b[i].m);
    }
  }
}

// Q4_K and Q5_K: qh == nullptr for Q4_K.
void dequant_k45(const uint16_t dd[2], const uint8_t* scales, const uint8_t* qh, const uint8_t* qs,
                 float* y) {
  const float d = f16_to_f32(dd[0]), dmin = f16_to_f32(dd[1]);
  for (int s = 0; s < 8; ++s) {
    int sc = 0, m = 0;
    scale_min_k4(s, scales, sc, m);
    const uint8_t* q = qs + 32 * (s / 2);
    for (int l = 0; l < 32; ++l) {
      int v = s % 2 == 0 ? q[l] & 0xF : q[l] >> 4;
      if (qh) v += ((qh[l] >> s) & 1) << 4;
      y[32 * s + l] = d * sc * v - dmin * m;
    }
  }
}

void dequant_q6_k(const BlockQ6_K& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int h = 0; h < 2; ++h)
    for (int k = 0; k < 4; ++k)
      for (int l = 0; l < 32; ++l) {
        const uint8_t lo = b.ql[64 * h + l + 32 * (k & 1)];
        const int q = ((k < 2 ? lo & 0xF : lo >> 4) | (((b.qh[32 * h + l] >> (2 * k)) & 3) << 4));
        const int e = 128 * h + 32 * k + l;
        y[e] = d * b.scales[e / 16] * (q - 32);
      }
}

}  // namespace

void dequantize_row(TensorType t, const void* src, float* dst, int64_t n) {
  const BlockLayout bl = block_layout(t);
  const int64_t nb = n / bl.elems;
  switch (t) {
    case TensorType::kF32:
    case TensorType::kF16:
    case TensorType::kBF16:
      to_f32(*float_dtype(t), src, dst, static_cast<size_t>(n));
      return;
    case TensorType::kQ8_0:
      return dequant_q8_0(static_cast<const BlockQ8_0*>(src), dst, nb);
    case TensorType::kQ4_0:
      return dequant_q4_0(static_cast<const BlockQ4_0*>(src), dst, nb);
    case TensorType::kQ4_K:
      for (int64_t i = 0; i < nb; ++i) {
        const auto& b = static_cast<const BlockQ4_K*>(src)[i];
        const uint16_t dd[2] = {b.d, b.dmin};
        dequant_k45(dd, b.scales, nullptr, b.qs, dst + i * kQKK);
      }
      return;
    case TensorType::kQ5_K:
      for (int64_t i = 0; i < nb; ++i) {
        const auto& b = static_cast<const BlockQ5_K*>(src)[i];
        const uint16_t dd[2] = {b.d, b.dmin};
        dequant_k45(dd, b.scales, b.qh, b.qs, dst + i * kQKK);
      }
      return;
    case TensorType::kQ6_K:
      for (int64_t i = 0; i < nb; ++i)
        dequant_q6_k(static_cast<const BlockQ6_K*>(src)[i], dst + i * kQKK);
      return;
    case TensorType::kQ5_0:
      return dequant_q5(static_cast<const BlockQ5_0*>(src), dst, nb);
    case TensorType::kQ5_1:
      return dequant_q5(static_cast<const BlockQ5_1*>(src), dst, nb);
  }
}

}  // namespace longctx::kernels::reference
