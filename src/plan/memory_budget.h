// How much memory longctx may plan to use: the smaller of the kernel's MemAvailable and the
// cgroup's remaining allowance (v2 memory.max, v1 memory.limit_in_bytes), minus a safety margin;
// or a size the user gives (--mem-budget 12GiB).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace longctx {

struct MemoryBudget {
  size_t bytes = 0;            // what the plan may use
  std::string source;          // how it was found, for messages
  size_t mem_available = 0;    // MemAvailable (0: unknown)
  size_t cgroup_limit = 0;     // 0: no limit found
  size_t cgroup_usage = 0;
  size_t margin = 0;           // subtracted for the OS, other processes and allocator slack
};

// The safety margin subtracted from an automatic budget: 5% of it, at least 256 MiB and at most
// 2 GiB.
size_t safety_margin(size_t available);

// Automatic budget. `proc_root` and `sys_root` default to the real /proc and /sys (tests point them
// at fake trees).
MemoryBudget detect_memory_budget(const std::string& proc_root = "/proc",
                                  const std::string& sys_root = "/sys");

// "auto" -> detect_memory_budget(); otherwise a size (exactly that many bytes, no margin).
MemoryBudget memory_budget_from_flag(const std::string& flag);

// Parses "12GiB", "512MiB", "1.5G" (binary units: K, M, G, T with or without "iB"), "8GB"
// (decimal: KB, MB, GB, TB) or a plain byte count. Error(kInvalidArg) naming the text otherwise.
size_t parse_size(std::string_view text);

// "12.0 GiB", "512.0 MiB", "123 B".
std::string format_size(size_t bytes);

}  // namespace longctx
