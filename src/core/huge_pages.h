// Anonymous memory advised for 2 MiB transparent huge pages.
//
// Decode streams every weight once per token. With 4 KiB pages that walk costs one TLB miss per
// page; on 2 MiB pages one per 512 of them, which measured 20-30% more read bandwidth per core on
// the AVX-512 machines we use (docs/kernels.md, "Weights and KV cache in huge pages").
#pragma once

#include <cstddef>
#include <cstdint>

namespace longctx {

// True when the kernel may back madvise(MADV_HUGEPAGE) memory with transparent huge pages
// (/sys/kernel/mm/transparent_hugepage/enabled says "always" or "madvise").
bool transparent_huge_pages_available();

// A private anonymous region of at least `bytes`, starting on a 2 MiB boundary and advised for
// huge pages (advice only: the kernel may still use 4 KiB pages). Move-only; unmapped on
// destruction. ok() is false when the region could not be reserved (then data() is null).
class HugePageBuffer {
 public:
  static constexpr size_t kHugePage = size_t{2} << 20;

  HugePageBuffer() = default;
  explicit HugePageBuffer(size_t bytes);
  ~HugePageBuffer();
  HugePageBuffer(HugePageBuffer&& o) noexcept;
  HugePageBuffer& operator=(HugePageBuffer&& o) noexcept;
  HugePageBuffer(const HugePageBuffer&) = delete;
  HugePageBuffer& operator=(const HugePageBuffer&) = delete;

  bool ok() const { return data_ != nullptr; }
  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }  // the bytes asked for

  // Makes the region read-only (writes fault): for data that must not change once filled.
  void protect_read_only();

 private:
  void release();
  void* base_ = nullptr;  // what mmap returned (one extra huge page, for the alignment)
  size_t len_ = 0;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace longctx
