// AVX-512 attention tile: cpu/attention_tile.h over Vec16 (vmath_avx512.h). The tile over
// quantized KV blocks (attn_tile_quant) is in kv_attention_avx512.cc.
#include <immintrin.h>

#include "kernels/cpu/attention_tile.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/vmath_avx512.h"

namespace longctx::kernels::cpu::avx512 {

void attn_tile(const AttnTile& t) { attn::any_tile<Vec16>(t); }

}  // namespace longctx::kernels::cpu::avx512
