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
void qgemm(const QuantAct& x, int64_t n, const WeightView& w, const float* bias, float* y,
           int64_t r0, int64_t r1, void* pack);
size_t qgemm_pack_bytes(TensorType t, int64_t cols);
}  // namespace avx2
namespace avx512 {
LONGCTX_DECLARE_ISA_KERNELS
void qgemm(const QuantAct& x, int64_t n, const WeightView& w, const float* bias, float* y,
           int64_t r0, int64_t r1, void* pack);
size_t qgemm_pack_bytes(TensorType t, int64_t cols);
}  // namespace avx512
#endif

// qns: the namespace of the block-type kernels (quantize_act, qmatvec); qgemm: the block-type
// prefill GEMM or nullptr, with its scratch size.
#define LONGCTX_ISA_TABLE(ns, path, geom, pack_bytes, bf16dot, quant_tile, qprep, qprep_bytes,  \
                          qns, qgemm, qpack)                                                     \
  Isa {                                                                                          \
    path, geom, ns::matvec, ns::gemm, pack_bytes, bf16dot, ns::to_bf16_rows, ns::to_f32,         \
        ns::rmsnorm_row, ns::silu_mul, ns::rope_apply, ns::attn_tile, quant_tile, qprep,         \
        qprep_bytes, ns::sum, qns::quantize_act, qns::qmatvec, qgemm, qpack                      \
  }

const Isa& scalar_isa() {
  static const Isa isa = LONGCTX_ISA_TABLE(scalar, SimdPath::kScalar, (GemmGeometry{1, 1, 1, 1}), 0,
                                           false, nullptr, nullptr, 0, scalar, nullptr, nullptr);
  return isa;
}

#if defined(LONGCTX_X86_PATHS)
const Isa& avx2_isa() {
  // 6 x rows x 16 weight rows (2 ymm); f32 panels of 256 columns (16 KiB), bf16 converted to f32.
  static const Isa isa =
      LONGCTX_ISA_TABLE(avx2, SimdPath::kAvx2, (GemmGeometry{6, 16, 256, 0}), kAvx2GemmPackBytes,
                        false, avx2::attn_tile_quant, nullptr, 0, avx2, avx2::qgemm,
                        avx2::qgemm_pack_bytes);
  return isa;
}

const Isa& avx512_isa() {
  // 6 x rows x 64 weight rows (4 zmm); panels of 256 f32 or 512 bf16 columns (64 KiB).
  // Block-type prefill: the integer GEMM on VNNI (the products of qmatvec, docs/gguf-kernels.md).
  static const Isa isa = LONGCTX_ISA_TABLE(
      avx512, SimdPath::kAvx512, (GemmGeometry{6, 64, 256, 512}), kAvx512GemmPackBytes, true,
      avx512::attn_tile_quant, avx512::attn_query_prep, avx512::kAttnQueryPrepBytes, avx512,
      avx512::qgemm, avx512::qgemm_pack_bytes);
  return isa;
}
#endif

}  // namespace longctx::kernels::cpu
