// AVX2 + FMA (+F16C) matmul: a streaming matvec for decode (weights streamed once per group of up
// to 4 x rows) and the packed GEMM of cpu/gemm_f32.h for prefill; f32 math for every weight dtype.
#include <immintrin.h>

#include "kernels/cpu/gemm_f32.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/vmath_avx2.h"

namespace longctx::kernels::cpu::avx2 {
namespace {

static_assert(gemm::pack_bytes<Vec8>() == kAvx2GemmPackBytes);

template <DType DT, int NX, int NW>
inline void tile(const float* x, int64_t cols, const void* w, int64_t r, const float* bias,
                 float* y, int64_t ldy) {
  __m256 acc[NX][NW];
  for (int i = 0; i < NX; ++i)
    for (int k = 0; k < NW; ++k) acc[i][k] = _mm256_setzero_ps();
  int64_t c = 0;
  for (; c + 8 <= cols; c += 8) {
    __m256 wv[NW];
    for (int k = 0; k < NW; ++k) wv[k] = load8<DT>(w, (r + k) * cols + c);
    for (int i = 0; i < NX; ++i) {
      const __m256 xv = _mm256_loadu_ps(x + i * cols + c);
      for (int k = 0; k < NW; ++k) acc[i][k] = _mm256_fmadd_ps(xv, wv[k], acc[i][k]);
    }
  }
  if (c < cols) {
    __m256 wv[NW];
    for (int k = 0; k < NW; ++k) wv[k] = load8<DT>(w, (r + k) * cols + c, cols - c);
    for (int i = 0; i < NX; ++i) {
      const __m256 xv = load8<DType::kF32>(x, i * cols + c, cols - c);
      for (int k = 0; k < NW; ++k) acc[i][k] = _mm256_fmadd_ps(xv, wv[k], acc[i][k]);
    }
  }
  for (int i = 0; i < NX; ++i)
    for (int k = 0; k < NW; ++k) y[i * ldy + r + k] = hsum(acc[i][k]) + (bias ? bias[r + k] : 0.f);
}

template <DType DT, int NX>
void rows(const float* x, const WeightView& w, const float* bias, float* y, int64_t r0,
          int64_t r1) {
  int64_t r = r0;
  for (; r + 3 <= r1; r += 3) tile<DT, NX, 3>(x, w.cols, w.data, r, bias, y, w.rows);
  for (; r < r1; ++r) tile<DT, NX, 1>(x, w.cols, w.data, r, bias, y, w.rows);
}

// One x row (decode): each thread's rows read front to back as one stream, a row at a time with
// four accumulators (interleaved rows make several streams per core, which read slower; see
// docs/kernels.md).
template <DType DT>
void matvec1_seq(const float* x, const WeightView& w, const float* bias, float* y, int64_t r0,
                 int64_t r1) {
  const int64_t cols = w.cols;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t base = r * cols;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                     _mm256_setzero_ps()};
    int64_t c = 0;
    for (; c + 32 <= cols; c += 32)
      for (int u = 0; u < 4; ++u)
        acc[u] = _mm256_fmadd_ps(_mm256_loadu_ps(x + c + 8 * u),
                                 load8<DT>(w.data, base + c + 8 * u), acc[u]);
    for (; c + 8 <= cols; c += 8)
      acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(x + c), load8<DT>(w.data, base + c), acc[0]);
    if (c < cols)
      acc[1] = _mm256_fmadd_ps(load8<DType::kF32>(x, c, cols - c),
                               load8<DT>(w.data, base + c, cols - c), acc[1]);
    const __m256 a = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    y[r] = hsum(a) + (bias ? bias[r] : 0.f);
  }
}

template <DType DT>
void matvec_dt(const float* x, int64_t n, const WeightView& w, const float* bias, float* y,
               int64_t r0, int64_t r1) {
  if (n == 1) return matvec1_seq<DT>(x, w, bias, y, r0, r1);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) rows<DT, 4>(x + i * w.cols, w, bias, y + i * w.rows, r0, r1);
  const float* xi = x + i * w.cols;
  float* yi = y + i * w.rows;
  switch (n - i) {
    case 3:
      rows<DT, 3>(xi, w, bias, yi, r0, r1);
      break;
    case 2:
      rows<DT, 2>(xi, w, bias, yi, r0, r1);
      break;
    case 1:
      rows<DT, 1>(xi, w, bias, yi, r0, r1);
      break;
    default:
      break;
  }
}

}  // namespace

// xb: unused, this path has no bf16 dot products.
void matvec(const float* x, const uint16_t* /*xb*/, int64_t n, const WeightView& w, const float* bias,
            float* y, int64_t r0, int64_t r1) {
  switch (w.dtype) {
    case DType::kF32:
      matvec_dt<DType::kF32>(x, n, w, bias, y, r0, r1);
      break;
    case DType::kF16:
      matvec_dt<DType::kF16>(x, n, w, bias, y, r0, r1);
      break;
    case DType::kBF16:
      matvec_dt<DType::kBF16>(x, n, w, bias, y, r0, r1);
      break;
  }
}

// xb: unused (bf16 weights are converted to f32 as they are packed).
void gemm(const float* x, const uint16_t* /*xb*/, int64_t n, const WeightView& w, const float* bias,
          float* y, int64_t r0, int64_t r1, void* pack) {
  float* panel = static_cast<float*>(pack);
  switch (w.dtype) {
    case DType::kF32:
      gemm::gemm_f32<Vec8, DType::kF32>(x, n, w, bias, y, r0, r1, panel);
      break;
    case DType::kF16:
      gemm::gemm_f32<Vec8, DType::kF16>(x, n, w, bias, y, r0, r1, panel);
      break;
    case DType::kBF16:
      gemm::gemm_f32<Vec8, DType::kBF16>(x, n, w, bias, y, r0, r1, panel);
      break;
  }
}

void to_bf16_rows(const float* src, int64_t n, int64_t cols, uint16_t* dst, int64_t ld) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < ld; ++c)
      dst[i * ld + c] = c < cols ? f32_to_bf16(src[i * cols + c]) : 0;
}

void to_f32(DType t, const void* src, float* dst, int64_t n) {
  for (int64_t c = 0; c < n; c += 8) {
    __m256 v;
    switch (t) {
      case DType::kF32:
        v = load8<DType::kF32>(src, c, n - c);
        break;
      case DType::kF16:
        v = load8<DType::kF16>(src, c, n - c);
        break;
      default:
        v = load8<DType::kBF16>(src, c, n - c);
        break;
    }
    store8(dst + c, v, n - c);
  }
}

}  // namespace longctx::kernels::cpu::avx2
