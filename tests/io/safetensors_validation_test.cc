// Malformed and unusual safetensors files: each is an Error naming the file and the problem.
#include <gtest/gtest.h>

#include <vector>

#include "io/test_util.h"
#include "io/weights.h"

namespace longctx::io {
namespace {

using testing::expect_error;
using testing::safetensors_bytes;
using testing::TempDir;
using testing::write_bytes;

class SafetensorsValidation : public ::testing::Test {
 protected:
  // Writes a file with `header` and `data_bytes` of data; returns its path.
  std::string make(const std::string& header, size_t data_bytes, uint64_t header_len = UINT64_MAX) {
    std::string path = dir_.file("model.safetensors");
    write_bytes(path, safetensors_bytes(header, data_bytes, header_len));
    return path;
  }
  void expect_open_error(const std::string& path, ErrorKind kind,
                         std::initializer_list<std::string> parts) {
    expect_error([&] { WeightSource::open_file(path); }, kind, parts);
  }
  TempDir dir_;
};

TEST_F(SafetensorsValidation, FileShorterThanEightBytes) {
  std::string path = dir_.file("model.safetensors");
  write_bytes(path, "abc");
  expect_open_error(path, ErrorKind::kIo, {path, "3 bytes", "re-download"});
}

TEST_F(SafetensorsValidation, EmptyFile) {
  std::string path = dir_.file("model.safetensors");
  write_bytes(path, "");
  expect_open_error(path, ErrorKind::kIo, {path, "0 bytes"});
}

TEST_F(SafetensorsValidation, HeaderLongerThanFile) {
  std::string path = make("{}", 0, 4096);
  expect_open_error(path, ErrorKind::kIo, {path, "truncated", "4096"});
}

TEST_F(SafetensorsValidation, AbsurdHeaderLength) {
  std::string path = make("{}", 0, uint64_t{1} << 40);
  expect_open_error(path, ErrorKind::kFormat, {path, "absurd"});
}

TEST_F(SafetensorsValidation, HeaderNotJson) {
  std::string path = make("{\"a\": \n  [1, 2}", 0);
  expect_open_error(path, ErrorKind::kFormat, {path, "invalid JSON", "line 2"});
}

TEST_F(SafetensorsValidation, HeaderNotObject) {
  std::string path = make("[1, 2, 3]", 0);
  expect_open_error(path, ErrorKind::kFormat, {path, "not a JSON object"});
}

TEST_F(SafetensorsValidation, EntryLacksDtype) {
  std::string path = make(R"({"w": {"shape": [2], "data_offsets": [0, 8]}})", 8);
  expect_open_error(path, ErrorKind::kFormat, {path, "tensor w", "\"dtype\""});
}

TEST_F(SafetensorsValidation, EntryLacksShape) {
  std::string path = make(R"({"w": {"dtype": "F32", "data_offsets": [0, 8]}})", 8);
  expect_open_error(path, ErrorKind::kFormat, {path, "tensor w", "\"shape\""});
}

TEST_F(SafetensorsValidation, EntryLacksDataOffsets) {
  std::string path = make(R"({"w": {"dtype": "F32", "shape": [2]}})", 8);
  expect_open_error(path, ErrorKind::kFormat, {path, "tensor w", "\"data_offsets\""});
}

TEST_F(SafetensorsValidation, EntryNotObject) {
  std::string path = make(R"({"w": 5})", 8);
  expect_open_error(path, ErrorKind::kFormat, {path, "tensor w"});
}

TEST_F(SafetensorsValidation, UnsupportedDtypesRejectedWhenUsed) {
  std::string path = make(R"({"__metadata__": {"format": "pt"},
      "ok": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "q": {"dtype": "I8", "shape": [4], "data_offsets": [8, 12]},
      "d": {"dtype": "F64", "shape": [1], "data_offsets": [16, 24]},
      "f8": {"dtype": "F8_E4M3", "shape": [2, 2], "data_offsets": [24, 28]}})",
                          28);
  auto w = WeightSource::open_file(path);
  EXPECT_EQ(w->tensors().size(), 1u);
  EXPECT_EQ(w->get("ok").numel(), 2);
  EXPECT_EQ(w->metadata().at("format"), "pt");
  ASSERT_EQ(w->unsupported().size(), 3u);
  EXPECT_EQ(w->unsupported().at("f8"), "F8_E4M3");
  for (auto [name, dtype] : std::vector<std::pair<std::string, std::string>>{
           {"q", "I8"}, {"d", "F64"}, {"f8", "F8_E4M3"}}) {
    expect_error([&] { w->get(name); }, ErrorKind::kUnsupported, {path, "tensor " + name, dtype});
    expect_error([&] { w->find(name); }, ErrorKind::kUnsupported, {"F32, F16 and BF16"});
  }
  EXPECT_EQ(w->find("absent"), nullptr);
}

