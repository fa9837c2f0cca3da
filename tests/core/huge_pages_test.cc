// HugePageBuffer: alignment, size, zero fill, moves; what the kernel reports about its pages.
#include "core/huge_pages.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>

namespace longctx {
namespace {

// AnonHugePages (KiB) of the mapping that contains `p`, from /proc/self/smaps; -1 if not found.
long anon_huge_kib(const void* p) {
  std::ifstream in("/proc/self/smaps");
  const auto a = reinterpret_cast<uintptr_t>(p);
  std::string line;
  bool inside = false;
  while (std::getline(in, line)) {
    uintptr_t lo = 0, hi = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> lo >> dash >> hi && dash == '-') {
      inside = lo <= a && a < hi;
      continue;
    }
    if (inside && line.rfind("AnonHugePages:", 0) == 0)
      return std::stol(line.substr(std::strlen("AnonHugePages:")));
  }
  return -1;
}

TEST(HugePageBuffer, AlignedZeroedAndMovable) {
  const size_t n = 5 * HugePageBuffer::kHugePage + 123;
  HugePageBuffer b(n);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b.size(), n);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % HugePageBuffer::kHugePage, 0u);
  for (size_t i = 0; i < n; i += 4096) ASSERT_EQ(b.data()[i], 0);
  EXPECT_EQ(b.data()[n - 1], 0);
  std::memset(b.data(), 7, n);  // every byte asked for is writable

  uint8_t* p = b.data();
  HugePageBuffer c(std::move(b));
  EXPECT_FALSE(b.ok());
  EXPECT_EQ(b.data(), nullptr);
  EXPECT_EQ(c.data(), p);
  EXPECT_EQ(c.data()[n - 1], 7);
  HugePageBuffer d(10);
  d = std::move(c);
  EXPECT_EQ(d.data(), p);
  EXPECT_EQ(d.size(), n);
  d.protect_read_only();
  EXPECT_EQ(d.data()[12345], 7);  // still readable
}

TEST(HugePageBuffer, EmptyRequestHoldsNothing) {
  HugePageBuffer b(0);
  EXPECT_FALSE(b.ok());
  EXPECT_EQ(b.size(), 0u);
}

TEST(HugePageBuffer, KernelBacksItWithHugePagesWhenEnabled) {
  if (!transparent_huge_pages_available()) GTEST_SKIP() << "transparent huge pages are off";
  HugePageBuffer b(8 * HugePageBuffer::kHugePage);
  ASSERT_TRUE(b.ok());
  std::memset(b.data(), 1, b.size());
  // Advice, not a promise (memory may be too fragmented), but an idle test machine with THP on
  // should give at least one of eight.
  EXPECT_GE(anon_huge_kib(b.data()), 2048) << "no huge page behind an madvised, touched region";
}

}  // namespace
}  // namespace longctx
