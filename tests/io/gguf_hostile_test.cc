// GgufFile on malformed and hostile input: each case is an Error of the right kind whose message
// names the file and the problem, never a crash, a hang or a huge allocation. Inputs are built
// field by field (gguf_raw.h) and parsed from exact-size heap copies, so ASan sees any over-read.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>

#include "core/error.h"
#include "io/gguf.h"
#include "io/gguf_raw.h"
#include "io/gguf_writer.h"
#include "io/test_util.h"

namespace longctx::io {
namespace {

using testing::expect_error;
using testing::RawGguf;

constexpr char kName[] = "hostile.gguf";

std::unique_ptr<GgufFile> parse_copy(const std::vector<uint8_t>& bytes, size_t n) {
  std::unique_ptr<uint8_t[]> copy(new uint8_t[n > 0 ? n : 1]);
  std::memcpy(copy.get(), bytes.data(), n);
  auto g = GgufFile::parse(n > 0 ? copy.get() : nullptr, n, kName);
  // Views into the buffer die with it here: only the caller's checks of the return value (none
  // read the data) may follow.
  return g;
}

void expect_bad(const RawGguf& raw, const std::vector<std::string>& words,
                ErrorKind kind = ErrorKind::kFormat) {
  std::vector<std::string> all = words;
  all.push_back(kName);
  expect_error([&] { parse_copy(raw.b, raw.b.size()); }, kind, all);
}

// A valid file: one u32 key and one F32 tensor of 8 elements at offset 0.
RawGguf one_tensor(std::vector<uint64_t> ne = {8}, uint32_t type = 0, uint64_t offset = 0) {
  RawGguf r;
  r.header(1, 1).kv_u32("a.b", 7).tensor("t", ne, type, offset).pad().zeros(32);
  return r;
}

TEST(GgufHostile, ValidBaseParses) {
  const RawGguf r = one_tensor();
  auto g = GgufFile::parse(r.b.data(), r.b.size(), kName);
  EXPECT_EQ(g->get_int("a.b"), 7);
  ASSERT_EQ(g->tensors().size(), 1u);
  EXPECT_EQ(g->tensors()[0].nbytes, 32u);
  EXPECT_EQ(g->data_offset(), 96u);  // 24 header + 19 key/value + 33 tensor info, padded to 32
}

// Every prefix of a small file with values of every kind and two tensors is an Error(kFormat)
// until the last tensor's data is complete; from there on (only padding missing) it parses.
TEST(GgufHostile, TruncatedAtEveryByte) {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_u64("x.u64", 1);
  w.set_f32s("x.floats", {1.f, 2.f});
  w.set_strings("x.strings", {"a", "", "bc"});
  w.set_bool("x.bool", true);
  const std::vector<float> a(8, 1.f), b(3, 2.f);
  w.add_tensor("a", TensorType::kF32, {2, 4}, a.data(), 32);
  w.add_tensor("b", TensorType::kF32, {3}, b.data(), 12);
  const std::vector<uint8_t> bytes = w.bytes();
  auto full = GgufFile::parse(bytes.data(), bytes.size(), kName);
  const GgufTensor* last = full->find_tensor("b");
  const size_t complete = full->data_offset() + last->offset + last->nbytes;
  ASSERT_LT(complete, bytes.size());  // the file ends in padding
  for (size_t n = 0; n < bytes.size(); ++n) {
    SCOPED_TRACE(n);
    if (n < complete) {
      expect_error([&] { parse_copy(bytes, n); }, ErrorKind::kFormat, {kName});
    } else {
      EXPECT_NO_THROW(parse_copy(bytes, n));
    }
  }
}

TEST(GgufHostile, BadMagicAndVersions) {
  RawGguf r = one_tensor();
  r.b[3] = 'X';
  expect_bad(r, {"magic"});
  expect_bad(RawGguf{}, {"magic"});  // empty
  RawGguf v1;
  v1.header(0, 0, 1);
  expect_bad(v1, {"version 1"});
  RawGguf big;
  big.header(0, 0, 0x03000000);  // version 3 written big-endian
  expect_bad(big, {"big-endian"});
  RawGguf v9;
  v9.header(0, 0, 9);
  expect_bad(v9, {"version 9"});
  RawGguf v2;  // version 2 has the same layout and is read
  v2.header(0, 1, 2).kv_u32("k", 1);
  EXPECT_EQ(GgufFile::parse(v2.b.data(), v2.b.size(), kName)->version(), 2u);
}

TEST(GgufHostile, HugeCountsFailFast) {
  const auto start = std::chrono::steady_clock::now();
  for (uint64_t count : {uint64_t{1} << 63, uint64_t{1} << 62, UINT64_MAX}) {
    SCOPED_TRACE(count);
    for (uint32_t elem : {0u, 4u, 12u, 8u}) {  // u8, u32, f64, string
      RawGguf r;
      r.header(0, 1).str("arr").u32(9).u32(elem).u64(count).zeros(64);
      expect_bad(r, {"count", "'arr'"});
    }
    RawGguf kv;
    kv.header(0, count).zeros(64);
    expect_bad(kv, {"count"});
    RawGguf tensors;
    tensors.header(count, 0).zeros(64);
    expect_bad(tensors, {"count"});
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST(GgufHostile, StringLengthPastTheEnd) {
  RawGguf key;
  key.header(0, 1).u64(1000).zeros(20);
  expect_bad(key, {"length 1000"});
  RawGguf value;
  value.header(0, 1).str("k").u32(8).u64(uint64_t{1} << 63).zeros(8);
  expect_bad(value, {"'k'", "length"});
  RawGguf elem;
  elem.header(0, 1).str("k").u32(9).u32(8).u64(2).str("ok").u64(5).zeros(2);
  expect_bad(elem, {"'k'", "length 5"});
  RawGguf name;
  name.header(1, 0).u64(UINT64_MAX).zeros(40);
  expect_bad(name, {"tensor", "length"});
}

TEST(GgufHostile, UnknownAndNestedValueTypes) {
  RawGguf unknown;
  unknown.header(0, 1).str("k").u32(13).u32(0);
  expect_bad(unknown, {"'k'", "unknown value type 13"});
  RawGguf elem;
  elem.header(0, 1).str("k").u32(9).u32(99).u64(0);
  expect_bad(elem, {"'k'", "element type 99"});
  RawGguf nested;
  nested.header(0, 1).str("k").u32(9).u32(9).u64(1).u32(4).u64(1).u32(5);
  expect_bad(nested, {"'k'", "nested"}, ErrorKind::kUnsupported);
  RawGguf bool2;
  bool2.header(0, 1).str("k").u32(7).u8(2);
  expect_bad(bool2, {"'k'", "bool"});
}

TEST(GgufHostile, UnknownGgmlTypes) {
  for (uint32_t t : {4u, 5u, 31u, 33u, 36u, 38u, 40u, 1000u}) {
    SCOPED_TRACE(t);
    expect_bad(one_tensor({8}, t), {"'t'", "unknown ggml type " + std::to_string(t)});
  }
}

TEST(GgufHostile, TensorOffsets) {
  expect_bad(one_tensor({8}, 0, 32), {"'t'", "past the end"});
  expect_bad(one_tensor({8}, 0, UINT64_MAX - 31), {"'t'", "past the end"});  // no wrap-around
  expect_bad(one_tensor({8}, 0, 4), {"'t'", "alignment"});
  expect_bad(one_tensor({9}, 0, 0), {"'t'", "past the end"});  // 36 bytes, 32 present
  // The data section itself starts past the end: header only.
  RawGguf cut;
  cut.header(1, 0).tensor("t", {8}, 0, 0);
  expect_bad(cut, {"data section"});

  RawGguf same;
  same.header(2, 0).tensor("a", {8}, 0, 0).tensor("b", {8}, 0, 0).pad().zeros(64);
  expect_bad(same, {"overlaps", "'a'"});
  RawGguf partial;  // a: bytes 0..64, b starts at 32
  partial.header(2, 0).tensor("b", {8}, 0, 32).tensor("a", {16}, 0, 0).pad().zeros(96);
  expect_bad(partial, {"'b'", "overlaps tensor 'a'"});
  RawGguf apart;  // adjacent is fine
  apart.header(2, 0).tensor("b", {8}, 0, 64).tensor("a", {16}, 0, 0).pad().zeros(96);
  EXPECT_EQ(GgufFile::parse(apart.b.data(), apart.b.size(), kName)->tensors().size(), 2u);
}

TEST(GgufHostile, Dimensions) {
  expect_bad(one_tensor({0}), {"'t'", "positive"});
  expect_bad(one_tensor({8, 0}), {"'t'", "positive"});
  expect_bad(one_tensor({UINT64_MAX}), {"'t'", "positive"});  // -1 as int64
  expect_bad(one_tensor({uint64_t{1} << 63}), {"'t'", "positive"});
  expect_bad(one_tensor({uint64_t{1} << 32, uint64_t{1} << 32}), {"'t'", "overflows"});
  expect_bad(one_tensor({uint64_t{1} << 61}, 28), {"'t'", "overflows"});  // F64: 2^64 bytes
  expect_bad(one_tensor({}), {"'t'", "0 dimensions"});
  expect_bad(one_tensor({1, 1, 1, 1, 8}), {"'t'", "5 dimensions"});
  expect_bad(one_tensor({16, 1}, 8), {"'t'", "multiple", "Q8_0"});  // Q8_0 rows of 16
  expect_bad(one_tensor({128}, 12), {"'t'", "multiple", "Q4_K"});   // Q4_K rows of 128
  // Four dimensions are fine; shape is ne[] reversed.
  const RawGguf four = one_tensor({2, 2, 1, 2});
  auto g = GgufFile::parse(four.b.data(), four.b.size(), kName);
  EXPECT_EQ(g->tensors()[0].shape, (std::vector<int64_t>{2, 1, 2, 2}));
}

TEST(GgufHostile, Alignment) {
  for (uint32_t a : {0u, 3u, 48u}) {
    SCOPED_TRACE(a);
    RawGguf r;
    r.header(0, 1).kv_u32("general.alignment", a);
    expect_bad(r, {"general.alignment", "power of two"});
  }
  RawGguf wrong;
  wrong.header(0, 1).str("general.alignment").u32(10).u64(32);
  expect_bad(wrong, {"general.alignment", "u64", "expected u32"});
  // Alignment 64: a tensor at 32 is misaligned, at 64 fine.
  RawGguf r64;
  r64.header(1, 1).kv_u32("general.alignment", 64).tensor("t", {8}, 0, 32).pad(64).zeros(128);
  expect_bad(r64, {"'t'", "alignment 64"});
  RawGguf ok;
  ok.header(1, 1).kv_u32("general.alignment", 64).tensor("t", {8}, 0, 64).pad(64).zeros(128);
  auto g = GgufFile::parse(ok.b.data(), ok.b.size(), kName);
  EXPECT_EQ(g->alignment(), 64u);
  EXPECT_EQ(g->data_offset() % 64, 0u);
}

TEST(GgufHostile, Duplicates) {
  RawGguf key;
  key.header(0, 2).kv_u32("a.b", 1).kv_string("a.b", "x");
  expect_bad(key, {"'a.b'", "twice"});
  RawGguf name;
  name.header(2, 0).tensor("t", {8}, 0, 0).tensor("t", {8}, 0, 32).pad().zeros(64);
  expect_bad(name, {"'t'", "twice"});
}

// A file with one value of each kind the getters distinguish.
std::unique_ptr<GgufFile> getter_file(std::vector<uint8_t>& keep) {
  GgufWriter w;
  w.set_string("s", "text");
  w.set_u32("u32", 7);
  w.set_u64("big", UINT64_MAX);
  w.set_i64("neg", -5);
  w.set_f32("f", 0.5f);
  w.set_bool("yes", true);
  w.set_u8("byte", 3);
  w.set_strings("strs", {"a"});
  w.set_i32s("ints", {1, -2});
  w.set_f32s("floats", {1.5f});
  const uint32_t u32s[] = {1, 3000000000u};
  w.set_array("u32s", GgufType::kU32, u32s, 2);
  const int64_t i64s[] = {-(int64_t{1} << 40)};
  w.set_array("i64s", GgufType::kI64, i64s, 1);
  const uint64_t u64s[] = {UINT64_MAX};
  w.set_array("u64s", GgufType::kU64, u64s, 1);
  const double f64s[] = {0.25, 1e300};
  w.set_array("f64s", GgufType::kF64, f64s, 2);
  keep = w.bytes();
  return GgufFile::parse(keep.data(), keep.size(), kName);
}

TEST(GgufGetters, MissingKeys) {
  std::vector<uint8_t> keep;
  auto g = getter_file(keep);
  for (auto fn : std::vector<std::function<void()>>{
           [&] { g->get_int("llama.block_count"); }, [&] { g->get_string("llama.block_count"); },
           [&] { g->get_float("llama.block_count"); }, [&] { g->get_bool("llama.block_count"); },
           [&] { g->get_strings("llama.block_count"); },
           [&] { g->get_floats("llama.block_count"); }, [&] { g->get_ints("llama.block_count"); }})
    expect_error(fn, ErrorKind::kFormat, {kName, "'llama.block_count'", "missing"});
  EXPECT_FALSE(g->opt_int("missing").has_value());
  EXPECT_FALSE(g->opt_string("missing").has_value());
  EXPECT_FALSE(g->opt_float("missing").has_value());
  EXPECT_FALSE(g->opt_bool("missing").has_value());
}

TEST(GgufGetters, WrongTypes) {
  std::vector<uint8_t> keep;
  auto g = getter_file(keep);
  const ErrorKind f = ErrorKind::kFormat;
  expect_error([&] { g->get_int("s"); }, f, {kName, "'s'", "string", "expected an integer"});
  expect_error([&] { g->get_int("f"); }, f, {"'f'", "f32"});
  expect_error([&] { g->get_int("yes"); }, f, {"'yes'", "bool"});
  expect_error([&] { g->get_string("u32"); }, f, {"'u32'", "u32", "expected a string"});
  expect_error([&] { g->get_float("s"); }, f, {"'s'", "expected a float"});
  expect_error([&] { g->get_bool("byte"); }, f, {"'byte'", "u8", "expected a bool"});
  expect_error([&] { g->get_strings("ints"); }, f, {"'ints'", "array of i32"});
  expect_error([&] { g->get_strings("s"); }, f, {"'s'", "expected an array of strings"});
  expect_error([&] { g->get_ints("floats"); }, f, {"'floats'", "array of f32"});
  expect_error([&] { g->get_ints("u32"); }, f, {"'u32'", "array of integers"});
  expect_error([&] { g->get_floats("strs"); }, f, {"'strs'", "array of string"});
  expect_error([&] { g->opt_int("s"); }, f, {"'s'"});  // present with another type
  expect_error([&] { g->opt_bool("u32"); }, f, {"'u32'"});
  expect_error([&] { g->opt_string("f"); }, f, {"'f'"});
  expect_error([&] { g->opt_float("strs"); }, f, {"'strs'"});
}

TEST(GgufGetters, IntegerRanges) {
  std::vector<uint8_t> keep;
  auto g = getter_file(keep);
  const ErrorKind f = ErrorKind::kFormat;
  expect_error([&] { g->get_int("big"); }, f, {kName, "'big'", "18446744073709551615", "range"});
  EXPECT_EQ(g->find("big")->u, UINT64_MAX);
  EXPECT_EQ(g->get_int("neg"), -5);
  EXPECT_EQ(g->find("neg")->u, 0u);     // u only for non-negative values
  EXPECT_EQ(g->get_float("u32"), 7.0);  // integers read as floats
  EXPECT_EQ(g->get_float("f"), 0.5);
  expect_error([&] { g->get_ints("u32s"); }, f, {"'u32s'", "element 1", "3000000000", "range"});
  expect_error([&] { g->get_ints("i64s"); }, f, {"'i64s'", "element 0", "range"});
  expect_error([&] { g->get_ints("u64s"); }, f, {"'u64s'", "element 0", "range"});
  expect_error([&] { g->get_floats("f64s"); }, f, {"'f64s'", "element 1", "range"});
  EXPECT_EQ(g->get_ints("ints"), (std::vector<int32_t>{1, -2}));
}

}  // namespace
}  // namespace longctx::io
