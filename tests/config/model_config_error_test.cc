// config.json errors: each names the file and the field, with the right ErrorKind.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <vector>

#include "config/model_config.h"
#include "io/test_util.h"

namespace longctx {
namespace {

using io::testing::expect_error;

nlohmann::json base() {
  return nlohmann::json::parse(R"({"model_type": "llama", "hidden_size": 256,
      "intermediate_size": 512, "num_hidden_layers": 2, "num_attention_heads": 4,
      "num_key_value_heads": 2, "vocab_size": 1000})");
}

void expect_config_error(const nlohmann::json& j, std::initializer_list<std::string> parts,
                         ErrorKind kind = ErrorKind::kConfig) {
  std::vector<std::string> all(parts);
  all.push_back("cfg.json");
  expect_error([&] { parse_model_config(j.dump(), "cfg.json"); }, kind, all);
}

TEST(ConfigErrors, BaseIsValid) { EXPECT_NO_THROW(parse_model_config(base().dump(), "cfg.json")); }

TEST(ConfigErrors, EachRequiredFieldMissing) {
  for (const char* field : {"hidden_size", "intermediate_size", "num_hidden_layers",
                            "num_attention_heads", "vocab_size", "model_type"}) {
    SCOPED_TRACE(field);
    auto j = base();
    j.erase(field);
    expect_config_error(j, {std::string("\"") + field + "\"", "missing"});
    j[field] = nullptr;
    expect_config_error(j, {std::string("\"") + field + "\"", "missing"});
  }
}

TEST(ConfigErrors, WrongJsonTypes) {
  for (const char* field :
       {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
        "vocab_size", "num_key_value_heads", "head_dim", "max_position_embeddings"}) {
    SCOPED_TRACE(field);
    auto j = base();
    j[field] = "big";
    expect_config_error(j, {std::string("\"") + field + "\"", "integer", "\"big\""});
    j[field] = 64.5;
    expect_config_error(j, {std::string("\"") + field + "\"", "integer"});
  }
  auto j = base();
  j["tie_word_embeddings"] = "yes";
  expect_config_error(j, {"\"tie_word_embeddings\"", "true or false"});
  j = base();
  j["rms_norm_eps"] = "small";
  expect_config_error(j, {"\"rms_norm_eps\"", "number"});
  j = base();
  j["model_type"] = 7;
  expect_config_error(j, {"\"model_type\"", "string"});
  j = base();
  j["eos_token_id"] = {2, "x"};
  expect_config_error(j, {"\"eos_token_id\"", "token id"});
  j = base();
  j["rope_scaling"] = "linear";
  expect_config_error(j, {"\"rope_scaling\"", "object"});
}

TEST(ConfigErrors, ZeroOrNegativeSizes) {
  for (const char* field : {"hidden_size", "intermediate_size", "num_hidden_layers",
                            "num_attention_heads", "vocab_size", "num_key_value_heads"}) {
    SCOPED_TRACE(field);
    auto j = base();
    j[field] = 0;
    expect_config_error(j, {std::string("\"") + field + "\"", "positive"});
    j[field] = -4;
    expect_config_error(j, {std::string("\"") + field + "\"", "positive"});
  }
}

TEST(ConfigErrors, GarbageSizes) {
  auto j = base();
  j["hidden_size"] = (int64_t{1} << 20) + 1;
  expect_config_error(j, {"\"hidden_size\"", "beyond any real model"});
  j = base();
  j["vocab_size"] = uint64_t{18446744073709551615u};
  expect_config_error(j, {"\"vocab_size\"", "beyond any real model"});
}

TEST(ConfigErrors, HeadsNotDivisibleByKvHeads) {
  auto j = base();
  j["num_key_value_heads"] = 3;
  expect_config_error(j, {"\"num_key_value_heads\"", "divide", "4"});
  // Qwen2Config's class default of 32 KV heads does not divide 28 heads.
  j = base();
  j["model_type"] = "qwen2";
  j["num_attention_heads"] = 28;
  j["hidden_size"] = 28 * 64;
  j.erase("num_key_value_heads");
  expect_config_error(j, {"\"num_key_value_heads\"", "32"});
}

TEST(ConfigErrors, HeadDim) {
  auto j = base();
  j["num_attention_heads"] = 6;  // 256 / 6 is not whole
  j["num_key_value_heads"] = 6;
  expect_config_error(j, {"\"hidden_size\"", "divisible", "head_dim"});
  j["head_dim"] = 43;
  expect_config_error(j, {"\"head_dim\"", "even"});
  j["head_dim"] = 42;
  EXPECT_EQ(parse_model_config(j.dump(), "cfg.json").head_dim, 42);
}

TEST(ConfigErrors, ImpossibleValues) {
  auto j = base();
  j["rms_norm_eps"] = 0;
  expect_config_error(j, {"\"rms_norm_eps\""});
  j = base();
  j["rope_theta"] = -1.0;
  expect_config_error(j, {"\"rope_theta\""});
  j = base();
  j["partial_rotary_factor"] = 1.5;
  expect_config_error(j, {"\"partial_rotary_factor\""});
  j = base();
  j["bos_token_id"] = 1000;  // vocab_size is 1000
  expect_config_error(j, {"\"bos_token_id\""});
  j = base();
  j["model_type"] = "mistral";
  j["sliding_window"] = -5;
  expect_config_error(j, {"\"sliding_window\""});
  j = base();
  j["model_type"] = "qwen2";
  j["layer_types"] = {"full_attention"};
  expect_config_error(j, {"\"layer_types\""});
}

TEST(ConfigErrors, UnknownModelTypeListsSupportedAndClosest) {
  auto j = base();
  j["model_type"] = "mistrall";
  expect_config_error(j, {"\"mistrall\"", "llama, mistral, qwen2, phi3", "closest: mistral"},
                      ErrorKind::kUnsupported);
  j["model_type"] = "qwen2_moe";
  expect_config_error(j, {"closest: qwen2"}, ErrorKind::kUnsupported);
  j["model_type"] = "gpt2";
  expect_config_error(j, {"\"gpt2\"", "not supported"}, ErrorKind::kUnsupported);
}

TEST(ConfigErrors, InvalidJsonNamesFileAndPosition) {
  expect_error([] { parse_model_config("{\n  \"hidden_size\": 64,\n  oops\n}", "cfg.json"); },
               ErrorKind::kFormat, {"cfg.json", "invalid JSON", "line 3", "column"});
  expect_error([] { parse_model_config("[1, 2]", "cfg.json"); }, ErrorKind::kFormat,
               {"cfg.json", "object"});
  expect_error([] { parse_model_config("", "cfg.json"); }, ErrorKind::kFormat, {"cfg.json"});
}

TEST(ConfigErrors, MissingFile) {
  io::testing::TempDir dir;
  expect_error([&] { load_model_config(dir.path()); }, ErrorKind::kIo,
               {dir.path() + "/config.json", "config.json"});
  io::testing::write_bytes(dir.file("config.json"), "{\"model_type\": \"llama\",");
  expect_error([&] { load_model_config(dir.path()); }, ErrorKind::kFormat,
               {dir.path() + "/config.json", "invalid JSON"});
}

// Malformed rope_scaling: each refused with a message naming the field (base(): head_dim 64, so
// rot_dim / 2 = 32 factors for longrope).
TEST(ConfigErrors, RopeScalingMalformed) {
  auto with = [](nlohmann::json rs, const char* type = "llama") {
    auto j = base();
    j["model_type"] = type;
    j["rope_scaling"] = std::move(rs);
    return j;
  };
  const std::vector<double> f32(32, 1.0), f31(31, 1.0);
  // unknown type
  expect_config_error(with({{"rope_type", "mrope"}, {"factor", 2.0}}),
                      {"\"rope_scaling.rope_type\"", "\"mrope\"", "longrope"},
                      ErrorKind::kUnsupported);
  expect_config_error(with({{"type", "ntk_yarn"}, {"factor", 2.0}}),
                      {"\"rope_scaling.type\"", "\"ntk_yarn\""}, ErrorKind::kUnsupported);
  // no type at all, or not a string
  expect_config_error(with({{"factor", 2.0}}), {"\"rope_scaling.rope_type\"", "missing"});
  expect_config_error(with({{"type", 3}}), {"\"rope_scaling.type\"", "string"});
  // missing fields, per type
  expect_config_error(with({{"type", "linear"}}), {"\"rope_scaling.factor\"", "missing", "linear"});
  expect_config_error(with({{"type", "dynamic"}}), {"\"rope_scaling.factor\"", "missing"});
  expect_config_error(with({{"rope_type", "yarn"}, {"original_max_position_embeddings", 4096}}),
                      {"\"rope_scaling.factor\"", "missing", "yarn"});
  for (const char* field : {"factor", "low_freq_factor", "high_freq_factor",
                            "original_max_position_embeddings"}) {
    SCOPED_TRACE(field);
    nlohmann::json rs = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                         {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
    EXPECT_NO_THROW(parse_model_config(with(rs).dump(), "cfg.json"));
    rs.erase(field);
    expect_config_error(with(rs), {std::string("\"rope_scaling.") + field + "\"", "missing"});
  }
  expect_config_error(with({{"type", "longrope"}, {"long_factor", f32}}),
                      {"\"rope_scaling.short_factor\"", "missing"});
  expect_config_error(with({{"type", "longrope"}, {"short_factor", f32}}),
                      {"\"rope_scaling.long_factor\"", "missing"});
  // wrong factor-array length, type or entries
  expect_config_error(with({{"type", "longrope"}, {"short_factor", f32}, {"long_factor", f31}},
                           "phi3"),
                      {"\"rope_scaling.long_factor\"", "31 entries", "32"});
  expect_config_error(with({{"type", "su"}, {"short_factor", f31}, {"long_factor", f32}}, "phi3"),
                      {"\"rope_scaling.short_factor\"", "31 entries"});
  expect_config_error(with({{"type", "longrope"}, {"short_factor", 1.0}, {"long_factor", f32}}),
                      {"\"rope_scaling.short_factor\"", "list"});
  auto bad = f32;
  bad[5] = -1.0;
  expect_config_error(with({{"type", "longrope"}, {"short_factor", f32}, {"long_factor", bad}}),
                      {"\"rope_scaling.long_factor\"", "entry 5"});
  // wrong JSON types and impossible values
  expect_config_error(with({{"type", "linear"}, {"factor", "2"}}),
                      {"\"rope_scaling.factor\"", "number"});
  expect_config_error(with({{"type", "linear"}, {"factor", 0.0}}),
                      {"\"rope_scaling.factor\"", "positive"});
  expect_config_error(with({{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 4.0},
                            {"high_freq_factor", 1.0}, {"original_max_position_embeddings", 8192}}),
                      {"\"rope_scaling.high_freq_factor\""});
  expect_config_error(with({{"rope_type", "yarn"}, {"factor", 4.0}, {"truncate", "no"}}),
                      {"\"rope_scaling.truncate\"", "true or false"});
}

// Phi3Config renames "su" and "yarn" to longrope; other families keep yarn.
TEST(ConfigErrors, RopeScalingAliases) {
  auto j = base();
  const std::vector<double> f32(32, 1.5);
  j["model_type"] = "phi3";
  j["rope_scaling"] = {{"type", "yarn"}, {"short_factor", f32}, {"long_factor", f32}};
  EXPECT_EQ(parse_model_config(j.dump(), "cfg.json").rope_scaling.type, RopeType::kLongRope);
  j["rope_scaling"]["type"] = "su";
  EXPECT_EQ(parse_model_config(j.dump(), "cfg.json").rope_scaling.type, RopeType::kLongRope);
  j["model_type"] = "llama";
  j["rope_scaling"] = {{"type", "yarn"}, {"factor", 4.0}};
  EXPECT_EQ(parse_model_config(j.dump(), "cfg.json").rope_scaling.type, RopeType::kYarn);
}

}  // namespace
}  // namespace longctx

