// AVX2 block-type kernels: the activation quantizer (cpu/quant_act.h) and the matvec of
// cpu/quant_dot.h over pmaddubsw / pmaddwd.
#include <immintrin.h>

#include "kernels/cpu/isa.h"
#include "kernels/cpu/quant_act.h"
#include "kernels/cpu/quant_dot.h"

namespace longctx::kernels::cpu::avx2 {
namespace {

struct Madd {
  static __m256i dot(__m256i acc, __m256i w, __m256i x) {
    return _mm256_add_epi32(acc,
                            _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1)));
  }
  static __m256i dot_sc(__m256i acc, __m256i w, __m256i x, __m256i sc) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), sc));
  }
};

}  // namespace

void quantize_act(const float* x, int64_t n, int64_t cols, int group, int8_t* q, float* d,
                  int16_t* bsum) {
  quantize_act_rows(x, n, cols, group, q, d, bsum);
}

void qmatvec(const QuantAct& x, int64_t n, const WeightView& w, const float* bias, float* y,
             int64_t r0, int64_t r1) {
  qdot::qmatvec<Madd>(x, n, w, bias, y, r0, r1);
}

// Prefill: the same dot products over the x rows 4 at a time (llama.cpp's summation order); no
// packed panels, so no scratch.
void qgemm(const QuantAct& x, int64_t n, const WeightView& w, const float* bias, float* y,
           int64_t r0, int64_t r1, void* /*pack*/) {
  qdot::qprefill<Madd>(x, n, w, bias, y, r0, r1);
}
size_t qgemm_pack_bytes(TensorType, int64_t) { return 0; }

}  // namespace longctx::kernels::cpu::avx2
