// Scalar reference encoders of the GGUF block types (kernels/quant_blocks.h), following the
// algorithms of ggml's reference quantizers so that files we write decode as llama.cpp's do and
// lose as little: Q8_0 / Q4_0 round to nearest from the block's largest magnitude; the K-quants
// search each sub-block's scale (and minimum) for the least weighted squared error, then quantize
// the sub-block scales to 6 or 8 bits and re-round every element with the quantized scales.
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "kernels/quant_blocks.h"
#include "kernels/reference/reference.h"

namespace longctx::kernels::reference {

using namespace quant;

namespace {

constexpr float kTiny = 1e-15f;  // a group whose largest |x| is below this is all zeros

int clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

void quant_q8_0(const float* x, BlockQ8_0* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float amax = 0.f;
    for (int l = 0; l < kQK; ++l) amax = std::max(amax, std::fabs(x[l]));
    const float d = amax / 127.f, id = d != 0.f ? 1.f / d : 0.f;
    b[i].d = f32_to_f16(d);
    for (int l = 0; l < kQK; ++l) b[i].qs[l] = static_cast<int8_t>(std::round(x[l] * id));
  }
}

// Q4_0 (half = 8) and Q5_0 (half = 16): the signed value of largest magnitude maps to -half, so
// the grid reaches it exactly; codes q = x / d + half in [0, 2 half - 1]. Returns d.
float symmetric_codes(const float* x, int half, int* q) {
  float amax = 0.f, max = 0.f;
  for (int l = 0; l < kQK; ++l)
    if (std::fabs(x[l]) > amax) amax = std::fabs(x[l]), max = x[l];
  const float d = max / static_cast<float>(-half), id = d != 0.f ? 1.f / d : 0.f;
  // Truncation of v + half + 0.5 (v >= -half) is rounding half up of v + half.
  for (int l = 0; l < kQK; ++l)
    q[l] = std::min(2 * half - 1, static_cast<int>(x[l] * id + (static_cast<float>(half) + 0.5f)));
  return d;
}

void quant_q4_0(const float* x, BlockQ4_0* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    int q[kQK];
    b[i].d = f32_to_f16(symmetric_codes(x, 8, q));
    for (int l = 0; l < 16; ++l) b[i].qs[l] = static_cast<uint8_t>(q[l] | (q[l + 16] << 4));
  }
}

// Stores 5-bit codes q[0..32) as Q5_0 / Q5_1 nibbles and fifth bits.
void put_q5(const int* q, uint8_t* qs, uint8_t* qh) {
  uint32_t h = 0;
  for (int l = 0; l < 16; ++l) {
    qs[l] = static_cast<uint8_t>((q[l] & 0xF) | ((q[l + 16] & 0xF) << 4));
    h |= uint32_t(q[l] >> 4) << l | uint32_t(q[l + 16] >> 4) << (l + 16);
  }
  for (int k = 0; k < 4; ++k) qh[k] = static_cast<uint8_t>(h >> (8 * k));
}

void quant_q5_0(const float* x, BlockQ5_0* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    int q[kQK];
    b[i].d = f32_to_f16(symmetric_codes(x, 16, q));
    put_q5(q, b[i].qs, b[i].qh);
  }
}

void quant_q5_1(const float* x, BlockQ5_1* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    // 32 levels from the block's minimum to its maximum; codes round half up from the minimum.
    float min = x[0], max = x[0];
    for (int l = 1; l < kQK; ++l) min = std::min(min, x[l]), max = std::max(max, x[l]);
    const float d = (max - min) / 31.f, id = d != 0.f ? 1.f / d : 0.f;
    b[i].d = f32_to_f16(d);
    b[i].m = f32_to_f16(min);
    int q[kQK];
    for (int l = 0; l < kQK; ++l)
      q[l] = clampi(static_cast<int>((x[l] - min) * id + 0.5f), 0, 31);
    put_q5(q, b[i].qs, b[i].qh);
  }
}