namespace longctx {
namespace {

// Issue 19: every config field that changes the numbers is honoured or refused by name.
TEST(ConfigNumerics, HiddenActOtherThanSiluIsRefusedNamingTheSupportedOnes) {
  for (const char* act : {"gelu", "gelu_new", "relu", "SILU", ""}) {
    SCOPED_TRACE(act);
    auto j = base();
    j["hidden_act"] = act;
    expect_config_error(j, {"\"hidden_act\"", "\"silu\"", "\"swish\""}, ErrorKind::kUnsupported);
  }
  auto j = base();
  j["hidden_act"] = "swish";  // transformers' ACT2FN maps it to SiLU
  EXPECT_EQ(parse_model_config(j.dump(), "cfg.json").hidden_act, "silu");
  j["hidden_act"] = 5;
  expect_config_error(j, {"\"hidden_act\"", "string"});
}

TEST(ConfigNumerics, MlpBiasIsRefusedWhereTheFamilyReadsIt) {
  auto j = base();
  j["mlp_bias"] = true;
  expect_config_error(j, {"\"mlp_bias\""}, ErrorKind::kUnsupported);
  j["mlp_bias"] = false;
  EXPECT_NO_THROW(parse_model_config(j.dump(), "cfg.json"));
  // MistralConfig has no mlp_bias: transformers ignores the key, and so does longctx (a bias
  // tensor in the checkpoint is refused by the checkpoint check).
  j["model_type"] = "mistral";
  j["mlp_bias"] = true;
  EXPECT_FALSE(parse_model_config(j.dump(), "cfg.json").mlp_bias);
}

TEST(ConfigNumerics, OtherFamiliesVariantsAreRefusedUnlessNeutral) {
  const std::vector<std::pair<const char*, nlohmann::json>> set = {
      {"attn_logit_softcapping", 50.0},
      {"final_logit_softcapping", 30.0},
      {"use_qk_norm", true},
      {"embedding_multiplier", 12.0},
      {"residual_multiplier", 0.22},
      {"no_rope_layers", {1, 0}},
  };
  for (const auto& [key, value] : set) {
    SCOPED_TRACE(key);
    auto j = base();
    j[key] = value;
    expect_config_error(j, {std::string("\"") + key + "\"", "does not compute"},
                        ErrorKind::kUnsupported);
  }
  // Values that compute nothing are accepted.
  auto j = base();
  j["attn_logit_softcapping"] = nullptr;
  j["use_qk_norm"] = false;
  j["embedding_multiplier"] = 1.0;
  j["no_rope_layers"] = nlohmann::json::array();
  EXPECT_NO_THROW(parse_model_config(j.dump(), "cfg.json"));
}

}  // namespace
}  // namespace longctx
