// The reference block decoders against blocks built here from the formats' formulas, and the
// quantizers' round-trip error.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "kernels/kernel_test_util.h"
#include "kernels/ops.h"
#include "kernels/quant_test_util.h"

namespace longctx::kernels {
namespace {

using testing::kBlockTypes;
using testing::normal_floats;

// f16 bit patterns of exact powers of two.
constexpr uint16_t kF16One = 0x3C00, kF16Half = 0x3800, kF16Quarter = 0x3400, kF16Eighth = 0x3000;

void put16(std::vector<uint8_t>& b, size_t off, uint16_t v) { std::memcpy(&b[off], &v, 2); }

std::vector<float> decode(TensorType t, const std::vector<uint8_t>& b, int64_t n) {
  std::vector<float> y(n, NAN);
  dequantize_row(t, b.data(), y.data(), n);
  return y;
}

TEST(QuantReference, DecodesHandBuiltQ8_0) {
  std::vector<uint8_t> b(34);  // d (f16), then 32 int8
  put16(b, 0, kF16Half);
  for (int i = 0; i < 32; ++i) b[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(i * 8 - 128));
  const auto y = decode(TensorType::kQ8_0, b, 32);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(y[i], 0.5f * (i * 8 - 128)) << i;
}

TEST(QuantReference, DecodesHandBuiltQ4_0) {
  std::vector<uint8_t> b(18);  // d, then byte j: element j (low nibble), element j + 16 (high)
  put16(b, 0, kF16Quarter);
  for (int j = 0; j < 16; ++j) b[2 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const auto y = decode(TensorType::kQ4_0, b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 0.25f * (j - 8)) << j;
    EXPECT_EQ(y[j + 16], 0.25f * (15 - j - 8)) << j;
  }
}

// Q5_0 / Q5_1: d (Q5_1: then m), 4 bytes qh (bit i: bit 4 of element i's code), 16 bytes of
// nibbles as Q4_0's; Q5_0: x = d (q - 16), Q5_1: x = d q + m.
TEST(QuantReference, DecodesHandBuiltQ5_0AndQ5_1) {
  for (TensorType t : {TensorType::kQ5_0, TensorType::kQ5_1}) {
    const bool q51 = t == TensorType::kQ5_1;
    const size_t qh = q51 ? 4 : 2;
    std::vector<uint8_t> b(qh + 20, 0);
    put16(b, 0, kF16Quarter);
    if (q51) put16(b, 2, 0xBC00);  // m = -1
    int q[32];
    for (int i = 0; i < 32; ++i) q[i] = (i * 7 + 3) % 32;  // every code 0..31 once
    for (int i = 0; i < 32; ++i) {
      b[qh + 4 + i % 16] |= static_cast<uint8_t>((q[i] & 15) << (i < 16 ? 0 : 4));
      b[qh + i / 8] |= static_cast<uint8_t>((q[i] >> 4) << (i % 8));
    }
    const auto y = decode(t, b, 32);
    for (int i = 0; i < 32; ++i)
      EXPECT_EQ(y[i], q51 ? 0.25f * q[i] - 1.f : 0.25f * (q[i] - 16)) << tensor_type_name(t) << i;
  }
}

// Q4_K / Q5_K: 6-bit scale sc[s] and minimum m[s] of sub-block s packed in 12 bytes: s < 4 in
// the low 6 bits of bytes s (scale) and s + 4 (minimum); s >= 4 as the nibbles of byte s + 4 with
// the top 2 bits in bits 6-7 of bytes s - 4 (scale) and s (minimum).
void pack_scales(const int* sc, const int* m, uint8_t* out) {
  std::memset(out, 0, 12);
  for (int s = 0; s < 8; ++s) {
    if (s < 4) {
      out[s] |= sc[s];
      out[s + 4] |= m[s];
    } else {
      out[s + 4] = static_cast<uint8_t>((sc[s] & 15) | ((m[s] & 15) << 4));
      out[s - 4] |= static_cast<uint8_t>((sc[s] >> 4) << 6);
      out[s] |= static_cast<uint8_t>((m[s] >> 4) << 6);
    }
  }
}

const int kSc[8] = {1, 2, 3, 63, 10, 33, 17, 48}, kMin[8] = {0, 5, 63, 7, 40, 1, 22, 9};

// Two super-blocks with different codes; q5: a fifth bit per element in 32 bytes of qh.
void check_k45(bool q5) {
  const int bytes = q5 ? 176 : 144;
  std::vector<uint8_t> b(2 * bytes, 0);
  std::vector<float> want(512);
  for (int blk = 0; blk < 2; ++blk) {
    uint8_t* p = b.data() + blk * bytes;
    put16(b, blk * bytes, kF16One);       // d
    put16(b, blk * bytes + 2, kF16Half);  // dmin
    pack_scales(kSc, kMin, p + 4);
    uint8_t* qh = p + 16;
    uint8_t* qs = p + 16 + (q5 ? 32 : 0);
    for (int e = 0; e < 256; ++e) {
      const int s = e / 32, l = e % 32;
      const int lo = (e * 7 + 3 + blk) % 16, hi = q5 ? (e * 5 / 3 + blk) % 2 : 0;
      // Sub-blocks 2j and 2j + 1 share bytes 32j..32j+31: low and high nibbles.
      qs[32 * (s / 2) + l] |= static_cast<uint8_t>(s % 2 == 0 ? lo : lo << 4);
      if (q5) qh[l] |= static_cast<uint8_t>(hi << s);
      want[blk * 256 + e] = 1.0f * kSc[s] * (lo + 16 * hi) - 0.5f * kMin[s];
    }
  }
  const auto y = decode(q5 ? TensorType::kQ5_K : TensorType::kQ4_K, b, 512);
  for (int e = 0; e < 512; ++e) ASSERT_EQ(y[e], want[e]) << e;
}

TEST(QuantReference, DecodesHandBuiltQ4_K) { check_k45(false); }
TEST(QuantReference, DecodesHandBuiltQ5_K) { check_k45(true); }

TEST(QuantReference, DecodesHandBuiltQ6_K) {
  // ql[128], qh[64], int8 scales[16], d. Element e: half h = e / 128, quarter k = (e % 128) / 32,
  // l = e % 32: low 4 bits in ql[64h + l + 32 (k % 2)] (low nibble for k < 2, else high), high 2
  // bits at bits 2k, 2k + 1 of qh[32h + l]; x = d * scales[e / 16] * (q - 32).
  std::vector<uint8_t> b(210, 0);
  put16(b, 208, kF16Eighth);
  for (int j = 0; j < 16; ++j) b[192 + j] = static_cast<uint8_t>(static_cast<int8_t>(j * 17 - 128));
  std::vector<float> want(256);
  for (int e = 0; e < 256; ++e) {
    const int q = (e * 11 + 5) % 64, h = e / 128, k = (e % 128) / 32, l = e % 32;
    b[64 * h + l + 32 * (k % 2)] |= static_cast<uint8_t>(k < 2 ? (q & 15) : (q & 15) << 4);
    b[128 + 32 * h + l] |= static_cast<uint8_t>((q >> 4) << (2 * k));
    want[e] = 0.125f * ((e / 16) * 17 - 128) * (q - 32);
  }
  const auto y = decode(TensorType::kQ6_K, b, 256);
  for (int e = 0; e < 256; ++e) ASSERT_EQ(y[e], want[e]) << e;
}

// Relative RMS error of quantize -> dequantize over normal data, per type: the measured figures
// (docs/gguf-kernels.md: 0.53%, 8.6%, 7.1%, 3.6%, 1.8%) with ~10% headroom. Each halving follows
// from one more bit; Q8_0 and Q4_0 match the uniform-rounding estimate step / sqrt(12) with
// step = E[max |x| of 32 normals] / 127 or / 8.
TEST(QuantReference, RoundTripError) {
  struct Case {
    TensorType t;
    double max_rel_rms;
  };
  const Case cases[] = {{TensorType::kQ8_0, 0.0058},
                        {TensorType::kQ4_0, 0.094},
                        {TensorType::kQ4_K, 0.078},
                        {TensorType::kQ5_K, 0.040},
                        {TensorType::kQ6_K, 0.0195},
                        {TensorType::kQ5_0, 0.046},
                        {TensorType::kQ5_1, 0.041}};
  const int64_t n = 256 * 64;
  const auto x = normal_floats(n, 7, 0.02f);
  for (const Case& c : cases) {
    std::vector<uint8_t> q(row_bytes(c.t, n));
    std::vector<float> y(n);
    quantize_row(c.t, x.data(), q.data(), n);
    dequantize_row(c.t, q.data(), y.data(), n);
    double err = 0, ref = 0;
    for (int64_t i = 0; i < n; ++i) {
      err += (double(y[i]) - x[i]) * (double(y[i]) - x[i]);
      ref += double(x[i]) * x[i];
    }
    const double rel = std::sqrt(err / ref);
    std::printf("%s: relative RMS error %.5f\n", tensor_type_name(c.t), rel);
    EXPECT_LT(rel, c.max_rel_rms) << tensor_type_name(c.t);
    EXPECT_GT(rel, c.max_rel_rms / 10) << tensor_type_name(c.t) << ": suspiciously exact";
  }
}

// Per element: Q8_0 within half a step of its block's grid (d = amax / 127), Q4_0 and Q5_0 within
// one step (the largest magnitude sits on -8 d / -16 d, the other end clamps at 7 d / 15 d); plus
// d's f16 rounding (2^-11 relative) times the largest code (127, 8 or 16).
TEST(QuantReference, RoundToNearestBlockBounds) {
  const int64_t n = 32 * 40;
  auto x = normal_floats(n, 9);
  for (int i = 0; i < 32; ++i) x[5 * 32 + i] = 0.f;  // an all-zero block
  x[7 * 32 + 3] = 1e4f;                              // one outlier
  for (TensorType t : {TensorType::kQ8_0, TensorType::kQ4_0, TensorType::kQ5_0}) {
    std::vector<uint8_t> q(row_bytes(t, n));
    std::vector<float> y(n);
    quantize_row(t, x.data(), q.data(), n);
    dequantize_row(t, q.data(), y.data(), n);
    for (int64_t b = 0; b < n / 32; ++b) {
      float amax = 0;
      for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[b * 32 + i]));
      const float top = t == TensorType::kQ8_0 ? 127 : t == TensorType::kQ4_0 ? 8 : 16;
      const float step = amax / top;
      const float tol = step * ((t == TensorType::kQ8_0 ? 0.5f : 1.0f) + top / 2048) * 1.001f;
      for (int i = 0; i < 32; ++i)
        ASSERT_LE(std::fabs(y[b * 32 + i] - x[b * 32 + i]), tol)
            << tensor_type_name(t) << " block " << b << " element " << i;
    }
  }
}

