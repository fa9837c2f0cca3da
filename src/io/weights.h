// Memory-mapped model weights: model.safetensors, or shards listed in model.safetensors.index.json.
// Tensors stay in their stored dtype inside the mapping; nothing is copied or up-converted.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/huge_pages.h"
#include "core/tensor_type.h"

namespace longctx::io {

class GgufFile;

// A read-only mapping of a whole file (mmap). Throws Error(kIo) when it cannot be opened.
// make_resident() can swap the mapping for a private copy on 2 MiB huge pages (core/huge_pages.h).
class AtomicFileWriter;

class MappedFile {
 public:
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // True once make_resident() has copied the file into anonymous memory.
  bool resident() const { return copy_.ok(); }

  // Copies the file into anonymous memory advised for transparent huge pages and drops the file
  // mapping; data() changes. Copies in 2 MiB steps and releases each mapped step as it goes,
  // so the peak resident size grows by at most one step. Returns false and keeps the mapping
  // when the memory cannot be reserved. Not thread-safe; call before handing out pointers.
  bool make_resident();

  // Paging hints (madvise) for a byte range inside the mapping; ranges outside are clipped.
  // Advice only: it never changes what is read. kWillNeed starts readahead (e.g. the next
  // layer's weights); kDontNeed drops clean pages of a private read-only mapping (re-read later).
  // Ignored once resident: the copy has no file behind it to re-read from.
  enum class Advice { kNormal, kWillNeed, kSequential, kRandom, kDontNeed };
  void advise(const void* begin, size_t nbytes, Advice advice) const;

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
  HugePageBuffer copy_;  // after make_resident(): holds the data, the file is unmapped
};

struct TensorInfo {
  std::string name;
  // Safetensors tensors are F32/F16/BF16; GGUF tensors may be block types (core/tensor_type.h).
  TensorType type = TensorType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // inside the mapping of `file`
  size_t nbytes = 0;
  std::string file;   // the file it was read from (for messages)
  size_t offset = 0;  // byte offset of `data` in `file`

  int64_t numel() const;
};

// All tensors of one model folder. Header parsing validates every entry (offsets in bounds,
// ordered, not overlapping, consistent with shape x dtype size); a truncated or malformed file is
// an Error naming the file and what is wrong.
//
// Tensors stored in a dtype other than F32/F16/BF16 (I8, F64, F8_E4M3, I64, ...) are validated
// but not listed in tensors(); looking one up by name (find or get) throws Error(kUnsupported)
// naming the tensor and its dtype. So a checkpoint with an unused integer buffer still loads.
//
// Data pointers are where the file puts them: aligned to the element size only when the writer
// padded the header to 8 bytes (write_safetensors and Hugging Face's writer do).
class WeightSource {
 public:
  // Opens DIR/model.safetensors, or DIR/model.safetensors.index.json and its shards.
  static std::unique_ptr<WeightSource> open_dir(const std::string& dir);
  // Opens one .safetensors file.
  static std::unique_ptr<WeightSource> open_file(const std::string& path);
  // A .safetensors file already in memory (all of it: header length, header, data), validated as
  // open_file does; `name` stands for the path in messages. Tensors point into DATA, which must
  // outlive the result and is not listed in files(). For tests and the fuzz harness.
  static std::unique_ptr<WeightSource> parse_safetensors(const uint8_t* data, size_t size,
                                                         const std::string& name);
  // The tensors of a parsed GGUF file (io/gguf.h), in their stored types (block types included),
  // sharing its mapping. The GgufFile may be dropped afterwards. Tensors of a ggml type longctx
  // does not compute with are listed in unsupported() and refused by find/get.
  static std::unique_ptr<WeightSource> from_gguf(const GgufFile& file);

  // nullptr when absent; throws Error(kUnsupported) when stored in an unsupported dtype.
  const TensorInfo* find(const std::string& name) const;
  // Throws Error(kShape) naming the tensor and the folder when absent.
  const TensorInfo& get(const std::string& name) const;
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  // Sum of all tensors' bytes.
  size_t total_bytes() const;
  // Bytes of all mapped files.
  size_t mapped_bytes() const;

