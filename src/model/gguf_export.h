// `longctx quantize`: a Hugging Face model folder (config.json, safetensors, tokenizer) written as
// one GGUF file in llama.cpp's layout, which llama.cpp and longctx both run:
//   - metadata as convert_hf_to_gguf.py writes it, the inverse of config/gguf_config.h (Llama 3.1
//     scaling as rope_freqs.weight, Phi-3 LongRoPE as rope_factors_long/short.weight, ...);
//   - tensors named from config/arch.h, llama's q/k rows permuted for adjacent-pair RoPE, each
//     matrix in the type quant_type_for gives (llama-quantize's default mixes), norms and biases
//     in F32;
//   - the tokenizer as tokenizer.ggml.* (tokenizer/gguf_vocab_export.h).
// Tensors are converted and written one at a time: memory holds one tensor's f32 copy and its
// encoded bytes, whatever the model's size.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "core/tensor_type.h"

namespace longctx {

enum class ExportType { kF32, kF16, kQ8_0, kQ4_0, kQ4_K_M, kQ5_0, kQ5_1 };

// "f32", "f16", "q8_0", "q4_0", "q4_k_m", "q5_0", "q5_1" (case-insensitive); nullopt otherwise.
std::optional<ExportType> parse_export_type(std::string_view s);
const char* export_type_name(ExportType t);  // "f32", ..., "q4_k_m"
std::string export_type_names();  // "q8_0, q4_0, q4_k_m, q5_0, q5_1, f16, f32"
// llama.cpp's llama_ftype (general.file_type): 0, 1, 7, 2, 15.
uint32_t export_file_type(ExportType t);

struct GgufExportOptions {
  ExportType type = ExportType::kQ8_0;
  // Called after each tensor is written: its index (from 0), the count, name, type and bytes.
  std::function<void(size_t index, size_t count, const std::string& name, TensorType type,
                     uint64_t bytes)>
      progress;
};

struct GgufExportResult {
  size_t tensors = 0;
  uint64_t file_bytes = 0;
};

// Writes the model folder DIR as the GGUF file OUT (through OUT.tmp, renamed when complete: OUT is
// the whole file or untouched). Errors name the problem and the fix: Error(kIo) for a missing
// folder or output folder, or too little free space; Error(kUnsupported) for an architecture,
// RoPE scaling or tokenizer that has no GGUF form here; config errors as parse_model_config.
GgufExportResult export_gguf(const std::string& dir, const std::string& out,
                             const GgufExportOptions& opt);

}  // namespace longctx
