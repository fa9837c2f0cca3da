// Attention over coded KV blocks (int8/int4, mixed K/V types, int4 keys with an f32 pending group)
// equals "dequantize everything, then the scalar reference kernel" within float rounding, on every
// SIMD path, over GQA ratios, head dims, windows and lengths that are not multiples of the tile.
// The AVX-512 decode tile (int8/int4 keys and values, head_dim a multiple of 32, at most 16 query
// rows) scores against the query quantized to int8: its rows equal reference::attention_quant_query
// within float rounding instead, and that model stays within the error bound of
// docs/kv-quantization.md.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "kernels/kernel_test_util.h"
#include "kernels/kv_quant.h"
#include "kernels/kv_quant_test_util.h"
#include "kernels/reference/reference.h"

namespace longctx::kernels {
namespace {

struct Case {
  KvType k, v;
  int group, hd, n_kv;
  int64_t window, n_q, n_tokens;
  int block_size, threads;
};

std::string describe(const Case& c) {
  return std::string("k=") + kv_type_name(c.k) + " v=" + kv_type_name(c.v) +
         " group=" + std::to_string(c.group) + " hd=" + std::to_string(c.hd) +
         " n_kv=" + std::to_string(c.n_kv) + " window=" + std::to_string(c.window) +
         " n_q=" + std::to_string(c.n_q) + " n_tokens=" + std::to_string(c.n_tokens) +
         " block=" + std::to_string(c.block_size) + " threads=" + std::to_string(c.threads);
}

bool near(float got, float want) { return std::abs(got - want) <= 2e-5f * (1 + std::abs(want)); }

// Whether the AVX-512 path may score this case's tiles against a quantized query.
bool quant_query_possible(const Case& c) {
  return kv_type_is_quantized(c.k) && kv_type_is_quantized(c.v) && c.hd % 32 == 0;
}

void check(const Case& c, uint32_t seed) {
  SCOPED_TRACE(describe(c));
  const int nh = c.group * c.n_kv;
  const testing::CodedKV kv(c.k, c.v, c.block_size, c.n_kv, c.hd, c.n_tokens, seed);
  const testing::PagedKV f32 = kv.dequantized(c.block_size, c.n_kv, c.hd, c.n_tokens);
  const auto q = testing::random_floats(size_t(c.n_q) * nh * c.hd, seed + 7, -1.f, 1.f);
  const AttentionParams p{nh, 1.f / std::sqrt(static_cast<float>(c.hd)), c.window};
  const int64_t q_pos0 = c.n_tokens - c.n_q;
  std::vector<float> want(q.size()), model(q.size());
  reference::attention(p, q.data(), c.n_q, q_pos0, f32.view, want.data());
  if (quant_query_possible(c))
    reference::attention_quant_query(p, q.data(), c.n_q, q_pos0, kv.view, model.data());
  ThreadPool pool(c.threads);
  testing::PathGuard guard;
  for (SimdPath path : testing::runnable_paths()) {
    set_simd_path(path);
    SCOPED_TRACE(simd_path_name(path));
    std::vector<float> got(q.size(), NAN);
    attention(pool, p, q.data(), c.n_q, q_pos0, kv.view, got.data());
    // A (query, head) row comes from one work item, whose tiles all take the same tile kernel:
    // the row equals either model.
    const bool quant = path == SimdPath::kAvx512 && quant_query_possible(c);
    for (size_t r = 0; r < got.size(); r += c.hd) {
      bool exact = true, quantized = quant;
      for (int d = 0; d < c.hd; ++d) {
        exact = exact && near(got[r + d], want[r + d]);
        quantized = quantized && near(got[r + d], model[r + d]);
      }
      ASSERT_TRUE(exact || quantized) << "row " << r / c.hd << ": got " << got[r] << ", want "
                                      << want[r] << (quant ? " or " + std::to_string(model[r]) : "");
    }
  }
}

TEST(KvQuantAttention, EqualsDequantizeThenReference) {
  const KvType I8 = KvType::kInt8, I4 = KvType::kInt4, F16 = KvType::kF16, F32 = KvType::kF32;
  uint32_t seed = 1;
  for (auto [k, v] : {std::pair{I8, I8}, {I4, I4}, {I8, I4}, {I4, I8}, {F16, F32}, {I4, F16}})
    for (int hd : {8, 16, 64, 96, 128}) {
      // Decode: one query deep in the cache (key splits across threads), GQA 3.
      check({k, v, 3, hd, 2, 0, 1, 301, 64, 3}, seed++);
      // Prefill: queries across blocks, tiles cut by block ends, a pending tail of 13 keys.
      check({k, v, 2, hd, 1, 0, 77, 237, 96, 2}, seed++);
      // Sliding window, GQA 1 and 4.
      check({k, v, 1, hd, 2, 50, 40, 170, 32, 1}, seed++);
      check({k, v, 4, hd, 1, 33, 9, 129, 64, 2}, seed++);
      // Decode with GQA 8 and 5: more query rows than one register group of 4.
      check({k, v, 8, hd, 1, 0, 1, 200, 64, 2}, seed++);
      check({k, v, 5, hd, 1, 0, 1, 150, 32, 1}, seed++);
    }
}

// A case's query rows [n_q][n_heads][head_dim].
std::vector<float> queries(const Case& c, uint32_t seed) {
  return testing::random_floats(size_t(c.n_q) * c.group * c.n_kv * c.hd, seed + 7, -1.f, 1.f);
}

// The most a quantized query row qs (scaled) can move its score against coded key j of kv head g:
// per 32-dim group, half the query's step times the sum of what the key codes stand for (int8:
// |x^|; int4 keys: the codes u against the step of q o s).
double score_error_bound(const testing::CodedKV& kv, const Case& c, const float* qs, int g,
                         int64_t j) {
  const int hd = c.hd, bs = c.block_size;
  double e = 0.0;
  if (c.k == KvType::kInt8) {
    const float* k = kv.k_f32.data() + (size_t(j) * c.n_kv + g) * hd;
    for (int gr = 0; gr < hd / 32; ++gr) {
      float amax = 0.f, ksum = 0.f;
      for (int i = 32 * gr; i < 32 * gr + 32; ++i) {
        amax = std::max(amax, std::abs(qs[i]));
        ksum += std::abs(k[i]);
      }
      e += amax / 127.0 / 2 * ksum;
    }
    return e;
  }
  const auto* sec = static_cast<const uint8_t*>(kv.view.k_blocks[j / bs]) +
                    g * kv_row_bytes(c.k, hd, true) * bs;
  const int off = int(j % bs);
  const uint8_t* codes = sec + size_t(off) * (hd / 2);
  const uint8_t* meta = sec + size_t(bs) * (hd / 2) + size_t(off / kKvChannelGroup) * hd * 4;
  for (int gr = 0; gr < hd / 32; ++gr) {
    float amax = 0.f, usum = 0.f;
    for (int i = 32 * gr; i < 32 * gr + 32; ++i) {
      uint16_t h;
      std::memcpy(&h, meta + 2 * i, 2);
      amax = std::max(amax, std::abs(qs[i] * f16_to_f32(h)));
      const uint8_t byte = codes[i % (hd / 2)];
      usum += i < hd / 2 ? byte & 15 : byte >> 4;
    }
    e += amax / 127.0 / 2 * usum;
  }
  return e;
}

// Decode-shaped cases (at most 16 query rows per kv head): every AVX-512 tile is a decode tile.
std::vector<Case> decode_cases() {
  const KvType I8 = KvType::kInt8, I4 = KvType::kInt4;
  std::vector<Case> cases;
  for (auto [k, v] : {std::pair{I8, I8}, {I4, I4}, {I8, I4}, {I4, I8}})
    for (int hd : {32, 64, 96, 128, 256}) {
      cases.push_back({k, v, 3, hd, 2, 0, 1, 301, 64, 3});   // SmolLM2's GQA, key splits
      cases.push_back({k, v, 8, hd, 1, 0, 1, 200, 64, 2});   // 8 rows: one pass
      cases.push_back({k, v, 12, hd, 1, 0, 1, 171, 32, 1});  // 8 + 4 rows
      cases.push_back({k, v, 16, hd, 1, 0, 1, 144, 32, 2});  // the most rows; no pending keys
      cases.push_back({k, v, 1, hd, 2, 50, 4, 170, 32, 1});  // window, 4 queries
      cases.push_back({k, v, 5, hd, 1, 0, 3, 150, 64, 2});   // 3 queries x 5 heads
    }
  return cases;
}

TEST(KvQuantAttention, Avx512DecodeTileEqualsQuantizedQueryModel) {
  const auto paths = testing::runnable_paths();
  if (std::find(paths.begin(), paths.end(), SimdPath::kAvx512) == paths.end())
    GTEST_SKIP() << "no AVX-512 on this machine";
  testing::PathGuard guard;
  set_simd_path(SimdPath::kAvx512);
  uint32_t seed = 100;
  int differs = 0;  // rows where the model is not the exact result: the test sees the quantized path
  for (const Case& c : decode_cases()) {
    SCOPED_TRACE(describe(c));
    const int nh = c.group * c.n_kv;
    const testing::CodedKV kv(c.k, c.v, c.block_size, c.n_kv, c.hd, c.n_tokens, seed);
    const testing::PagedKV f32 = kv.dequantized(c.block_size, c.n_kv, c.hd, c.n_tokens);
    const auto q = queries(c, seed++);
    const AttentionParams p{nh, 1.f / std::sqrt(static_cast<float>(c.hd)), c.window};
    const int64_t q_pos0 = c.n_tokens - c.n_q;
    std::vector<float> model(q.size()), exact(q.size()), got(q.size(), NAN);
    reference::attention_quant_query(p, q.data(), c.n_q, q_pos0, kv.view, model.data());
    reference::attention(p, q.data(), c.n_q, q_pos0, f32.view, exact.data());
    ThreadPool pool(c.threads);
    attention(pool, p, q.data(), c.n_q, q_pos0, kv.view, got.data());
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_TRUE(near(got[i], model[i])) << "at " << i << ": " << got[i] << " vs " << model[i];
      differs += !near(model[i], exact[i]);
    }
  }
  EXPECT_GT(differs, 1000);
}

TEST(KvQuantAttention, QuantizedQueryModelWithinBound) {
  // Scores within E of the exact ones move each softmax weight by a factor within e^(+-2E), so an
  // output moves by at most (e^(2E) - 1) max_j |v_j| over the visible keys.
  uint32_t seed = 300;
  double worst = 0.0;  // the largest error as a fraction of its bound
  for (const Case& c : decode_cases()) {
    if (c.hd > 128) continue;  // the bound does not depend on it; keep the test fast
    SCOPED_TRACE(describe(c));
    const int nh = c.group * c.n_kv;
    const testing::CodedKV kv(c.k, c.v, c.block_size, c.n_kv, c.hd, c.n_tokens, seed);
    const testing::PagedKV f32 = kv.dequantized(c.block_size, c.n_kv, c.hd, c.n_tokens);
    const auto q = queries(c, seed++);
    const float scale = 1.f / std::sqrt(static_cast<float>(c.hd));
    const AttentionParams p{nh, scale, c.window};
    const int64_t q_pos0 = c.n_tokens - c.n_q;
    std::vector<float> model(q.size()), exact(q.size()), qs(c.hd);
    reference::attention_quant_query(p, q.data(), c.n_q, q_pos0, kv.view, model.data());
    reference::attention(p, q.data(), c.n_q, q_pos0, f32.view, exact.data());
    for (int64_t t = 0; t < c.n_q; ++t)
      for (int h = 0; h < nh; ++h) {
        const size_t row = (size_t(t) * nh + h) * c.hd;
        for (int d = 0; d < c.hd; ++d) qs[d] = q[row + d] * scale;
        const int g = h / c.group;
        const int64_t i = q_pos0 + t, j0 = c.window ? std::max<int64_t>(0, i - c.window + 1) : 0;
        double e = 0.0;
        for (int64_t j = j0; j <= i && j < kv.view.k_pending_from; ++j)
          e = std::max(e, score_error_bound(kv, c, qs.data(), g, j));
        for (int d = 0; d < c.hd; ++d) {
          double vmax = 0.0;
          for (int64_t j = j0; j <= i; ++j)
            vmax = std::max(vmax, double(std::abs(kv.v_f32[(size_t(j) * c.n_kv + g) * c.hd + d])));
          const double bound = std::expm1(2 * e) * vmax + 1e-5 * (1 + std::abs(exact[row + d]));
          const double err = std::abs(double(model[row + d]) - exact[row + d]);
          ASSERT_LE(err, bound) << "t=" << t << " h=" << h << " d=" << d << " E=" << e;
          worst = std::max(worst, err / bound);
        }
      }
  }
  EXPECT_GT(worst, 0.01);  // the bound is not vacuous: the model does move
}

TEST(KvQuantAttention, ScratchDoesNotGrowWithContext) {
  ThreadPool pool(2);
  const AttentionParams p{8, 0.125f, 0};
  KVView a = coded_kv_view(KvType::kInt8, KvType::kInt4, 256, 2, 64, nullptr, nullptr, 1024);
  KVView b = a;
  b.n_tokens = 1 << 20;
  EXPECT_EQ(attention_scratch_bytes(pool, p, 1, a), attention_scratch_bytes(pool, p, 1, b));
  // And it covers the decoded tiles: 2 x 64 keys x 64 dims x 4 bytes per thread at least.
  KVView f = a;
  f.coded = false;
  EXPECT_GE(attention_scratch_bytes(pool, p, 1, a), attention_scratch_bytes(pool, p, 1, f) + 2 * 2 * 64 * 64 * 4);
}

}  // namespace
}  // namespace longctx::kernels
