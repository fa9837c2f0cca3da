// KV-cache element types (codecs and names in kernels/kv_quant.h, see docs/kv-quantization.md).
#pragma once

#include <cstdint>

namespace longctx {

enum class KvType : uint8_t { kF32, kF16, kBF16, kInt8, kInt4 };

namespace kernels {
// Tokens per group of the per-channel (int4 key) format; blocks hold whole groups.
inline constexpr int kKvChannelGroup = 16;
}  // namespace kernels

}  // namespace longctx
