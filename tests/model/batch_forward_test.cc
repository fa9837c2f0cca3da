// Model::forward_batch: several sequences of different lengths, prefilling and decoding in the
// same passes, each get exactly the greedy tokens and the logits (every bit) they get alone
// through Model::forward: the kernels are batch invariant (docs/kernels.md). On every SIMD path
// the build has; real trained weights (stories260K: f32, and llama.cpp's Q8_0 / Q4_0 GGUF files),
// a random BF16 checkpoint, and random checkpoints with sliding-window layers (Mistral; Qwen2 with
// mixed window layers); f32, f16 and int8 KV; one sequence long enough that decode splits its
// keys across threads.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/ops.h"
#include "model/decoder.h"
#include "model/reference_model.h"
#include "model/test_util.h"

namespace longctx {
namespace {

struct Trace {
  std::vector<int32_t> tokens;             // greedy continuation
  std::vector<std::vector<float>> logits;  // the logits each greedy token was taken from
};

int32_t argmax(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

constexpr int64_t kChunk = 16;

// The chunk run_batched gives sequence i's prompt at `fed` tokens in: a smaller first chunk for
// odd sequences, so that chunk boundaries differ between sequences. run_alone uses the same
// boundaries: chunking alone may round f16 keys differently; this test is about batching.
size_t chunk_at(size_t i, size_t fed) { return (i % 2 && fed == 0) ? 5 : kChunk; }

// Sequence i alone: its prompt in the chunks chunk_at gives, then `steps` greedy tokens.
Trace run_alone(const Model& m, ThreadPool& pool, const std::vector<int32_t>& prompt, int steps,
                KvType kv_type, size_t i) {
  KVCache kv(m.kv_shape(kv_type, kv_type, 1024));
  Activations act(m.config(), kChunk);
  std::vector<float> logits(static_cast<size_t>(m.vocab_size()));
  for (size_t done = 0; done < prompt.size();) {
    const int64_t n = static_cast<int64_t>(std::min(chunk_at(i, done), prompt.size() - done));
    m.forward(pool, prompt.data() + done, n, kv.n_tokens(), kv, act, logits.data());
    done += static_cast<size_t>(n);
  }
  Trace t;
  for (int s = 0; s < steps; ++s) {
    t.logits.push_back(logits);
    t.tokens.push_back(argmax(logits));
    m.forward(pool, &t.tokens.back(), 1, kv.n_tokens(), kv, act, logits.data());
  }
  return t;
}

// All sequences together: every pass holds each unfinished sequence's next prefill chunk (at most
// kChunk tokens, fewer when it starts late) or its next decode token. Sequence i starts at pass
// start[i], so prefills and decodes of different sequences share passes.
std::vector<Trace> run_batched(const Model& m, ThreadPool& pool,
                               const std::vector<std::vector<int32_t>>& prompts, int steps,
                               KvType kv_type, const std::vector<int>& start) {
  const size_t n = prompts.size();
  const int64_t V = m.vocab_size();
  std::vector<std::unique_ptr<KVCache>> kv;
  for (size_t i = 0; i < n; ++i)
    kv.push_back(std::make_unique<KVCache>(m.kv_shape(kv_type, kv_type, 1024)));
  Activations act(m.config(), kChunk * static_cast<int64_t>(n));
  std::vector<float> logits(n * V);  // one row per sequence (consecutive: one head matmul)
  std::vector<Trace> out(n);
  std::vector<size_t> fed(n, 0);  // prompt tokens run
  for (int pass = 0;; ++pass) {
    std::vector<BatchEntry> batch;
    for (size_t i = 0; i < n; ++i) {
      if (pass < start[i] || static_cast<int>(out[i].tokens.size()) == steps) continue;
      BatchEntry e;
      e.kv = kv[i].get();
      e.logits = logits.data() + i * V;
      if (fed[i] < prompts[i].size()) {
        e.tokens = prompts[i].data() + fed[i];
        e.n = static_cast<int64_t>(std::min(chunk_at(i, fed[i]), prompts[i].size() - fed[i]));
        fed[i] += static_cast<size_t>(e.n);
        if (fed[i] < prompts[i].size()) e.logits = nullptr;  // mid-prompt: no logits needed
      } else {
        e.tokens = &out[i].tokens.back();
        e.n = 1;
      }
      batch.push_back(e);
    }
    if (batch.empty()) {
      bool done = true;
      for (size_t i = 0; i < n; ++i) done = done && static_cast<int>(out[i].tokens.size()) == steps;
      if (done) break;
      continue;
    }
    m.forward_batch(pool, batch.data(), static_cast<int>(batch.size()), act);
    for (const BatchEntry& e : batch) {
      if (!e.logits) continue;
      const size_t i = static_cast<size_t>((e.logits - logits.data()) / V);
      std::vector<float> row(e.logits, e.logits + V);
      out[i].logits.push_back(row);
      out[i].tokens.push_back(argmax(row));
    }
  }
  return out;
}

// Batched and alone must agree bit for bit: no tolerance. (Before the kernels were made batch
// invariant, f16 keys differed by one rounding step now and then and logits by up to 1.1e-3.)
void expect_batch_matches_alone(const std::string& path, KvType kv_type) {
  auto m = Model::load(path);
  ThreadPool pool(2);
  const int V = static_cast<int>(m->vocab_size());
  const uint32_t range = static_cast<uint32_t>(std::min(V - 3, 290));
  // Different lengths, one past the sliding window of the tiny window models, one (300) long
  // enough that a decode step splits its keys across the threads (flash-decoding).
  const std::vector<std::vector<int32_t>> prompts = {
      test::tokens(37, 1, range), test::tokens(5, 2, range), test::tokens(80, 3, range),
      test::tokens(1, 4, range), test::tokens(300, 5, range)};
  const std::vector<int> start = {0, 0, 2, 18, 1};  // 3 decodes beside 4's decode
  constexpr int kSteps = 12;
  const kernels::SimdPath best = kernels::best_simd_path();
  for (int p = 0; p <= static_cast<int>(best); ++p) {
    const auto path = static_cast<kernels::SimdPath>(p);
    kernels::set_simd_path(path);
    const std::vector<Trace> together = run_batched(*m, pool, prompts, kSteps, kv_type, start);
    for (size_t i = 0; i < prompts.size(); ++i) {
      const Trace alone = run_alone(*m, pool, prompts[i], kSteps, kv_type, i);
      EXPECT_EQ(together[i].tokens, alone.tokens)
          << kernels::simd_path_name(path) << ", sequence " << i;
      int64_t differ = 0;
      double worst = 0;
      for (int s = 0; s < kSteps; ++s)
        for (int v = 0; v < V; ++v) {
          const float a = together[i].logits[s][v], b = alone.logits[s][v];
          differ += a != b;
          worst = std::max(worst, std::abs(double(a) - b));
        }
      EXPECT_EQ(differ, 0) << kernels::simd_path_name(path) << ", sequence " << i
                           << ": logits differ by up to " << worst;
    }
  }
  kernels::set_simd_path(best);
}

std::string gguf(const std::string& name) { return test::shared_dir() + "/gguf/" + name; }

std::string bf16_checkpoint() {
  RandomCheckpointOptions o;
  o.config_json = test::fixture_case("tiny-mistral")["config"].dump();
  o.dtype = DType::kBF16;
  o.seed = 11;
  return test::random_checkpoint_dir("batch-bf16-mistral", o);
}

TEST(BatchForward, StoriesF32Kv) {
  expect_batch_matches_alone(test::model_path("stories260K"), KvType::kF32);
}
TEST(BatchForward, StoriesF16Kv) {
  expect_batch_matches_alone(test::model_path("stories260K"), KvType::kF16);
}
TEST(BatchForward, SlidingWindowMistral) {
  expect_batch_matches_alone(test::make_checkpoint("tiny-mistral"), KvType::kF32);
}
TEST(BatchForward, MixedWindowQwen2F16Kv) {
  expect_batch_matches_alone(test::make_checkpoint("tiny-qwen2-yarn"), KvType::kF16);
}
TEST(BatchForward, Bf16WeightsInt8Kv) {
  expect_batch_matches_alone(bf16_checkpoint(), KvType::kInt8);
}
TEST(BatchForward, Q8_0WeightsF16Kv) {
  expect_batch_matches_alone(gguf("stories260K-q8_0.gguf"), KvType::kF16);
}
TEST(BatchForward, Q4_0WeightsF32Kv) {
  expect_batch_matches_alone(gguf("stories260K-q4_0.gguf"), KvType::kF32);
}
TEST(BatchForward, Q4_K_MWeightsF16Kv) {
  expect_batch_matches_alone(gguf("llama-kq-tiny/llama-kq-tiny-q4_k_m.gguf"), KvType::kF16);
}

TEST(BatchForward, RefusesTwoEntriesOnOneCache) {
  auto m = Model::load(test::model_path("stories260K"));
  ThreadPool pool(1);
  KVCache kv(m->kv_shape(KvType::kF32, KvType::kF32, 64));
  Activations act(m->config(), 8);
  const int32_t t[2] = {5, 6};
  const BatchEntry e[2] = {{&kv, t, 1, 0, nullptr}, {&kv, t + 1, 1, 0, nullptr}};
  EXPECT_THROW(m->forward_batch(pool, e, 2, act), Error);
  const BatchEntry big{&kv, t, 9, 0, nullptr};  // more rows than the activations hold
  EXPECT_THROW(m->forward_batch(pool, &big, 1, act), Error);
}

}  // namespace
}  // namespace longctx
