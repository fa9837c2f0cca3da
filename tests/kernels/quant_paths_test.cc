// Block-type matmul on every SIMD path the build produces, against float64 dot products of the
// reference-decoded weights with the f32 activations.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/kernel_test_util.h"
#include "kernels/ops.h"
#include "kernels/quant_test_util.h"

namespace longctx::kernels {
namespace {

using testing::kBlockTypes;
using testing::QuantWeights;
using testing::random_floats;
using testing::runnable_paths;

// Activation group of a type's kernels (docs/gguf-kernels.md): 32 for Q8_0 / Q4_0 / Q5_0 / Q5_1,
// 256 for the K-quants.
int64_t act_group(TensorType t) { return block_layout(t).elems == 32 ? 32 : 256; }

// The kernels quantize x per group g to int8: x~_c = d_g q_c with d_g = max_g |x| / 127 and
// |x_c - x~_c| <= d_g / 2, then compute sum_c w_c x~_c with exact integer sums inside a block and
// f32 scaling and accumulation. So |y - sum_c w_c x_c| <= sum_c |w_c| d_g(c) / 2 (activation
// rounding) + f32 rounding, bounded by 2e-5 sum_c |x_c| M(c) with M(c) the largest |w| of c's
// weight block (partial sums of code products scaled by block scales stay below ~2 M |x| each).
struct Bound {
  std::vector<double> want, tol;
};

Bound expected(const QuantWeights& w, const std::vector<float>& x, int64_t n, const float* bias) {
  const int64_t rows = w.view.rows, cols = w.view.cols, g = act_group(w.view.type);
  const int64_t be = block_layout(w.view.type).elems;
  Bound b;
  b.want.assign(n * rows, 0.0);
  b.tol.assign(n * rows, 1e-6);
  std::vector<double> half_step(cols);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t c0 = 0; c0 < cols; c0 += g) {
      float amax = 0;
      for (int64_t c = c0; c < c0 + g; ++c) amax = std::max(amax, std::fabs(x[i * cols + c]));
      for (int64_t c = c0; c < c0 + g; ++c) half_step[c] = amax / 127.0 / 2.0 * 1.0001;
    }
    for (int64_t r = 0; r < rows; ++r) {
      const float* wr = w.f32.data() + r * cols;
      double y = bias ? bias[r] : 0.0, tol = 1e-6;
      for (int64_t c0 = 0; c0 < cols; c0 += be) {
        double m = 0;
        for (int64_t c = c0; c < c0 + be; ++c) m = std::max(m, std::fabs(double(wr[c])));
        for (int64_t c = c0; c < c0 + be; ++c) {
          y += double(wr[c]) * x[i * cols + c];
          tol += std::fabs(wr[c]) * half_step[c] + 2e-5 * std::fabs(x[i * cols + c]) * m;
        }
      }
      b.want[i * rows + r] = y;
      b.tol[i * rows + r] = tol;
    }
  }
  return b;
}

void check(const QuantWeights& w, int64_t n, bool with_bias, int threads, const char* what) {
  const int64_t rows = w.view.rows, cols = w.view.cols;
  SCOPED_TRACE(std::string(tensor_type_name(w.view.type)) + " " + what +
               " rows=" + std::to_string(rows) + " cols=" + std::to_string(cols) +
               " n=" + std::to_string(n) + " threads=" + std::to_string(threads));
  const auto x = random_floats(n * cols, 2 + n + cols, -2.f, 2.f);
  const auto bias = random_floats(rows, 3);
  const float* bp = with_bias ? bias.data() : nullptr;
  const Bound b = expected(w, x, n, bp);
  testing::expect_matmul_on_every_path(w.view, x, n, bp, b.want, b.tol, threads);
}

TEST(QuantPaths, MatmulEveryTypeAndShape) {
  for (TensorType t : kBlockTypes) {
    const int64_t be = block_layout(t).elems;
    for (int64_t blocks : {1, 2, 3, 11})
      for (int64_t rows : {1, 7, 33, 100}) {
        const auto w = testing::quantized_weights(t, rows, blocks * be, 10 + rows + blocks);
        for (int64_t n : {1, 5, 9}) check(w, n, n != 5, 1 + rows % 2, "quantized");
      }
    const auto w = testing::quantized_weights(t, 33, 3 * be, 4);
    for (int64_t n : {1, 2, 3, 4, 6, 7, 8, 16, 17, 33}) check(w, n, n % 2 == 0, 2, "quantized");
  }
}

