// Next-token sampling: greedy, or temperature with top-k, top-p, min-p, and a repetition penalty.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace longctx {

struct SamplerParams {
  float temperature = 0.f;     // <= 0: greedy (argmax)
  int top_k = 0;               // <= 0: off
  float top_p = 1.f;           // >= 1: off
  float min_p = 0.f;           // <= 0: off
  float repeat_penalty = 1.f;  // 1: off; > 1 discourages tokens seen in the last repeat_last_n
  int repeat_last_n = 64;      // window of recent tokens the penalty looks at; -1: all
  uint64_t seed = 0;
};

// Validates params; Error(kInvalidArg) naming the flag when out of range.
void validate(const SamplerParams& p);

// Order, as in Hugging Face generate(): repetition penalty (on the raw logits, CTRL-style:
// positive logits divided by the penalty, negative ones multiplied), temperature, top-k, top-p,
// min-p (relative to the most likely token), then a draw from what remains.
class Sampler {
 public:
  explicit Sampler(const SamplerParams& p);
  // `logits` [vocab] is modified in place. `history` is the sequence so far (prompt + generated).
  int32_t sample(float* logits, int64_t vocab, const std::vector<int32_t>& history);

 private:
  SamplerParams p_;
  std::mt19937_64 rng_;
  std::vector<int32_t> idx_;
  std::vector<float> probs_;
};

}  // namespace longctx
