// KV-cache types: names, sizes, the (scalar, only) encoder and the scalar reference decoder. The
// format is described in kernels/kv_quant.h and docs/kv-quantization.md.
#include "kernels/kv_quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "core/error.h"
#include "kernels/cpu/kv_quant.h"

namespace longctx {

const char* kv_type_name(KvType t) {
  switch (t) {
    case KvType::kF32: return "f32";
    case KvType::kF16: return "f16";
    case KvType::kBF16: return "bf16";
    case KvType::kInt8: return "int8";
    case KvType::kInt4: return "int4";
  }
  return "?";
}

KvType parse_kv_type(const std::string& s) {
  for (KvType t : kAllKvTypes)
    if (s == kv_type_name(t)) return t;
  throw Error(ErrorKind::kInvalidArg,
              "unknown KV-cache type '" + s + "'; use one of f32, f16, bf16, int8, int4");
}

KvType kv_type_of(DType t) {
  switch (t) {
    case DType::kF32: return KvType::kF32;
    case DType::kF16: return KvType::kF16;
    case DType::kBF16: return KvType::kBF16;
  }
  return KvType::kF32;
}

bool kv_type_is_quantized(KvType t) { return t == KvType::kInt8 || t == KvType::kInt4; }

DType kv_float_dtype(KvType t) {
  switch (t) {
    case KvType::kF32: return DType::kF32;
    case KvType::kF16: return DType::kF16;
    case KvType::kBF16: return DType::kBF16;
    default: break;
  }
  throw Error(ErrorKind::kInternal, std::string("KV type ") + kv_type_name(t) + " is not a float type");
}

}  // namespace longctx

