// Pipeline stages in one process (no MPI): a model loaded as contiguous stages and run stage by
// stage, each passing its output rows to the next, gives the whole model's logits exactly; each
// stage's KV cache holds only its layers; the planner's stage weights are what the stages read.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "model/decoder.h"
#include "model/random_checkpoint.h"
#include "model/test_util.h"
#include "plan/memory_plan.h"

namespace longctx {
namespace {

std::vector<int32_t> ids(int n, int vocab) {
  std::vector<int32_t> out = {1};
  for (uint32_t s = 17; static_cast<int>(out.size()) < n;) {
    s = s * 1664525u + 1013904223u;
    out.push_back(3 + static_cast<int32_t>((s >> 8) % static_cast<uint32_t>(vocab - 3)));
  }
  return out;
}

// A Qwen2-shaped checkpoint (q/k/v biases, tied embeddings, a sliding window on its last layer).
std::string qwen2_dir() {
  static const std::string dir = [] {
    RandomCheckpointOptions o;
    o.config_json = R"({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
      "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 4,
      "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 300,
      "max_position_embeddings": 512, "tie_word_embeddings": true, "use_sliding_window": true,
      "sliding_window": 24, "max_window_layers": 3})";
    o.dtype = DType::kF32;
    return test::random_checkpoint_dir("stage-qwen2", o);
  }();
  return dir;
}

class Stages : public ::testing::TestWithParam<std::string> {};

TEST_P(Stages, ChainedByHandGiveTheWholeModelsLogits) {
  const std::string path = GetParam() == "qwen2" ? qwen2_dir() : test::model_path("stories260K");
  const auto whole = Model::load(path);
  const ModelConfig& cfg = whole->config();
  const int L = cfg.num_hidden_layers;
  const std::vector<StageRange> split = {{0, 1}, {1, L - 1}, {L - 1, L}};
  std::vector<std::unique_ptr<Model>> stages;
  for (const StageRange st : split) stages.push_back(Model::load(path, WeightMemory::kResident, st));
  ThreadPool pool(2);
  const std::vector<int32_t> prompt = ids(90, static_cast<int>(cfg.vocab_size));
  const int64_t V = cfg.vocab_size, H = cfg.hidden_size, chunk = 32;

  KVCache kv_whole(whole->kv_shape(KvType::kF32, KvType::kF32, 256));
  Activations act_whole(cfg, chunk);
  std::vector<std::unique_ptr<KVCache>> kvs;
  std::vector<std::unique_ptr<Activations>> acts;
  for (const auto& m : stages) {
    kvs.push_back(std::make_unique<KVCache>(m->kv_shape(KvType::kF32, KvType::kF32, 256)));
    acts.push_back(std::make_unique<Activations>(cfg, chunk));
    EXPECT_EQ(kvs.back()->shape().n_layers, m->stage().end - m->stage().first);
  }
  std::vector<float> want(static_cast<size_t>(chunk * V)), got(want.size());
  for (int64_t pos = 0; pos < static_cast<int64_t>(prompt.size()); pos += chunk) {
    const int64_t n = std::min<int64_t>(chunk, static_cast<int64_t>(prompt.size()) - pos);
    whole->forward(pool, prompt.data() + pos, n, pos, kv_whole, act_whole, want.data(), true);
    for (size_t s = 0; s < stages.size(); ++s) {
      if (s > 0)  // the previous stage's output rows are this one's input
        std::memcpy(acts[s]->x.data(), acts[s - 1]->x.data(), static_cast<size_t>(n * H) * 4);
      stages[s]->forward(pool, s == 0 ? prompt.data() + pos : nullptr, n, pos, *kvs[s], *acts[s],
                         s + 1 == stages.size() ? got.data() : nullptr, true);
    }
    ASSERT_EQ(0, std::memcmp(want.data(), got.data(), static_cast<size_t>(n * V) * 4))
        << "chunk at " << pos;
  }
  // Each stage read only its tensors, and the planner prices exactly those.
  const PlanModel pm = plan_model_from_path(path);
  size_t sum = 0;
  for (const auto& m : stages) {
    size_t bytes = 0;
    for (const std::string& name : m->stage_tensors()) bytes += m->weights().get(name).nbytes;
    EXPECT_EQ(bytes, stage_weight_bytes(pm, m->stage())) << m->stage().first;
    sum += bytes;
  }
  // Every tensor once, the embeddings twice when the head is tied to them.
  const size_t all = std::accumulate(pm.layer_bytes.begin(), pm.layer_bytes.end(),
                                     pm.embed_bytes + pm.head_bytes);
  EXPECT_EQ(sum, all + (cfg.tie_word_embeddings ? pm.embed_bytes : 0));
  EXPECT_THROW(Model::load(path, WeightMemory::kResident, {L - 1, L + 1}), Error);
  EXPECT_THROW(Model::load(path, WeightMemory::kResident, {2, 2}), Error);
}

INSTANTIATE_TEST_SUITE_P(Models, Stages, ::testing::Values("stories260K", "qwen2"));

}  // namespace
}  // namespace longctx
