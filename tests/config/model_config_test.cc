// config.json parsing: the shared tiny models, published configs of real checkpoints, defaults.
#include "config/model_config.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "config/published_configs.h"

namespace longctx {
namespace {

const std::string kShared = LONGCTX_SHARED_DIR;

std::vector<int64_t> windows(int n, int64_t w) { return std::vector<int64_t>(n, w); }

TEST(SharedConfigs, Stories260K) {
  ModelConfig c = load_model_config(kShared + "/models/stories260K");
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 172);
  EXPECT_EQ(c.num_hidden_layers, 5);
  EXPECT_EQ(c.num_attention_heads, 8);
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.max_position_embeddings, 512);
  EXPECT_FLOAT_EQ(c.rms_norm_eps, 1e-5f);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, std::vector<int>{2});
  EXPECT_EQ(c.torch_dtype, DType::kF32);
  EXPECT_EQ(c.rope_scaling_json, "");
  EXPECT_EQ(c.sliding_window, 0);
  EXPECT_EQ(c.layer_window, windows(5, 0));
  EXPECT_EQ(c.rot_dim(), 8);
}

TEST(SharedConfigs, BabyLlama) {
  ModelConfig c = load_model_config(kShared + "/models/babyllama-tok105/");
  EXPECT_EQ(c.hidden_size, 128);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.vocab_size, 105);
  EXPECT_EQ(c.max_position_embeddings, 256);
}

TEST(SharedConfigs, SmolLM2) {
  ModelConfig c = load_model_config(kShared + "/tokenizers/smollm2-bpe");
  EXPECT_EQ(c.hidden_size, 576);
  EXPECT_EQ(c.num_attention_heads, 9);
  EXPECT_EQ(c.num_key_value_heads, 3);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.num_hidden_layers, 30);
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_EQ(c.max_position_embeddings, 8192);
  EXPECT_DOUBLE_EQ(c.rope_theta, 100000.0);  // an integer in the file
  EXPECT_EQ(c.torch_dtype, DType::kBF16);
  EXPECT_TRUE(c.tie_word_embeddings);
}

TEST(PublishedConfigs, Llama3_8B) {
  ModelConfig c = parse_model_config(testing::kLlama3_8B, "llama3");
  EXPECT_EQ(c.hidden_size, 4096);
  EXPECT_EQ(c.intermediate_size, 14336);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.vocab_size, 128256);
  EXPECT_EQ(c.max_position_embeddings, 8192);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling_json, "");
  EXPECT_EQ(c.bos_token_id, 128000);
  EXPECT_EQ(c.eos_token_ids, std::vector<int>{128001});
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.torch_dtype, DType::kBF16);
  EXPECT_EQ(c.layer_window, windows(32, 0));
}

TEST(PublishedConfigs, Llama31_8B_RopeScalingKeptRaw) {
  ModelConfig c = parse_model_config(testing::kLlama31_8B_Instruct, "llama3.1");
  EXPECT_EQ(c.max_position_embeddings, 131072);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int>{128001, 128008, 128009}));
  auto rs = nlohmann::json::parse(c.rope_scaling_json);
  EXPECT_EQ(rs["rope_type"], "llama3");
  EXPECT_EQ(rs["factor"], 8.0);
  EXPECT_EQ(rs["original_max_position_embeddings"], 8192);
}

TEST(PublishedConfigs, Mistral7B) {
  ModelConfig c = parse_model_config(testing::kMistral7B, "mistral");
  EXPECT_EQ(c.model_type, "mistral");
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.max_position_embeddings, 32768);
  EXPECT_EQ(c.sliding_window, 4096);
  EXPECT_EQ(c.layer_window, windows(32, 4096));
  EXPECT_FALSE(c.attention_bias);
  EXPECT_FLOAT_EQ(c.rms_norm_eps, 1e-5f);
}

TEST(PublishedConfigs, Qwen25_7B) {
  ModelConfig c = parse_model_config(testing::kQwen25_7B, "qwen2.5");
  EXPECT_EQ(c.model_type, "qwen2");
  EXPECT_EQ(c.hidden_size, 3584);
  EXPECT_EQ(c.num_attention_heads, 28);
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.vocab_size, 152064);
  EXPECT_TRUE(c.attention_bias);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
  EXPECT_FLOAT_EQ(c.rms_norm_eps, 1e-6f);
  EXPECT_EQ(c.sliding_window, 0);  // use_sliding_window is false
  EXPECT_EQ(c.layer_window, windows(28, 0));
  EXPECT_EQ(c.eos_token_ids, std::vector<int>{151643});
}

