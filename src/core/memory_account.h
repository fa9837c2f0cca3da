// A budget that large allocations charge before they are made (KV blocks, activation buffers).
// The memory plan sets its limit; going past it means the plan under-priced something, which is a
// bug: charge() throws Error(kInternal) instead of letting the process be OOM-killed later.
#pragma once

#include <cstddef>
#include <string>

namespace longctx {

class MemoryAccount {
 public:
  // limit 0: unlimited (tracks use only).
  explicit MemoryAccount(size_t limit = 0) : limit_(limit) {}

  void charge(size_t bytes, const char* what);
  void release(size_t bytes) { used_ = bytes > used_ ? 0 : used_ - bytes; }

  size_t limit() const { return limit_; }
  size_t used() const { return used_; }
  size_t peak() const { return peak_; }

 private:
  size_t limit_;
  size_t used_ = 0;
  size_t peak_ = 0;
};

}  // namespace longctx
