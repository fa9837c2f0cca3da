// A CaptureSink that writes captured rows into a safetensors file as they arrive (the CLI's
// `trace`, the Python module's run_with_cache(cache_dir=...)): tensor 0 of the file is `tokens`,
// the HookRunner's tensors follow in their order. Rows are converted to the file's dtype through
// one fixed buffer, so memory stays bounded whatever the prompt length.
#pragma once

#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "hooks/hook_runner.h"
#include "io/weights.h"

namespace longctx::hooks {

class FileSink : public CaptureSink {
 public:
  // Elements converted to the output dtype at a time (the sink's only buffer).
  static constexpr int64_t kConvertElems = int64_t{1} << 16;
  // Bytes the sink holds (for the plan).
  static size_t memory_bytes() { return static_cast<size_t>(kConvertElems) * 4; }

  FileSink(io::SafetensorsWriter& w, DType dtype);
  void write(size_t index, int64_t offset, const float* data, int64_t count) override;
  void write_i64(size_t index, int64_t offset, const int64_t* data, int64_t count) override;

 private:
  io::SafetensorsWriter& w_;
  DType dtype_;
  std::vector<uint8_t> buf_;
};

// "F32", "F16" or "BF16".
std::string safetensors_dtype(DType t);

}  // namespace longctx::hooks
