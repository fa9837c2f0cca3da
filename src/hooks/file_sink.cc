#include "hooks/file_sink.h"

#include <algorithm>

namespace longctx::hooks {

FileSink::FileSink(io::SafetensorsWriter& w, DType dtype) : w_(w), dtype_(dtype) {
  buf_.resize(static_cast<size_t>(kConvertElems) * dtype_size(dtype));
}

void FileSink::write(size_t index, int64_t offset, const float* data, int64_t count) {
  const size_t es = dtype_size(dtype_);
  for (int64_t done = 0; done < count; done += kConvertElems) {
    const int64_t m = std::min(kConvertElems, count - done);
    from_f32(dtype_, data + done, buf_.data(), static_cast<size_t>(m));
    w_.write(index + 1, static_cast<uint64_t>(offset + done) * es, buf_.data(),
             static_cast<size_t>(m) * es);
  }
}

void FileSink::write_i64(size_t index, int64_t offset, const int64_t* data, int64_t count) {
  w_.write(index + 1, static_cast<uint64_t>(offset) * 8, data, static_cast<size_t>(count) * 8);
}

std::string safetensors_dtype(DType t) {
  return t == DType::kF32 ? "F32" : t == DType::kF16 ? "F16" : "BF16";
}

}  // namespace longctx::hooks