TEST(PublishedConfigs, Qwen2WithSlidingWindowOnUpperLayers) {
  auto j = nlohmann::json::parse(testing::kQwen25_7B);
  j["use_sliding_window"] = true;
  j["sliding_window"] = 4096;
  j["max_window_layers"] = 21;
  ModelConfig c = parse_model_config(j.dump(), "qwen2-swa");
  EXPECT_EQ(c.sliding_window, 4096);
  std::vector<int64_t> expect(28, 0);
  for (int i = 21; i < 28; ++i) expect[i] = 4096;
  EXPECT_EQ(c.layer_window, expect);
  // max_window_layers beyond the layer count: no layer is windowed.
  j["max_window_layers"] = 28;
  c = parse_model_config(j.dump(), "qwen2-swa");
  EXPECT_EQ(c.layer_window, windows(28, 0));
  EXPECT_EQ(c.sliding_window, 0);
  // An explicit layer_types list wins.
  j["layer_types"] = std::vector<std::string>(28, "full_attention");
  j["layer_types"][3] = "sliding_attention";
  c = parse_model_config(j.dump(), "qwen2-types");
  expect.assign(28, 0);
  expect[3] = 4096;
  EXPECT_EQ(c.layer_window, expect);
}

TEST(PublishedConfigs, Phi3Mini4k) {
  ModelConfig c = parse_model_config(testing::kPhi3Mini4k, "phi3");
  EXPECT_EQ(c.model_type, "phi3");
  EXPECT_EQ(c.head_dim, 96);
  EXPECT_EQ(c.num_key_value_heads, 32);
  EXPECT_EQ(c.vocab_size, 32064);
  EXPECT_EQ(c.max_position_embeddings, 4096);
  EXPECT_EQ(c.original_max_position_embeddings, 4096);
  EXPECT_EQ(c.sliding_window, 2047);
  EXPECT_EQ(c.layer_window, windows(32, 2047));
  EXPECT_EQ(c.eos_token_ids, std::vector<int>{32000});
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.rope_scaling_json, "");
}

TEST(PublishedConfigs, Phi35MiniLongropeKeptRaw) {
  ModelConfig c = parse_model_config(testing::kPhi35Mini, "phi3.5");
  EXPECT_EQ(c.max_position_embeddings, 131072);
  EXPECT_EQ(c.original_max_position_embeddings, 4096);
  EXPECT_EQ(c.sliding_window, 262144);
  auto rs = nlohmann::json::parse(c.rope_scaling_json);
  EXPECT_EQ(rs["type"], "longrope");
  ASSERT_EQ(rs["long_factor"].size(), 48u);  // head_dim / 2
  ASSERT_EQ(rs["short_factor"].size(), 48u);
  EXPECT_DOUBLE_EQ(rs["long_factor"][47].get<double>(), 64.83999633789062);
  EXPECT_DOUBLE_EQ(rs["short_factor"][0].get<double>(), 1.0);
  // Parsed: boundary from the top-level field, factor = 131072 / 4096, sqrt(1 + ln 32 / ln 4096).
  EXPECT_EQ(c.rope_scaling.type, RopeType::kLongRope);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 4096);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 32.0);
  EXPECT_NEAR(c.rope_scaling.attention_factor, std::sqrt(17.0 / 12.0), 1e-12);
  ASSERT_EQ(c.rope_scaling.long_factor.size(), 48u);
  EXPECT_DOUBLE_EQ(c.rope_scaling.long_factor[47], 64.83999633789062);
}

// Qwen2.5-7B-Instruct with the YaRN block its model card adds for contexts beyond 32768.
TEST(PublishedConfigs, Qwen25YarnParsed) {
  auto j = nlohmann::json::parse(testing::kQwen25_7B);
  j["max_position_embeddings"] = 32768;
  j["rope_scaling"] = {{"factor", 4.0}, {"original_max_position_embeddings", 32768},
                       {"type", "yarn"}};
  const ModelConfig c = parse_model_config(j.dump(), "qwen2.5-yarn");
  EXPECT_EQ(c.rope_scaling.type, RopeType::kYarn);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 4.0);  // as written, not max_pos / original (= 1)
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 32768);
  EXPECT_DOUBLE_EQ(c.rope_scaling.beta_fast, 32);
  EXPECT_DOUBLE_EQ(c.rope_scaling.beta_slow, 1);
  EXPECT_NEAR(c.rope_scaling.attention_factor, 1 + 0.1 * std::log(4.0), 1e-12);
}