// Raw random blocks: every code and scale pattern (Q8_0 codes of -128, 6-bit scales and minima of
// 63, Q6_K scales of -128), which the quantizer never writes but a file may hold.
TEST(QuantPaths, MatmulRawBlocks) {
  for (TensorType t : kBlockTypes) {
    const int64_t be = block_layout(t).elems;
    for (int64_t n : {1, 3, 4, 8, 17}) {
      const auto w = testing::raw_weights(t, 37, 4 * be, 20 + n);
      check(w, n, true, 2, "raw");
    }
  }
}

// matmul_many gives each matrix what matmul gives it, mixed types and shapes included (Q4_K with
// Q6_K shares one activation format; Q8_0 with Q4_K does not; float with quantized neither).
TEST(QuantPaths, MatmulManyMixed) {
  testing::PathGuard guard;
  const int64_t cols = 512;
  const TensorType types[][3] = {{TensorType::kQ4_K, TensorType::kQ6_K, TensorType::kQ4_K},
                                 {TensorType::kQ8_0, TensorType::kQ4_0, TensorType::kQ8_0},
                                 {TensorType::kQ8_0, TensorType::kQ5_K, TensorType::kF32},
                                 {TensorType::kBF16, TensorType::kQ6_K, TensorType::kQ4_0}};
  const int64_t rows[] = {40, 16, 23};
  ThreadPool pool(2);
  for (const auto& set : types)
    for (int64_t n : {1, 3, 9})
      for (SimdPath path : runnable_paths()) {
        set_simd_path(path);
        SCOPED_TRACE(std::string(tensor_type_name(set[0])) + "+" + tensor_type_name(set[1]) + "+" +
                     tensor_type_name(set[2]) + " n=" + std::to_string(n) + " " +
                     simd_path_name(path));
        std::vector<QuantWeights> w;
        for (int j = 0; j < 3; ++j)
          w.push_back(testing::quantized_weights(set[j], rows[j], cols, 30 + j));
        const auto x = random_floats(n * cols, 5);
        const auto bias = random_floats(rows[1], 6);
        std::vector<std::vector<float>> want(3), got(3);
        std::vector<MatmulOut> outs;
        for (int j = 0; j < 3; ++j) {
          want[j].assign(n * rows[j], 0.f);
          got[j].assign(n * rows[j], NAN);
          const float* b = j == 1 ? bias.data() : nullptr;
          matmul(pool, x.data(), n, w[j].view, b, want[j].data());
          outs.push_back({&w[j].view, b, got[j].data()});
        }
        matmul_many(pool, x.data(), n, outs.data(), 3);
        for (int j = 0; j < 3; ++j) EXPECT_EQ(got[j], want[j]) << "matrix " << j;
      }
}

TEST(QuantPaths, EmbeddingRowDecodesTheRow) {
  testing::PathGuard guard;
  for (TensorType t : kBlockTypes) {
    const auto w = testing::raw_weights(t, 6, 512, 8);
    for (SimdPath path : runnable_paths()) {
      set_simd_path(path);
      std::vector<float> got(512);
      for (int64_t r = 0; r < 6; ++r) {
        embedding_row(w.view, r, got.data());
        for (int64_t c = 0; c < 512; ++c)
          ASSERT_EQ(got[c], w.f32[r * 512 + c]) << tensor_type_name(t) << " row " << r;
      }
    }
    std::vector<float> out(512);
    EXPECT_THROW(embedding_row(w.view, 6, out.data()), Error);
  }
}

// A view whose cols are not whole blocks, or whose row stride is not the packed row size, is
// refused before any weight is read (a 1-byte buffer: any read past it would be caught by ASan).
TEST(QuantPaths, RefusesPartialBlocksAndBadStrides) {
  ThreadPool pool(1);
  const uint8_t one = 0;
  std::vector<float> x(300, 1.f), y(300);
  for (TensorType t : kBlockTypes) {
    const int64_t be = block_layout(t).elems;
    for (int64_t cols : {be - 1, be + 16, 3 * be / 2}) {
      const WeightView bad{t, &one, 1, cols, row_bytes(t, be)};
      try {
        matmul(pool, x.data(), 1, bad, nullptr, y.data());
        ADD_FAILURE() << tensor_type_name(t) << " cols " << cols;
      } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::kShape);
      }
      const MatmulOut out{&bad, nullptr, y.data()};
      EXPECT_THROW(matmul_many(pool, x.data(), 1, &out, 1), Error);
      EXPECT_THROW(embedding_row(bad, 0, y.data()), Error);
    }
    const WeightView stride{t, &one, 2, be, row_bytes(t, be) + 2};
    EXPECT_THROW(matmul(pool, x.data(), 1, stride, nullptr, y.data()), Error);
  }
}

}  // namespace
}  // namespace longctx::kernels
