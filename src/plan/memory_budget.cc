#include "plan/memory_budget.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "core/error.h"

namespace longctx {

namespace {

constexpr size_t kMiB = size_t{1} << 20;
constexpr size_t kGiB = size_t{1} << 30;

bool read_first_line(const std::string& path, std::string& out) {
  std::ifstream f(path);
  return static_cast<bool>(std::getline(f, out));
}

// MemAvailable from a meminfo file, in bytes; 0 when absent.
size_t mem_available(const std::string& proc_root) {
  std::ifstream f(proc_root + "/meminfo");
  std::string key;
  size_t kib = 0;
  std::string unit;
  while (f >> key >> kib) {
    std::getline(f, unit);
    if (key == "MemAvailable:") return kib * 1024;
  }
  return 0;
}

bool parse_limit(const std::string& text, size_t& out) {
  if (text.empty() || text == "max") return false;
  try {
    const unsigned long long v = std::stoull(text);
    if (v >= (1ull << 60)) return false;  // cgroup v1 writes a huge number for "no limit"
    out = static_cast<size_t>(v);
    return true;
  } catch (...) {
    return false;
  }
}

// Walks from the process's cgroup up to the root, keeping the tightest limit and its usage.
void cgroup_limit(const std::string& proc_root, const std::string& sys_root, MemoryBudget& b) {
  std::ifstream f(proc_root + "/self/cgroup");
  std::string line;
  while (std::getline(f, line)) {
    // v2: "0::/path"; v1: "N:memory:/path" (controllers may be comma-separated).
    const size_t c1 = line.find(':'), c2 = line.find(':', c1 + 1);
    if (c1 == std::string::npos || c2 == std::string::npos) continue;
    const std::string ctrls = line.substr(c1 + 1, c2 - c1 - 1);
    std::string path = line.substr(c2 + 1);
    std::string base, limit_file, usage_file;
    if (ctrls.empty()) {
      base = sys_root + "/fs/cgroup";
      limit_file = "memory.max";
      usage_file = "memory.current";
    } else if (("," + ctrls + ",").find(",memory,") != std::string::npos) {
      base = sys_root + "/fs/cgroup/memory";
      limit_file = "memory.limit_in_bytes";
      usage_file = "memory.usage_in_bytes";
    } else {
      continue;
    }
    for (;;) {
      const std::string dir = base + (path == "/" ? "" : path);
      std::string text;
      size_t limit = 0;
      if (read_first_line(dir + "/" + limit_file, text) && parse_limit(text, limit)) {
        size_t usage = 0;
        std::string u;
        if (read_first_line(dir + "/" + usage_file, u)) parse_limit(u, usage);
        const size_t left = limit > usage ? limit - usage : 0;
        const size_t best_left =
            b.cgroup_limit ? (b.cgroup_limit > b.cgroup_usage ? b.cgroup_limit - b.cgroup_usage : 0)
                           : SIZE_MAX;
        if (left < best_left) {
          b.cgroup_limit = limit;
          b.cgroup_usage = usage;
        }
      }
      if (path.empty() || path == "/") break;
      const size_t slash = path.find_last_of('/');
      path = slash == 0 ? "/" : path.substr(0, slash);
    }
  }
}

}  // namespace

size_t safety_margin(size_t available) {
  return std::clamp(available / 20, 256 * kMiB, 2 * kGiB);
}

MemoryBudget detect_memory_budget(const std::string& proc_root, const std::string& sys_root) {
  MemoryBudget b;
  b.mem_available = mem_available(proc_root);
  cgroup_limit(proc_root, sys_root, b);
  size_t avail = b.mem_available;
  b.source = "MemAvailable";
  if (b.cgroup_limit) {
    const size_t left = b.cgroup_limit > b.cgroup_usage ? b.cgroup_limit - b.cgroup_usage : 0;
    if (avail == 0 || left < avail) {
      avail = left;
      b.source = "cgroup limit " + format_size(b.cgroup_limit) + " minus " +
                 format_size(b.cgroup_usage) + " in use";
    }
  }
  if (avail == 0)
    throw Error(ErrorKind::kMemory,
                "cannot tell how much memory is available (no MemAvailable in /proc/meminfo and no "
                "cgroup limit); give a budget with --mem-budget SIZE, e.g. --mem-budget 8GiB");
  b.margin = safety_margin(avail);
  b.bytes = avail > b.margin ? avail - b.margin : 0;
  b.source += ' ';  // (not " " + ...: GCC 12 warns falsely of an overlapping copy there)
  b.source += format_size(avail) + " minus a " + format_size(b.margin) + " safety margin";
  return b;
}

MemoryBudget memory_budget_from_flag(const std::string& flag) {
  if (flag.empty() || flag == "auto") return detect_memory_budget();
  // A zero or negative size is a number, just not a usable one: say so rather than "cannot read".
  const size_t digits = flag.find_first_not_of("0123456789.", flag[0] == '-' ? 1 : 0);
  const std::string number =
      flag.substr(flag[0] == '-' ? 1 : 0,
                  digits == std::string::npos ? std::string::npos : digits - (flag[0] == '-'));
  if (!number.empty() && number.find_first_not_of('.') != std::string::npos &&
      (flag[0] == '-' || number.find_first_of("123456789") == std::string::npos))
    throw Error(ErrorKind::kInvalidArg, "--mem-budget must be positive, not '" + flag +
                                            "'; give a size such as 512MiB or 8GiB, or auto");
  MemoryBudget b;
  try {
    b.bytes = parse_size(flag);
  } catch (const Error& e) {
    throw Error(ErrorKind::kInvalidArg, std::string("--mem-budget: ") + e.what() + ", or auto");
  }
  b.source = "--mem-budget " + flag;
  return b;
}

size_t parse_size(std::string_view text) {
  const std::string s(text);
  auto bad = [&] {
    return Error(ErrorKind::kInvalidArg, "cannot read '" + s +
                                             "' as a memory size; write e.g. 12GiB, 512MiB, "
                                             "8GB or a number of bytes");
  };
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  if (i == 0) throw bad();
  double value;
  try {
    value = std::stod(s.substr(0, i));
  } catch (...) {
    throw bad();
  }
  std::string unit = s.substr(i);
  unit.erase(std::remove(unit.begin(), unit.end(), ' '), unit.end());
  for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  double mult;
  if (unit.empty() || unit == "B") mult = 1;
  else if (unit == "K" || unit == "KIB") mult = 1024.0;
  else if (unit == "M" || unit == "MIB") mult = 1024.0 * 1024;
  else if (unit == "G" || unit == "GIB") mult = 1024.0 * 1024 * 1024;
  else if (unit == "T" || unit == "TIB") mult = 1024.0 * 1024 * 1024 * 1024;
  else if (unit == "KB") mult = 1e3;
  else if (unit == "MB") mult = 1e6;
  else if (unit == "GB") mult = 1e9;
  else if (unit == "TB") mult = 1e12;
  else throw bad();
  const double bytes = value * mult;
  if (bytes > 1e18)
    throw Error(ErrorKind::kInvalidArg, "'" + s +
                                            "' is more memory than any machine has (over "
                                            "1 EB); write e.g. 12GiB");
  if (!(bytes >= 1)) throw bad();
  return static_cast<size_t>(std::llround(bytes));
}

std::string format_size(size_t bytes) {
  char buf[64];
  const double b = static_cast<double>(bytes);
  if (bytes >= (size_t{1} << 40)) std::snprintf(buf, sizeof buf, "%.1f TiB", b / (1ull << 40));
  else if (bytes >= kGiB) std::snprintf(buf, sizeof buf, "%.1f GiB", b / kGiB);
  else if (bytes >= kMiB) std::snprintf(buf, sizeof buf, "%.1f MiB", b / kMiB);
  else if (bytes >= 1024) std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024);
  else std::snprintf(buf, sizeof buf, "%zu B", bytes);
  return buf;
}

}  // namespace longctx
