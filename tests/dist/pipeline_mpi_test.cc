// Pipeline runs across MPI ranks give the logits and tokens of one process. This binary runs under
// mpirun (tests/dist/CMakeLists.txt starts it with 2 and with 3 ranks): rank 0 runs the tests
// through the Engine, the other ranks serve the pipeline (dist::run_worker). Each test compares
// the pipeline against the whole model loaded on rank 0 alone.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "dist/mpi.h"
#include "longctx/engine.h"
#include "longctx/generator.h"
#include "model/random_checkpoint.h"
#include "model/test_util.h"

namespace longctx {
namespace {

namespace fs = std::filesystem;

// A small Mistral-shaped checkpoint whose sliding window (32) is shorter than the prompts, so the
// window layers recycle blocks on every stage.
std::string mistral_dir() {
  static const std::string dir = [] {
    RandomCheckpointOptions o;
    o.config_json = R"({"architectures": ["MistralForCausalLM"], "model_type": "mistral",
      "hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": 5,
      "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 320,
      "max_position_embeddings": 1024, "sliding_window": 32, "rms_norm_eps": 1e-5,
      "rope_theta": 10000.0, "tie_word_embeddings": false})";
    o.dtype = DType::kF32;
    o.seed = 7;
    return test::random_checkpoint_dir("pipeline-mistral", o);
  }();
  return dir;
}

std::vector<int32_t> prompt_ids(int n, int vocab) {
  std::vector<int32_t> ids = {1};
  uint32_t s = 2024;
  while (static_cast<int>(ids.size()) < n) {
    s = s * 1664525u + 1013904223u;
    ids.push_back(3 + static_cast<int32_t>((s >> 8) % static_cast<uint32_t>(vocab - 3)));
  }
  return ids;
}

struct Case {
  std::string model;
  KvType kv;
  int64_t chunk;
};

// Every position's logits, from one process (the whole model on rank 0).
std::vector<float> single_process(const Case& c, const std::vector<int32_t>& ids) {
  const auto model = Model::load(c.model);
  ThreadPool pool(1);
  SessionOptions so;
  so.context = 512;
  so.prefill_chunk = c.chunk;
  so.kv_k = so.kv_v = c.kv;
  Session s(*model, pool, so);
  std::vector<float> all;
  s.append(ids, &all);
  return all;
}

std::unique_ptr<Engine> pipeline_engine(const Case& c) {
  EngineOptions eo;
  eo.model_path = c.model;
  eo.context = 512;
  eo.prefill_chunk = c.chunk;
  eo.kv = c.kv;
  eo.threads = 1;
  eo.tokenizer = false;
  eo.mem_budget = "4GiB";
  return Engine::open(eo);
}

// |a - b| relative to each position's largest logit (as the chunking tests measure it).
double worst_relative(const std::vector<float>& a, const std::vector<float>& b, size_t V) {
  double worst = 0;
  for (size_t row = 0; row < a.size() / V; ++row) {
    float scale = 1.f;
    for (size_t j = 0; j < V; ++j) scale = std::max(scale, std::abs(a[row * V + j]));
    for (size_t j = 0; j < V; ++j)
      worst = std::max(worst, std::abs(double(a[row * V + j]) - b[row * V + j]) / scale);
  }
  return worst;
}

class PipelineLogits : public ::testing::TestWithParam<std::tuple<std::string, KvType>> {};

TEST_P(PipelineLogits, MatchOneProcessForOneChunkAndMany) {
  const auto [which, kv] = GetParam();
  const std::string model =
      which == "mistral" ? mistral_dir() : test::model_path("stories260K");
  const auto engine = pipeline_engine({model, kv, 512});
  ASSERT_EQ(static_cast<int>(engine->planned().pipeline.stages.size()), dist::size());
  const size_t V = static_cast<size_t>(engine->config().vocab_size);
  const std::vector<int32_t> ids = prompt_ids(150, static_cast<int>(V));
  for (const int64_t chunk : {int64_t{512}, int64_t{16}}) {
    SCOPED_TRACE("prefill chunk " + std::to_string(chunk));
    const auto e = chunk == 512 ? nullptr : pipeline_engine({model, kv, chunk});
    Engine& eng = e ? *e : *engine;
    Session s = eng.new_session(0);
    std::vector<float> got;
    s.append(ids, &got);
    const std::vector<float> want = single_process({model, kv, chunk}, ids);
    ASSERT_EQ(got.size(), want.size());
    EXPECT_LE(worst_relative(got, want, V), 1e-5);
    // Chunked prefill across the stages gives what one chunk gives.
    if (chunk != 512) {
      const std::vector<float> one = single_process({model, kv, 512}, ids);
      EXPECT_LE(worst_relative(got, one, V), 1e-5);
    }
  }
}

