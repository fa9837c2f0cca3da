// GGUF's type tables (io/gguf.h): ggml tensor types and their block layouts, value type names.
#include <optional>

#include "io/gguf.h"

namespace longctx::io {

std::optional<GgmlTypeInfo> ggml_type_info(uint32_t t) {
  // ggml's type numbers and block layouts (ggml.h's enum ggml_type and ggml-common.h's block
  // structs). The gaps (4, 5, 31-33, 36-38) are types ggml removed: no valid file holds them.
  constexpr int64_t kK = 256;  // QK_K: elements of a K-quant / i-quant super-block
  switch (t) {
    case 0:
      return GgmlTypeInfo{"F32", 1, 4};
    case 1:
      return GgmlTypeInfo{"F16", 1, 2};
    case 2:
      return GgmlTypeInfo{"Q4_0", 32, 2 + 16};
    case 3:
      return GgmlTypeInfo{"Q4_1", 32, 2 + 2 + 16};
    case 6:
      return GgmlTypeInfo{"Q5_0", 32, 2 + 4 + 16};
    case 7:
      return GgmlTypeInfo{"Q5_1", 32, 2 + 2 + 4 + 16};
    case 8:
      return GgmlTypeInfo{"Q8_0", 32, 2 + 32};
    case 9:
      return GgmlTypeInfo{"Q8_1", 32, 4 + 4 + 32};
    case 10:
      return GgmlTypeInfo{"Q2_K", kK, 2 + 2 + kK / 16 + kK / 4};
    case 11:
      return GgmlTypeInfo{"Q3_K", kK, 2 + kK / 4 + kK / 8 + 12};
    case 12:
      return GgmlTypeInfo{"Q4_K", kK, 2 + 2 + 12 + kK / 2};
    case 13:
      return GgmlTypeInfo{"Q5_K", kK, 2 + 2 + 12 + kK / 8 + kK / 2};
    case 14:
      return GgmlTypeInfo{"Q6_K", kK, kK / 2 + kK / 4 + kK / 16 + 2};
    case 15:
      return GgmlTypeInfo{"Q8_K", kK, 4 + kK + kK / 16 * 2};
    case 16:
      return GgmlTypeInfo{"IQ2_XXS", kK, 2 + kK / 8 * 2};
    case 17:
      return GgmlTypeInfo{"IQ2_XS", kK, 2 + kK / 8 * 2 + kK / 32};
    case 18:
      return GgmlTypeInfo{"IQ3_XXS", kK, 2 + 3 * kK / 8};
    case 19:
      return GgmlTypeInfo{"IQ1_S", kK, 2 + kK / 8 + kK / 32 * 2};
    case 20:
      return GgmlTypeInfo{"IQ4_NL", 32, 2 + 16};
    case 21:
      return GgmlTypeInfo{"IQ3_S", kK, 2 + kK / 4 + kK / 32 + kK / 8 + kK / 64};
    case 22:
      return GgmlTypeInfo{"IQ2_S", kK, 2 + kK / 4 + kK / 32 + kK / 32};
    case 23:
      return GgmlTypeInfo{"IQ4_XS", kK, 2 + 2 + kK / 64 + kK / 2};
    case 24:
      return GgmlTypeInfo{"I8", 1, 1};
    case 25:
      return GgmlTypeInfo{"I16", 1, 2};
    case 26:
      return GgmlTypeInfo{"I32", 1, 4};
    case 27:
      return GgmlTypeInfo{"I64", 1, 8};
    case 28:
      return GgmlTypeInfo{"F64", 1, 8};
    case 29:
      return GgmlTypeInfo{"IQ1_M", kK, kK / 8 + kK / 16 + kK / 32};
    case 30:
      return GgmlTypeInfo{"BF16", 1, 2};
    case 34:
      return GgmlTypeInfo{"TQ1_0", kK, (kK - 4 * kK / 64) / 5 + kK / 64 + 2};
    case 35:
      return GgmlTypeInfo{"TQ2_0", kK, kK / 4 + 2};
    case 39:
      return GgmlTypeInfo{"MXFP4", 32, 1 + 16};
    default:
      return std::nullopt;
  }
}

uint32_t ggml_type_number(TensorType t) {
  switch (t) {
    case TensorType::kF32:
      return 0;
    case TensorType::kF16:
      return 1;
    case TensorType::kBF16:
      return 30;
    case TensorType::kQ8_0:
      return 8;
    case TensorType::kQ4_0:
      return 2;
    case TensorType::kQ4_K:
      return 12;
    case TensorType::kQ5_K:
      return 13;
    case TensorType::kQ6_K:
      return 14;
    case TensorType::kQ5_0:
      return 6;
    case TensorType::kQ5_1:
      return 7;
  }
  return 0;
}

uint64_t gguf_scalar_bytes(GgufType t) {
  switch (t) {
    case GgufType::kU8:
    case GgufType::kI8:
    case GgufType::kBool:
      return 1;
    case GgufType::kU16:
    case GgufType::kI16:
      return 2;
    case GgufType::kU32:
    case GgufType::kI32:
    case GgufType::kF32:
      return 4;
    case GgufType::kU64:
    case GgufType::kI64:
    case GgufType::kF64:
      return 8;
    case GgufType::kString:
    case GgufType::kArray:
      break;
  }
  return 0;
}

const char* gguf_type_name(GgufType t) {
  switch (t) {
    case GgufType::kU8:
      return "u8";
    case GgufType::kI8:
      return "i8";
    case GgufType::kU16:
      return "u16";
    case GgufType::kI16:
      return "i16";
    case GgufType::kU32:
      return "u32";
    case GgufType::kI32:
      return "i32";
    case GgufType::kF32:
      return "f32";
    case GgufType::kBool:
      return "bool";
    case GgufType::kString:
      return "string";
    case GgufType::kArray:
      return "array";
    case GgufType::kU64:
      return "u64";
    case GgufType::kI64:
      return "i64";
    case GgufType::kF64:
      return "f64";
  }
  return "unknown";
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufType::kU8:
    case GgufType::kI8:
    case GgufType::kU16:
    case GgufType::kI16:
    case GgufType::kU32:
    case GgufType::kI32:
    case GgufType::kU64:
    case GgufType::kI64:
      return true;
    default:
      return false;
  }
}

bool GgufValue::is_float() const { return type == GgufType::kF32 || type == GgufType::kF64; }

std::optional<TensorType> ggml_compute_type(uint32_t ggml_type) {
  switch (ggml_type) {
    case 0:
      return TensorType::kF32;
    case 1:
      return TensorType::kF16;
    case 2:
      return TensorType::kQ4_0;
    case 6:
      return TensorType::kQ5_0;
    case 7:
      return TensorType::kQ5_1;
    case 8:
      return TensorType::kQ8_0;
    case 12:
      return TensorType::kQ4_K;
    case 13:
      return TensorType::kQ5_K;
    case 14:
      return TensorType::kQ6_K;
    case 30:
      return TensorType::kBF16;
    default:
      return std::nullopt;
  }
}

}  // namespace longctx::io