// Scale s and minimum m (x ~ s * L - m, L in [0, nmax], m >= 0) of n values minimising
// sum w_i (s L_i - m - x_i)^2: start from the min/max grid, then try nstep grids of
// (nmax + rmin + rdelta * k) steps over [min, max], each followed by the closed-form least
// squares scale and minimum for its levels; keep the best. L gets the levels.
float fit_scale_min(int n, int nmax, const float* x, const float* w, uint8_t* L, float* the_min,
                    float rmin, float rdelta, int nstep) {
  float min = x[0], max = x[0], sum_w = 0.f, sum_x = 0.f;
  for (int i = 0; i < n; ++i) {
    min = std::min(min, x[i]);
    max = std::max(max, x[i]);
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    std::memset(L, 0, n);
    *the_min = -min;
    return 0.f;
  }
  float iscale = nmax / (max - min), scale = 1 / iscale, best = 0.f;
  for (int i = 0; i < n; ++i) {
    L[i] = static_cast<uint8_t>(clampi(nearest_int(iscale * (x[i] - min)), 0, nmax));
    const float diff = scale * L[i] + min - x[i];
    best += w[i] * diff * diff;
  }
  uint8_t aux[32];
  for (int k = 0; k <= nstep; ++k) {
    iscale = (rmin + rdelta * k + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = clampi(nearest_int(iscale * (x[i] - min)), 0, nmax);
      aux[i] = static_cast<uint8_t>(l);
      sum_l += w[i] * l;
      sum_l2 += w[i] * l * l;
      sum_xl += w[i] * l * x[i];
    }
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (det <= 0) continue;
    float s = (sum_w * sum_xl - sum_x * sum_l) / det;
    float m = (sum_l2 * sum_x - sum_l * sum_xl) / det;
    if (m > 0) {  // the minimum must stay <= 0: refit the scale alone
      m = 0;
      s = sum_xl / sum_l2;
    }
    float err = 0;
    for (int i = 0; i < n; ++i) {
      const float diff = s * aux[i] + m - x[i];
      err += w[i] * diff * diff;
    }
    if (err < best) {
      std::memcpy(L, aux, n);
      best = err;
      scale = s;
      min = m;
    }
  }
  *the_min = -min;
  return scale;
}