// Blocks of zeros, of a constant, and of positive values only decode close to the input (the
// K-quants' minimum is clamped to <= 0 and must still reach the data).
TEST(QuantReference, DegenerateBlocks) {
  // Largest error on the ramp 1..2: one step of [0, 2] (Q4_0: of [-2, 2]), half a step for the
  // types that round to nearest over their full range.
  const float ramp_tol[] = {2.f / 127, 2.f / 8 * 1.01f, 2.f / 15, 2.f / 31, 2.f / 32,
                            2.f / 16 * 1.01f, 1.f / 31};
  int ti = 0;
  for (TensorType t : kBlockTypes) {
    for (float v : {0.f, 0.3f, -2.f}) {
      std::vector<float> x(256, v), y(256, NAN);
      std::vector<uint8_t> q(row_bytes(t, 256));
      quantize_row(t, x.data(), q.data(), 256);
      dequantize_row(t, q.data(), y.data(), 256);
      for (int i = 0; i < 256; ++i)
        ASSERT_NEAR(y[i], v, 0.01f * std::fabs(v) + 1e-7f) << tensor_type_name(t) << " " << v;
    }
    std::vector<float> x(256), y(256);
    for (int i = 0; i < 256; ++i) x[i] = 1.f + i / 256.f;  // all positive
    std::vector<uint8_t> q(row_bytes(t, 256));
    quantize_row(t, x.data(), q.data(), 256);
    dequantize_row(t, q.data(), y.data(), 256);
    for (int i = 0; i < 256; ++i) ASSERT_NEAR(y[i], x[i], ramp_tol[ti]) << tensor_type_name(t);
    ++ti;
  }
}

TEST(QuantReference, RefusesPartialBlocks) {
  std::vector<float> x(300, 1.f), y(300);
  std::vector<uint8_t> q(1024);
  for (TensorType t : kBlockTypes) {
    const int64_t bad = block_layout(t).elems + 1;
    try {
      dequantize_row(t, q.data(), y.data(), bad);
      ADD_FAILURE() << tensor_type_name(t);
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kShape);
    }
    EXPECT_THROW(quantize_row(t, x.data(), q.data(), bad), Error);
    EXPECT_THROW(weight_view(t, q.data(), 1, bad), Error);
  }
}

}  // namespace
}  // namespace longctx::kernels
