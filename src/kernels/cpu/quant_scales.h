// Q4_K / Q5_K scale unpacking and Q5_1's minima, shared by the block-type kernels of every path.
// Internal linkage (an anonymous namespace), so each path's translation unit keeps its own copy
// (cpu/isa.h).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/quant_blocks.h"

namespace longctx::kernels::cpu {
namespace {

// The 12 packed scale bytes of a Q4_K / Q5_K super-block as 16 bytes in u: the 6-bit scales of its
// 8 sub-blocks (bytes 0..7), then their 6-bit minima (bytes 8..15).
inline void unpack_k_scales(const uint8_t* packed12, uint32_t u[4]) {
  __builtin_memcpy(u, packed12, 12);
  u[3] = ((u[2] >> 4) & 0x0f0f0f0f) | (((u[1] >> 6) & 0x03030303) << 4);
  const uint32_t mins_lo = u[1] & 0x3f3f3f3f;
  u[1] = (u[2] & 0x0f0f0f0f) | (((u[0] >> 6) & 0x03030303) << 4);
  u[2] = mins_lo;
  u[0] &= 0x3f3f3f3f;
}

// The 32 fifth bits of a Q5_0 / Q5_1 block (qh as stored: bit i is element i's).
inline uint32_t q5_high_bits(const uint8_t* qh) {
  uint32_t h;
  __builtin_memcpy(&h, qh, 4);
  return h;
}

// Q5_1's minima against one x row (QuantAct row: scales xd per block, code sums xs per 16
// elements): the sum over the row's nb blocks, in order, of m * d_x * (the block's 32 x codes
// summed). f16 converts a stored half.
template <class F16>
inline float q5_1_min_sum(const uint8_t* wr, int64_t nb, const float* xd, const int16_t* xs,
                          F16 f16) {
  float s = 0.f;
  for (int64_t b = 0; b < nb; ++b) {
    uint16_t m;
    __builtin_memcpy(&m, wr + sizeof(quant::BlockQ5_1) * b + offsetof(quant::BlockQ5_1, m), 2);
    s += f16(m) * xd[b] * static_cast<float>(xs[2 * b] + xs[2 * b + 1]);
  }
  return s;
}

}  // namespace
}  // namespace longctx::kernels::cpu
