// A file written through a temporary: PATH.tmp is created with its full size reserved up front
// (a full disk fails before any work is done), written at any offsets, then fsynced and renamed
// onto PATH by commit(). Destroyed without commit() (an error, an interrupted run), it removes the
// temporary, so PATH is either the complete new file or untouched. Shared by the safetensors and
// GGUF writers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace longctx::io {

class AtomicFileWriter {
 public:
  // Creates PATH.tmp and reserves `size` bytes. Error(kIo) naming the path and the fix when the
  // file cannot be created or the file system lacks the space.
  AtomicFileWriter(const std::string& path, uint64_t size);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  // Writes `bytes` bytes at byte `at` of the temporary. Error(kIo) on failure.
  void write_at(uint64_t at, const void* data, size_t bytes);
  // fsync, close and rename onto PATH. Error(kIo) on failure (the temporary is removed).
  void commit();

  const std::string& path() const { return path_; }
  const std::string& tmp_path() const { return tmp_; }
  bool open() const { return fd_ >= 0; }

 private:
  std::string path_, tmp_;
  int fd_ = -1;
};

// "1.5 MiB", "2.00 GiB": sizes in messages.
std::string format_bytes(uint64_t b);

}  // namespace longctx::io
