// Every optimized kernel against its scalar reference, on every SIMD path this CPU can run.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/kernel_test_util.h"
#include "kernels/ops.h"
#include "kernels/reference/reference.h"

namespace longctx::kernels {
namespace {

using testing::random_floats;
using testing::runnable_paths;
using testing::store;

TEST(SimdPaths, ListsScalarAndActive) {
  const auto paths = runnable_paths();
  ASSERT_FALSE(paths.empty());
  EXPECT_EQ(paths.front(), SimdPath::kScalar);
  EXPECT_EQ(paths.back(), best_simd_path());
  testing::PathGuard guard;
  EXPECT_EQ(set_simd_path(SimdPath::kScalar), SimdPath::kScalar);
  EXPECT_STREQ(simd_path(), "scalar");
}

// |y - ref| within tol times the sum of |x_c * w_c| (the natural scale of rounding error).
void check_matmul(DType dt, int64_t rows, int64_t cols, int64_t n, bool with_bias, int threads) {
  SCOPED_TRACE(std::string(dtype_name(dt)) + " rows=" + std::to_string(rows) +
               " cols=" + std::to_string(cols) + " n=" + std::to_string(n) +
               " bias=" + std::to_string(with_bias) + " threads=" + std::to_string(threads));
  const auto w = store(dt, random_floats(rows * cols, 1 + rows * 7 + cols));
  const auto x = random_floats(n * cols, 2 + n);
  const auto bias = random_floats(rows, 3);
  const WeightView wv = weight_view(tensor_type(dt), w.bytes.data(), rows, cols);
  std::vector<float> want(n * rows), scale(n * rows, 0.f);
  reference::matmul(x.data(), n, wv, with_bias ? bias.data() : nullptr, want.data());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c)
        scale[i * rows + r] += std::abs(x[i * cols + c] * w.f32[r * cols + c]);
      scale[i * rows + r] += with_bias ? std::abs(bias[r]) : 0.f;
    }
  ThreadPool pool(threads);
  testing::PathGuard guard;
  for (SimdPath path : runnable_paths()) {
    set_simd_path(path);
    SCOPED_TRACE(simd_path_name(path));
    // BF16 weights on AVX-512 (matvec and GEMM) use bf16-rounded activations: 2^-8 relative.
    const bool bf16_dot = dt == DType::kBF16 && path == SimdPath::kAvx512;
    const float tol = bf16_dot ? 8e-3f : 2e-6f;
    std::vector<float> y(n * rows, NAN);
    matmul(pool, x.data(), n, wv, with_bias ? bias.data() : nullptr, y.data());
    for (int64_t k = 0; k < n * rows; ++k)
      ASSERT_NEAR(y[k], want[k], tol * scale[k] + 1e-6f) << "at " << k;
  }
}

TEST(SimdPaths, MatmulOddShapesEveryDtype) {
  const DType dtypes[] = {DType::kF32, DType::kF16, DType::kBF16};
  for (DType dt : dtypes) {
    for (int64_t n : {1, 2, 3, 4, 5, 7, 8, 9, 13, 37})
      check_matmul(dt, 67, 45, n, n % 2 == 1, 1 + n % 3);
    for (int64_t cols : {1, 2, 15, 17, 31, 33, 257, 600})
      for (int64_t rows : {1, 3, 16, 130})
        check_matmul(dt, rows, cols, rows % 3 == 0 ? 11 : 1, cols % 2 == 0, 2);
    check_matmul(dt, 200, 1100, 29, true, 3);  // several K blocks and row panels per thread
  }
}

// matmul_many (q/k/v, gate/up in one pass) gives each matrix exactly what matmul gives it: every
// output row is computed by the same kernel whatever range of the concatenation holds it.
TEST(SimdPaths, MatmulManyEqualsOneAtATime) {
  testing::PathGuard guard;
  const int64_t cols = 70, rows[] = {40, 16, 23};
  for (DType dt : {DType::kF32, DType::kF16, DType::kBF16})
    for (int64_t n : {1, 3, 9})
      for (SimdPath path : runnable_paths()) {
        set_simd_path(path);
        SCOPED_TRACE(std::string(dtype_name(dt)) + " n=" + std::to_string(n) + " " +
                     simd_path_name(path));
        std::vector<testing::Stored> w;
        std::vector<WeightView> wv;
        for (int j = 0; j < 3; ++j) w.push_back(store(dt, random_floats(rows[j] * cols, 11 + j)));
        for (int j = 0; j < 3; ++j)
          wv.push_back(weight_view(tensor_type(dt), w[j].bytes.data(), rows[j], cols));
        const auto x = random_floats(n * cols, 5);
        const auto bias = random_floats(rows[1], 6);
        ThreadPool pool(2);
        std::vector<std::vector<float>> want(3), got(3);
        std::vector<kernels::MatmulOut> outs;
        for (int j = 0; j < 3; ++j) {
          want[j].assign(n * rows[j], 0.f);
          got[j].assign(n * rows[j], NAN);
          const float* b = j == 1 ? bias.data() : nullptr;
          matmul(pool, x.data(), n, wv[j], b, want[j].data());
          outs.push_back({&wv[j], b, got[j].data()});
        }
        matmul_many(pool, x.data(), n, outs.data(), 3);
        for (int j = 0; j < 3; ++j) EXPECT_EQ(got[j], want[j]) << "matrix " << j;
      }
}

