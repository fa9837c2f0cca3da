// Resident memory of this process, from /proc/self/status.
#pragma once

#include <cstddef>

namespace longctx {

size_t peak_rss_bytes();     // VmHWM; 0 when unavailable
size_t current_rss_bytes();  // VmRSS; 0 when unavailable

}  // namespace longctx
