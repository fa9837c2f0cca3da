// Helpers for the block-type tests: f16 constants, random weights stored as a block type, random
// raw blocks (every code pattern, including extremes our quantizer never writes).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/tensor_type.h"
#include "core/thread_pool.h"
#include "kernels/kernel_test_util.h"
#include "kernels/ops.h"

namespace longctx::kernels::testing {

inline constexpr TensorType kBlockTypes[] = {
    TensorType::kQ8_0, TensorType::kQ4_0, TensorType::kQ4_K, TensorType::kQ5_K,
    TensorType::kQ6_K, TensorType::kQ5_0, TensorType::kQ5_1};

inline std::vector<float> normal_floats(size_t n, uint32_t seed, float sigma = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, sigma);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// rows x cols weights of type t: `bytes` (rows packed) and their decoded values `f32`.
struct QuantWeights {
  std::vector<uint8_t> bytes;
  std::vector<float> f32;
  WeightView view;
};

inline QuantWeights finish(TensorType t, int64_t rows, int64_t cols, std::vector<uint8_t> bytes) {
  QuantWeights w;
  w.bytes = std::move(bytes);
  w.f32.resize(rows * cols);
  const int64_t rb = row_bytes(t, cols);
  for (int64_t r = 0; r < rows; ++r)
    dequantize_row(t, w.bytes.data() + r * rb, w.f32.data() + r * cols, cols);
  w.view = weight_view(t, w.bytes.data(), rows, cols);
  return w;
}

// Normal weights quantized by quantize_row (realistic blocks).
inline QuantWeights quantized_weights(TensorType t, int64_t rows, int64_t cols, uint32_t seed) {
  const auto f = normal_floats(rows * cols, seed, 0.05f);
  const int64_t rb = row_bytes(t, cols);
  std::vector<uint8_t> bytes(rows * rb);
  for (int64_t r = 0; r < rows; ++r)
    quantize_row(t, f.data() + r * cols, bytes.data() + r * rb, cols);
  return finish(t, rows, cols, std::move(bytes));
}

// Random bytes with every f16 scale field replaced by a modest positive value: all code, scale
// and minimum patterns occur (Q8_0 codes of -128, 6-bit scales of 63, Q6_K scales of -128).
inline QuantWeights raw_weights(TensorType t, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  const int64_t rb = row_bytes(t, cols);
  std::vector<uint8_t> bytes(rows * rb);
  for (auto& b : bytes) b = static_cast<uint8_t>(rng());
  std::uniform_real_distribution<float> u(0.001f, 0.01f);
  const BlockLayout bl = block_layout(t);
  for (size_t off = 0; off < bytes.size(); off += bl.bytes) {
    const uint16_t d = f32_to_f16(u(rng)), dmin = f32_to_f16(u(rng));
    switch (t) {
      case TensorType::kQ8_0:
      case TensorType::kQ4_0:
      case TensorType::kQ5_0:
        std::memcpy(&bytes[off], &d, 2);
        break;
      case TensorType::kQ5_1: {  // a minimum of either sign
        const uint16_t m = f32_to_f16(u(rng) * 16 * (rng() % 2 ? 1.f : -1.f));
        std::memcpy(&bytes[off], &d, 2);
        std::memcpy(&bytes[off + 2], &m, 2);
        break;
      }
      case TensorType::kQ4_K:
      case TensorType::kQ5_K:
        std::memcpy(&bytes[off], &d, 2);
        std::memcpy(&bytes[off + 2], &dmin, 2);
        break;
      case TensorType::kQ6_K:
        std::memcpy(&bytes[off + 208], &d, 2);
        break;
      default:
        break;
    }
  }
  return finish(t, rows, cols, std::move(bytes));
}

// matmul(w, x [n][cols] + bias) on every SIMD path this machine runs equals want [n][rows] within
// tol, element by element.
inline void expect_matmul_on_every_path(const WeightView& w, const std::vector<float>& x, int64_t n,
                                        const float* bias, const std::vector<double>& want,
                                        const std::vector<double>& tol, int threads) {
  const int64_t rows = w.rows;
  ThreadPool pool(threads);
  PathGuard guard;
  for (SimdPath path : runnable_paths()) {
    set_simd_path(path);
    SCOPED_TRACE(simd_path_name(path));
    std::vector<float> y(n * rows, NAN);
    matmul(pool, x.data(), n, w, bias, y.data());
    for (int64_t k = 0; k < n * rows; ++k)
      ASSERT_NEAR(y[k], want[k], tol[k]) << "x row " << k / rows << " out " << k % rows;
  }
}

}  // namespace longctx::kernels::testing
