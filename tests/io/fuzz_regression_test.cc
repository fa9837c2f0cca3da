// Inputs the libFuzzer harnesses (fuzz/safetensors, fuzz/safetensors_index) found, or their
// classes: each is a clean Error naming the file, not a crash. Also checks that the in-memory
// entry points the harnesses use agree with the file loaders.
#include <gtest/gtest.h>

#include <string>

#include "io/json_util.h"
#include "io/test_util.h"
#include "io/weights.h"

namespace longctx::io {
namespace {

using testing::expect_error;
using testing::safetensors_bytes;

std::unique_ptr<WeightSource> parse(const std::string& bytes) {
  return WeightSource::parse_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()),
                                         bytes.size(), "fuzz.safetensors");
}

TEST(SafetensorsFuzzRegression, InMemoryParseReadsTensors) {
  const std::string f = safetensors_bytes(
      R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
      8);
  const auto w = parse(f);
  ASSERT_EQ(w->tensors().size(), 1u);
  const TensorInfo& t = w->get("w");
  EXPECT_EQ(t.nbytes, 8u);
  EXPECT_EQ(static_cast<const char*>(t.data), f.data() + f.size() - 8);
  EXPECT_EQ(w->metadata().at("format"), "pt");
  EXPECT_TRUE(w->files().empty());
}

// Found by fuzz/safetensors: "1111111E1111111111" is valid JSON syntax but beyond double, and
// nlohmann threw out_of_range past parse_json_or_throw (std::terminate).
TEST(SafetensorsFuzzRegression, NumberBeyondDouble) {
  const std::string f =
      safetensors_bytes(R"({"a":{"dtype":"F32","shape":[1E400],"data_offsets":[0,4]}})", 4);
  expect_error([&] { parse(f); }, ErrorKind::kFormat, {"fuzz.safetensors", "invalid JSON"});
}

// A header of deeply nested arrays parsed, then overflowed the stack when the shape was printed
// in the error message.
TEST(SafetensorsFuzzRegression, DeepNestingIsRefused) {
  const int depth = 100000;
  const std::string header = R"({"a":{"dtype":"F32","shape":)" + std::string(depth, '[') +
                             std::string(depth, ']') + R"(,"data_offsets":[0,0]}})";
  expect_error([&] { parse(safetensors_bytes(header, 0)); }, ErrorKind::kFormat,
               {"fuzz.safetensors", "nested more than 256"});
  // Nesting up to the limit is still JSON like any other.
  EXPECT_NO_THROW(
      parse_json_or_throw(std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']'), "x"));
}

TEST(SafetensorsIndexFuzzRegression, ParsesAndRefuses) {
  const auto shards = parse_safetensors_index(
      R"({"weight_map":{"a":"s1.safetensors","b":"s2.safetensors","c":"s1.safetensors"}})",
      "index.json");
  ASSERT_EQ(shards.size(), 2u);
  EXPECT_EQ(shards.at("s1.safetensors"), (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(shards.at("s2.safetensors"), (std::vector<std::string>{"b"}));
  expect_error([] { parse_safetensors_index(R"({"weight_map":{"a":"../x"}})", "index.json"); },
               ErrorKind::kFormat, {"index.json", "inside the folder"});
  expect_error([] { parse_safetensors_index(R"({"weight_map":{"a":1E999}})", "index.json"); },
               ErrorKind::kFormat, {"index.json", "invalid JSON"});
}

}  // namespace
}  // namespace longctx::io
