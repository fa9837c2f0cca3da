// Every family (llama + llama3 scaling, mistral, qwen2 + yarn with mixed window layers, phi3 with
// LongRoPE and Phi-3-mini-4k's window with partial rotary, llama + dynamic NTK): a random-weight
// checkpoint with a real head layout gives the logits of an independent, straightforward float64
// forward pass (explicit n x n mask, written here, not using longctx's kernels) over prompts
// longer than the sliding window and on both sides of the LongRoPE boundary. The RoPE frequencies
// of the reference come from the NumPy fixture (gen_rope_fixture.py), not from longctx.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "config/model_config.h"
#include "io/weights.h"
#include "model/decoder.h"
#include "model/random_checkpoint.h"
#include "model/reference_model.h"
#include "model/test_util.h"
#include "runtime/session.h"

namespace longctx {
namespace {

using json = nlohmann::json;
using test::fixed_rope;
using test::fixture_case;
using test::make_checkpoint;
using test::numpy_rope;
using test::Reference;
using test::tokens;
using test::Vec;

// Worst |got - want| / max(1, |want|) over a row of logits.
double worst_rel(const float* got, const Vec& want) {
  double w = 0;
  for (size_t i = 0; i < want.size(); ++i)
    w = std::max(w, std::abs(got[i] - want[i]) / std::max(1.0, std::abs(want[i])));
  return w;
}

struct Loaded {
  std::unique_ptr<Model> model;
  ThreadPool pool{2};
  explicit Loaded(const std::string& dir) : model(Model::load(dir)) {}
  SessionOptions opts(int64_t planned = 0) const {
    SessionOptions so;
    so.context = 512;
    so.kv_k = so.kv_v = KvType::kF32;
    so.prefill_chunk = 16;  // several chunks per prompt
    so.planned_tokens = planned;
    return so;
  }
};

constexpr double kTol = 1e-4;

// Prefill of `n` tokens: the logits at every position equal the reference's.
void expect_prefill_matches(const std::string& name, size_t n,
                            const std::function<std::pair<Vec, double>(int64_t)>& rope) {
  const std::string dir = make_checkpoint(name);
  Loaded r(dir);
  const Reference ref(dir);
  const auto toks = tokens(n, 99);
  Session s(*r.model, r.pool, r.opts());
  std::vector<float> all;
  s.append(toks, &all);
  const auto want = ref.forward(toks, rope);
  double worst = 0;
  for (size_t t = 0; t < n; ++t) worst = std::max(worst, worst_rel(&all[t * ref.V], want[t]));
  EXPECT_LE(worst, kTol);
  ::testing::Test::RecordProperty("worst_rel_" + name, std::to_string(worst));
}

TEST(Families, LlamaWithLlama3Scaling) {
  expect_prefill_matches("tiny-llama31", 100, fixed_rope("tiny-llama31"));
}

TEST(Families, MistralPromptLongerThanWindow) {
  expect_prefill_matches("tiny-mistral", 80, fixed_rope("tiny-mistral"));  // window 24
}

TEST(Families, Qwen2BiasesYarnAndWindowOnUpperLayersOnly) {
  // use_sliding_window with max_window_layers 1: layer 0 full, layers 1-2 window 20.
  expect_prefill_matches("tiny-qwen2-yarn", 70, fixed_rope("tiny-qwen2-yarn"));
}

TEST(Families, Phi3Mini4kWindowAndPartialRotary) {
  expect_prefill_matches("tiny-phi3-mini-4k", 60, fixed_rope("tiny-phi3-mini-4k"));  // window 19
}

TEST(Families, Phi3LongRopeShortSideOfBoundary) {
  // original_max_position_embeddings 40: a 40-token sequence uses the short factors.
  expect_prefill_matches("tiny-phi3-longrope", 40, fixed_rope("tiny-phi3-longrope", 40));
}

TEST(Families, Phi3LongRopeLongSideOfBoundary) {
  expect_prefill_matches("tiny-phi3-longrope", 80, fixed_rope("tiny-phi3-longrope", 41));
}

// A generation that crosses the boundary: unplanned, the session recomputes the cache once (and
// says so); planned, it uses the long factors from the first token. Either way every step's
// logits are those of the reference over the sequence so far with the factors transformers picks
// for that step (Phi-3 recomputes at the crossing too); planned, those of the whole final sequence.
TEST(Families, Phi3LongRopeGenerationAcrossBoundary) {
  const std::string name = "tiny-phi3-longrope";
  const std::string dir = make_checkpoint(name);
  Loaded r(dir);
  const Reference ref(dir);
  const auto seq = tokens(52, 5);
  const size_t prompt = 30;
  const auto short_rope = numpy_rope(fixture_case(name), 40);
  const auto long_rope = numpy_rope(fixture_case(name), 41);
  const auto want_short =
      ref.forward({seq.begin(), seq.begin() + 40}, [&](int64_t) { return short_rope; });
  const auto want_long = ref.forward(seq, [&](int64_t) { return long_rope; });

  for (const int64_t planned : {int64_t{0}, int64_t{52}}) {
    SCOPED_TRACE("planned " + std::to_string(planned));
    SessionOptions so = r.opts(planned);
    std::vector<std::string> notices;
    so.on_notice = [&](const std::string& m) { notices.push_back(m); };
    Session s(*r.model, r.pool, so);
    std::vector<float> logits = s.append({seq.begin(), seq.begin() + prompt});
    for (size_t len = prompt; len <= seq.size(); ++len) {
      // logits after `len` tokens predict token `len`.
      const bool long_now = planned > 40 || len > 40;
      const Vec& want = long_now ? want_long[len - 1] : want_short[len - 1];
      EXPECT_LE(worst_rel(logits.data(), want), kTol) << "after " << len << " tokens";
      if (len < seq.size()) logits = s.append({seq[len]});
    }
    EXPECT_EQ(s.recomputes(), planned ? 0 : 1);
    ASSERT_EQ(notices.size(), planned ? 0u : 1u);
    if (!notices.empty()) {
      EXPECT_NE(notices[0].find("original_max_position_embeddings (40)"), std::string::npos)
          << notices[0];
      EXPECT_NE(notices[0].find("recomputing the 40 cached tokens"), std::string::npos)
          << notices[0];
    }
  }
}

// Dynamic NTK: like transformers, the base is recomputed for each forward call from the length
// reached at its end, and cached keys keep the rotation they were written with. A 48-token prompt
// (chunked, but one call) uses the base for 48 throughout; 16 more tokens in one call use the
// base for 64.
TEST(Families, LlamaDynamicNtkPerForwardCall) {
  const std::string name = "tiny-llama-dynamic";  // max_position_embeddings 32
  const std::string dir = make_checkpoint(name);
  Loaded r(dir);
  const Reference ref(dir);
  const auto seq = tokens(64, 11);
  const auto at48 = numpy_rope(fixture_case(name), 48);
  const auto at64 = numpy_rope(fixture_case(name), 64);
  const auto want =
      ref.forward(seq, [&](int64_t pos) { return pos < 48 ? at48 : at64; });
  Session s(*r.model, r.pool, r.opts(/*planned=*/64));  // the plan does not change dynamic
  std::vector<float> all;
  s.append({seq.begin(), seq.begin() + 48}, &all);
  double worst = 0;
  for (size_t t = 0; t < 48; ++t) worst = std::max(worst, worst_rel(&all[t * ref.V], want[t]));
  s.append({seq.begin() + 48, seq.end()}, &all);
  for (size_t t = 0; t < 16; ++t)
    worst = std::max(worst, worst_rel(&all[t * ref.V], want[48 + t]));
  EXPECT_LE(worst, kTol);
  EXPECT_EQ(s.recomputes(), 0);
  // Below max_position_embeddings the base is the configured one.
  const auto short_seq = std::vector<int32_t>(seq.begin(), seq.begin() + 32);
  const auto base = numpy_rope(fixture_case(name), 32);
  const auto want32 = ref.forward(short_seq, [&](int64_t) { return base; });
  Session s2(*r.model, r.pool, r.opts());
  s2.append(short_seq, &all);
  double worst32 = 0;
  for (size_t t = 0; t < 32; ++t)
    worst32 = std::max(worst32, worst_rel(&all[t * ref.V], want32[t]));
  EXPECT_LE(worst32, kTol);
}

}  // namespace
}  // namespace longctx
