// SafetensorsWriter (io/weights.h): a safetensors file written as its data is produced, through a
// temporary that is renamed into place only when complete.
#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "io/weights.h"

namespace longctx::io {

namespace {

std::string format_bytes(uint64_t b) {
  char buf[64];
  if (b >= (uint64_t{1} << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", b / 1073741824.0);
  else std::snprintf(buf, sizeof buf, "%.1f MiB", b / 1048576.0);
  return buf;
}

// The header JSON, padded to 8 bytes, with each tensor's offset and size.
std::string make_header(const std::string& path, const std::vector<TensorSpec>& tensors,
                        const std::map<std::string, std::string>& metadata,
                        std::vector<uint64_t>& offsets, std::vector<size_t>& sizes,
                        uint64_t& data_bytes) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  std::set<std::string> seen;
  for (const TensorSpec& t : tensors) {
    if (t.name.empty() || t.name == "__metadata__" || !seen.insert(t.name).second)
      throw Error(ErrorKind::kInvalidArg,
                  "write_safetensors(" + path + "): tensor name '" + t.name +
                      "' is empty, reserved or repeated; give each tensor a unique name");
    uint64_t bytes = safetensors_elem_size(t.dtype);
    if (bytes == 0)
      throw Error(ErrorKind::kInvalidArg, "write_safetensors(" + path + "): tensor " + t.name +
                                              " has unknown dtype " + t.dtype);
    for (int64_t d : t.shape)
      if (d < 0 || __builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes))
        throw Error(ErrorKind::kInvalidArg, "write_safetensors(" + path + "): tensor " + t.name +
                                                " has a negative or too large dimension");
    header[t.name] = {{"dtype", t.dtype},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + bytes}}};
    offsets.push_back(offset);
    sizes.push_back(static_cast<size_t>(bytes));
    offset += bytes;
  }
  data_bytes = offset;
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  return h;
}

}  // namespace

uint64_t free_bytes_at(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, std::max<size_t>(slash, 1));
  struct statvfs st {};
  if (::statvfs(dir.c_str(), &st) != 0)
    throw Error(ErrorKind::kIo, "cannot write into " + dir + ": " + std::strerror(errno) +
                                    "; create the folder or choose another output path");
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
}

uint64_t SafetensorsWriter::bytes_for(const std::vector<TensorSpec>& tensors,
                                      const std::map<std::string, std::string>& metadata) {
  std::vector<uint64_t> offsets;
  std::vector<size_t> sizes;
  uint64_t data = 0;
  return 8 + make_header("", tensors, metadata, offsets, sizes, data).size() + data;
}

SafetensorsWriter::SafetensorsWriter(const std::string& path,
                                     const std::vector<TensorSpec>& tensors,
                                     const std::map<std::string, std::string>& metadata)
    : path_(path), tmp_(path + ".tmp") {
  const std::string h = make_header(path, tensors, metadata, offsets_, sizes_, data_bytes_);
  const uint64_t hlen = h.size();
  data_start_ = 8 + hlen;
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw Error(ErrorKind::kIo, "cannot create " + tmp_ + ": " + std::strerror(errno) +
                                    "; check that the folder exists and is writable");
  // Reserve the whole file now: a file system without the space fails here, before any work.
  const int err = ::posix_fallocate(fd_, 0, static_cast<off_t>(file_bytes()));
  if (err != 0 && err != EOPNOTSUPP && err != EINVAL) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
    fd_ = -1;
    throw Error(ErrorKind::kIo, "cannot reserve " + format_bytes(file_bytes()) + " for " + path +
                                    ": " + std::strerror(err) +
                                    "; free space there or write elsewhere (-o)");
  }
  write(SIZE_MAX, 0, &hlen, 8);
  write(SIZE_MAX, 8, h.data(), h.size());
}

SafetensorsWriter::~SafetensorsWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

void SafetensorsWriter::write(size_t index, uint64_t offset, const void* data, size_t bytes) {
  if (fd_ < 0) throw Error(ErrorKind::kInternal, "SafetensorsWriter used after commit");
  uint64_t at = offset;  // index SIZE_MAX: absolute (the header)
  if (index != SIZE_MAX) {
    if (offset + bytes > sizes_.at(index))
      throw Error(ErrorKind::kInternal, "SafetensorsWriter: write past the end of a tensor");
    at = data_start_ + offsets_[index] + offset;
  }
  const char* c = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t k = ::pwrite(fd_, c, bytes, static_cast<off_t>(at));
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0)
      throw Error(ErrorKind::kIo, "cannot write " + tmp_ + ": " + std::strerror(errno) +
                                      "; check free disk space (nothing was written to " + path_ +
                                      ")");
    c += k;
    at += static_cast<uint64_t>(k);
    bytes -= static_cast<size_t>(k);
  }
}

void SafetensorsWriter::commit() {
  const int synced = ::fsync(fd_);
  const int sync_err = errno;
  const int closed = ::close(fd_);
  fd_ = -1;
  if (closed != 0 || synced != 0) {
    const int err = synced != 0 ? sync_err : errno;
    ::unlink(tmp_.c_str());
    throw Error(ErrorKind::kIo, "cannot flush " + tmp_ + ": " + std::strerror(err));
  }
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp_.c_str());
    throw Error(ErrorKind::kIo,
                "cannot rename " + tmp_ + " to " + path_ + ": " + std::strerror(err));
  }
}

}  // namespace longctx::io
