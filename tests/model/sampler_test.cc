#include "runtime/sampler.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"

namespace longctx {
namespace {

TEST(Sampler, GreedyIsArgmax) {
  Sampler s({});
  std::vector<float> l = {0.1f, 3.f, -2.f, 2.9f};
  EXPECT_EQ(s.sample(l.data(), 4, {}), 1);
}

TEST(Sampler, RepetitionPenaltyWorkedByHand) {
  // CTRL penalty: positive logits divided, negative multiplied. [2, -1, 0.5], history {0, 1}:
  // penalty 2 -> [1, -2, 0.5]: token 0 still wins; penalty 5 -> [0.4, -5, 0.5]: token 2 wins.
  SamplerParams p;
  p.repeat_penalty = 2.f;
  std::vector<float> l = {2.f, -1.f, 0.5f};
  EXPECT_EQ(Sampler(p).sample(l.data(), 3, {0, 1}), 0);
  EXPECT_FLOAT_EQ(l[0], 1.f);
  EXPECT_FLOAT_EQ(l[1], -2.f);
  p.repeat_penalty = 5.f;
  l = {2.f, -1.f, 0.5f};
  EXPECT_EQ(Sampler(p).sample(l.data(), 3, {0, 1}), 2);
  // Only the last repeat_last_n tokens count: token 0 is outside a window of 1.
  p.repeat_last_n = 1;
  l = {2.f, -1.f, 0.5f};
  EXPECT_EQ(Sampler(p).sample(l.data(), 3, {0, 1}), 0);
}

std::vector<int> histogram(const SamplerParams& p, const std::vector<float>& logits, int draws) {
  Sampler s(p);
  std::vector<int> h(logits.size());
  for (int i = 0; i < draws; ++i) {
    std::vector<float> l = logits;
    h[s.sample(l.data(), static_cast<int64_t>(l.size()), {})]++;
  }
  return h;
}

TEST(Sampler, TemperatureOneFollowsSoftmax) {
  SamplerParams p;
  p.temperature = 1.f;
  p.seed = 42;
  const std::vector<float> l = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  const auto h = histogram(p, l, 20000);
  EXPECT_NEAR(h[0] / 20000.0, 0.5, 0.015);
  EXPECT_NEAR(h[1] / 20000.0, 0.3, 0.015);
  EXPECT_NEAR(h[2] / 20000.0, 0.2, 0.015);
}

TEST(Sampler, TopKTopPMinPCutTheTail) {
  const std::vector<float> l = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  SamplerParams p;
  p.temperature = 1.f;
  p.top_k = 2;
  auto h = histogram(p, l, 4000);
  EXPECT_EQ(h[2] + h[3], 0);
  EXPECT_NEAR(h[0] / 4000.0, 0.5 / 0.8, 0.03);  // renormalized over the two kept
  p = {};
  p.temperature = 1.f;
  p.top_p = 0.75f;  // 0.5 + 0.3 reaches 0.75: keeps tokens 0 and 1
  h = histogram(p, l, 4000);
  EXPECT_EQ(h[2] + h[3], 0);
  EXPECT_GT(h[1], 0);
  p = {};
  p.temperature = 1.f;
  p.min_p = 0.2f;  // floor 0.1: drops token 3 only
  h = histogram(p, l, 4000);
  EXPECT_EQ(h[3], 0);
  EXPECT_GT(h[2], 0);
}

TEST(Sampler, SameSeedSameDraws) {
  SamplerParams p;
  p.temperature = 0.9f;
  p.seed = 3;
  const std::vector<float> l = {0.f, 0.1f, 0.2f, 0.3f, 0.4f};
  EXPECT_EQ(histogram(p, l, 50), histogram(p, l, 50));
}

TEST(Sampler, RejectsBadParams) {
  SamplerParams p;
  p.top_p = 0.f;
  EXPECT_THROW(validate(p), Error);
  p = {};
  p.temperature = -1.f;
  EXPECT_THROW(validate(p), Error);
  p = {};
  p.min_p = 1.f;
  EXPECT_THROW(validate(p), Error);
  p = {};
  p.repeat_penalty = 0.f;
  EXPECT_THROW(validate(p), Error);
}

}  // namespace
}  // namespace longctx
