// attention() against a naive reference built here: explicit mask, full softmax, double sums.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/kernel_test_util.h"
#include "kernels/ops.h"
#include "kernels/reference/reference.h"

namespace longctx::kernels {
namespace {

using testing::PagedKV;

struct Case {
  int group, hd, n_kv;
  int64_t window, n_q, q_pos0, n_tokens;
  int block_size;
  DType dtype;
  int threads;
};

std::string describe(const Case& c) {
  return "group=" + std::to_string(c.group) + " hd=" + std::to_string(c.hd) +
         " n_kv=" + std::to_string(c.n_kv) + " window=" + std::to_string(c.window) +
         " n_q=" + std::to_string(c.n_q) + " q_pos0=" + std::to_string(c.q_pos0) +
         " n_tokens=" + std::to_string(c.n_tokens) + " block=" + std::to_string(c.block_size) +
         " dtype=" + dtype_name(c.dtype) + " threads=" + std::to_string(c.threads);
}

// out[t][h] with the mask materialized as a vector<bool> per query: fine for a test.
std::vector<double> naive(const Case& c, const std::vector<float>& q, const PagedKV& kv,
                          float scale) {
  const int nh = c.group * c.n_kv;
  std::vector<double> out(c.n_q * nh * c.hd, 0.0);
  for (int64_t t = 0; t < c.n_q; ++t) {
    const int64_t i = c.q_pos0 + t;
    std::vector<bool> mask(kv.view.n_tokens);
    for (int64_t j = 0; j < kv.view.n_tokens; ++j)
      mask[j] = j <= i && (c.window == 0 || i - j < c.window);
    for (int h = 0; h < nh; ++h) {
      const int g = h / c.group;
      std::vector<double> s(kv.view.n_tokens, -INFINITY);
      double mx = -INFINITY;
      for (int64_t j = 0; j < kv.view.n_tokens; ++j) {
        if (!mask[j]) continue;
        double d = 0;
        for (int e = 0; e < c.hd; ++e)
          d += static_cast<double>(q[(t * nh + h) * c.hd + e]) *
               kv.k_f32[(j * c.n_kv + g) * c.hd + e];
        s[j] = d * scale;
        mx = std::max(mx, s[j]);
      }
      double sum = 0;
      for (int64_t j = 0; j < kv.view.n_tokens; ++j)
        if (mask[j]) sum += std::exp(s[j] - mx);
      for (int64_t j = 0; j < kv.view.n_tokens; ++j) {
        if (!mask[j]) continue;
        const double p = std::exp(s[j] - mx) / sum;
        for (int e = 0; e < c.hd; ++e)
          out[(t * nh + h) * c.hd + e] += p * kv.v_f32[(j * c.n_kv + g) * c.hd + e];
      }
    }
  }
  return out;
}

void check(const Case& c, uint32_t seed) {
  SCOPED_TRACE(describe(c));
  const int nh = c.group * c.n_kv;
  PagedKV kv(c.dtype, c.block_size, c.n_kv, c.hd, c.n_tokens, seed);
  const auto q = testing::random_floats(c.n_q * nh * c.hd, seed + 7, -2.f, 2.f);
  const AttentionParams p{nh, 1.f / std::sqrt(static_cast<float>(c.hd)), c.window};
  const auto want = naive(c, q, kv, p.scale);
  // The scalar reference too (it is what the SIMD paths are built around).
  std::vector<float> ref(want.size());
  reference::attention(p, q.data(), c.n_q, c.q_pos0, kv.view, ref.data());
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_NEAR(ref[i], want[i], 2e-5 * (1 + std::abs(want[i]))) << "reference, at " << i;
  ThreadPool pool(c.threads);
  testing::PathGuard guard;
  for (SimdPath path : testing::runnable_paths()) {
    set_simd_path(path);
    SCOPED_TRACE(simd_path_name(path));
    std::vector<float> out(want.size(), NAN);
    attention(pool, p, q.data(), c.n_q, c.q_pos0, kv.view, out.data());
    for (size_t i = 0; i < want.size(); ++i)
      ASSERT_NEAR(out[i], want[i], 2e-5 * (1 + std::abs(want[i]))) << "at " << i;
  }
}

TEST(Attention, RandomShapesMatchNaive) {
  std::mt19937 rng(1234);
  const int groups[] = {1, 2, 3, 4, 6, 7, 8};  // rows per decode tile: 1 to 8
  const int hds[] = {8, 16, 20, 64, 80, 96, 128, 256};  // 20: partial vectors on every path
  const DType dtypes[] = {DType::kF32, DType::kF16, DType::kBF16};
  const int blocks[] = {16, 37, 64, 100, 256};
  int n = 0;
  for (int hd : hds)
    for (int group : groups) {
      for (int rep = 0; rep < 4; ++rep, ++n) {
        Case c;
        c.group = group;
        c.hd = hd;
        c.n_kv = 1 + static_cast<int>(rng() % 2);
        c.block_size = blocks[rng() % 5];
        c.dtype = dtypes[(rep + hd) % 3];
        c.threads = 1 + static_cast<int>(rng() % 3);
        c.n_tokens = 1 + static_cast<int64_t>(rng() % 200);
        c.n_q = rep % 2 == 0 ? 1 : 1 + static_cast<int64_t>(rng() % c.n_tokens);
        c.q_pos0 = c.n_tokens - c.n_q - static_cast<int64_t>(rng() % (c.n_tokens - c.n_q + 1));
        const int64_t windows[] = {0, 1, 1 + static_cast<int64_t>(rng() % 8), c.n_tokens + 5};
        c.window = windows[rng() % 4];
        check(c, 100 + n);
      }
    }
}

TEST(Attention, EveryWindowAndDtype) {
  const DType dtypes[] = {DType::kF32, DType::kF16, DType::kBF16};
  for (DType dt : dtypes)
    for (int64_t window : {0, 1, 7, 1000})
      for (int64_t n_q : {1, 45})
        check(Case{4, 64, 2, window, n_q, 150 - n_q - 3, 150, 48, dt, 2}, 7);
}

// Long contexts: decode splits keys across threads (flash-decoding) and merges the partials.
TEST(Attention, LongDecodeSplitsMatch) {
  for (int threads : {1, 2, 3})
    for (int64_t window : {0, 700}) {
      check(Case{3, 64, 3, window, 1, 2999, 3000, 256, DType::kF16, threads}, 11);
      check(Case{8, 128, 1, window, 3, 2500, 2503, 64, DType::kBF16, threads}, 12);
      check(Case{1, 80, 2, window, 2, 1700, 1702, 100, DType::kF32, threads}, 13);
    }
}

// Scratch depends on threads, heads and n_q only: never on the context length.
TEST(Attention, ScratchIndependentOfContext) {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    for (int64_t n_q : {1, 64, 512}) {
      const AttentionParams p{32, 0.125f, 0};
      KVView kv{DType::kF16, 256, 4, 64, nullptr, nullptr, 1024};
      const size_t a = attention_scratch_bytes(pool, p, n_q, kv);
      kv.n_tokens = 65536;
      const size_t b = attention_scratch_bytes(pool, p, n_q, kv);
      EXPECT_EQ(a, b) << "threads=" << threads << " n_q=" << n_q;
      kv.n_tokens = 1 << 20;
      EXPECT_EQ(a, attention_scratch_bytes(pool, p, n_q, kv));
      // Far below one n_q x n_tokens score matrix at 64k (n_q 512: 128 MiB).
      EXPECT_LT(a, static_cast<size_t>(n_q) * 65536 * sizeof(float) / 4 + (4 << 20));
    }
  }
}

}  // namespace
}  // namespace longctx::kernels
