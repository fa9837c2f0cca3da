// Memory-mapped model weights: model.safetensors, or shards listed in model.safetensors.index.json.
// Tensors stay in their stored dtype inside the mapping; nothing is copied or up-converted.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace longctx::io {

// A read-only mapping of a whole file (mmap). Throws Error(kIo) when it cannot be opened.
class MappedFile {
 public:
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // inside the mapping of `file`
  size_t nbytes = 0;
  std::string file;            // the file it was read from (for messages)

  int64_t numel() const;
};

// All tensors of one model folder. Header parsing validates every entry (known dtype, offsets in
// bounds and consistent with shape x dtype size, no overlap past the file end); a truncated or
// malformed file is an Error naming the file and what is wrong.
class WeightSource {
 public:
  // Opens DIR/model.safetensors, or DIR/model.safetensors.index.json and its shards.
  static std::unique_ptr<WeightSource> open_dir(const std::string& dir);
  // Opens one .safetensors file.
  static std::unique_ptr<WeightSource> open_file(const std::string& path);

  // nullptr when absent.
  const TensorInfo* find(const std::string& name) const;
  // Throws Error(kShape) naming the tensor and the folder when absent.
  const TensorInfo& get(const std::string& name) const;
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  // Sum of all tensors' bytes.
  size_t total_bytes() const;
  // Bytes of all mapped files.
  size_t mapped_bytes() const;

 private:
  std::vector<std::shared_ptr<MappedFile>> files_;
  std::map<std::string, TensorInfo> tensors_;
  std::string origin_;
};

// One tensor to write.
struct TensorToWrite {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // numel * dtype_size bytes
};

// Writes a .safetensors file (header JSON padded to 8 bytes, tensors in the given order).
// Writes to PATH.tmp then renames, so a crash never leaves a half-written file at PATH.
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace longctx::io