namespace longctx::kernels {

namespace {

constexpr uint16_t kF16Nan = 0x7e00;
constexpr float kF16Max = 65504.f;

// f16 bits of the smallest f16 >= x (x finite, >= 0, <= 65504).
uint16_t f16_round_up(float x) {
  uint16_t h = f32_to_f16(x);
  if (f16_to_f32(h) < x) ++h;  // positive: the next encoding is the next larger value
  return h;
}

// f16 bits of the largest f16 <= x (x finite, |x| <= 65504).
uint16_t f16_round_down(float x) {
  uint16_t h = f32_to_f16(x);
  if (f16_to_f32(h) > x) {
    if (h == 0) return 0x8001;         // +0 > x (tiny negative): the smallest negative subnormal
    h = (h & 0x8000) ? h + 1 : h - 1;  // away from zero if negative, toward zero if positive
  }
  return h;
}

void encode_int8(const float* x, int G, int8_t* codes, uint16_t* scale) {
  float amax = 0.f;
  bool finite = true;
  for (int i = 0; i < G; ++i) {
    finite &= std::isfinite(x[i]);
    amax = std::max(amax, std::abs(x[i]));
  }
  if (!finite) {
    *scale = kF16Nan;
    std::memset(codes, 0, static_cast<size_t>(G));
    return;
  }
  *scale = f16_round_up(std::min(amax / 127.f, kF16Max));
  const float s = f16_to_f32(*scale);
  for (int i = 0; i < G; ++i)
    codes[i] = static_cast<int8_t>(s > 0.f ? std::clamp(std::nearbyint(x[i] / s), -127.f, 127.f) : 0.f);
}

void encode_int4(const float* x, int G, uint8_t* codes, uint16_t* meta) {
  float lo = x[0], hi = x[0];
  bool finite = true;
  for (int i = 0; i < G; ++i) {
    finite &= std::isfinite(x[i]);
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  if (!finite) {
    meta[0] = meta[1] = kF16Nan;
    std::memset(codes, 0, static_cast<size_t>(G / 2));
    return;
  }
  meta[1] = f16_round_down(std::clamp(lo, -kF16Max, kF16Max));
  const float m = f16_to_f32(meta[1]);
  meta[0] = f16_round_up(std::min((hi - m) / 15.f, kF16Max));
  const float s = f16_to_f32(meta[0]);
  auto code = [&](float v) {
    return static_cast<uint8_t>(s > 0.f ? std::clamp(std::nearbyint((v - m) / s), 0.f, 15.f) : 0.f);
  };
  const int half = G / 2;
  for (int i = 0; i < half; ++i)
    codes[i] = static_cast<uint8_t>(code(x[i]) | (code(x[i + half]) << 4));
}

}  // namespace

int kv_group_size(int head_dim) { return std::gcd(head_dim, 32); }

size_t kv_code_bytes(KvType t, int hd) {
  switch (t) {
    case KvType::kF32: return size_t(hd) * 4;
    case KvType::kF16:
    case KvType::kBF16: return size_t(hd) * 2;
    case KvType::kInt8: return size_t(hd);
    case KvType::kInt4: return size_t(hd) / 2;
  }
  return 0;
}

size_t kv_meta_bytes(KvType t, int hd, bool keys) {
  if (kv_per_channel(t, keys)) return size_t(hd) * 4 / kKvChannelGroup;  // f16 scale + min / channel
  const size_t groups = size_t(hd) / size_t(kv_group_size(hd));
  if (t == KvType::kInt8) return groups * 2;  // f16 scale
  if (t == KvType::kInt4) return groups * 4;  // f16 scale, f16 minimum
  return 0;
}

void check_kv_type(KvType t, int head_dim, bool keys, int block_size) {
  if (t == KvType::kInt4 && head_dim % 2 != 0)
    throw Error(ErrorKind::kUnsupported,
                "--kv-dtype int4 needs an even head_dim (this model has " +
                    std::to_string(head_dim) + "); use int8 or f16");
  if (kv_per_channel(t, keys) && block_size % kKvChannelGroup != 0)
    throw Error(ErrorKind::kInternal, "int4 keys need KV blocks of a multiple of 16 tokens");
}

void kv_encode(KvType t, const float* src, int64_t src_stride, int n, int hd, void* section,
               int block_size, int off) {
  auto* base = static_cast<uint8_t*>(section);
  const size_t cb = kv_code_bytes(t, hd), mb = kv_meta_bytes(t, hd, false);
  const int G = kv_group_size(hd);
  for (int r = 0; r < n; ++r) {
    const float* x = src + r * src_stride;
    uint8_t* codes = base + size_t(off + r) * cb;
    auto* meta = reinterpret_cast<uint16_t*>(base + size_t(block_size) * cb + size_t(off + r) * mb);
    switch (t) {
      case KvType::kF32:
      case KvType::kF16:
      case KvType::kBF16:
        from_f32(kv_float_dtype(t), x, codes, size_t(hd));
        break;
      case KvType::kInt8:
        for (int g = 0; g < hd / G; ++g)
          encode_int8(x + g * G, G, reinterpret_cast<int8_t*>(codes) + g * G, meta + g);
        break;
      case KvType::kInt4:
        for (int g = 0; g < hd / G; ++g) encode_int4(x + g * G, G, codes + g * G / 2, meta + 2 * g);
        break;
    }
  }
}

void kv_encode_key_group(const float* rows, int hd, void* section, int block_size, int off) {
  constexpr int T = kKvChannelGroup;
  auto* base = static_cast<uint8_t*>(section);
  uint8_t* codes = base + size_t(off) * (hd / 2);
  auto* meta = reinterpret_cast<uint16_t*>(base + size_t(block_size) * (hd / 2) +
                                           size_t(off / T) * hd * 4);
  uint16_t* scales = meta;
  uint16_t* mins = meta + hd;
  float col[T];
  uint8_t q[T];
  std::memset(codes, 0, size_t(T) * (hd / 2));
  for (int d = 0; d < hd; ++d) {
    for (int r = 0; r < T; ++r) col[r] = rows[size_t(r) * hd + d];
    // The same asymmetric code as a per-token int4 group, over one channel's token group.
    uint16_t sm[2];
    uint8_t packed[T / 2];
    encode_int4(col, T, packed, sm);
    scales[d] = sm[0];
    mins[d] = sm[1];
    for (int r = 0; r < T / 2; ++r) {
      q[r] = packed[r] & 15;
      q[r + T / 2] = packed[r] >> 4;
    }
    // Token r's byte d % (hd/2): channel d in the low nibble if d < hd/2, else the high one.
    const int shift = d < hd / 2 ? 0 : 4;
    for (int r = 0; r < T; ++r) codes[size_t(r) * (hd / 2) + d % (hd / 2)] |= q[r] << shift;
  }
}

}  // namespace longctx::kernels

namespace longctx::kernels::reference {

void kv_decode_rows(KvType t, bool keys, const uint8_t* codes, const uint8_t* meta, int off, int n,
                    int hd, float* dst) {
  const int G = kv_group_size(hd);
  const size_t cb = kv_code_bytes(t, hd), mb = kv_meta_bytes(t, hd, keys);
  for (int r = 0; r < n; ++r) {
    const uint8_t* c = codes + size_t(r) * cb;
    const auto* m = reinterpret_cast<const uint16_t*>(meta + size_t(off + r) * mb);
    float* y = dst + size_t(r) * hd;
    if (kv_per_channel(t, keys)) {
      const auto* g = reinterpret_cast<const uint16_t*>(
          meta + size_t((off + r) / kKvChannelGroup) * hd * 4);  // [hd] scales, [hd] minima
      for (int d = 0; d < hd; ++d) {
        const uint8_t byte = c[d % (hd / 2)];
        const int q = d < hd / 2 ? (byte & 15) : (byte >> 4);
        y[d] = f16_to_f32(g[hd + d]) + static_cast<float>(q) * f16_to_f32(g[d]);
      }
    } else if (t == KvType::kInt8) {
      for (int i = 0; i < hd; ++i) y[i] = static_cast<int8_t>(c[i]) * f16_to_f32(m[i / G]);
    } else if (t == KvType::kInt4) {
      for (int i = 0; i < hd; ++i) {
        const int g = i / G, k = i % G;
        const uint8_t byte = c[g * G / 2 + k % (G / 2)];
        const int q = k < G / 2 ? (byte & 15) : (byte >> 4);
        y[i] = f16_to_f32(m[2 * g + 1]) + static_cast<float>(q) * f16_to_f32(m[2 * g]);
      }
    } else {
      to_f32(kv_float_dtype(t), c, y, size_t(hd));
    }
  }
}

}  // namespace longctx::kernels::reference
