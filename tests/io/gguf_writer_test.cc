// GgufWriter: every value type through writer and reader, the byte layout worked out by hand,
// a llama.cpp file rewritten byte for byte, the file written through a temporary, and refusals.
#include "io/gguf_writer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/gguf.h"
#include "io/test_util.h"
#include "io/weights.h"

namespace longctx::io {
namespace {

using testing::expect_error;
using testing::TempDir;

std::unique_ptr<GgufFile> reparse(const std::vector<uint8_t>& bytes) {
  return GgufFile::parse(bytes.data(), bytes.size(), "round-trip.gguf");
}

TEST(GgufWriter, EveryValueTypeRoundTrips) {
  GgufWriter w;
  w.set_u8("u8", 255);
  w.set_i8("i8", -128);
  w.set_u16("u16", 65535);
  w.set_i16("i16", -32768);
  w.set_u32("u32", 4294967295u);
  w.set_i32("i32", INT32_MIN);
  w.set_u64("u64", UINT64_MAX);
  w.set_i64("i64", INT64_MIN);
  w.set_f32("f32", 1.5f);
  w.set_f64("f64", -2.25e300);
  w.set_bool("t", true);
  w.set_bool("f", false);
  w.set_string("s", "h\xc3\xa9llo");
  w.set_string("empty", "");
  const uint8_t u8s[] = {0, 7, 255};
  w.set_array("u8s", GgufType::kU8, u8s, 3);
  const int16_t i16s[] = {-3, 4};
  w.set_array("i16s", GgufType::kI16, i16s, 2);
  const uint64_t u64s[] = {5, uint64_t{1} << 40};
  w.set_array("u64s", GgufType::kU64, u64s, 2);
  const double f64s[] = {0.125, -3.5};
  w.set_array("f64s", GgufType::kF64, f64s, 2);
  const uint8_t bools[] = {1, 0};
  w.set_array("bools", GgufType::kBool, bools, 2);
  w.set_i32s("i32s", {INT32_MIN, 0, INT32_MAX});
  w.set_f32s("f32s", {0.5f, -0.0f, INFINITY});
  w.set_strings("strs", {"a", "", "\xe2\x96\x81the"});
  w.set_i32s("none", {});
  w.set_strings("no_strs", {});

  const std::vector<uint8_t> bytes = w.bytes();
  auto g = reparse(bytes);
  EXPECT_EQ(g->metadata().size(), 24u);
  EXPECT_TRUE(g->tensors().empty());
  auto type = [&](const char* k) { return g->find(k)->type; };
  EXPECT_EQ(type("u8"), GgufType::kU8);
  EXPECT_EQ(g->get_int("u8"), 255);
  EXPECT_EQ(type("i8"), GgufType::kI8);
  EXPECT_EQ(g->get_int("i8"), -128);
  EXPECT_EQ(type("u16"), GgufType::kU16);
  EXPECT_EQ(g->get_int("u16"), 65535);
  EXPECT_EQ(type("i16"), GgufType::kI16);
  EXPECT_EQ(g->get_int("i16"), -32768);
  EXPECT_EQ(type("u32"), GgufType::kU32);
  EXPECT_EQ(g->get_int("u32"), 4294967295);
  EXPECT_EQ(type("i32"), GgufType::kI32);
  EXPECT_EQ(g->get_int("i32"), INT32_MIN);
  EXPECT_EQ(type("u64"), GgufType::kU64);
  EXPECT_EQ(g->find("u64")->u, UINT64_MAX);
  EXPECT_EQ(type("i64"), GgufType::kI64);
  EXPECT_EQ(g->get_int("i64"), INT64_MIN);
  EXPECT_EQ(type("f32"), GgufType::kF32);
  EXPECT_EQ(g->get_float("f32"), 1.5);
  EXPECT_EQ(type("f64"), GgufType::kF64);
  EXPECT_EQ(g->get_float("f64"), -2.25e300);
  EXPECT_TRUE(g->get_bool("t"));
  EXPECT_FALSE(g->get_bool("f"));
  EXPECT_EQ(g->opt_bool("f"), false);
  EXPECT_EQ(g->get_string("s"), "h\xc3\xa9llo");
  EXPECT_EQ(g->get_string("empty"), "");
  EXPECT_EQ(g->get_ints("u8s"), (std::vector<int32_t>{0, 7, 255}));
  EXPECT_EQ(g->get_ints("i16s"), (std::vector<int32_t>{-3, 4}));
  EXPECT_EQ(g->find("u64s")->elem, GgufType::kU64);
  EXPECT_EQ(g->find("u64s")->count, 2u);
  uint64_t second = 0;
  std::memcpy(&second, g->find("u64s")->array_data + 8, 8);
  EXPECT_EQ(second, uint64_t{1} << 40);
  EXPECT_EQ(g->get_floats("f64s"), (std::vector<float>{0.125f, -3.5f}));
  EXPECT_EQ(g->find("bools")->elem, GgufType::kBool);
  EXPECT_EQ(g->find("bools")->array_data[0], 1);
  EXPECT_EQ(g->get_ints("i32s"), (std::vector<int32_t>{INT32_MIN, 0, INT32_MAX}));
  const std::vector<float> f32s = g->get_floats("f32s");
  ASSERT_EQ(f32s.size(), 3u);
  EXPECT_EQ(f32s[0], 0.5f);
  EXPECT_TRUE(std::signbit(f32s[1]));
  EXPECT_TRUE(std::isinf(f32s[2]));
  EXPECT_EQ(g->get_strings("strs"), (std::vector<std::string_view>{"a", "", "\xe2\x96\x81the"}));
  EXPECT_TRUE(g->get_ints("none").empty());
  EXPECT_TRUE(g->get_strings("no_strs").empty());

  // Written in the order set, and copied through set(GgufValue) into the same bytes.
  ASSERT_EQ(g->keys().size(), 24u);
  EXPECT_EQ(g->keys()[0], "u8");
  EXPECT_EQ(g->keys()[23], "no_strs");
  GgufWriter copy;
  for (std::string_view k : g->keys()) copy.set(k, *g->find(k));
  EXPECT_EQ(copy.bytes(), bytes);
}

// A file small enough to lay out by hand: header 24 bytes (magic, version, two counts); key "k"
// (8 + 1), type (4), u8 (1): 14; tensor info "t" (8 + 1), n_dims (4), ne[0] (8), type (4),
// offset (8): 33; 71 bytes padded to 96; 12 bytes of F32 data padded to 32: 128.
TEST(GgufWriter, LayoutByHand) {
  GgufWriter w;
  w.set_u8("k", 9);
  const float data[3] = {1.f, 2.f, 3.f};
  w.add_tensor("t", TensorType::kF32, {3}, data, 12);
  const std::vector<uint8_t> b = w.bytes();
  ASSERT_EQ(b.size(), 128u);
  EXPECT_EQ(w.file_bytes(), 128u);
  EXPECT_EQ(std::memcmp(b.data(), "GGUF\x03\0\0\0\x01\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0", 24), 0);
  EXPECT_EQ(std::memcmp(b.data() + 24, "\x01\0\0\0\0\0\0\0k\0\0\0\0\x09", 14), 0);
  EXPECT_EQ(b[38], 1);  // name length of "t"
  EXPECT_EQ(b[46], 't');
  EXPECT_EQ(b[47], 1);  // n_dims
  EXPECT_EQ(b[51], 3);  // ne[0]
  EXPECT_EQ(b[59], 0);  // F32
  EXPECT_EQ(b[63], 0);  // offset 0
  for (size_t i = 71; i < 96; ++i) EXPECT_EQ(b[i], 0) << i;
  EXPECT_EQ(std::memcmp(b.data() + 96, data, 12), 0);
  for (size_t i = 108; i < 128; ++i) EXPECT_EQ(b[i], 0) << i;
}

TEST(GgufWriter, TensorsRoundTripWithAlignment) {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_u32("general.alignment", 64);
  EXPECT_EQ(w.alignment(), 64u);
  std::vector<uint8_t> q8(2 * 2 * 34), q4k(3 * 144), f16(5 * 2);
  for (size_t i = 0; i < q8.size(); ++i) q8[i] = static_cast<uint8_t>(i * 7);
  for (size_t i = 0; i < q4k.size(); ++i) q4k[i] = static_cast<uint8_t>(i * 13 + 1);
  for (size_t i = 0; i < f16.size(); ++i) f16[i] = static_cast<uint8_t>(i + 100);
  w.add_tensor("q8", TensorType::kQ8_0, {2, 64}, q8.data(), q8.size());
  w.add_tensor("q4k", 12, {3, 256}, q4k.data(), q4k.size());
  w.add_tensor("f16", TensorType::kF16, {5}, f16.data(), f16.size());
  const std::vector<uint8_t> bytes = w.bytes();
  auto g = reparse(bytes);
  EXPECT_EQ(g->alignment(), 64u);
  ASSERT_EQ(g->tensors().size(), 3u);
  struct Want {
    const char* name;
    TensorType type;
    std::vector<int64_t> shape;
    const std::vector<uint8_t>* data;
  };
  for (const Want& want :
       {Want{"q8", TensorType::kQ8_0, {2, 64}, &q8}, Want{"q4k", TensorType::kQ4_K, {3, 256}, &q4k},
        Want{"f16", TensorType::kF16, {5}, &f16}}) {
    const GgufTensor* t = g->find_tensor(want.name);
    ASSERT_NE(t, nullptr) << want.name;
    EXPECT_EQ(t->type, want.type);
    EXPECT_EQ(t->shape, want.shape);
    EXPECT_EQ(t->offset % 64, 0u);
    ASSERT_EQ(t->nbytes, want.data->size());
    EXPECT_EQ(std::memcmp(t->data, want.data->data(), t->nbytes), 0) << want.name;
  }
  EXPECT_EQ(g->tensors()[0].name, "q8");           // in the order added
  EXPECT_EQ(g->find_tensor("q4k")->offset, 192u);  // 136 bytes of q8 padded to 64
}

// A file written by llama.cpp, read and written again through set(GgufValue) and add_tensor in
// the file's order, comes out byte for byte: our layout is llama.cpp's.
TEST(GgufWriter, RewritesALlamaCppFileByteForByte) {
  const std::string path = std::string(LONGCTX_SHARED_DIR) + "/gguf/stories260K-q4_0.gguf";
  auto g = GgufFile::open(path);
  GgufWriter w;
  for (std::string_view k : g->keys()) w.set(k, *g->find(k));
  for (const GgufTensor& t : g->tensors())
    w.add_tensor(t.name, t.ggml_type, t.shape, t.data, t.nbytes);
  const std::vector<uint8_t> bytes = w.bytes();
  ASSERT_EQ(bytes.size(), g->file()->size());
  EXPECT_EQ(std::memcmp(bytes.data(), g->file()->data(), bytes.size()), 0);
}

TEST(GgufWriter, WritesThroughATemporary) {
  TempDir dir;
  GgufWriter w;
  w.set_string("general.name", "x");
  const std::vector<float> data(64, 0.25f);
  w.add_tensor("t", TensorType::kF32, {8, 8}, data.data(), 256);
  const std::string path = dir.file("out.gguf");
  w.write(path);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  ASSERT_EQ(std::filesystem::file_size(path), w.file_bytes());
  auto g = GgufFile::open(path);
  EXPECT_EQ(g->get_string("general.name"), "x");
  EXPECT_EQ(std::memcmp(g->find_tensor("t")->data, data.data(), 256), 0);
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> on_disk((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(on_disk, w.bytes());

  const std::string missing = dir.file("no/such/folder/out.gguf");
  expect_error([&] { w.write(missing); }, ErrorKind::kIo, {"no/such/folder"});
  EXPECT_FALSE(std::filesystem::exists(missing + ".tmp"));
}

TEST(GgufWriter, Refusals) {
  GgufWriter w;
  const std::vector<uint8_t> buf(4096);
  const ErrorKind bad = ErrorKind::kInvalidArg;
  expect_error([&] { w.set_u32("", 1); }, bad, {"empty"});
  expect_error([&] { w.set_u32("general.alignment", 0); }, bad, {"general.alignment"});
  expect_error([&] { w.set_u32("general.alignment", 48); }, bad, {"power of two"});
  expect_error([&] { w.set_u64("general.alignment", 64); }, bad, {"u32"});
  expect_error([&] { w.set_array("a", GgufType::kString, buf.data(), 1); }, bad, {"'a'"});
  expect_error([&] { w.set_array("a", GgufType::kArray, buf.data(), 1); }, bad, {"'a'"});
  w.add_tensor("t", TensorType::kF32, {4}, buf.data(), 16);
  expect_error([&] { w.add_tensor("t", TensorType::kF32, {4}, buf.data(), 16); }, bad,
               {"'t'", "repeated"});
  expect_error([&] { w.add_tensor("", TensorType::kF32, {4}, buf.data(), 16); }, bad, {"empty"});
  expect_error([&] { w.add_tensor("u", 4, {4}, buf.data(), 16); }, bad, {"'u'", "ggml type 4"});
  expect_error([&] { w.add_tensor("u", TensorType::kF32, {}, buf.data(), 0); }, bad,
               {"0 dimensions"});
  expect_error(
      [&] {
        w.add_tensor("u", TensorType::kF32, {1, 1, 1, 1, 1}, buf.data(), 4);
      },
      bad, {"5 dimensions"});
  expect_error([&] { w.add_tensor("u", TensorType::kF32, {0}, buf.data(), 0); }, bad, {"below 1"});
  expect_error(
      [&] {
        w.add_tensor("u", TensorType::kQ8_0, {2, 48}, buf.data(), 68);
      },
      bad, {"multiple", "Q8_0"});
  expect_error(
      [&] {
        w.add_tensor("u", TensorType::kQ8_0, {2, 64}, buf.data(), 100);
      },
      bad, {"100 bytes", "136"});
  expect_error([&] { w.add_tensor("u", TensorType::kF32, {4}, nullptr, 16); }, bad, {"no data"});
  // Setting a key again replaces it in place.
  w.set_u32("k", 1);
  w.set_string("k2", "x");
  w.set_u32("k", 2);
  const std::vector<uint8_t> bytes = w.bytes();
  auto g = reparse(bytes);
  EXPECT_EQ(g->get_int("k"), 2);
  EXPECT_EQ(g->keys(), (std::vector<std::string_view>{"k", "k2"}));
}

}  // namespace
}  // namespace longctx::io
