// AVX-512 attention tile: cpu/attention_tile.h over Vec16 (vmath_avx512.h).
#include <immintrin.h>

#include "kernels/cpu/attention_tile.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/vmath_avx512.h"

namespace longctx::kernels::cpu::avx512 {

bool attn_tile_quant(const AttnTile& t, const QuantTile& c) {
  return attn::quant_tile<Vec16>(t, c);
}

void attn_tile(const AttnTile& t) { attn::any_tile<Vec16>(t); }

}  // namespace longctx::kernels::cpu::avx512
