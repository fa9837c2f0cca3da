// AVX-512 block-type kernels: the activation quantizer (cpu/quant_act.h), the one-x-row decode
// on 512-bit vectors (cpu/quant_row512.h) and, for 2-7 x rows, the matvec of cpu/quant_dot.h over
// the VNNI dot products vpdpbusd (u8 x s8) and vpdpwssd (s16 x s16). Prefill: quant_gemm_avx512.cc.
#include <immintrin.h>

#include "kernels/cpu/isa.h"
#include "kernels/cpu/quant_act.h"
#include "kernels/cpu/quant_dot.h"
#include "kernels/cpu/quant_row512.h"

namespace longctx::kernels::cpu::avx512 {
namespace {

struct Vnni {
  static __m256i dot(__m256i acc, __m256i w, __m256i x) { return _mm256_dpbusd_epi32(acc, w, x); }
  static __m256i dot_sc(__m256i acc, __m256i w, __m256i x, __m256i sc) {
    return _mm256_dpwssd_epi32(acc, _mm256_maddubs_epi16(w, x), sc);
  }
};

}  // namespace

void quantize_act(const float* x, int64_t n, int64_t cols, int group, int8_t* q, float* d,
                  int16_t* bsum) {
  quantize_act_rows(x, n, cols, group, q, d, bsum);
}

void qmatvec(const QuantAct& x, int64_t n, const WeightView& w, const float* bias, float* y,
             int64_t r0, int64_t r1) {
  if (n == 1) return row512::rows1(x, w, bias, y, r0, r1);
  qdot::qmatvec<Vnni>(x, n, w, bias, y, r0, r1);
}

}  // namespace longctx::kernels::cpu::avx512
