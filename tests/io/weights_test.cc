// WeightSource: write/read round trip, sharded folders, folder errors, the real tiny checkpoint.
#include "io/weights.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <vector>

#include "io/test_util.h"

namespace longctx::io {
namespace {

using testing::expect_error;
using testing::TempDir;
using testing::write_bytes;

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST(MappedFile, MapsContentsAndEmptyFiles) {
  TempDir dir;
  write_bytes(dir.file("a"), "hello");
  auto f = MappedFile::open(dir.file("a"));
  ASSERT_EQ(f->size(), 5u);
  EXPECT_EQ(std::memcmp(f->data(), "hello", 5), 0);
  f->advise(f->data(), f->size(), MappedFile::Advice::kWillNeed);
  f->advise(f->data() + 2, 100, MappedFile::Advice::kDontNeed);  // clipped
  EXPECT_EQ(f->data()[4], 'o');

  write_bytes(dir.file("empty"), "");
  auto e = MappedFile::open(dir.file("empty"));
  EXPECT_EQ(e->size(), 0u);
  EXPECT_EQ(e->data(), nullptr);
}

TEST(MappedFile, MakeResidentKeepsEveryByte) {
  TempDir dir;
  std::string bytes(3 * HugePageBuffer::kHugePage + 4097, '\0');  // several copy steps, ragged tail
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>((i * 131) >> 3);
  write_bytes(dir.file("big"), bytes);
  auto f = MappedFile::open(dir.file("big"));
  EXPECT_FALSE(f->resident());
  ASSERT_TRUE(f->make_resident());
  EXPECT_TRUE(f->resident());
  EXPECT_TRUE(f->make_resident());  // a second call keeps the copy
  ASSERT_EQ(f->size(), bytes.size());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(f->data()) % HugePageBuffer::kHugePage, 0u);
  EXPECT_EQ(std::memcmp(f->data(), bytes.data(), bytes.size()), 0);
  f->advise(f->data(), f->size(), MappedFile::Advice::kDontNeed);  // ignored: would zero a copy
  EXPECT_EQ(std::memcmp(f->data(), bytes.data(), bytes.size()), 0);

  write_bytes(dir.file("empty"), "");
  auto e = MappedFile::open(dir.file("empty"));
  EXPECT_FALSE(e->make_resident());  // nothing to copy: stays as it is
  EXPECT_EQ(e->data(), nullptr);
}

TEST(MappedFile, MissingFileAndFolderAreIoErrors) {
  TempDir dir;
  expect_error([&] { MappedFile::open(dir.file("nope")); }, ErrorKind::kIo, {dir.file("nope")});
  expect_error([&] { MappedFile::open(dir.path()); }, ErrorKind::kIo, {"not a regular file"});
}

TEST(WriteSafetensors, RoundTripAllDtypesAndMetadata) {
  TempDir dir;
  std::vector<float> f32 = {1.f, -2.5f, 3.25f, 0.f, 1e-3f, 7.f};
  std::vector<uint16_t> f16(5), bf16(3);
  from_f32(DType::kF16, f32.data(), f16.data(), f16.size());
  from_f32(DType::kBF16, f32.data(), bf16.data(), bf16.size());
  std::string path = dir.file("rt.safetensors");
  write_safetensors(path,
                    {{"a.f32", DType::kF32, {2, 3}, f32.data()},
                     {"b.f16", DType::kF16, {5}, f16.data()},
                     {"c.bf16", DType::kBF16, {3, 1}, bf16.data()},
                     {"d.empty", DType::kF32, {0, 4}, nullptr},
                     {"e.scalar", DType::kF32, {}, f32.data() + 2}},
                    {{"format", "pt"}, {"note", "round trip"}});
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  uint64_t hlen = 0;
  std::memcpy(&hlen, read_all(path).data(), 8);
  EXPECT_EQ(hlen % 8, 0u) << "header padded to 8 bytes";

  auto w = WeightSource::open_file(path);
  ASSERT_EQ(w->tensors().size(), 5u);
  EXPECT_EQ(w->metadata().at("format"), "pt");
  EXPECT_EQ(w->metadata().at("note"), "round trip");
  const TensorInfo& a = w->get("a.f32");
  EXPECT_EQ(a.type, TensorType::kF32);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a.nbytes, 24u);
  EXPECT_EQ(a.file, path);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data) % 4, 0u);
  EXPECT_EQ(std::memcmp(a.data, f32.data(), 24), 0);
  const TensorInfo& b = w->get("b.f16");
  EXPECT_EQ(b.type, TensorType::kF16);
  EXPECT_EQ(std::memcmp(b.data, f16.data(), 10), 0);
  const TensorInfo& c = w->get("c.bf16");
  EXPECT_EQ(c.type, TensorType::kBF16);
  EXPECT_EQ(c.shape, (std::vector<int64_t>{3, 1}));
  std::vector<float> back(3);
  to_f32(DType::kBF16, c.data, back.data(), 3);
  EXPECT_FLOAT_EQ(back[1], -2.5f);
  EXPECT_EQ(w->get("d.empty").numel(), 0);
  EXPECT_EQ(w->get("e.scalar").numel(), 1);
  EXPECT_EQ(*static_cast<const float*>(w->get("e.scalar").data), 3.25f);
  EXPECT_EQ(w->total_bytes(), 24u + 10u + 6u + 0u + 4u);
  EXPECT_EQ(w->mapped_bytes(), read_all(path).size());
}