// Q4_K (nmax 15) and Q5_K (nmax 31): fills d, dmin, scales and the levels L[256].
void quant_k45(const float* x, int nmax, uint16_t& d_out, uint16_t& dmin_out, uint8_t* scales,
               uint8_t* L) {
  float sc[8], mn[8], w[32], max_scale = 0, max_min = 0;
  for (int s = 0; s < 8; ++s) {
    const float* xs = x + 32 * s;
    // Weights |x| + rms: large values matter more, none is ignored (ggml's choice).
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
    const float av = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) w[l] = av + std::fabs(xs[l]);
    sc[s] = nmax == 15 ? fit_scale_min(32, 15, xs, w, L + 32 * s, &mn[s], -1.f, 0.1f, 20)
                       : fit_scale_min(32, 31, xs, w, L + 32 * s, &mn[s], -0.5f, 0.1f, 15);
    max_scale = std::max(max_scale, sc[s]);
    max_min = std::max(max_min, mn[s]);
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  std::memset(scales, 0, 12);
  for (int s = 0; s < 8; ++s) {
    const int ls = std::min(63, nearest_int(inv_scale * sc[s]));
    const int lm = std::min(63, nearest_int(inv_min * mn[s]));
    if (s < 4) {
      scales[s] = static_cast<uint8_t>(ls);
      scales[s + 4] = static_cast<uint8_t>(lm);
    } else {
      scales[s + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
      scales[s - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
      scales[s] |= static_cast<uint8_t>((lm >> 4) << 6);
    }
  }
  d_out = f32_to_f16(max_scale / 63.f);
  dmin_out = f32_to_f16(max_min / 63.f);
  // Re-round every element with the scales as stored (6-bit, f16 super-scales).
  const float d = f16_to_f32(d_out), dmin = f16_to_f32(dmin_out);
  for (int s = 0; s < 8; ++s) {
    int ls = 0, lm = 0;
    scale_min_k4(s, scales, ls, lm);
    const float ds = d * ls, dm = dmin * lm;
    if (ds == 0.f) continue;
    for (int l = 0; l < 32; ++l)
      L[32 * s + l] = static_cast<uint8_t>(clampi(nearest_int((x[32 * s + l] + dm) / ds), 0, nmax));
  }
}

void quant_q4_k(const float* x, BlockQ4_K& b) {
  uint8_t L[kQKK];
  quant_k45(x, 15, b.d, b.dmin, b.scales, L);
  for (int j = 0; j < 4; ++j)
    for (int l = 0; l < 32; ++l)
      b.qs[32 * j + l] = static_cast<uint8_t>(L[64 * j + l] | (L[64 * j + 32 + l] << 4));
}

void quant_q5_k(const float* x, BlockQ5_K& b) {
  uint8_t L[kQKK];
  quant_k45(x, 31, b.d, b.dmin, b.scales, L);
  std::memset(b.qh, 0, sizeof b.qh);
  for (int s = 0; s < 8; ++s)
    for (int l = 0; l < 32; ++l) b.qh[l] |= static_cast<uint8_t>((L[32 * s + l] >> 4) << s);
  for (int j = 0; j < 4; ++j)
    for (int l = 0; l < 32; ++l)
      b.qs[32 * j + l] =
          static_cast<uint8_t>((L[64 * j + l] & 0xF) | ((L[64 * j + 32 + l] & 0xF) << 4));
}

// Symmetric scale of n values on levels [-nmax, nmax - 1] minimising sum x^2 (s L - x)^2: the
// grid from the largest magnitude, then 18 neighbouring grids (nmax +- 0.1 k steps), each with its
// least-squares scale. L gets the levels + nmax.
float fit_scale_sym(int n, int nmax, const float* x, uint8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > amax) amax = std::fabs(x[i]), max = x[i];
  if (amax < kTiny) {
    std::memset(L, 0, n);
    return 0.f;
  }
  float iscale = -nmax / max, sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = static_cast<uint8_t>(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 > 0 ? sumlx / suml2 : 0.f, best = scale * sumlx;
  for (int k = -9; k <= 9; ++k) {
    if (k == 0) continue;
    iscale = -(nmax + 0.1f * k) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
      const float w = x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    // sumlx^2 / suml2 is the error reduction of the least-squares scale: keep the largest.
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i)
        L[i] = static_cast<uint8_t>(nmax + clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1));
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

void quant_q6_k(const float* x, BlockQ6_K& b) {
  uint8_t L[kQKK];
  float sc[16], max_scale = 0, max_abs = 0;
  for (int j = 0; j < 16; ++j) {
    sc[j] = fit_scale_sym(16, 32, x + 16 * j, L + 16 * j);
    if (std::fabs(sc[j]) > max_abs) max_abs = std::fabs(sc[j]), max_scale = sc[j];
  }
  std::memset(&b, 0, sizeof b);
  if (max_abs < kTiny) return;  // all zeros: d = 0 decodes every element to 0
  const float iscale = -128.f / max_scale;
  b.d = f32_to_f16(1 / iscale);
  for (int j = 0; j < 16; ++j)
    b.scales[j] = static_cast<int8_t>(std::min(127, nearest_int(iscale * sc[j])));
  const float d = f16_to_f32(b.d);
  for (int j = 0; j < 16; ++j) {
    const float ds = d * b.scales[j];
    if (ds == 0.f) {
      for (int l = 0; l < 16; ++l) L[16 * j + l] = 32;
      continue;
    }
    for (int l = 0; l < 16; ++l)
      L[16 * j + l] = static_cast<uint8_t>(clampi(nearest_int(x[16 * j + l] / ds), -32, 31) + 32);
  }
  for (int h = 0; h < 2; ++h)
    for (int l = 0; l < 32; ++l) {
      const uint8_t* q = L + 128 * h + l;  // elements l, l + 32, l + 64, l + 96 of the half
      b.ql[64 * h + l] = static_cast<uint8_t>((q[0] & 0xF) | ((q[64] & 0xF) << 4));
      b.ql[64 * h + l + 32] = static_cast<uint8_t>((q[32] & 0xF) | ((q[96] & 0xF) << 4));
      b.qh[32 * h + l] = static_cast<uint8_t>((q[0] >> 4) | ((q[32] >> 4) << 2) |
                                              ((q[64] >> 4) << 4) | ((q[96] >> 4) << 6));
    }
}

}  // namespace

void quantize_row(TensorType t, const float* src, void* dst, int64_t n) {
  const int64_t nb = n / block_layout(t).elems;
  switch (t) {
    case TensorType::kF32:
    case TensorType::kF16:
    case TensorType::kBF16:
      from_f32(*float_dtype(t), src, dst, static_cast<size_t>(n));
      return;
    case TensorType::kQ8_0:
      return quant_q8_0(src, static_cast<BlockQ8_0*>(dst), nb);
    case TensorType::kQ4_0:
      return quant_q4_0(src, static_cast<BlockQ4_0*>(dst), nb);
    case TensorType::kQ4_K:
      for (int64_t i = 0; i < nb; ++i) quant_q4_k(src + i * kQKK, static_cast<BlockQ4_K*>(dst)[i]);
      return;
    case TensorType::kQ5_K:
      for (int64_t i = 0; i < nb; ++i) quant_q5_k(src + i * kQKK, static_cast<BlockQ5_K*>(dst)[i]);
      return;
    case TensorType::kQ6_K:
      for (int64_t i = 0; i < nb; ++i) quant_q6_k(src + i * kQKK, static_cast<BlockQ6_K*>(dst)[i]);
      return;
    case TensorType::kQ5_0:
      return quant_q5_0(src, static_cast<BlockQ5_0*>(dst), nb);
    case TensorType::kQ5_1:
      return quant_q5_1(src, static_cast<BlockQ5_1*>(dst), nb);
  }
}

}  // namespace longctx::kernels::reference
