// The activation quantizer of the block-type kernels (QuantAct in cpu/isa.h), written once in
// plain loops and compiled into each path's translation unit with that path's flags (the compiler
// vectorizes it); internal linkage, no library calls, so no copy can leak across paths.
#pragma once

#include <cstdint>

#include "kernels/quant_blocks.h"

namespace longctx::kernels::cpu {
namespace {

// x [n][cols] -> q [n][cols], d [n][cols / group], bsum [n][cols / 16]: q = round(x * 127 / amax)
// per group (ties to even), d = amax / 127 (0 for an all-zero group, whose codes are 0).
inline void quantize_act_rows(const float* x, int64_t n, int64_t cols, int group, int8_t* q,
                              float* d, int16_t* bsum) {
  const int64_t ng = cols / group;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t g = 0; g < ng; ++g) {
      const float* xg = x + i * cols + g * group;
      int8_t* qg = q + i * cols + g * group;
      float amax = 0.f;
      for (int l = 0; l < group; ++l) {
        const float a = __builtin_fabsf(xg[l]);
        amax = a > amax ? a : amax;
      }
      const float id = amax > 0.f ? 127.f / amax : 0.f;
      d[i * ng + g] = amax / 127.f;
      for (int l = 0; l < group; ++l) qg[l] = static_cast<int8_t>(quant::nearest_int(xg[l] * id));
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
