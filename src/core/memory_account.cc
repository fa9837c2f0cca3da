#include "core/memory_account.h"

#include <algorithm>

#include "core/error.h"

namespace longctx {

void MemoryAccount::charge(size_t bytes, const char* what) {
  if (limit_ && used_ + bytes > limit_)
    throw Error(ErrorKind::kInternal,
                std::string("memory plan exceeded: ") + what + " needs " + std::to_string(bytes) +
                    " bytes with " + std::to_string(used_) + " of " + std::to_string(limit_) +
                    " planned bytes in use; the planner under-priced this (please report)");
  used_ += bytes;
  peak_ = std::max(peak_, used_);
}

}  // namespace longctx
