// AVX-512 rmsnorm, SiLU-gating, RoPE rotation and sum: cpu/elementwise.h over Vec16
// (vmath_avx512.h).
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/vmath_avx512.h"

namespace longctx::kernels::cpu::avx512 {

void rmsnorm_row(const float* x, const float* weight, int64_t dim, float eps, float* y) {
  ew::rmsnorm_row<Vec16>(x, weight, dim, eps, y);
}

void silu_mul(const float* gate, const float* up, int64_t n, float* out) {
  ew::silu_mul<Vec16>(gate, up, n, out);
}

void rope_apply(float* x, int64_t n_vec, int head_dim, int half, const float* cs, const float* sn) {
  ew::rope_apply<Vec16>(x, n_vec, head_dim, half, cs, sn);
}

float sum(const float* x, int64_t n) { return ew::sum<Vec16>(x, n); }

}  // namespace longctx::kernels::cpu::avx512
