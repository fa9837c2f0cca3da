// Internal: the GGUF block layouts of kernels' quantized weight types, byte for byte as ggml
// stores them (llama.cpp's GGUF files hold these blocks; docs/gguf-kernels.md draws them). Shared
// by the reference (de)quantizers and the SIMD paths, so it holds only plain structs and
// constexpr inline helpers: nothing a path's translation unit could compile differently.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/tensor_type.h"

namespace longctx::kernels::quant {

inline constexpr int kQK = 32;    // elements of a Q8_0 / Q4_0 block
inline constexpr int kQKK = 256;  // elements of a K-quant super-block

// x[i] = d * qs[i].
struct BlockQ8_0 {
  uint16_t d;  // f16
  int8_t qs[32];
};
// x[i] = d * (q[i] - 8); q[i] = qs[i] & 15 and q[i + 16] = qs[i] >> 4 for i < 16.
struct BlockQ4_0 {
  uint16_t d;  // f16
  uint8_t qs[16];
};
// x[i] = d * (q[i] - 16), q[i] in [0, 31]: the nibbles as Q4_0's (element i low, i + 16 high) and
// bit i of qh (little-endian uint32) as bit 4 of q[i].
struct BlockQ5_0 {
  uint16_t d;  // f16
  uint8_t qh[4];
  uint8_t qs[16];
};
// x[i] = d * q[i] + m, q[i] in [0, 31], coded as Q5_0's.
struct BlockQ5_1 {
  uint16_t d;  // f16
  uint16_t m;  // f16
  uint8_t qh[4];
  uint8_t qs[16];
};
// 8 sub-blocks s of 32: x = d * sc[s] * q - dmin * m[s], q in [0, 15]; sc, m 6-bit in `scales`
// (scale_min_k4). qs[32 * j + l] holds element l of sub-block 2j (low nibble) and of 2j + 1 (high).
struct BlockQ4_K {
  uint16_t d;     // f16, super-block scale of the sub-block scales
  uint16_t dmin;  // f16, super-block scale of the sub-block minima
  uint8_t scales[12];
  uint8_t qs[128];
};
// As Q4_K with a fifth bit: q = nibble + 16 * bit s of qh[l] for element l of sub-block s.
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[32];
  uint8_t qs[128];
};
// 16 sub-blocks j of 16: x = d * scales[j] * (q - 32), q in [0, 63]. Per half h (128 elements),
// element 32 * k + l (k < 4, l < 32) has its low 4 bits in ql[64h + l + 32 (k & 1)] (low nibble
// for k < 2, high for k >= 2) and its high 2 bits at bit 2k of qh[32h + l].
struct BlockQ6_K {
  uint8_t ql[128];
  uint8_t qh[64];
  int8_t scales[16];
  uint16_t d;  // f16
};

static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_K) == 144 &&
              sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210 && sizeof(BlockQ5_0) == 22 &&
              sizeof(BlockQ5_1) == 24);

// Bytes of a block of one of the 32-element types (Q8_0, Q4_0, Q5_0, Q5_1), and where its codes
// (qs) start; a Q5 block's fifth bits (qh) are the 4 bytes before them. For the SIMD kernels, which
// need these at compile time.
constexpr int64_t block32_bytes(TensorType t) {
  return t == TensorType::kQ8_0   ? sizeof(BlockQ8_0)
         : t == TensorType::kQ4_0 ? sizeof(BlockQ4_0)
         : t == TensorType::kQ5_0 ? sizeof(BlockQ5_0)
                                  : sizeof(BlockQ5_1);
}
constexpr int block32_qs_at(TensorType t) {
  return t == TensorType::kQ8_0   ? offsetof(BlockQ8_0, qs)
         : t == TensorType::kQ4_0 ? offsetof(BlockQ4_0, qs)
         : t == TensorType::kQ5_0 ? offsetof(BlockQ5_0, qs)
                                  : offsetof(BlockQ5_1, qs);
}
static_assert(block32_qs_at(TensorType::kQ5_0) == offsetof(BlockQ5_0, qh) + 4 &&
              block32_qs_at(TensorType::kQ5_1) == offsetof(BlockQ5_1, qh) + 4);

// The 5-bit code q[i] of a Q5_0 / Q5_1 block (qs, qh as stored).
constexpr int q5_code(const uint8_t* qs, const uint8_t* qh, int i) {
  const uint32_t h = uint32_t{qh[0]} | uint32_t{qh[1]} << 8 | uint32_t{qh[2]} << 16 |
                     uint32_t{qh[3]} << 24;
  const int nib = i < 16 ? qs[i] & 0xF : qs[i - 16] >> 4;
  return nib | static_cast<int>((h >> i) & 1) << 4;
}

// Scale and minimum (6 bits each) of sub-block j < 8 of a Q4_K / Q5_K block: j < 4 in the low 6
// bits of bytes j and j + 4; j >= 4 in the nibbles of byte j + 4 with the top 2 bits in the high
// bits of bytes j - 4 (scale) and j (minimum).
constexpr void scale_min_k4(int j, const uint8_t* q, int& sc, int& m) {
  if (j < 4) {
    sc = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Round to nearest, ties to even, for |v| < 2^22 (the 1.5 * 2^23 trick: no libm call, so it
// vectorizes and gives the same result on every path).
inline int nearest_int(float v) {
  const float t = v + 12582912.f;
  int32_t i;
  __builtin_memcpy(&i, &t, 4);
  return (i & 0x007fffff) - 0x00400000;
}

}  // namespace longctx::kernels::quant