TEST_P(PipelineLogits, GreedyTokensMatchOneProcess) {
  const auto [which, kv] = GetParam();
  const std::string model =
      which == "mistral" ? mistral_dir() : test::model_path("stories260K");
  const auto engine = pipeline_engine({model, kv, 64});
  const int V = static_cast<int>(engine->config().vocab_size);
  const std::vector<int32_t> prompt = prompt_ids(40, V);
  // 60 tokens past a 40-token prompt: the window (32) recycles blocks during decode too.
  auto greedy = [&](auto&& append) {
    std::vector<int32_t> out;
    std::vector<float> logits = append(prompt);
    for (int i = 0; i < 60; ++i) {
      const int32_t t = static_cast<int32_t>(
          std::max_element(logits.begin(), logits.end()) - logits.begin());
      out.push_back(t);
      logits = append(std::vector<int32_t>{t});
    }
    return out;
  };
  Session s = engine->new_session(100);
  const std::vector<int32_t> got =
      greedy([&](const std::vector<int32_t>& t) { return s.append(t); });
  const auto whole = Model::load(model);
  ThreadPool pool(1);
  SessionOptions so;
  so.context = 512;
  so.prefill_chunk = 64;
  so.kv_k = so.kv_v = kv;
  Session ref(*whole, pool, so);
  const std::vector<int32_t> want =
      greedy([&](const std::vector<int32_t>& t) { return ref.append(t); });
  EXPECT_EQ(got, want);
  // A truncate reaches every stage: rerunning the last 20 tokens gives the same logits.
  s.truncate(80);
  ref.truncate(80);
  const std::vector<int32_t> tail(got.begin() + 40, got.end());
  std::vector<float> a, b;
  s.append(tail, &a);
  ref.append(tail, &b);
  EXPECT_LE(worst_relative(a, b, static_cast<size_t>(V)), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(
    Models, PipelineLogits,
    ::testing::Combine(::testing::Values("stories260K", "mistral"),
                       ::testing::Values(KvType::kF32, KvType::kInt8)),
    [](const auto& info) {
      return std::get<0>(info.param) + std::string("_") +
             (std::get<1>(info.param) == KvType::kF32 ? "f32" : "int8");
    });

// Each rank plans against its own budget; a split that cannot hold the model is refused on rank
// 0 with every rank's share.
TEST(PipelinePlan, RefusalNamesEveryRank) {
  EngineOptions eo;
  eo.model_path = test::model_path("stories260K");
  eo.context = 512;
  eo.tokenizer = false;
  eo.mem_budget = "1MiB";
  try {
    Engine::open(eo);
    FAIL() << "1 MiB per rank should not hold the model";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("does not fit on " + std::to_string(dist::size()) + " ranks"),
              std::string::npos)
        << m;
    for (int r = 0; r < dist::size(); ++r)
      EXPECT_NE(m.find("rank " + std::to_string(r)), std::string::npos) << m;
  }
  // The workers are ready for the next job after a refusal.
  eo.mem_budget = "4GiB";
  EXPECT_NO_THROW(Engine::open(eo));
}

}  // namespace
}  // namespace longctx

int main(int argc, char** argv) {
  longctx::dist::init(&argc, &argv);
  int rc = 0;
  if (longctx::dist::rank() > 0) {
    rc = longctx::dist::run_worker();
  } else {
    ::testing::InitGoogleTest(&argc, argv);
    if (longctx::dist::size() < 2) {
      std::printf("pipeline_mpi_test runs under mpirun with 2 or more ranks\n");
      longctx::dist::finalize();
      return 1;
    }
    rc = RUN_ALL_TESTS();
  }
  longctx::dist::finalize();
  return rc;
}
