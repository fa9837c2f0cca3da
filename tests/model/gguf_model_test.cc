// A GGUF file made by llama.cpp's converter runs as the Hugging Face folder it came from: the same
// configuration from its metadata, and logits within 1e-4 for f32 files (the converter permutes
// llama's q/k rows for adjacent-pair RoPE; longctx must undo that to give Hugging Face's logits).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <random>

#include "config/gguf_config.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"
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


// --- Bad GGUF models: a copy of llama.cpp's stories260K-f32.gguf with one thing changed loads as a
// clear error naming the problem, never a crash.

struct Edit {
  std::string drop_key;                  // metadata key left out
  std::string set_arch;                  // general.architecture replaced
  std::string tensor;                    // tensor changed:
  uint32_t tensor_ggml_type = UINT32_MAX;  // stored as this ggml type (bytes sized to fit)
  bool drop_tensor = false;
  size_t truncate = 0;                   // bytes cut from the end of the file
};

std::string edited_copy(const Edit& e, const std::string& name) {
  const auto src = io::GgufFile::open(gguf("stories260K-f32.gguf"));
  io::GgufWriter w;
  for (const std::string_view kv : src->keys()) {
    const std::string k(kv);
    if (k == e.drop_key) continue;
    if (k == "general.architecture" && !e.set_arch.empty())
      w.set_string(k, e.set_arch);
    else
      w.set(k, *src->find(k));
  }
  std::vector<std::vector<uint8_t>> store;
  for (const io::GgufTensor& t : src->tensors()) {
    if (t.name == e.tensor && e.drop_tensor) continue;
    if (t.name == e.tensor && e.tensor_ggml_type != UINT32_MAX) {
      const auto info = io::ggml_type_info(e.tensor_ggml_type);
      int64_t rows = 1;
      for (size_t i = 0; i + 1 < t.shape.size(); ++i) rows *= t.shape[i];
      const int64_t cols = t.shape.back();
      store.emplace_back(static_cast<size_t>(rows * cols / info->block_elems * info->block_bytes));
      w.add_tensor(t.name, e.tensor_ggml_type, t.shape, store.back().data(), store.back().size());
      continue;
    }
    w.add_tensor(t.name, t.ggml_type, t.shape, t.data, t.nbytes);
  }
  std::vector<uint8_t> bytes = w.bytes();
  bytes.resize(bytes.size() - e.truncate);
  const std::string path = test::scratch_dir("bad-gguf-" + name) + "/model.gguf";
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  return path;
}

void expect_load_error(const std::string& path, ErrorKind kind, const std::string& words) {
  try {
    Model::load(path, WeightMemory::kMapped);
    FAIL() << "expected an error mentioning '" << words << "'";
  } catch (const Error& err) {
    EXPECT_EQ(err.kind(), kind) << err.what();
    EXPECT_NE(std::string(err.what()).find(words), std::string::npos) << err.what();
  }
}

TEST(GgufModelErrors, EachDefectIsNamed) {
  {
    Edit e;
    e.drop_key = "llama.block_count";
    expect_load_error(edited_copy(e, "key"), ErrorKind::kFormat, "llama.block_count");
  }
  {
    Edit e;
    e.set_arch = "mamba";
    expect_load_error(edited_copy(e, "arch"), ErrorKind::kUnsupported, "\"mamba\"");
  }
  {
    Edit e;  // IQ4_NL (ggml type 20): a valid type longctx does not compute with
    e.tensor = "blk.0.attn_q.weight";
    e.tensor_ggml_type = 20;
    expect_load_error(edited_copy(e, "type"), ErrorKind::kUnsupported, "IQ4_NL");
  }
  {
    Edit e;
    e.tensor = "blk.3.ffn_down.weight";
    e.drop_tensor = true;
    expect_load_error(edited_copy(e, "missing"), ErrorKind::kShape, "blk.3.ffn_down.weight");
  }
  {
    Edit e;
    e.truncate = 1000;
    expect_load_error(edited_copy(e, "truncated"), ErrorKind::kFormat, "model.gguf");
  }
}

}  // namespace
}  // namespace longctx
