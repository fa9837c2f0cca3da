// Element types of weights and KV cache, and scalar conversions between them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace longctx {

enum class DType : uint8_t { kF32, kF16, kBF16 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);  // "f32", "f16", "bf16"
// Parses "f32"/"f16"/"bf16" (also "float32", "float16", "bfloat16"); throws Error otherwise.
DType parse_dtype(std::string_view s);

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest even; NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);  // round to nearest even, overflow to inf

// Converts n elements of type `t` at `src` to f32.
void to_f32(DType t, const void* src, float* dst, size_t n);
// Converts n f32 values to type `t` at `dst`.
void from_f32(DType t, const float* src, void* dst, size_t n);

}  // namespace longctx
