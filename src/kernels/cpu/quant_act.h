// The activation quantizer of the block-type kernels (QuantAct in cpu/isa.h), written once in
// plain loops and compiled into each path's translation unit with that path's flags (the compiler
// vectorizes it); internal linkage, no library calls, so no copy can leak across paths.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "kernels/quant_blocks.h"

namespace longctx::kernels::cpu {
namespace {

// x [n][cols] -> q [n][cols], d [n][cols / group], bsum [n][cols / 16], rounded as llama.cpp
// rounds its activations, so that a GGUF file gives llama.cpp's figures (its peaked test models
// move by a tenth of a percent with another rounding):
//   group 32 (ggml's Q8_0, for Q8_0 / Q4_0 weights): d = amax / 127, q = round(x / d), and the
//     scale used is d rounded to f16, as ggml stores it;
//   group 256 (ggml's Q8_K, for the K-quants): with m the element of largest magnitude (its sign
//     kept), iscale = -127 / m, q = min(127, round(x * iscale)), d = 1 / iscale (negative when m
//     is positive; the products come out right).
// An all-zero group has d = 0 and zero codes.
inline void quantize_act_rows(const float* x, int64_t n, int64_t cols, int group, int8_t* q,
                              float* d, int16_t* bsum) {
  const int64_t ng = cols / group;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t g = 0; g < ng; ++g) {
      const float* xg = x + i * cols + g * group;
      int8_t* qg = q + i * cols + g * group;
      float amax = 0.f, m = 0.f;
      for (int l = 0; l < group; ++l) {
        const float a = __builtin_fabsf(xg[l]);
        if (a > amax) amax = a, m = xg[l];
      }
      if (amax == 0.f) {
        d[i * ng + g] = 0.f;
        for (int l = 0; l < group; ++l) qg[l] = 0;
      } else if (group == 32) {
        const float dd = amax / 127.f, id = 1.f / dd;
        d[i * ng + g] = f16_to_f32(f32_to_f16(dd));
        for (int l = 0; l < group; ++l)
          qg[l] = static_cast<int8_t>(quant::nearest_int(xg[l] * id));
      } else {
        const float iscale = -127.f / m;
        d[i * ng + g] = 1.f / iscale;
        for (int l = 0; l < group; ++l) {
          const int v = quant::nearest_int(xg[l] * iscale);
          qg[l] = static_cast<int8_t>(v > 127 ? 127 : v);
        }
      }
    }
    for (int64_t b = 0; b < cols / 16; ++b) {
      int s = 0;
      for (int l = 0; l < 16; ++l) s += q[i * cols + b * 16 + l];
      bsum[i * (cols / 16) + b] = static_cast<int16_t>(s);
    }
  }
}

}  // namespace
}  // namespace longctx::kernels::cpu