// A minimal config of `type`: only the required fields.
std::string minimal(const std::string& type) {
  return R"({"model_type": ")" + type + R"(", "hidden_size": 256, "intermediate_size": 512,
             "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100000})";
}

TEST(Defaults, Llama) {
  ModelConfig c = parse_model_config(minimal("llama"), "m");
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.max_position_embeddings, 2048);
  EXPECT_FLOAT_EQ(c.rms_norm_eps, 1e-6f);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.hidden_act, "silu");
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, std::vector<int>{2});
  EXPECT_EQ(c.layer_window, windows(2, 0));
}

TEST(Defaults, MistralFollowsMistralConfig) {
  auto j = nlohmann::json::parse(minimal("mistral"));
  j["num_attention_heads"] = 32;
  j["hidden_size"] = 4096;
  ModelConfig c = parse_model_config(j.dump(), "m");
  EXPECT_EQ(c.num_key_value_heads, 8);  // MistralConfig's default
  EXPECT_EQ(c.max_position_embeddings, 4096 * 32);
  EXPECT_EQ(c.layer_window, windows(2, 4096));  // absent: 4096; null: none
  j["sliding_window"] = nullptr;
  c = parse_model_config(j.dump(), "m");
  EXPECT_EQ(c.layer_window, windows(2, 0));
  EXPECT_EQ(c.sliding_window, 0);
}

TEST(Defaults, Qwen2AndPhi3) {
  auto j = nlohmann::json::parse(minimal("qwen2"));
  j["num_key_value_heads"] = 2;
  ModelConfig q = parse_model_config(j.dump(), "q");
  EXPECT_EQ(q.max_position_embeddings, 32768);
  EXPECT_TRUE(q.attention_bias);
  EXPECT_EQ(q.bos_token_id, -1);
  EXPECT_TRUE(q.eos_token_ids.empty());
  EXPECT_EQ(q.layer_window, windows(2, 0));
  ModelConfig p = parse_model_config(minimal("phi3"), "p");
  EXPECT_EQ(p.max_position_embeddings, 4096);
  EXPECT_FLOAT_EQ(p.rms_norm_eps, 1e-5f);
  EXPECT_EQ(p.eos_token_ids, std::vector<int>{32000});
  EXPECT_EQ(p.layer_window, windows(2, 0));
}

TEST(Defaults, NullsAndOptionalFields) {
  auto j = nlohmann::json::parse(minimal("llama"));
  j["bos_token_id"] = nullptr;
  j["eos_token_id"] = nullptr;
  j["num_key_value_heads"] = nullptr;
  j["rope_scaling"] = nullptr;
  j["head_dim"] = 32;  // may differ from hidden / heads
  j["partial_rotary_factor"] = 0.5;
  j["dtype"] = "float16";
  j["attention_bias"] = true;
  j["some_future_field"] = {{"x", 1}};
  ModelConfig c = parse_model_config(j.dump(), "m");
  EXPECT_EQ(c.bos_token_id, -1);
  EXPECT_TRUE(c.eos_token_ids.empty());
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.rope_scaling_json, "");
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_EQ(c.rot_dim(), 16);
  EXPECT_EQ(c.torch_dtype, DType::kF16);
  EXPECT_TRUE(c.attention_bias);
  j["torch_dtype"] = "int8";  // ignored, informational
  j.erase("dtype");
  EXPECT_EQ(parse_model_config(j.dump(), "m").torch_dtype, DType::kF32);
}

TEST(Defaults, RopeParametersOfNewerTransformers) {
  auto j = nlohmann::json::parse(minimal("llama"));
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 500000.0}};
  ModelConfig c = parse_model_config(j.dump(), "m");
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling_json, "");
  j["rope_parameters"] = {{"rope_type", "llama3"},       {"rope_theta", 500000.0},
                          {"factor", 8.0},               {"low_freq_factor", 1.0},
                          {"high_freq_factor", 4.0},     {"original_max_position_embeddings", 8192},
                          {"partial_rotary_factor", 0.5}};
  c = parse_model_config(j.dump(), "m");
  EXPECT_EQ(nlohmann::json::parse(c.rope_scaling_json)["rope_type"], "llama3");
  EXPECT_EQ(c.rope_scaling.type, RopeType::kLlama3);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_DOUBLE_EQ(c.partial_rotary_factor, 0.5);  // read from rope_parameters too
}

}  // namespace
}  // namespace longctx
