// The table of entry points of each SIMD path (see isa.h). Compiled without ISA flags: it only
// takes addresses.
#include "kernels/cpu/isa.h"
#include "kernels/cpu/kv_quant.h"

namespace longctx::kernels::cpu {

namespace scalar {
LONGCTX_DECLARE_ISA_KERNELS
}
#if defined(LONGCTX_X86_PATHS)
namespace avx2 {
LONGCTX_DECLARE_ISA_KERNELS
}
namespace avx512 {
LONGCTX_DECLARE_ISA_KERNELS
}
#endif

// qns: the namespace of the block-type kernels (quantize_act, qmatvec).
#define LONGCTX_ISA_TABLE(ns, path, geom, pack_bytes, qgemm, bf16dot, quant_tile, qns)           \
  Isa {                                                                                          \
    path, geom, ns::matvec, ns::gemm, pack_bytes, qgemm, qgemm ? kAvx512QuantGemmExtraBytes : 0, \
        bf16dot, ns::to_bf16_rows, ns::to_f32, ns::rmsnorm_row, ns::silu_mul, ns::rope_apply,    \
        ns::attn_tile, quant_tile, ns::sum, qns::quantize_act, qns::qmatvec                      \
  }

const Isa& scalar_isa() {
  static const Isa isa = LONGCTX_ISA_TABLE(scalar, SimdPath::kScalar, (GemmGeometry{1, 1, 1, 1}), 0,
                                           false, false, nullptr, scalar);
  return isa;
}

#if defined(LONGCTX_X86_PATHS)
const Isa& avx2_isa() {
  // 6 x rows x 16 weight rows (2 ymm); f32 panels of 256 columns (16 KiB), bf16 converted to f32.
  static const Isa isa =
      LONGCTX_ISA_TABLE(avx2, SimdPath::kAvx2, (GemmGeometry{6, 16, 256, 0}), kAvx2GemmPackBytes,
                        false, false, avx2::attn_tile_quant, avx2);
  return isa;
}

const Isa& avx512_isa() {
  // 6 x rows x 64 weight rows (4 zmm); panels of 256 f32 or 512 bf16 columns (64 KiB).
  // Block-type prefill stays on the integer kernels (quant_gemm off): decoding panels to bf16 is
  // faster but rounds every weight to 8 bits of mantissa, which moved the Q8_0 perplexity of a
  // llama.cpp test model by 0.35% against llama.cpp's (docs/gguf-kernels.md).
  static const Isa isa =
      LONGCTX_ISA_TABLE(avx512, SimdPath::kAvx512, (GemmGeometry{6, 64, 256, 512}),
                        kAvx512GemmPackBytes, false, true, avx512::attn_tile_quant, avx512);
  return isa;
}
#endif

}  // namespace longctx::kernels::cpu
