// AtomicFileWriter (io/atomic_file.h) and free_bytes_at (io/weights.h).
#include "io/atomic_file.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "io/weights.h"

namespace longctx::io {

std::string format_bytes(uint64_t b) {
  char buf[64];
  if (b >= (uint64_t{1} << 30))
    std::snprintf(buf, sizeof buf, "%.2f GiB", b / 1073741824.0);
  else
    std::snprintf(buf, sizeof buf, "%.1f MiB", b / 1048576.0);
  return buf;
}

uint64_t free_bytes_at(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  const std::string dir =
      slash == std::string::npos ? "." : path.substr(0, std::max<size_t>(slash, 1));
  struct statvfs st {};
  if (::statvfs(dir.c_str(), &st) != 0)
    throw Error(ErrorKind::kIo, "cannot write into " + dir + ": " + std::strerror(errno) +
                                    "; create the folder or choose another output path");
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
}

AtomicFileWriter::AtomicFileWriter(const std::string& path, uint64_t size)
    : path_(path), tmp_(path + ".tmp") {
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw Error(ErrorKind::kIo, "cannot create " + tmp_ + ": " + std::strerror(errno) +
                                    "; check that the folder exists and is writable");
  // Reserve the whole file now: a file system without the space fails here, before any work.
  const int err = ::posix_fallocate(fd_, 0, static_cast<off_t>(size));
  if (err != 0 && err != EOPNOTSUPP && err != EINVAL) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
    fd_ = -1;
    throw Error(ErrorKind::kIo, "cannot reserve " + format_bytes(size) + " for " + path + ": " +
                                    std::strerror(err) +
                                    "; free space there or write elsewhere (-o)");
  }
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

void AtomicFileWriter::write_at(uint64_t at, const void* data, size_t bytes) {
  if (fd_ < 0) throw Error(ErrorKind::kInternal, "AtomicFileWriter used after commit");
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

void AtomicFileWriter::commit() {
  if (fd_ < 0) throw Error(ErrorKind::kInternal, "AtomicFileWriter committed twice");
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