TEST_F(SafetensorsValidation, UnknownDtypeNameIsUnsupportedNotFatal) {
  std::string path = make(R"({"x": {"dtype": "Q4_ZZ", "shape": [3], "data_offsets": [0, 2]}})", 2);
  auto w = WeightSource::open_file(path);
  EXPECT_TRUE(w->tensors().empty());
  expect_error([&] { w->get("x"); }, ErrorKind::kUnsupported, {"tensor x", "Q4_ZZ"});
}

TEST_F(SafetensorsValidation, ReversedOffsets) {
  std::string path = make(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})", 8);
  expect_open_error(path, ErrorKind::kFormat, {path, "tensor w", "reversed"});
}

TEST_F(SafetensorsValidation, OffsetsPastDataSection) {
  std::string path = make(R"({"w": {"dtype": "F32", "shape": [16], "data_offsets": [0, 64]}})", 32);
  expect_open_error(path, ErrorKind::kIo,
                    {path,
                     "file is truncated: tensor w needs bytes [0,64) but the data section has "
                     "only 32 bytes; re-download the file"});
}

TEST_F(SafetensorsValidation, OffsetsInconsistentWithShape) {
  std::string path =
      make(R"({"w": {"dtype": "F16", "shape": [2, 3], "data_offsets": [0, 24]}})", 24);
  expect_open_error(path, ErrorKind::kFormat, {path, "tensor w", "12 bytes", "span 24"});
}

TEST_F(SafetensorsValidation, NegativeDimension) {
  std::string path = make(R"({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", 8);
  expect_open_error(path, ErrorKind::kFormat, {path, "tensor w", "negative"});
}

TEST_F(SafetensorsValidation, NonIntegerOffsets) {
  std::string path = make(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, "8"]}})", 8);
  expect_open_error(path, ErrorKind::kFormat, {path, "tensor w", "data_offsets"});
}

TEST_F(SafetensorsValidation, OverlappingTensors) {
  std::string path = make(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                               "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                          12);
  expect_open_error(path, ErrorKind::kFormat, {path, "overlap"});
}

TEST_F(SafetensorsValidation, MetadataNotObject) {
  std::string path = make(R"({"__metadata__": 3})", 0);
  expect_open_error(path, ErrorKind::kFormat, {path, "__metadata__"});
}

TEST_F(SafetensorsValidation, TruncatedRealFile) {
  std::vector<float> v(100, 1.5f);
  std::string full = dir_.file("full.safetensors");
  write_safetensors(full, {{"big", DType::kF32, {10, 10}, v.data()}});
  std::string cut = dir_.file("cut.safetensors");
  std::ifstream in(full, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  write_bytes(cut, bytes.substr(0, bytes.size() - 100));
  expect_open_error(cut, ErrorKind::kIo,
                    {cut, "file is truncated: tensor big needs bytes [0,400)", "only 300 bytes"});
}

TEST_F(SafetensorsValidation, EmptyHeaderObjectIsValid) {
  auto w = WeightSource::open_file(make("{}  ", 0));
  EXPECT_TRUE(w->tensors().empty());
  EXPECT_EQ(w->total_bytes(), 0u);
}

}  // namespace
}  // namespace longctx::io
