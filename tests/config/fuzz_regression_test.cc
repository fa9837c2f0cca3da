// Inputs the libFuzzer harness fuzz/model_config found, or their classes: each is a clean Error
// naming the file and the field, not a crash or undefined behaviour.
#include <gtest/gtest.h>

#include <string>

#include "config/model_config.h"
#include "io/test_util.h"

namespace longctx {
namespace {

using io::testing::expect_error;

std::string config(const std::string& extra) {
  return R"({"model_type":"llama","hidden_size":64,"intermediate_size":128,)"
         R"("num_hidden_layers":2,"num_attention_heads":4,"vocab_size":300)" +
         extra + "}";
}

TEST(ConfigFuzzRegression, Valid) { EXPECT_NO_THROW(parse_model_config(config(""), "cfg.json")); }

// nlohmann threw out_of_range for a number beyond double, which escaped as std::terminate.
TEST(ConfigFuzzRegression, NumberBeyondDouble) {
  expect_error([] { parse_model_config(config(R"(,"rope_theta":1E400)"), "cfg.json"); },
               ErrorKind::kFormat, {"cfg.json", "invalid JSON"});
}

// original_max_position_embeddings of 1e30 was converted to int64 (undefined behaviour).
TEST(ConfigFuzzRegression, HugeOriginalContext) {
  for (const char* type : {"llama3", "yarn"}) {
    const std::string rs = std::string(R"(,"rope_scaling":{"rope_type":")") + type +
                           R"(","factor":8,"low_freq_factor":1,"high_freq_factor":4,)"
                           R"("original_max_position_embeddings":1e30})";
    expect_error([&] { parse_model_config(config(rs), "cfg.json"); }, ErrorKind::kConfig,
                 {"cfg.json", "rope_scaling.original_max_position_embeddings", "at most"});
  }
  const std::string ok = R"(,"rope_scaling":{"rope_type":"llama3","factor":8,)"
                         R"("low_freq_factor":1,"high_freq_factor":4,)"
                         R"("original_max_position_embeddings":64})";
  EXPECT_EQ(
      parse_model_config(config(ok), "cfg.json").rope_scaling.original_max_position_embeddings, 64);
}

// A rope_theta of 1 with YaRN scaling divided by log(1) = 0 in the correction range: NaN
// frequencies (the fuzzer's input, minimized). A base of at most 1 is refused for every type.
TEST(ConfigFuzzRegression, RopeThetaOfOneOrLess) {
  for (const char* theta : {"1", "1.0", "0.5", "1e-30"})
    for (const char* rs : {"", R"(,"rope_scaling":{"rope_type":"yarn","factor":4.0,)"
                               R"("original_max_position_embeddings":64})"})
      expect_error(
          [&] {
            parse_model_config(config(std::string(R"(,"rope_theta":)") + theta + rs), "cfg.json");
          },
          ErrorKind::kConfig, {"cfg.json", "rope_theta", "above 1"});
  EXPECT_DOUBLE_EQ(parse_model_config(config(R"(,"rope_theta":1.5)"), "cfg.json").rope_theta, 1.5);
}

// A longrope factor of 2e76 (or a rope_theta of 1e300) made frequencies underflow to 0 in float:
// RoPE silently lost position information. Factors are bounded by 1e6, rope_theta by 1e12.
TEST(ConfigFuzzRegression, AbsurdRopeNumbers) {
  const std::string factors =
      R"("short_factor":[1,1,1,1,1,1,1,1],"long_factor":[2,2,2,2,2e76,2,2,2])";
  expect_error(
      [&] {
        parse_model_config(config(R"(,"rope_scaling":{"type":"longrope",)" + factors + "}"),
                           "cfg.json");
      },
      ErrorKind::kConfig, {"cfg.json", "rope_scaling.long_factor", "entry 4", "at most 1e6"});
  expect_error(
      [] {
        parse_model_config(config(R"(,"rope_scaling":{"type":"linear","factor":1e300})"),
                           "cfg.json");
      },
      ErrorKind::kConfig, {"cfg.json", "rope_scaling.factor", "at most 1e6"});
  expect_error([] { parse_model_config(config(R"(,"rope_theta":1e300)"), "cfg.json"); },
               ErrorKind::kConfig, {"cfg.json", "rope_theta", "at most 1e12"});
  expect_error(
      [] {
        parse_model_config(
            config(
                R"(,"rope_scaling":{"rope_type":"yarn","factor":4,"mscale":1,"mscale_all_dim":-10})"),
            "cfg.json");
      },
      ErrorKind::kConfig, {"cfg.json", "rope_scaling.mscale", "must be positive"});
  EXPECT_NO_THROW(parse_model_config(
      config(R"(,"rope_theta":1e8,"rope_scaling":{"type":"linear","factor":1e6})"), "cfg.json"));
}

// rms_norm_eps 1e-50 passed the (0, 1) check in double and became 0 as a float.
TEST(ConfigFuzzRegression, EpsThatRoundsToZeroInFloat) {
  expect_error([] { parse_model_config(config(R"(,"rms_norm_eps":1e-50)"), "cfg.json"); },
               ErrorKind::kConfig, {"cfg.json", "rms_norm_eps", "at least 1e-30"});
  EXPECT_GT(parse_model_config(config(R"(,"rms_norm_eps":1e-30)"), "cfg.json").rms_norm_eps, 0.f);
}

TEST(ConfigFuzzRegression, DeepNestingIsRefused) {
  const std::string deep = R"(,"x":)" + std::string(1000, '[') + std::string(1000, ']');
  expect_error([&] { parse_model_config(config(deep), "cfg.json"); }, ErrorKind::kFormat,
               {"cfg.json", "nested"});
}

}  // namespace
}  // namespace longctx