TEST(WriteSafetensors, RejectsBadInput) {
  TempDir dir;
  float x[2] = {1, 2};
  std::string p = dir.file("bad.safetensors");
  expect_error(
      [&] {
        write_safetensors(p, {{"a", DType::kF32, {2}, x}, {"a", DType::kF32, {2}, x}});
      },
      ErrorKind::kInvalidArg, {"'a'", "unique"});
  expect_error(
      [&] {
        write_safetensors(p, {{"a", DType::kF32, {-1}, x}});
      },
      ErrorKind::kInvalidArg, {"negative"});
  expect_error(
      [&] {
        write_safetensors(p, {{"a", DType::kF32, {2}, nullptr}});
      },
      ErrorKind::kInvalidArg, {"no data"});
  expect_error([&] { write_safetensors(dir.file("no/such/dir.safetensors"), {}); }, ErrorKind::kIo,
               {"cannot create"});
  EXPECT_FALSE(std::filesystem::exists(p));
}

// Two shards and an index, as save_pretrained writes them.
class ShardedFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    write_safetensors(dir_.file("model-00001-of-00002.safetensors"),
                      {{"embed", DType::kF32, {2, 2}, a_}, {"l0.w", DType::kF32, {4}, a_}});
    write_safetensors(dir_.file("model-00002-of-00002.safetensors"),
                      {{"l1.w", DType::kF32, {3}, b_}, {"norm", DType::kF32, {1}, b_}});
  }
  void write_index(const std::string& weight_map) {
    write_bytes(dir_.file("model.safetensors.index.json"),
                R"({"metadata": {"total_size": 48}, "weight_map": )" + weight_map + "}");
  }
  static constexpr const char* kGoodMap = R"({"embed": "model-00001-of-00002.safetensors",
      "l0.w": "model-00001-of-00002.safetensors", "l1.w": "model-00002-of-00002.safetensors",
      "norm": "model-00002-of-00002.safetensors"})";
  float a_[4] = {1, 2, 3, 4};
  float b_[3] = {5, 6, 7};
  TempDir dir_;
};