TEST(SimdPaths, EmbeddingRow) {
  testing::PathGuard guard;
  for (DType dt : {DType::kF32, DType::kF16, DType::kBF16}) {
    const auto w = store(dt, random_floats(5 * 37, 9));
    const WeightView wv = weight_view(tensor_type(dt), w.bytes.data(), 5, 37);
    for (SimdPath path : runnable_paths()) {
      set_simd_path(path);
      std::vector<float> got(37), want(37);
      for (int64_t r = 0; r < 5; ++r) {
        embedding_row(wv, r, got.data());
        reference::embedding_row(wv, r, want.data());
        EXPECT_EQ(got, want) << simd_path_name(path) << " " << dtype_name(dt);
      }
    }
  }
}

TEST(SimdPaths, Rmsnorm) {
  testing::PathGuard guard;
  for (int64_t dim : {1, 7, 16, 64, 100, 2048}) {
    const auto x = random_floats(3 * dim, 4, -3.f, 3.f);
    const auto wt = random_floats(dim, 5);
    std::vector<float> want(3 * dim);
    reference::rmsnorm(x.data(), wt.data(), 3, dim, 1e-5f, want.data());
    for (SimdPath path : runnable_paths()) {
      set_simd_path(path);
      std::vector<float> y = x;  // in place
      rmsnorm(y.data(), wt.data(), 3, dim, 1e-5f, y.data());
      for (int64_t i = 0; i < 3 * dim; ++i)
        ASSERT_NEAR(y[i], want[i], 1e-5f * (1 + std::abs(want[i])))
            << simd_path_name(path) << " dim=" << dim;
    }
  }
}

TEST(SimdPaths, RopeFullAndPartial) {
  testing::PathGuard guard;
  struct R {
    int heads, hd, rot;
  };
  for (const R& c :
       {R{3, 64, 64}, R{2, 80, 80}, R{4, 96, 32}, R{1, 8, 8}, R{2, 128, 64}, R{2, 36, 18}}) {
    const int64_t n_tok = 5;
    const std::vector<int64_t> pos = {0, 1, 17, 4095, 131071};
    std::vector<float> inv(c.rot / 2);
    for (int i = 0; i < c.rot / 2; ++i) inv[i] = std::pow(10000.f, -2.f * i / c.rot);
    const auto x = random_floats(n_tok * c.heads * c.hd, 6);
    std::vector<float> want = x;
    reference::rope(want.data(), n_tok, c.heads, c.hd, c.rot, pos.data(), inv.data(), 1.1f);
    for (SimdPath path : runnable_paths()) {
      set_simd_path(path);
      std::vector<float> y = x;
      rope(y.data(), n_tok, c.heads, c.hd, c.rot, pos.data(), inv.data(), 1.1f);
      for (size_t i = 0; i < y.size(); ++i)
        ASSERT_NEAR(y[i], want[i], 1e-6f)
            << simd_path_name(path) << " hd=" << c.hd << " rot=" << c.rot;
    }
  }
}

TEST(SimdPaths, SiluMul) {
  testing::PathGuard guard;
  for (int64_t n : {1, 5, 16, 33, 5632}) {
    auto gate = random_floats(n, 7, -20.f, 20.f);
    if (n > 4) gate[0] = -100.f, gate[1] = 100.f, gate[2] = 0.f;
    const auto up = random_floats(n, 8);
    std::vector<float> want(n);
    reference::silu_mul(gate.data(), up.data(), n, want.data());
    for (SimdPath path : runnable_paths()) {
      set_simd_path(path);
      std::vector<float> out = gate;  // out aliases gate
      silu_mul(out.data(), up.data(), n, out.data());
      for (int64_t i = 0; i < n; ++i)
        ASSERT_NEAR(out[i], want[i], 2e-6f * (1 + std::abs(want[i]))) << simd_path_name(path);
    }
  }
}

TEST(SimdPaths, SumOddLengthsAndThreads) {
  testing::PathGuard guard;
  // Lengths around every path's vector and unroll widths, across the 4 Ki-float blocks and the
  // thread split; values in [0.5, 1.5): a dropped or doubled element moves the sum by >= 0.5.
  for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{15}, int64_t{17}, int64_t{63}, int64_t{65},
                    int64_t{1000}, int64_t{65536 * 3 + 7}}) {
    const auto x = random_floats(static_cast<size_t>(n), 11, 0.5f, 1.5f);
    const double want = reference::sum(x.data(), n);
    for (int threads : {1, 2, 3}) {
      ThreadPool pool(threads);
      for (SimdPath path : runnable_paths()) {
        set_simd_path(path);
        EXPECT_NEAR(sum(pool, x.data(), n), want, 0.1)
            << simd_path_name(path) << " n=" << n << " threads=" << threads;
      }
    }
  }
}

}  // namespace
}  // namespace longctx::kernels
