// KV-cache codecs (kernels/kv_quant.h): round-trip error within the bound each format guarantees,
// on random and adversarial rows, and every SIMD path's decoder equal to the scalar reference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/cpu/kv_quant.h"
#include "kernels/kernel_test_util.h"
#include "kernels/kv_quant.h"
#include "kernels/kv_quant_test_util.h"

namespace longctx::kernels {
namespace {

using testing::CodedSection;
using testing::random_floats;
using testing::runnable_paths;

// The scale s of element (token r, channel d), read from the section's meta as stored.
float stored_scale(const CodedSection& c, int r, int d) {
  const auto* meta = reinterpret_cast<const uint16_t*>(c.bytes.data() + c.block_size * c.code_bytes);
  if (kv_per_channel(c.type, c.keys))
    return f16_to_f32(meta[(r / kKvChannelGroup) * c.hd * 2 + d]);
  const int G = kv_group_size(c.hd), groups = c.hd / G;
  if (c.type == KvType::kInt8) return f16_to_f32(meta[r * groups + d / G]);
  return f16_to_f32(meta[(r * groups + d / G) * 2]);
}

// Largest |x| (int8) or max - min (int4) of the group holding element (r, d): what the scale is
// made from.
float group_span(const CodedSection& c, const std::vector<float>& x, int r, int d) {
  float lo = INFINITY, hi = -INFINITY;
  bool finite = true;
  auto take = [&](float v) {
    finite &= std::isfinite(v);
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  };
  if (kv_per_channel(c.type, c.keys)) {
    const int r0 = r / kKvChannelGroup * kKvChannelGroup;
    for (int i = r0; i < r0 + kKvChannelGroup; ++i) take(x[size_t(i) * c.hd + d]);
  } else {
    const int G = kv_group_size(c.hd), d0 = d / G * G;
    for (int i = d0; i < d0 + G; ++i) take(x[size_t(r) * c.hd + i]);
  }
  if (!finite) return NAN;
  if (c.type == KvType::kInt8) return std::max(std::abs(lo), std::abs(hi));
  return hi - lo;
}

// Decodes every row on every path: each path equals the reference bit for bit, and every finite
// input is within s/2 (+ one rounding of the result) of its reconstruction, with s no larger than
// the format's formula allows (so a test cannot pass through an oversized scale).
void check_round_trip(KvType t, bool keys, int hd, const std::vector<float>& x, int n) {
  SCOPED_TRACE(std::string(kv_type_name(t)) + (keys ? " keys" : " values") +
               " hd=" + std::to_string(hd));
  const CodedSection c(t, keys, hd, n, x);
  std::vector<float> ref(size_t(n) * hd);
  reference::kv_decode_rows(t, keys, c.bytes.data(), c.bytes.data() + n * c.code_bytes, 0, n, hd,
                            ref.data());
  const float levels = t == KvType::kInt8 ? 127.f : 15.f;
  for (int r = 0; r < n; ++r)
    for (int d = 0; d < hd; ++d) {
      const size_t i = size_t(r) * hd + d;
      const float span = group_span(c, x, r, d);
      if (!std::isfinite(span)) {  // a group with NaN/Inf reads back as NaN, documented
        ASSERT_TRUE(std::isnan(ref[i])) << "r=" << r << " d=" << d;
        continue;
      }
      const float s = stored_scale(c, r, d);
      // s is the formula rounded up to f16 (+ the f16 rounding down of the int4 minimum).
      ASSERT_GE(s, span / levels * (1 - 1e-6f)) << "r=" << r << " d=" << d;
      ASSERT_LE(s, span / levels * (1 + 2e-3f) + 1e-7f + std::abs(x[i]) * 2e-4f)
          << "r=" << r << " d=" << d;
      ASSERT_LE(std::abs(ref[i] - x[i]), s / 2 * (1 + 1e-5f) + std::abs(x[i]) * 1.2e-7f + 1e-30f)
          << "r=" << r << " d=" << d << " x=" << x[i] << " got " << ref[i] << " s=" << s;
    }
  testing::PathGuard guard;
  for (SimdPath path : runnable_paths()) {
    set_simd_path(path);
    SCOPED_TRACE(simd_path_name(path));
    // Every sub-range (tiles start anywhere in a block).
    for (int off : {0, 1, n / 2, n - 1}) {
      const int m = n - off;
      std::vector<float> got(size_t(m) * hd, -1.f);
      kv_decode(t, keys, c.bytes.data(), n, off, m, hd, got.data());
      for (size_t i = 0; i < got.size(); ++i) {
        const float want = ref[size_t(off) * hd + i];
        ASSERT_TRUE(std::memcmp(&got[i], &want, 4) == 0 || (std::isnan(got[i]) && std::isnan(want)))
            << "off=" << off << " i=" << i << " got " << got[i] << " want " << want;
      }
    }
  }
}

struct Format {
  KvType t;
  bool keys;
};
constexpr Format kFormats[] = {
    {KvType::kInt8, false}, {KvType::kInt8, true}, {KvType::kInt4, false}, {KvType::kInt4, true}};

TEST(KvQuant, SizesAreExact) {
  // Hand formulas: int8 32 codes + one f16 scale per 32 values; int4 values 16 bytes + f16 scale
  // and minimum per 32; int4 keys 16 bytes + (f16 scale + minimum) per channel per 16 tokens.
  EXPECT_EQ(kv_row_bytes(KvType::kInt8, 128, false), 128u + 4 * 2);
  EXPECT_EQ(kv_row_bytes(KvType::kInt4, 128, false), 64u + 4 * 4);
  EXPECT_EQ(kv_row_bytes(KvType::kInt4, 128, true), 64u + 128 * 4 / 16);
  EXPECT_EQ(kv_row_bytes(KvType::kF16, 128, true), 256u);
  // head_dim 8 (stories260K): one group of 8.
  EXPECT_EQ(kv_row_bytes(KvType::kInt8, 8, false), 8u + 2);
  EXPECT_EQ(kv_row_bytes(KvType::kInt4, 8, false), 4u + 4);
  EXPECT_EQ(kv_group_size(96), 32);
  EXPECT_EQ(kv_group_size(80), 16);
  EXPECT_THROW(check_kv_type(KvType::kInt4, 7, false, 256), Error);
  EXPECT_NO_THROW(check_kv_type(KvType::kInt8, 7, true, 256));
}

TEST(KvQuant, RandomRowsWithinBoundOnEveryPath) {
  for (const Format& f : kFormats)
    for (int hd : {8, 16, 32, 64, 80, 96, 128}) {
      const int n = 48;
      auto x = random_floats(size_t(n) * hd, 11 + hd, -3.f, 3.f);
      // Channels of different magnitudes and offsets, as keys have.
      for (int r = 0; r < n; ++r)
        for (int d = 0; d < hd; ++d) x[size_t(r) * hd + d] = x[size_t(r) * hd + d] * (1 + d % 5) + d % 3;
      check_round_trip(f.t, f.keys, hd, x, n);
    }
}

TEST(KvQuant, AdversarialRows) {
  const int hd = 64, n = 32;
  for (const Format& f : kFormats) {
    std::vector<float> x(size_t(n) * hd, 0.f);
    check_round_trip(f.t, f.keys, hd, x, n);  // zeros come back exactly
    for (float v : {3.7f, -1e-3f, 6e-6f, 60000.f}) {  // constant rows, tiny (subnormal s), large
      std::fill(x.begin(), x.end(), v);
      check_round_trip(f.t, f.keys, hd, x, n);
    }
    x = random_floats(size_t(n) * hd, 5, -0.01f, 0.01f);  // outliers among small values
    x[3] = 1000.f;
    x[hd + 40] = -500.f;
    x[size_t(20) * hd + 7] = 12345.f;
    check_round_trip(f.t, f.keys, hd, x, n);
    // NaN and infinities poison their own group only.
    x = random_floats(size_t(n) * hd, 6);
    x[5] = NAN;
    x[size_t(17) * hd + 33] = INFINITY;
    x[size_t(30) * hd + 60] = -INFINITY;
    check_round_trip(f.t, f.keys, hd, x, n);
  }
}

TEST(KvQuant, ZerosAreExactAndCodesAreNotAllTheSame) {
  // A row 0, 1, ..., 63 in int8: s = 63/127 rounded up; x^ must differ for distinct x (a codec
  // that wrote one code for a whole group would still meet a loose bound).
  std::vector<float> x(64);
  for (int i = 0; i < 64; ++i) x[i] = static_cast<float>(i - 32);
  const CodedSection c(KvType::kInt8, false, 64, 1, x);
  std::vector<float> y(64);
  kv_decode(KvType::kInt8, false, c.bytes.data(), 1, 0, 1, 64, y.data());
  EXPECT_EQ(y[32], 0.f);
  for (int i = 1; i < 64; ++i) EXPECT_GT(y[i], y[i - 1]) << i;
}

}  // namespace
}  // namespace longctx::kernels