TEST_F(ShardedFolder, LoadsAllShardsOnce) {
  write_index(kGoodMap);
  auto w = WeightSource::open_dir(dir_.path());
  EXPECT_EQ(w->files().size(), 2u);
  ASSERT_EQ(w->tensors().size(), 4u);
  EXPECT_EQ(w->get("l1.w").file, dir_.file("model-00002-of-00002.safetensors"));
  EXPECT_EQ(static_cast<const float*>(w->get("l1.w").data)[2], 7.f);
  EXPECT_EQ(static_cast<const float*>(w->get("l0.w").data)[3], 4.f);
  EXPECT_EQ(w->total_bytes(), 16u + 16u + 12u + 4u);
  EXPECT_EQ(w->origin(), dir_.path());
}

TEST_F(ShardedFolder, MakeResidentMovesEveryTensor) {
  write_index(kGoodMap);
  auto w = WeightSource::open_dir(dir_.path());
  const void* before = w->get("l1.w").data;
  EXPECT_EQ(w->make_resident(), w->mapped_bytes());
  for (const auto& f : w->files()) EXPECT_TRUE(f->resident());
  EXPECT_NE(w->get("l1.w").data, before);
  for (const auto& [name, t] : w->tensors()) {
    // Each tensor points into the copy of its own file, at its offset there.
    const MappedFile* owner = nullptr;
    for (const auto& f : w->files())
      if (f->path() == t.file) owner = f.get();
    ASSERT_NE(owner, nullptr) << name;
    EXPECT_EQ(static_cast<const uint8_t*>(t.data), owner->data() + t.offset) << name;
  }
  EXPECT_EQ(static_cast<const float*>(w->get("l1.w").data)[2], 7.f);
  EXPECT_EQ(static_cast<const float*>(w->get("l0.w").data)[3], 4.f);
}

TEST_F(ShardedFolder, MissingShardIsNamed) {
  write_index(R"({"embed": "model-00001-of-00002.safetensors",
                  "extra": "model-00003-of-00003.safetensors"})");
  expect_error([&] { WeightSource::open_dir(dir_.path()); }, ErrorKind::kIo,
               {"model-00003-of-00003.safetensors", "extra", "download all shard files"});
}

TEST_F(ShardedFolder, TensorListedButAbsentFromShard) {
  write_index(R"({"embed": "model-00001-of-00002.safetensors",
                  "ghost": "model-00002-of-00002.safetensors"})");
  expect_error([&] { WeightSource::open_dir(dir_.path()); }, ErrorKind::kFormat,
               {"tensor ghost", "model-00002-of-00002.safetensors", "does not contain"});
}

