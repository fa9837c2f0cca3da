#include "core/proc_stats.h"

#include <cstdio>
#include <cstring>

namespace longctx {

namespace {
size_t status_kib(const char* key) {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  size_t kib = 0;
  const size_t klen = std::strlen(key);
  while (std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, key, klen) == 0 && line[klen] == ':') {
      std::sscanf(line + klen + 1, "%zu", &kib);
      break;
    }
  }
  std::fclose(f);
  return kib * 1024;
}
}  // namespace

size_t peak_rss_bytes() { return status_kib("VmHWM"); }
size_t current_rss_bytes() { return status_kib("VmRSS"); }

}  // namespace longctx
