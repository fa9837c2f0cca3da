// AVX2 decoders of int8/int4 KV rows: cpu/kv_decode.h over Vec8 (vmath_avx2.h).
#include "kernels/cpu/kv_decode.h"
#include "kernels/cpu/kv_quant.h"
#include "kernels/cpu/vmath_avx2.h"

namespace longctx::kernels::cpu::avx2 {

void kv_decode_rows(KvType t, bool keys, const uint8_t* codes, const uint8_t* meta, int off, int n,
                    int hd, float* dst) {
  kvq::decode_rows<Vec8>(t, keys, codes, meta, off, n, hd, dst);
}

}  // namespace longctx::kernels::cpu::avx2
