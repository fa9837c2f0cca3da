// AVX2 attention tile: cpu/attention_tile.h over Vec8 (vmath_avx2.h).
#include <immintrin.h>

#include "kernels/cpu/attention_tile.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/vmath_avx2.h"

namespace longctx::kernels::cpu::avx2 {

bool attn_tile_int8(const AttnTile& t, const int8_t* k_codes, const uint16_t* k_scales,
                    const int8_t* v_codes, const uint16_t* v_scales) {
  return attn::int8_tile<Vec8>(t, k_codes, k_scales, v_codes, v_scales);
}

void attn_tile(const AttnTile& t) { attn::any_tile<Vec8>(t); }

}  // namespace longctx::kernels::cpu::avx2
