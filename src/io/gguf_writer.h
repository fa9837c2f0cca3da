// GgufWriter: builds a GGUF file (version 3, little-endian) from metadata and tensors already
// encoded in their ggml type: for tests, and for `longctx quantize`. Metadata is written in the
// order first set; tensors in the order added, each at an offset that is a multiple of the
// alignment (general.alignment when set, else 32) and padded to it, as llama.cpp writes them.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor_type.h"
#include "io/gguf.h"

namespace longctx::io {

class GgufWriter {
 public:
  // Scalars. Setting a key again replaces its value and keeps its place. Error(kInvalidArg) on an
  // empty key, or a general.alignment that is not a u32 power of two.
  void set_u8(std::string_view key, uint8_t v);
  void set_i8(std::string_view key, int8_t v);
  void set_u16(std::string_view key, uint16_t v);
  void set_i16(std::string_view key, int16_t v);
  void set_u32(std::string_view key, uint32_t v);
  void set_i32(std::string_view key, int32_t v);
  void set_u64(std::string_view key, uint64_t v);
  void set_i64(std::string_view key, int64_t v);
  void set_f32(std::string_view key, float v);
  void set_f64(std::string_view key, double v);
  void set_bool(std::string_view key, bool v);
  void set_string(std::string_view key, std::string_view v);
  // Arrays. The generic form takes `count` elements of the numeric (or bool) type `elem`, packed
  // little-endian at `data`; Error(kInvalidArg) for elem string or array (use set_strings).
  void set_array(std::string_view key, GgufType elem, const void* data, uint64_t count);
  void set_i32s(std::string_view key, const std::vector<int32_t>& v);
  void set_f32s(std::string_view key, const std::vector<float>& v);
  void set_strings(std::string_view key, const std::vector<std::string>& v);
  // Any value read from a GgufFile (copies metadata from one file into another).
  void set(std::string_view key, const GgufValue& v);

  // A tensor of ggml type `ggml_type` and row-major `shape` (outermost first, like
  // GgufTensor::shape) whose encoded bytes are `data`; not copied: they must stay valid until
  // bytes() or write() has run. Error(kInvalidArg) on an empty or repeated name, an unknown type,
  // 0 or more than 4 dimensions, a dimension below 1, a row that is not a multiple of the type's
  // block, or nbytes other than the shape's size in that type.
  void add_tensor(const std::string& name, uint32_t ggml_type, const std::vector<int64_t>& shape,
                  const void* data, uint64_t nbytes);
  void add_tensor(const std::string& name, TensorType type, const std::vector<int64_t>& shape,
                  const void* data, uint64_t nbytes);
  // A tensor whose bytes are produced only while the file is written (write with a Producer), so
  // a converter holds one tensor at a time. Same checks as add_tensor, with the type's size.
  void add_tensor_deferred(const std::string& name, TensorType type,
                           const std::vector<int64_t>& shape);

  uint64_t alignment() const { return alignment_; }
  // Size of the whole file.
  uint64_t file_bytes() const;
  // The whole file in memory (tests, small files).
  std::vector<uint8_t> bytes() const;
  // Writes PATH through PATH.tmp with its size reserved first, fsync and rename (io/atomic_file.h):
  // PATH is the complete file or untouched. Error(kIo) naming the path on failure.
  void write(const std::string& path) const;
  // Fills tensor `index` (in the order added): `nbytes` bytes at `dst`, a buffer the writer owns
  // and reuses. Called once per deferred tensor, in order; an exception leaves PATH untouched.
  using Producer = std::function<void(size_t index, uint8_t* dst, uint64_t nbytes)>;
  // As write(), with deferred tensors' bytes from `produce`. The free-space check comes first.
  void write(const std::string& path, const Producer& produce) const;
  size_t tensor_count() const { return tensors_.size(); }

 private:
  struct Tensor {
    std::string name;
    uint32_t ggml_type;
    std::vector<int64_t> shape;
    const void* data;  // nullptr: deferred
    uint64_t nbytes;
  };
  void add_checked(const std::string& name, uint32_t ggml_type, const std::vector<int64_t>& shape,
                   const void* data, uint64_t nbytes, bool deferred);
  void set_raw(std::string_view key, GgufType type, std::vector<uint8_t> encoded);
  // Each tensor's offset in the data section (they depend on the alignment, which may be set
  // after the tensors), and the data section's size.
  std::vector<uint64_t> offsets(uint64_t* data_bytes) const;
  // Everything before the data section, without the padding up to it.
  std::vector<uint8_t> header(const std::vector<uint64_t>& offsets) const;

  std::vector<std::pair<std::string, std::vector<uint8_t>>> kv_;  // key, type + value bytes
  std::map<std::string, size_t, std::less<>> kv_index_;
  std::vector<Tensor> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
  uint64_t alignment_ = 32;
};

}  // namespace longctx::io
