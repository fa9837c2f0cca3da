// RoPE inverse frequencies and attention factors against values computed independently with NumPy
// from the published formulas (tests/model/gen_rope_fixture.py -> fixtures/rope_freqs.json), for
// the published config.json of Llama-3.1-8B, Phi-3.5-mini, Qwen2.5-7B with YaRN, Mistral-7B,
// Phi-3-mini-4k, a dynamic-NTK and a linear case, and the tiny models of families_test.cc.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "config/model_config.h"
#include "model/rope_freqs.h"
#include "model/test_util.h"

namespace longctx {
namespace {

nlohmann::json fixture() {
  return test::read_json(std::string(LONGCTX_SOURCE_DIR) + "/tests/model/fixtures/rope_freqs.json");
}

TEST(RopeFixture, EveryCaseMatchesNumpy) {
  const auto fx = fixture();
  std::set<std::string> published;
  for (const auto& c : fx["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    if (c["group"] == "published") published.insert(name);
    const ModelConfig cfg = parse_model_config(c["config"].dump(), name);
    for (const auto& e : c["expect"]) {
      const int64_t seq_len = e["seq_len"];
      SCOPED_TRACE("seq_len " + std::to_string(seq_len));
      const RopeFreqs got = compute_rope_freqs(cfg, seq_len);
      const auto want = e["inv_freq"].get<std::vector<double>>();
      ASSERT_EQ(got.inv_freq.size(), want.size());
      double worst = 0;
      for (size_t i = 0; i < want.size(); ++i) {
        const double rel = std::abs(got.inv_freq[i] - want[i]) / want[i];
        worst = std::max(worst, rel);
        EXPECT_LE(rel, 1e-6) << "inv_freq[" << i << "] = " << got.inv_freq[i] << ", numpy "
                             << want[i];
      }
      const double att = e["attention_factor"];
      EXPECT_NEAR(got.attn_factor, att, 1e-6 * att);
      RecordProperty("worst_rel_" + name + "_" + std::to_string(seq_len), std::to_string(worst));
    }
  }
  // The configs the issue names are all in the fixture.
  for (const char* n : {"llama-3.1-8b", "phi-3.5-mini", "qwen2.5-7b-yarn", "mistral-7b",
                        "phi-3-mini-4k", "llama-2-7b-dynamic"})
    EXPECT_TRUE(published.count(n)) << n;
}

TEST(RopeFixture, Phi35AttentionFactorIsTheDocumentedValue) {
  const auto fx = fixture();
  for (const auto& c : fx["cases"]) {
    if (c["name"] != "phi-3.5-mini") continue;
    const ModelConfig cfg = parse_model_config(c["config"].dump(), "phi-3.5-mini");
    EXPECT_EQ(cfg.rope_scaling.type, RopeType::kLongRope);
    EXPECT_EQ(cfg.rope_scaling.original_max_position_embeddings, 4096);
    EXPECT_NEAR(compute_rope_freqs(cfg, 0).attn_factor, 1.1902, 5e-5);  // sqrt(1 + ln32 / ln4096)
    return;
  }
  FAIL() << "phi-3.5-mini missing from the fixture";
}

// LongRoPE: the length a pass uses, and when a cached sequence must be recomputed.
TEST(RopeLength, LongRopeBoundaryRule) {
  RopeScaling lr;
  lr.type = RopeType::kLongRope;
  lr.original_max_position_embeddings = 4096;
  EXPECT_EQ(rope_length(lr, 100, 0), 100);
  EXPECT_EQ(rope_length(lr, 100, 5000), 5000);  // planned total decides from the first token
  EXPECT_FALSE(rope_needs_recompute(lr, 4096, 4096));
  EXPECT_TRUE(rope_needs_recompute(lr, 4096, 4097));   // short-rotated keys, long now needed
  EXPECT_FALSE(rope_needs_recompute(lr, 4097, 5000));  // already long
  EXPECT_FALSE(rope_needs_recompute(lr, 0, 5000));     // nothing cached
  RopeScaling dyn;
  dyn.type = RopeType::kDynamic;
  EXPECT_EQ(rope_length(dyn, 100, 5000), 100);  // per forward pass, as transformers
  EXPECT_FALSE(rope_needs_recompute(dyn, 10, 100000));
}

}  // namespace
}  // namespace longctx
