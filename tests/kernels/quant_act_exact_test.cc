// The block-type kernels multiply the weights by the activations exactly as llama.cpp rounds them
// (docs/gguf-kernels.md): on every SIMD path and every shape-dependent kernel (decode of one x
// row, 2-7 x rows, the prefill GEMM with its x-row, weight-row and column tails), y must equal
// sum_c w_c * d_g * q_c in float64 to f32 rounding, with q, d computed here from ggml's rules.
// This is 400x tighter than quant_paths_test's activation-rounding bound: an f16 scale left
// unrounded, a Q8_K scale of the other sign or a code rounded the other way would fail it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "kernels/kernel_test_util.h"
#include "kernels/ops.h"
#include "kernels/quant_test_util.h"

namespace longctx::kernels {
namespace {

using testing::kBlockTypes;
using testing::QuantWeights;
using testing::runnable_paths;

// ggml's activation quantization: Q8_0 (group 32, for Q8_0 / Q4_0 weights): d = amax / 127,
// q = round(x / d) (x86 rounds ties to even), the scale kept as f16; Q8_K (group 256, K-quants):
// m = the first element of largest magnitude, iscale = -127 / m, q = min(127, round(x * iscale)),
// d = 1 / iscale. Returns x~ = d * q per element (float64).
std::vector<double> ggml_rounded(const std::vector<float>& x, int group) {
  std::vector<double> out(x.size());
  for (size_t g0 = 0; g0 < x.size(); g0 += group) {
    float amax = 0.f, m = 0.f;
    for (int l = 0; l < group; ++l)
      if (std::fabs(x[g0 + l]) > amax) amax = std::fabs(x[g0 + l]), m = x[g0 + l];
    for (int l = 0; l < group; ++l) {
      double v = 0.0;
      if (amax > 0.f && group == 32) {
        const float d = amax / 127.f, id = 1.f / d;
        v = double(f16_to_f32(f32_to_f16(d))) * std::nearbyint(x[g0 + l] * id);
      } else if (amax > 0.f) {
        const float iscale = -127.f / m;
        v = double(1.f / iscale) * std::min(127.f, std::nearbyint(x[g0 + l] * iscale));
      }
      out[g0 + l] = v;
    }
  }
  return out;
}

void check(const QuantWeights& w, int64_t n, int threads) {
  const TensorType t = w.view.type;
  const int64_t rows = w.view.rows, cols = w.view.cols, be = block_layout(t).elems;
  const int group = t == TensorType::kQ8_0 || t == TensorType::kQ4_0 ? 32 : 256;
  SCOPED_TRACE(std::string(tensor_type_name(t)) + " rows=" + std::to_string(rows) +
               " cols=" + std::to_string(cols) + " n=" + std::to_string(n));
  auto x = testing::normal_floats(n * cols, 7 + n + cols);
  for (int l = 0; l < group; ++l) x[l] = 0.f;  // an all-zero group: scale 0
  if (n > 1) x[cols + 3] = 40.f;               // a group ruled by one large positive value
  const auto bias = testing::normal_floats(rows, 9);
  const auto xr = ggml_rounded(x, group);
  std::vector<double> want(n * rows), tol(n * rows);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t r = 0; r < rows; ++r) {
      const float* wr = w.f32.data() + r * cols;
      double y = bias[r], mag = 0.0;
      for (int64_t c0 = 0; c0 < cols; c0 += be) {
        double m = 0.0;
        for (int64_t c = c0; c < c0 + be; ++c) m = std::max(m, std::fabs(double(wr[c])));
        for (int64_t c = c0; c < c0 + be; ++c) {
          y += double(wr[c]) * xr[i * cols + c];
          mag += (std::fabs(wr[c]) + m) * std::fabs(xr[i * cols + c]);
        }
      }
      want[i * rows + r] = y;
      tol[i * rows + r] = 1e-5 * mag + 1e-6;
    }
  ThreadPool pool(threads);
  testing::PathGuard guard;
  for (SimdPath path : runnable_paths()) {
    set_simd_path(path);
    SCOPED_TRACE(simd_path_name(path));
    std::vector<float> y(n * rows, NAN);
    matmul(pool, x.data(), n, w.view, bias.data(), y.data());
    for (int64_t k = 0; k < n * rows; ++k)
      ASSERT_NEAR(y[k], want[k], tol[k]) << "x row " << k / rows << " out " << k % rows;
  }
}

// Columns: one block; past one 1024-column GEMM panel with a partial last panel; an odd number of
// 32-blocks (the 512-bit decode's lone last block). Weight rows: below, at and past the GEMM's
// 16-row tile. x rows: decode (1), the 2-7-row tiles, and the GEMM's 8-row micro-kernel with
// every tail.
TEST(QuantActExact, EveryPathAndShape) {
  for (TensorType t : kBlockTypes) {
    const int64_t be = block_layout(t).elems;
    const int64_t col_sets[] = {be, 1280, be == 32 ? 2080 : 2304};
    for (int64_t cols : col_sets)
      for (int64_t rows : {1, 16, 17, 45}) {
        const auto w = rows % 2 ? testing::raw_weights(t, rows, cols, 40 + rows)
                                : testing::quantized_weights(t, rows, cols, 50 + rows);
        for (int64_t n : {1, 2, 5, 7, 8, 9, 15, 16, 17, 24}) check(w, n, 1 + n % 2);
      }
  }
}

}  // namespace
}  // namespace longctx::kernels