  // Tensors present but stored in an unsupported dtype: name -> safetensors dtype ("I8", ...).
  const std::map<std::string, std::string>& unsupported() const { return unsupported_; }
  // "__metadata__" string entries of all files (first file wins on a repeated key).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::vector<std::shared_ptr<MappedFile>>& files() const { return files_; }

  // MappedFile::make_resident() for every file, moving tensors' data pointers along. Returns
  // the bytes now resident (0 when every copy failed and the mappings were kept).
  size_t make_resident();
  // The folder or file this was opened from.
  const std::string& origin() const { return origin_; }

 private:
  // Maps PATH, validates its header and adds its tensors (a name already present is an error).
  // Returns the names of all tensors in the file, unsupported ones included.
  std::vector<std::string> add_file(const std::string& path);
  // add_file's work on the bytes of a file (tensors point into DATA); PATH names it in messages.
  std::vector<std::string> add_bytes(const uint8_t* data, size_t size, const std::string& path);

  std::vector<std::shared_ptr<MappedFile>> files_;
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> unsupported_;
  std::map<std::string, std::string> unsupported_file_;
  std::map<std::string, std::string> metadata_;
  std::string origin_;
  bool gguf_ = false;
};

// The text of a model.safetensors.index.json, checked: an object with a non-empty "weight_map"
// object whose values are shard file names inside the folder (no "..", not absolute). Returns
// shard file -> the tensors the index says it holds. Error(kFormat) naming `origin` otherwise.
std::map<std::string, std::vector<std::string>> parse_safetensors_index(const std::string& text,
                                                                        const std::string& origin);

// One tensor to write.
struct TensorToWrite {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // numel * dtype_size bytes
};

// Element size of a safetensors dtype name ("F32", "I64", ...); 0 when the name is not known.
size_t safetensors_elem_size(const std::string& dtype);

// One tensor of a SafetensorsWriter: its safetensors dtype name ("F32", "F16", "BF16", "I64").
struct TensorSpec {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
};

// Writes a .safetensors file as its data is produced: the header (every shape is known up front)
// goes first, then data at any offset in any order. Everything goes to PATH.tmp, whose full size
// is reserved at once (a full disk fails before any work is done), and commit() fsyncs it and
// renames it onto PATH. Destroyed without commit() (an error, an interrupted run), it removes the
// temporary: PATH is either the complete new file or untouched.
class SafetensorsWriter {
 public:
  // Error(kInvalidArg) on a repeated, empty or reserved name or a negative dimension; Error(kIo)
  // naming the path and the fix when the file cannot be created or the file system lacks space.
  SafetensorsWriter(const std::string& path, const std::vector<TensorSpec>& tensors,
                    const std::map<std::string, std::string>& metadata = {});
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // Size of the whole file (header + data), known before anything is written.
  uint64_t file_bytes() const { return data_start_ + data_bytes_; }
  size_t tensor_bytes(size_t index) const { return sizes_.at(index); }
  // Writes `bytes` bytes at byte `offset` of tensor `index`'s data. Error(kIo) on failure.
  void write(size_t index, uint64_t offset, const void* data, size_t bytes);
  void commit();

  // Bytes a file of these tensors takes (header + data), without creating it.
  static uint64_t bytes_for(const std::vector<TensorSpec>& tensors,
                            const std::map<std::string, std::string>& metadata = {});

 private:
  std::unique_ptr<AtomicFileWriter> file_;  // io/atomic_file.h
  uint64_t data_start_ = 0, data_bytes_ = 0;
  std::vector<uint64_t> offsets_;
  std::vector<size_t> sizes_;
};

// Free bytes for an unprivileged writer on the file system holding `path` (a file that may not
// exist yet: its folder is asked). Error(kIo) when the folder does not exist.
uint64_t free_bytes_at(const std::string& path);

// Writes a .safetensors file (header JSON padded to 8 bytes, tensors in the given order).
// Writes to PATH.tmp then renames, so a crash never leaves a half-written file at PATH.
// Throws Error(kInvalidArg) on a repeated or empty name, a negative dimension or missing data,
// and Error(kIo) when the file cannot be written.
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace longctx::io