TEST_F(ShardedFolder, TensorInTwoShards) {
  float c[4] = {0, 0, 0, 0};
  write_safetensors(dir_.file("model-00002-of-00002.safetensors"),
                    {{"l1.w", DType::kF32, {3}, b_}, {"embed", DType::kF32, {2, 2}, c}});
  write_index(R"({"embed": "model-00001-of-00002.safetensors",
                  "l1.w": "model-00002-of-00002.safetensors"})");
  expect_error(
      [&] { WeightSource::open_dir(dir_.path()); }, ErrorKind::kFormat,
      {"tensor embed", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"});
}

TEST_F(ShardedFolder, BadIndexJson) {
  write_bytes(dir_.file("model.safetensors.index.json"), "{\"weight_map\": {,}}");
  expect_error([&] { WeightSource::open_dir(dir_.path()); }, ErrorKind::kFormat,
               {"model.safetensors.index.json", "invalid JSON", "line 1"});
  write_index("[]");
  expect_error([&] { WeightSource::open_dir(dir_.path()); }, ErrorKind::kFormat, {"weight_map"});
  write_index(R"({"embed": "../outside.safetensors"})");
  expect_error([&] { WeightSource::open_dir(dir_.path()); }, ErrorKind::kFormat,
               {"embed", "inside the folder"});
}

TEST_F(ShardedFolder, SingleFileWinsOverIndex) {
  write_index(kGoodMap);
  float z = 9;
  write_safetensors(dir_.file("model.safetensors"), {{"only", DType::kF32, {1}, &z}});
  auto w = WeightSource::open_dir(dir_.path());
  EXPECT_EQ(w->tensors().size(), 1u);
}

TEST(WeightFolder, NoWeightsNamesFolderAndExpectedFiles) {
  TempDir dir;
  expect_error([&] { WeightSource::open_dir(dir.path()); }, ErrorKind::kIo,
               {dir.path(), "model.safetensors", "model.safetensors.index.json"});
  write_bytes(dir.file("pytorch_model.bin"), "x");
  // PyTorch weights: an unsupported format, with the convert hint.
  expect_error([&] { WeightSource::open_dir(dir.path()); }, ErrorKind::kUnsupported,
               {"pytorch_model.bin", "safe_serialization=True"});
  expect_error([&] { WeightSource::open_dir(dir.file("missing")); }, ErrorKind::kIo,
               {dir.file("missing"), "does not exist"});
}

TEST(WeightFolder, GetOfAbsentTensorIsShapeError) {
  TempDir dir;
  float z = 1;
  write_safetensors(dir.file("model.safetensors"), {{"a", DType::kF32, {1}, &z}});
  auto w = WeightSource::open_dir(dir.path());
  EXPECT_EQ(w->find("lm_head.weight"), nullptr);
  expect_error([&] { w->get("lm_head.weight"); }, ErrorKind::kShape,
               {"lm_head.weight", dir.path()});
}

TEST(RealCheckpoint, Stories260K) {
  const std::string dir = std::string(LONGCTX_SHARED_DIR) + "/models/stories260K";
  auto w = WeightSource::open_dir(dir);
  EXPECT_EQ(w->tensors().size(), 47u);  // embed + 5 layers x 9 + final norm; lm_head is tied
  EXPECT_TRUE(w->unsupported().empty());
  EXPECT_EQ(w->metadata().at("format"), "pt");
  const TensorInfo& e = w->get("model.embed_tokens.weight");
  EXPECT_EQ(e.type, TensorType::kF32);
  EXPECT_EQ(e.shape, (std::vector<int64_t>{512, 64}));
  EXPECT_EQ(e.nbytes, 512u * 64u * 4u);
  struct Expect {
    std::string name;
    std::vector<int64_t> shape;
  };
  for (int l = 0; l < 5; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    for (const Expect& x : std::vector<Expect>{{"self_attn.q_proj.weight", {64, 64}},
                                               {"self_attn.k_proj.weight", {32, 64}},
                                               {"self_attn.v_proj.weight", {32, 64}},
                                               {"self_attn.o_proj.weight", {64, 64}},
                                               {"mlp.gate_proj.weight", {172, 64}},
                                               {"mlp.up_proj.weight", {172, 64}},
                                               {"mlp.down_proj.weight", {64, 172}},
                                               {"input_layernorm.weight", {64}},
                                               {"post_attention_layernorm.weight", {64}}}) {
      const TensorInfo& t = w->get(p + x.name);
      EXPECT_EQ(t.shape, x.shape) << t.name;
      EXPECT_EQ(t.type, TensorType::kF32) << t.name;
    }
  }
  EXPECT_EQ(w->get("model.norm.weight").shape, (std::vector<int64_t>{64}));
  EXPECT_EQ(w->find("lm_head.weight"), nullptr);
  EXPECT_EQ(w->total_bytes(), 1040128u);
  EXPECT_EQ(w->mapped_bytes(), 1044992u);
  // The mapping holds the file's bytes at the recorded offsets.
  const std::string bytes = read_all(dir + "/model.safetensors");
  const TensorInfo& n = w->get("model.norm.weight");
  EXPECT_EQ(n.offset, 8u + 4856u + 1039872u);
  EXPECT_EQ(std::memcmp(n.data, bytes.data() + n.offset, n.nbytes), 0);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(n.data) % 4, 0u);
}

}  // namespace
}  // namespace longctx::io
