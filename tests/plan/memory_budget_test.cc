#include "plan/memory_budget.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "model/test_util.h"

namespace longctx {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMiB = size_t{1} << 20;
constexpr size_t kGiB = size_t{1} << 30;

struct FakeRoot {
  fs::path root;
  explicit FakeRoot(const std::string& name) {
    root = test::scratch_dir("budget_" + name);
    fs::create_directories(root / "proc" / "self");
  }
  void write(const std::string& rel, const std::string& text) const {
    fs::create_directories((root / rel).parent_path());
    std::ofstream(root / rel) << text;
  }
  std::string proc() const { return (root / "proc").string(); }
  std::string sys() const { return (root / "sys").string(); }
};

TEST(MemoryBudget, MemAvailableMinusMargin) {
  FakeRoot f("meminfo");
  f.write("proc/meminfo", "MemTotal:       24000000 kB\nMemAvailable:   20971520 kB\n");
  f.write("proc/self/cgroup", "0::/\n");
  const MemoryBudget b = detect_memory_budget(f.proc(), f.sys());
  EXPECT_EQ(b.mem_available, 20 * kGiB);
  EXPECT_EQ(b.margin, 1 * kGiB);  // 5% of 20 GiB
  EXPECT_EQ(b.bytes, 19 * kGiB);
}

TEST(MemoryBudget, CgroupV2LimitWins) {
  FakeRoot f("v2");
  f.write("proc/meminfo", "MemAvailable:   20971520 kB\n");
  f.write("proc/self/cgroup", "0::/job/task\n");
  f.write("sys/fs/cgroup/job/memory.max", "8589934592\n");      // 8 GiB
  f.write("sys/fs/cgroup/job/memory.current", "1073741824\n");  // 1 GiB used
  f.write("sys/fs/cgroup/job/task/memory.max", "max\n");
  const MemoryBudget b = detect_memory_budget(f.proc(), f.sys());
  EXPECT_EQ(b.cgroup_limit, 8 * kGiB);
  EXPECT_EQ(b.cgroup_usage, 1 * kGiB);
  EXPECT_EQ(b.margin, 7 * kGiB / 20);  // 5% of the 7 GiB left
  EXPECT_EQ(b.bytes, 7 * kGiB - 7 * kGiB / 20);
  EXPECT_NE(b.source.find("cgroup"), std::string::npos);
}

TEST(MemoryBudget, CgroupV1Limit) {
  FakeRoot f("v1");
  f.write("proc/meminfo", "MemAvailable:   20971520 kB\n");
  f.write("proc/self/cgroup", "5:cpu,cpuacct:/x\n4:memory:/box\n");
  f.write("sys/fs/cgroup/memory/box/memory.limit_in_bytes", "2147483648\n");
  f.write("sys/fs/cgroup/memory/box/memory.usage_in_bytes", "0\n");
  f.write("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");  // no limit
  const MemoryBudget b = detect_memory_budget(f.proc(), f.sys());
  EXPECT_EQ(b.cgroup_limit, 2 * kGiB);
  EXPECT_EQ(b.margin, 256 * kMiB);  // the floor
  EXPECT_EQ(b.bytes, 2 * kGiB - 256 * kMiB);
}

TEST(MemoryBudget, NothingKnownIsAnErrorNamingTheFlag) {
  FakeRoot f("none");
  try {
    detect_memory_budget(f.proc(), f.sys());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--mem-budget"), std::string::npos);
  }
}

TEST(MemoryBudget, ParseAndFormatSizes) {
  EXPECT_EQ(parse_size("12GiB"), 12 * kGiB);
  EXPECT_EQ(parse_size("12G"), 12 * kGiB);
  EXPECT_EQ(parse_size("512MiB"), 512 * kMiB);
  EXPECT_EQ(parse_size("1.5GiB"), 3 * kGiB / 2);
  EXPECT_EQ(parse_size("8GB"), 8000000000u);
  EXPECT_EQ(parse_size("4096"), 4096u);
  for (const char* bad : {"", "GiB", "12 parsecs", "-5G", "0", "1e9"})
    EXPECT_THROW(parse_size(bad), Error) << bad;
  EXPECT_EQ(format_size(24 * kGiB), "24.0 GiB");
  EXPECT_EQ(format_size(1536 * kMiB), "1.5 GiB");
  EXPECT_EQ(format_size(100), "100 B");
  EXPECT_EQ(memory_budget_from_flag("24GiB").bytes, 24 * kGiB);
}

// Issue 19: zero and negative budgets are numbers, refused as such; other bad values name the
// flag.
TEST(MemoryBudget, FlagMessagesNameTheFlagAndTheRule) {
  for (const char* zero : {"0", "0MiB", "0.0GiB", "-1", "-5G"}) {
    try {
      memory_budget_from_flag(zero);
      ADD_FAILURE() << zero << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("--mem-budget must be positive"), std::string::npos)
          << e.what();
    }
  }
  for (const char* bad : {"garbage", "12 parsecs", "NaN"}) {
    try {
      memory_budget_from_flag(bad);
      ADD_FAILURE() << bad << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("--mem-budget: cannot read"), std::string::npos)
          << e.what();
    }
  }
  EXPECT_EQ(memory_budget_from_flag("512MiB").bytes, 512 * kMiB);
}

}  // namespace
}  // namespace longctx
