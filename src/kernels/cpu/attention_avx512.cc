// AVX-512 attention tile: cpu/attention_tile.h over Vec16 (vmath_avx512.h).
#include <immintrin.h>

#include "kernels/cpu/attention_tile.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/vmath_avx512.h"

namespace longctx::kernels::cpu::avx512 {

bool attn_tile_int8(const AttnTile& t, const int8_t* k_codes, const uint16_t* k_scales,
                    const int8_t* v_codes, const uint16_t* v_scales) {
  return attn::int8_tile<Vec16>(t, k_codes, k_scales, v_codes, v_scales);
}

void attn_tile(const AttnTile& t) { attn::any_tile<Vec16>(t); }

}  // namespace longctx::kernels::cpu::avx512
