// The block-type kernels multiply the weights by the activations exactly as llama.cpp rounds them
// (docs/gguf-kernels.md): on every SIMD path and every shape-dependent kernel (decode of one x
// row, 2-7 x rows, the prefill GEMM with its x-row, weight-row and column tails), y must equal
// sum_c w_c * d_g * q_c in float64 to f32 rounding, with q, d computed here from ggml's rules.
// This is 400x tighter than quant_paths_test's activation-rounding bound: an f16 scale left
// unrounded, a Q8_K scale of the other sign or a code rounded the other way would fail it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
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
  const int group = block_layout(t).elems == 32 ? 32 : 256;
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
  testing::expect_matmul_on_every_path(w.view, x, n, bias.data(), want, tol, threads);
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

// Q8_0 / Q4_0 prefill keeps llama.cpp's f32 order bit for bit (its tinyBLAS kernel; the peaked
// test models' perplexities depend on it): per output 8 f32 lanes, lane k accumulating
// fma(int sum of the products of columns 4k..4k+3 of block b, d_w * d_x, lane) over the blocks,
// then ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)), then the bias. Written here from that
// description; the SIMD paths' prefill order (matmul's rows after decode_rows) must match it
// exactly for any number of x rows, through the GEMM's x-row and weight-row tails. (The decode
// order may differ: it is one x row's order, tests/kernels/batch_invariance_test.cc.)
TEST(QuantActExact, Q8_0AndQ4_0SumInLlamaCppOrder) {
  for (TensorType t : {TensorType::kQ8_0, TensorType::kQ4_0})
    for (int64_t cols : {64, 2080})
      for (int64_t rows : {17, 45}) {
        const auto w = testing::raw_weights(t, rows, cols, 60 + rows + cols);
        const int64_t nb = cols / 32, bytes = t == TensorType::kQ8_0 ? 34 : 18;
        for (int64_t n : {1, 2, 3, 8, 9, 11, 24}) {
          SCOPED_TRACE(std::string(tensor_type_name(t)) + " rows=" + std::to_string(rows) +
                       " cols=" + std::to_string(cols) + " n=" + std::to_string(n));
          const auto x = testing::normal_floats(n * cols, 70 + n);
          const auto bias = testing::normal_floats(rows, 71);
          // ggml's Q8_0 activations: codes and f16-rounded scales.
          std::vector<int> xq(n * cols);
          std::vector<float> xd(n * nb);
          for (int64_t g = 0; g < n * nb; ++g) {
            float amax = 0.f;
            for (int l = 0; l < 32; ++l) amax = std::max(amax, std::fabs(x[32 * g + l]));
            const float d = amax / 127.f, id = d != 0.f ? 1.f / d : 0.f;
            xd[g] = f16_to_f32(f32_to_f16(d));
            for (int l = 0; l < 32; ++l) xq[32 * g + l] = int(std::nearbyint(x[32 * g + l] * id));
          }
          std::vector<float> want(n * rows);
          for (int64_t i = 0; i < n; ++i)
            for (int64_t r = 0; r < rows; ++r) {
              float lane[8] = {};
              for (int64_t b = 0; b < nb; ++b) {
                const uint8_t* blk = w.bytes.data() + r * nb * bytes + b * bytes;
                uint16_t dh;
                std::memcpy(&dh, blk, 2);
                int code[32];
                for (int l = 0; l < 32; ++l)
                  code[l] = t == TensorType::kQ8_0
                                ? int(int8_t(blk[2 + l]))
                                : (l < 16 ? blk[2 + l] & 15 : blk[2 + l - 16] >> 4) - 8;
                const float s = f16_to_f32(dh) * xd[i * nb + b];
                for (int k = 0; k < 8; ++k) {
                  int dot = 0;
                  for (int e = 4 * k; e < 4 * k + 4; ++e)
                    dot += code[e] * xq[i * cols + 32 * b + e];
                  lane[k] = std::fma(float(dot), s, lane[k]);
                }
              }
              want[i * rows + r] = ((lane[0] + lane[4]) + (lane[2] + lane[6])) +
                                   ((lane[1] + lane[5]) + (lane[3] + lane[7])) + bias[r];
            }
          ThreadPool pool(2);
          testing::PathGuard guard;
          for (SimdPath path : runnable_paths()) {
            if (path == SimdPath::kScalar) continue;  // the reference sums sequentially
            set_simd_path(path);
            SCOPED_TRACE(simd_path_name(path));
            std::vector<float> y(n * rows, NAN);
            matmul(pool, x.data(), n, w.view, bias.data(), y.data(), /*decode_rows=*/0);
            for (int64_t k = 0; k < n * rows; ++k)
              ASSERT_EQ(y[k], want[k]) << "x row " << k / rows << " out " << k % rows;
          }
        }
      }
}

}  // namespace
}  // namespace longctx::kernels
