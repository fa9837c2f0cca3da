// Batch invariance of matmul (kernels/ops.h): a row's result depends only on that row and on the
// order it takes (decode rows first, prefill rows after), never on how many rows share the call,
// where the split falls, or the threads. Checked bit for bit on every SIMD path, for every weight
// type, at widths with and without a partial last vector, against the same row computed alone
// (decode order) or in a prefill call of another size (prefill order). This is what lets a
// sequence decoded in a batch get exactly the logits it gets alone (tests/model/batch_forward_test).
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/ops.h"
#include "kernels/kernel_test_util.h"

namespace longctx::kernels {
namespace {

using testing::PathGuard;
using testing::random_floats;
using testing::runnable_paths;

struct Weights {
  std::vector<uint8_t> bytes;
  WeightView view;
};

Weights make_weights(TensorType t, int64_t rows, int64_t cols, uint32_t seed) {
  const std::vector<float> f = random_floats(static_cast<size_t>(rows * cols), seed);
  Weights w;
  const int64_t rb = row_bytes(t, cols);
  w.bytes.resize(static_cast<size_t>(rows * rb));
  for (int64_t r = 0; r < rows; ++r)
    quantize_row(t, f.data() + r * cols, w.bytes.data() + r * rb, cols);
  w.view = weight_view(t, w.bytes.data(), rows, cols);
  return w;
}

bool same_bits(const float* a, const float* b, int64_t n) {
  return std::memcmp(a, b, static_cast<size_t>(n) * sizeof(float)) == 0;
}

// Row i of an n-row call with `decode` decode rows, against: decode rows computed one at a time,
// prefill rows computed in a prefill call of all the prefill rows plus 3 (another size).
void expect_invariant(ThreadPool& pool, const Weights& w, int64_t n, int64_t decode,
                      const std::string& what) {
  const int64_t cols = w.view.cols, rows = w.view.rows;
  const std::vector<float> x = random_floats(static_cast<size_t>((n + 3) * cols), 99 + n, -2, 2);
  const std::vector<float> bias = random_floats(static_cast<size_t>(rows), 5);
  std::vector<float> y(static_cast<size_t>(n * rows));
  matmul(pool, x.data(), n, w.view, bias.data(), y.data(), decode);
  std::vector<float> one(static_cast<size_t>(rows));
  for (int64_t i = 0; i < decode; ++i) {
    matmul(pool, x.data() + i * cols, 1, w.view, bias.data(), one.data(), 1);
    EXPECT_TRUE(same_bits(y.data() + i * rows, one.data(), rows))
        << what << ": decode row " << i << " of " << n;
  }
  if (decode == n) return;
  // The prefill rows again, 3 more rows after them: a different micro-kernel tail.
  const int64_t m = n - decode + 3;
  std::vector<float> big(static_cast<size_t>(m * rows));
  matmul(pool, x.data() + decode * cols, m, w.view, bias.data(), big.data(), 0);
  for (int64_t i = decode; i < n; ++i)
    EXPECT_TRUE(same_bits(y.data() + i * rows, big.data() + (i - decode) * rows, rows))
        << what << ": prefill row " << i << " of " << n;
}

TEST(BatchInvariance, EveryTypeEveryPathEverySplit) {
  PathGuard guard;
  ThreadPool pool(2);
  struct Case {
    TensorType type;
    int64_t cols;
  };
  // Float widths: a partial last vector (200), 4-vector blocks plus whole vectors (1000), rows long
  // enough for AVX-512's 3-weight-row bf16 tiles with an odd chunk count and a partial last chunk
  // (1100); block types: whole blocks only (their rows are whole blocks by construction).
  const Case cases[] = {{TensorType::kF32, 200},  {TensorType::kF32, 1000},
                        {TensorType::kF16, 200},  {TensorType::kBF16, 200},
                        {TensorType::kBF16, 1000}, {TensorType::kBF16, 1100},
                        {TensorType::kQ8_0, 320},
                        {TensorType::kQ4_0, 320}, {TensorType::kQ4_K, 512},
                        {TensorType::kQ5_K, 512}, {TensorType::kQ6_K, 512},
                        {TensorType::kQ5_0, 320}, {TensorType::kQ5_1, 320}};
  for (SimdPath path : runnable_paths()) {
    set_simd_path(path);
    for (const Case& c : cases) {
      const Weights w = make_weights(c.type, 67, c.cols, 3);  // 67 rows: partial tiles and panels
      for (int64_t n : {1, 2, 3, 5, 8, 9, 17, 24})
        for (int64_t decode : {n, n / 2, int64_t{0}}) {
          const std::string what = std::string(simd_path_name(path)) + " " +
                                   tensor_type_name(c.type) + " cols " + std::to_string(c.cols) +
                                   ", " + std::to_string(decode) + " decode rows";
          expect_invariant(pool, w, n, decode, what);
        }
    }
  }
}

// matmul_many splits its rows the same way: each output equals matmul() of that matrix alone.
TEST(BatchInvariance, ManyEqualsOneAtATime) {
  PathGuard guard;
  ThreadPool pool(2);
  for (SimdPath path : runnable_paths()) {
    set_simd_path(path);
    for (TensorType t : {TensorType::kBF16, TensorType::kQ8_0}) {
      const Weights a = make_weights(t, 40, 256, 1), b = make_weights(t, 24, 256, 2);
      const int64_t n = 11, decode = 6;
      const std::vector<float> x = random_floats(static_cast<size_t>(n * 256), 4);
      std::vector<float> ya(static_cast<size_t>(n * 40)), yb(static_cast<size_t>(n * 24));
      const MatmulOut outs[] = {{&a.view, nullptr, ya.data()}, {&b.view, nullptr, yb.data()}};
      matmul_many(pool, x.data(), n, outs, 2, decode);
      std::vector<float> ra(ya.size()), rb(yb.size());
      matmul(pool, x.data(), n, a.view, nullptr, ra.data(), decode);
      matmul(pool, x.data(), n, b.view, nullptr, rb.data(), decode);
      EXPECT_TRUE(same_bits(ya.data(), ra.data(), static_cast<int64_t>(ya.size())))
          << simd_path_name(path) << " " << tensor_type_name(t);
      EXPECT_TRUE(same_bits(yb.data(), rb.data(), static_cast<int64_t>(yb.size())))
          << simd_path_name(path) << " " << tensor_type_name(t);
    }
  }
}

}  // namespace
}  // namespace longctx::kernels
