// Whole-model checks on real trained checkpoints against golden outputs from an independent
// float64 reference (../shared/models/*/golden.json).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/huge_pages.h"
#include "kernels/kernel_test_util.h"
#include "kernels/ops.h"
#include "model/decoder.h"
#include "model/test_util.h"
#include "runtime/session.h"

namespace longctx {
namespace {

class Golden : public ::testing::TestWithParam<std::string> {};

int32_t argmax(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

TEST_P(Golden, GreedyIdsAndTop5LogitsMatch) {
  const std::string dir = test::model_path(GetParam());
  const auto golden = test::read_json(dir + "/golden.json");
  ThreadPool pool(2);
  kernels::testing::PathGuard guard;
  // Every SIMD path this machine runs (its attention, GEMM, matvec and elementwise kernels end to
  // end; prefill chunks of 64 take the GEMM), and the same numbers whether the weights run from
  // the file mapping or from their huge-page copy.
  for (const kernels::SimdPath path : kernels::testing::runnable_paths())
    for (const WeightMemory mem : {WeightMemory::kResident, WeightMemory::kMapped}) {
      kernels::set_simd_path(path);
      SCOPED_TRACE(kernels::simd_path_name(path));
      SCOPED_TRACE(mem == WeightMemory::kResident ? "weights resident" : "weights mapped");
      const auto model = Model::load(dir, mem);
      EXPECT_EQ(model->weights_resident(),
                mem == WeightMemory::kResident && transparent_huge_pages_available());
      for (const auto& c : golden["cases"]) {
        SCOPED_TRACE(c["name"].get<std::string>());
        SessionOptions so;
        so.context = model->config().max_position_embeddings;
        so.kv_k = so.kv_v = KvType::kF32;
        so.prefill_chunk = 64;
        Session s(*model, pool, so);
        const auto prompt = c["prompt_ids"].get<std::vector<int32_t>>();
        const auto greedy = c["greedy_ids"].get<std::vector<int32_t>>();
        std::vector<float> logits = s.append(prompt);
        const bool has_steps = c.contains("steps_top5");
        double worst = 0;
        for (size_t step = 0; step < greedy.size(); ++step) {
          if (has_steps && step < c["steps_top5"].size()) {
            const auto& st = c["steps_top5"][step];
            const auto ids = st["top_ids"].get<std::vector<int>>();
            const auto ref = st["top_logits"].get<std::vector<double>>();
            for (size_t i = 0; i < ids.size(); ++i) {
              const double got = logits[ids[i]];
              const double rel = std::abs(got - ref[i]) / std::max(1.0, std::abs(ref[i]));
              worst = std::max(worst, rel);
              ASSERT_LE(rel, 1e-4)
                  << "step " << step << " token " << ids[i] << " got " << got << " want " << ref[i];
            }
          }
          ASSERT_EQ(argmax(logits), greedy[step]) << "greedy step " << step;
          if (step + 1 < greedy.size()) logits = s.append({greedy[step]});
        }
        RecordProperty("worst_relative_error_" + c["name"].get<std::string>(),
                       std::to_string(worst));
      }
    }
}

INSTANTIATE_TEST_SUITE_P(SharedModels, Golden,
                         ::testing::Values("stories260K", "babyllama-tok105"));

// Chunked prefill is the only prefill: chunk sizes 1, 7, 64 and the whole prompt must give the
// same logits at every position as one pass.
TEST(ChunkedPrefill, SameLogitsForEveryChunkSize) {
  const auto model = Model::load(test::model_path("stories260K"));
  ThreadPool pool(2);
  std::vector<int32_t> prompt = {1};
  uint32_t s = 12345;
  for (int i = 0; i < 150; ++i) {
    s = s * 1664525u + 1013904223u;
    prompt.push_back(3 + static_cast<int32_t>((s >> 8) % 500));
  }
  auto run = [&](int64_t chunk) {
    SessionOptions so;
    so.context = 512;
    so.kv_k = so.kv_v = KvType::kF32;
    so.prefill_chunk = chunk;
    Session sess(*model, pool, so);
    std::vector<float> all;
    sess.append(prompt, &all);
    return all;
  };
  const std::vector<float> whole = run(static_cast<int64_t>(prompt.size()));
  for (int64_t chunk : {1, 7, 64}) {
    SCOPED_TRACE(chunk);
    const std::vector<float> got = run(chunk);
    ASSERT_EQ(got.size(), whole.size());
    // Relative to each position's logit scale: summation order differs between chunk shapes.
    const size_t V = static_cast<size_t>(model->vocab_size());
    double worst = 0;
    for (size_t row = 0; row < got.size() / V; ++row) {
      float scale = 1.f;
      for (size_t j = 0; j < V; ++j) scale = std::max(scale, std::abs(whole[row * V + j]));
      for (size_t j = 0; j < V; ++j) {
        const double rel = std::abs(got[row * V + j] - whole[row * V + j]) / scale;
        worst = std::max(worst, rel);
        ASSERT_LE(rel, 1e-5) << "position " << row << " token " << j;
      }
    }
    RecordProperty("worst_relative_difference_chunk_" + std::to_string(chunk),
                   std::to_string(worst));
  }
}

// The 16-bit KV caches store what f32 stores, rounded: logits stay close and greedy text agrees
// for the golden prompt.
TEST(KVDtypes, SixteenBitCachesStayCloseToF32) {
  const std::string dir = test::model_path("stories260K");
  const auto golden = test::read_json(dir + "/golden.json");
  const auto model = Model::load(dir);
  ThreadPool pool(1);
  const auto& c = golden["cases"][1];
  const auto prompt = c["prompt_ids"].get<std::vector<int32_t>>();
  const auto greedy = c["greedy_ids"].get<std::vector<int32_t>>();
  for (KvType t : {KvType::kF16, KvType::kBF16}) {
    SCOPED_TRACE(kv_type_name(t));
    SessionOptions so;
    so.context = 512;
    so.kv_k = so.kv_v = t;
    Session sess(*model, pool, so);
    std::vector<float> logits = sess.append(prompt);
    const auto ref = c["steps_top5"][0]["top_logits"].get<std::vector<double>>();
    EXPECT_NEAR(logits[greedy[0]], ref[0], t == KvType::kF16 ? 0.05 : 0.3);
    int agree = 0;
    for (size_t i = 0; i < 8; ++i) {
      agree += argmax(logits) == greedy[i];
      logits = sess.append({greedy[i]});
    }
    EXPECT_GE(agree, 7);
  }
}

}  // namespace
}  // namespace longctx
