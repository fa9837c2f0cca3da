// A GGUF file made by llama.cpp's converter runs as the Hugging Face folder it came from: the same
// configuration from its metadata, and logits within 1e-4 for f32 files (the converter permutes
// llama's q/k rows for adjacent-pair RoPE; longctx must undo that to give Hugging Face's logits).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "config/gguf_config.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "io/gguf.h"
#include "kernels/kernel_test_util.h"
#include "model/decoder.h"
#include "model/test_util.h"
#include "runtime/session.h"

namespace longctx {
namespace {

std::string gguf(const std::string& name) { return test::shared_dir() + "/gguf/" + name; }

// Logits of every position of `ids` (one prefill), f32 KV cache.
std::vector<float> all_logits(const Model& m, const std::vector<int32_t>& ids, int64_t chunk) {
  ThreadPool pool(2);
  SessionOptions so;
  so.context = static_cast<int64_t>(ids.size());
  so.prefill_chunk = chunk;
  so.kv_k = so.kv_v = KvType::kF32;
  Session s(m, pool, so);
  std::vector<float> logits;
  s.append(ids, &logits);
  return logits;
}

struct Pair {
  const char* gguf;
  const char* folder;
};

class GgufVsFolder : public ::testing::TestWithParam<Pair> {};

TEST_P(GgufVsFolder, SameConfigAndLogits) {
  const Pair p = GetParam();
  const auto a = Model::load(gguf(p.gguf), WeightMemory::kMapped);
  const auto b = Model::load(test::shared_dir() + "/" + p.folder, WeightMemory::kMapped);
  const ModelConfig &ca = a->config(), &cb = b->config();
  EXPECT_EQ(ca.model_type, cb.model_type);
  EXPECT_EQ(ca.hidden_size, cb.hidden_size);
  EXPECT_EQ(ca.intermediate_size, cb.intermediate_size);
  EXPECT_EQ(ca.num_hidden_layers, cb.num_hidden_layers);
  EXPECT_EQ(ca.num_attention_heads, cb.num_attention_heads);
  EXPECT_EQ(ca.num_key_value_heads, cb.num_key_value_heads);
  EXPECT_EQ(ca.head_dim, cb.head_dim);
  EXPECT_EQ(ca.vocab_size, cb.vocab_size);
  EXPECT_EQ(ca.max_position_embeddings, cb.max_position_embeddings);
  EXPECT_FLOAT_EQ(ca.rms_norm_eps, cb.rms_norm_eps);
  EXPECT_DOUBLE_EQ(ca.rope_theta, cb.rope_theta);
  EXPECT_EQ(ca.tie_word_embeddings, cb.tie_word_embeddings);
  EXPECT_EQ(ca.attention_bias, cb.attention_bias);
  EXPECT_EQ(ca.rot_dim(), cb.rot_dim());
  EXPECT_EQ(ca.bos_token_id, cb.bos_token_id);

  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(cb.vocab_size - 1));
  std::vector<int32_t> ids(40);
  for (auto& t : ids) t = tok(rng);
  kernels::testing::PathGuard guard;
  for (const kernels::SimdPath path : kernels::testing::runnable_paths()) {
    kernels::set_simd_path(path);
    SCOPED_TRACE(kernels::simd_path_name(path));
    const std::vector<float> la = all_logits(*a, ids, 16), lb = all_logits(*b, ids, 16);
    ASSERT_EQ(la.size(), lb.size());
    double worst = 0;
    for (size_t i = 0; i < la.size(); ++i)
      worst = std::max(worst, std::abs(double(la[i]) - lb[i]) / (1.0 + std::abs(double(lb[i]))));
    EXPECT_LT(worst, 1e-4);
  }
}

INSTANTIATE_TEST_SUITE_P(
    SharedFiles, GgufVsFolder,
    ::testing::Values(Pair{"stories260K-f32.gguf", "models/stories260K"},
                      Pair{"llama-kq-tiny/llama-kq-tiny-f32.gguf", "gguf/llama-kq-tiny"}),
    [](const ::testing::TestParamInfo<Pair>& i) {
      return i.index == 0 ? std::string("stories260K") : std::string("llama_kq_tiny");
    });

TEST(GgufModel, ConfigFromMetadataOfEachArchitecture) {
  const auto q = io::GgufFile::open(gguf("qwen2-kq-tiny/qwen2-kq-tiny-q8_0.gguf"));
  const ModelConfig c = config_from_gguf(*q);
  const ModelConfig h = load_model_config(test::shared_dir() + "/gguf/qwen2-kq-tiny");
  EXPECT_EQ(c.model_type, "qwen2");
  EXPECT_TRUE(c.attention_bias);  // qwen2's q/k/v biases
  EXPECT_FALSE(c.o_bias);
  EXPECT_EQ(c.num_key_value_heads, h.num_key_value_heads);
  EXPECT_DOUBLE_EQ(c.rope_theta, h.rope_theta);
  EXPECT_EQ(c.tie_word_embeddings, h.tie_word_embeddings);
  EXPECT_EQ(c.vocab_size, h.vocab_size);
}

TEST(GgufModel, VocabularyOnlyFileIsRefusedAsAModel) {
  try {
    Model::load(gguf("vocab/ggml-vocab-llama-spm.gguf"), WeightMemory::kMapped);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("vocabulary-only"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace longctx
