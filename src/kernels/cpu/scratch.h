// Grow-only, 64-byte aligned scratch owned by the calling thread (thread_local in the drivers):
// allocated on first use and reused by every later call, so the hot path does not allocate.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>

namespace longctx::kernels::cpu {

class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { std::free(p_); }

  // At least `bytes` bytes, 64-byte aligned; contents are unspecified.
  void* get(size_t bytes) {
    if (bytes > cap_) {
      std::free(p_);
      cap_ = (bytes + 4095) & ~size_t{4095};
      p_ = std::aligned_alloc(64, cap_);
      if (!p_) throw std::bad_alloc();
    }
    return p_;
  }

 private:
  void* p_ = nullptr;
  size_t cap_ = 0;
};

inline size_t round_up64(size_t n) { return (n + 63) & ~size_t{63}; }

}  // namespace longctx::kernels::cpu
