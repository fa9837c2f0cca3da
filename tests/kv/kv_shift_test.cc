// Context shift (KVCache::shift): after dropping positions [keep, keep + drop), every position q a
// query can still see holds the key of its source token rotated for q (RoPE computed directly at
// q, in double, as the reference) and that token's value, for every KV type, on a full and a
// sliding-window layer.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/error.h"
#include "kernels/kv_quant.h"
#include "kernels/ops.h"
#include "kv/kv_cache.h"

namespace longctx {
namespace {

constexpr int kHeads = 2, kDim = 32;

// Rotates rows [n][kHeads][kDim] at positions pos0.. (Hugging Face's half-split pairs), in double.
void rope_ref(const float* in, int64_t n, int64_t pos0, const std::vector<float>& inv, float* out) {
  const int half = kDim / 2;
  for (int64_t t = 0; t < n; ++t)
    for (int h = 0; h < kHeads; ++h) {
      const float* x = in + (t * kHeads + h) * kDim;
      float* y = out + (t * kHeads + h) * kDim;
      for (int i = 0; i < half; ++i) {
        const double a = double(pos0 + t) * inv[i];
        y[i] = float(x[i] * std::cos(a) - x[i + half] * std::sin(a));
        y[i + half] = float(x[i + half] * std::cos(a) + x[i] * std::sin(a));
      }
    }
}

// Row q of `layer` as the cache holds it (keys, values), decoded to f32.
void read_row(const KVCache& kv, int layer, int64_t q, float* k, float* v) {
  const KVCacheShape& s = kv.shape();
  const uint8_t* blk = kv.block_bytes(layer, q / s.block_size);
  ASSERT_NE(blk, nullptr) << "layer " << layer << " position " << q;
  const size_t k_sec = kernels::kv_row_bytes(s.k_type, kDim, true) * s.block_size;
  const size_t v_sec = kernels::kv_row_bytes(s.v_type, kDim, false) * s.block_size;
  const int off = static_cast<int>(q % s.block_size);
  for (int h = 0; h < kHeads; ++h) {
    kernels::kv_decode(s.v_type, false, blk + s.key_block_bytes() + h * v_sec, s.block_size, off,
                       1, kDim, v + h * kDim);
    if (kernels::kv_per_channel(s.k_type, true) && q >= kv.pending_from()[layer]) {
      const float* p = kv.pending_keys().data() +
                       ((size_t(layer) * kHeads + h) * kernels::kKvChannelGroup +
                        q % kernels::kKvChannelGroup) * kDim;
      std::copy(p, p + kDim, k + h * kDim);
    } else {
      kernels::kv_decode(s.k_type, true, blk + h * k_sec, s.block_size, off, 1, kDim, k + h * kDim);
    }
  }
}

class Shift : public ::testing::TestWithParam<KvType> {};

TEST_P(Shift, KeepsEveryVisibleTokenRotatedToItsNewPosition) {
  const KvType t = GetParam();
  KVCacheShape s;
  s.n_layers = 2;
  s.n_kv_heads = kHeads;
  s.head_dim = kDim;
  s.k_type = s.v_type = t;
  s.capacity = 1024;
  s.layer_window = {0, 100};  // layer 1: a sliding window of 100
  const int64_t n = 700, keep = 4, drop = 300, row = kHeads * kDim;
  std::vector<float> inv(kDim / 2);
  for (int i = 0; i < kDim / 2; ++i) inv[i] = float(std::pow(10000.0, -2.0 * i / kDim));
  std::mt19937 rng(5);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> raw(n * row), val(n * row), rotated(n * row);
  for (float& x : raw) x = d(rng);
  for (float& x : val) x = d(rng);
  rope_ref(raw.data(), n, 0, inv, rotated.data());

  KVCache kv(s);
  for (int64_t pos = 0; pos < n; pos += 64) {  // a chunked prefill
    const int64_t m = std::min<int64_t>(64, n - pos);
    kv.prepare(pos, m);
    for (int l = 0; l < 2; ++l)
      kv.write(l, pos, m, rotated.data() + pos * row, val.data() + pos * row);
  }
  kv.shift(keep, drop, [&](float* keys, int64_t m, int) {
    const std::vector<int64_t> pos(static_cast<size_t>(m), -drop);
    kernels::rope(keys, m, kHeads, kDim, kDim, pos.data(), inv.data(), 1.f);
  });
  ASSERT_EQ(kv.n_tokens(), n - drop);

  // What each type stores of a row: exact (f32), rounded (f16, bf16), quantized (int8, int4).
  const double tol = t == KvType::kF32 ? 2e-5 : t == KvType::kF16 ? 3e-3 : t == KvType::kBF16 ? 2e-2
                     : t == KvType::kInt8 ? 0.05 : 0.6;
  std::vector<float> want(row), k(row), v(row);
  for (int l = 0; l < 2; ++l) {
    // The full layer: every position; the window layer: what the next query (at n - drop) sees.
    const int64_t lo = l == 0 ? 0 : n - drop - 100 + 1;
    double worst = 0;
    for (int64_t q = lo; q < n - drop; ++q) {
      const int64_t src = q < keep ? q : q + drop;
      rope_ref(raw.data() + src * row, 1, q, inv, want.data());
      read_row(kv, l, q, k.data(), v.data());
      for (int i = 0; i < row; ++i) {
        worst = std::max(worst, double(std::abs(k[i] - want[i])));
        ASSERT_NEAR(k[i], want[i], tol) << "layer " << l << " key of position " << q;
        ASSERT_NEAR(v[i], val[src * row + i], tol) << "layer " << l << " value of position " << q;
      }
    }
    RecordProperty("worst_key_error_layer" + std::to_string(l), std::to_string(worst));
  }
  // The cache goes on: the next positions write and read as usual.
  kv.prepare(n - drop, 1);
  for (int l = 0; l < 2; ++l) kv.write(l, n - drop, 1, rotated.data(), val.data());
  EXPECT_EQ(kv.n_tokens(), n - drop + 1);
}

INSTANTIATE_TEST_SUITE_P(KvTypes, Shift,
                         ::testing::Values(KvType::kF32, KvType::kF16, KvType::kBF16,
                                           KvType::kInt8, KvType::kInt4),
                         [](const auto& info) { return std::string(kv_type_name(info.param)); });

TEST(Shift, RefusesARangeOutsideTheHeldTokens) {
  KVCacheShape s;
  s.n_layers = 1;
  s.n_kv_heads = kHeads;
  s.head_dim = kDim;
  s.capacity = 512;
  KVCache kv(s);
  auto none = [](float*, int64_t, int) {};
  EXPECT_THROW(kv.shift(0, 1, none), Error);
  std::vector<float> x(10 * kHeads * kDim, 0.5f);
  kv.prepare(0, 10);
  kv.write(0, 0, 10, x.data(), x.data());
  EXPECT_THROW(kv.shift(4, 7, none), Error);
  EXPECT_THROW(kv.shift(-1, 2, none), Error);
  EXPECT_NO_THROW(kv.shift(4, 6, none));
  EXPECT_EQ(kv.n_tokens(), 4);
}

}  // namespace
}  // namespace longctx
