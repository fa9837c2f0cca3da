#include "core/huge_pages.h"

#include <sys/mman.h>

#include <fstream>
#include <string>
#include <utility>

namespace longctx {

bool transparent_huge_pages_available() {
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  if (!std::getline(in, line)) return false;
  return line.find("[never]") == std::string::npos;
}

HugePageBuffer::HugePageBuffer(size_t bytes) {
  if (bytes == 0) return;
  // One extra huge page lets the data start on a 2 MiB boundary: only aligned 2 MiB ranges can
  // be backed by a huge page.
  const size_t len = (bytes + 2 * kHugePage - 1) / kHugePage * kHugePage;
  void* base = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) return;
  const uintptr_t b = reinterpret_cast<uintptr_t>(base);
  const uintptr_t aligned = (b + kHugePage - 1) & ~(uintptr_t{kHugePage} - 1);
  base_ = base;
  len_ = len;
  data_ = reinterpret_cast<uint8_t*>(aligned);
  size_ = bytes;
  (void)::madvise(data_, len_ - (aligned - b), MADV_HUGEPAGE);  // advice: failure costs speed only
}

HugePageBuffer::~HugePageBuffer() { release(); }

HugePageBuffer::HugePageBuffer(HugePageBuffer&& o) noexcept
    : base_(std::exchange(o.base_, nullptr)),
      len_(std::exchange(o.len_, 0)),
      data_(std::exchange(o.data_, nullptr)),
      size_(std::exchange(o.size_, 0)) {}

HugePageBuffer& HugePageBuffer::operator=(HugePageBuffer&& o) noexcept {
  if (this != &o) {
    release();
    base_ = std::exchange(o.base_, nullptr);
    len_ = std::exchange(o.len_, 0);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
  }
  return *this;
}

void HugePageBuffer::protect_read_only() {
  // The whole tail from data_: protecting only size_ bytes would split the last huge page.
  if (data_ != nullptr)
    (void)::mprotect(data_, len_ - static_cast<size_t>(data_ - static_cast<uint8_t*>(base_)),
                     PROT_READ);
}

void HugePageBuffer::release() {
  if (base_ != nullptr) ::munmap(base_, len_);
  base_ = nullptr;
  data_ = nullptr;
  len_ = size_ = 0;
}

}  // namespace longctx
