// MappedFile: a read-only, private mmap of a whole file.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "core/error.h"
#include "io/weights.h"

namespace longctx::io {

namespace {

std::string errno_text(int err) { return std::strerror(err); }

// Closes a descriptor when it leaves scope.
struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    throw Error(ErrorKind::kIo, "cannot open " + path + ": " + errno_text(err) +
                                    (err == ENOENT ? "; check the path" : "; check permissions"));
  }
  FdCloser closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0)
    throw Error(ErrorKind::kIo, "cannot stat " + path + ": " + errno_text(errno));
  if (!S_ISREG(st.st_mode))
    throw Error(ErrorKind::kIo, path + " is not a regular file; give the path of a file");

  std::shared_ptr<MappedFile> f(new MappedFile());
  f->path_ = path;
  f->size_ = static_cast<size_t>(st.st_size);
  if (f->size_ == 0) return f;  // mmap of length 0 is invalid; an empty file maps to nothing

  void* p = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
  if (p == MAP_FAILED)
    throw Error(ErrorKind::kIo, "cannot map " + path + " (" + std::to_string(f->size_) +
                                    " bytes): " + errno_text(errno) +
                                    "; check the address-space limit (ulimit -v)");
  f->data_ = static_cast<const uint8_t*>(p);
  return f;
}

MappedFile::~MappedFile() {
  if (!copy_.ok() && data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
}

bool MappedFile::make_resident() {
  if (copy_.ok() || data_ == nullptr) return copy_.ok();
  HugePageBuffer copy(size_);
  if (!copy.ok()) return false;
  constexpr size_t kStep = HugePageBuffer::kHugePage;  // the load-time peak grows by one step
  for (size_t off = 0; off < size_; off += kStep) {
    const size_t n = std::min(kStep, size_ - off);
    std::memcpy(copy.data() + off, data_ + off, n);
    // The copied step of the file mapping leaves this process (the page cache keeps it).
    advise(data_ + off, n, Advice::kDontNeed);
  }
  copy.protect_read_only();
  ::munmap(const_cast<uint8_t*>(data_), size_);
  copy_ = std::move(copy);
  data_ = copy_.data();
  return true;
}

void MappedFile::advise(const void* begin, size_t nbytes, Advice advice) const {
  // A resident copy is anonymous memory: there kDontNeed would zero the weights, not drop pages.
  if (data_ == nullptr || nbytes == 0 || copy_.ok()) return;
  const auto* b = static_cast<const uint8_t*>(begin);
  if (b < data_ || b >= data_ + size_) return;
  if (nbytes > static_cast<size_t>(data_ + size_ - b))
    nbytes = static_cast<size_t>(data_ + size_ - b);
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  uintptr_t start = reinterpret_cast<uintptr_t>(b) & ~(page - 1);
  uintptr_t end = reinterpret_cast<uintptr_t>(b) + nbytes;
  int flag = MADV_NORMAL;
  switch (advice) {
    case Advice::kNormal:
      flag = MADV_NORMAL;
      break;
    case Advice::kWillNeed:
      flag = MADV_WILLNEED;
      break;
    case Advice::kSequential:
      flag = MADV_SEQUENTIAL;
      break;
    case Advice::kRandom:
      flag = MADV_RANDOM;
      break;
    case Advice::kDontNeed:
      flag = MADV_DONTNEED;
      break;
  }
  // Advice only: failure changes performance, never results.
  (void)::madvise(reinterpret_cast<void*>(start), end - start, flag);
}

}  // namespace longctx::io
