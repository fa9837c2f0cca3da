// AVX-512 block-type kernels: the activation quantizer (cpu/quant_act.h) and the decode matvec on
// 512-bit vectors (cpu/quant_row512.h) over the VNNI dot products vpdpbusd (u8 x s8) and vpdpwssd
// (s16 x s16). Prefill: quant_gemm_avx512.cc.
#include <immintrin.h>

#include "kernels/cpu/isa.h"
#include "kernels/cpu/quant_act.h"
#include "kernels/cpu/quant_row512.h"

namespace longctx::kernels::cpu::avx512 {

void quantize_act(const float* x, int64_t n, int64_t cols, int group, int8_t* q, float* d,
                  int16_t* bsum) {
  quantize_act_rows(x, n, cols, group, q, d, bsum);
}

// Every x row summed as the one-row decode sums it (row512::rows1), so a row's result does not
// depend on the other rows (batch invariance); 16 weight rows at a time against all x rows, so
// those rows come from L1 after the first.
void qmatvec(const QuantAct& x, int64_t n, const WeightView& w, const float* bias, float* y,
             int64_t r0, int64_t r1) {
  if (n == 1) return row512::rows1(x, w, bias, y, r0, r1);
  for (int64_t b = r0; b < r1; b += 16) {
    const int64_t e = r1 - b < 16 ? r1 : b + 16;
    for (int64_t i = 0; i < n; ++i) row512::rows1(act_row(x, i), w, bias, y + i * w.rows, b, e);
  }
}

}  // namespace longctx::kernels::cpu::avx512
