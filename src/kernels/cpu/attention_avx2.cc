// AVX2 attention tile: cpu/attention_tile.h over Vec8 (vmath_avx2.h).
#include <immintrin.h>

#include "kernels/cpu/attention_tile.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/vmath_avx2.h"

namespace longctx::kernels::cpu::avx2 {

bool attn_tile_quant(const AttnTile& t, const QuantTile& c) { return attn::quant_tile<Vec8>(t, c); }

void attn_tile(const AttnTile& t) { attn::any_tile<Vec8>(t); }

}  // namespace longctx::kernels::cpu::avx2
