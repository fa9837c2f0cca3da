// Q4_K / Q5_K scale unpacking shared by the block-type kernels of every path. Internal linkage (an
// anonymous namespace), so each path's translation unit keeps its own copy (cpu/isa.h).
#pragma once

#include <cstdint>

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

}  // namespace
}  // namespace longctx::kernels::cpu
