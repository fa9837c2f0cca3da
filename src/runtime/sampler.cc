#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "core/error.h"

namespace longctx {

void validate(const SamplerParams& p) {
  if (!(p.temperature >= 0) || !std::isfinite(p.temperature))
    throw Error(ErrorKind::kInvalidArg, "--temp must be a finite number >= 0 (0 = greedy)");
  if (!(p.top_p > 0 && p.top_p <= 1))
    throw Error(ErrorKind::kInvalidArg, "--top-p must be in (0, 1] (1 = off)");
  if (!(p.min_p >= 0 && p.min_p < 1))
    throw Error(ErrorKind::kInvalidArg, "--min-p must be in [0, 1) (0 = off)");
  if (!(p.repeat_penalty > 0) || !std::isfinite(p.repeat_penalty))
    throw Error(ErrorKind::kInvalidArg, "--repeat-penalty must be > 0 (1 = off)");
  if (p.top_k < 0) throw Error(ErrorKind::kInvalidArg, "--top-k must be >= 0 (0 = off)");
  if (p.repeat_last_n < -1)
    throw Error(ErrorKind::kInvalidArg, "--repeat-last-n must be >= -1 (-1 = whole sequence)");
}

Sampler::Sampler(const SamplerParams& p) : p_(p), rng_(p.seed) { validate(p); }

int32_t Sampler::sample(float* logits, int64_t vocab, const std::vector<int32_t>& history) {
  if (p_.repeat_penalty != 1.f && p_.repeat_last_n != 0) {
    const size_t n = p_.repeat_last_n < 0 ? history.size()
                                          : std::min(history.size(), size_t(p_.repeat_last_n));
    std::unordered_set<int32_t> seen(history.end() - n, history.end());
    for (int32_t t : seen) {
      if (t < 0 || t >= vocab) continue;
      logits[t] = logits[t] > 0 ? logits[t] / p_.repeat_penalty : logits[t] * p_.repeat_penalty;
    }
  }
  if (p_.temperature <= 0) {
    return static_cast<int32_t>(std::max_element(logits, logits + vocab) - logits);
  }
  idx_.resize(vocab);
  for (int64_t i = 0; i < vocab; ++i) idx_[i] = static_cast<int32_t>(i);
  auto by_logit = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  int64_t keep = vocab;
  if (p_.top_k > 0 && p_.top_k < vocab) {
    keep = p_.top_k;
    std::partial_sort(idx_.begin(), idx_.begin() + keep, idx_.end(), by_logit);
  } else {
    std::sort(idx_.begin(), idx_.end(), by_logit);
  }
  // Softmax over the kept candidates at temperature T (sorted, most likely first).
  probs_.resize(keep);
  const float mx = logits[idx_[0]];
  double sum = 0;
  for (int64_t i = 0; i < keep; ++i) {
    probs_[i] = std::exp((logits[idx_[i]] - mx) / p_.temperature);
    sum += probs_[i];
  }
  for (int64_t i = 0; i < keep; ++i) probs_[i] = static_cast<float>(probs_[i] / sum);
  if (p_.top_p < 1.f) {
    double cum = 0;
    int64_t k = 0;
    while (k < keep) {
      cum += probs_[k++];
      if (cum >= p_.top_p) break;
    }
    keep = std::max<int64_t>(1, k);
  }
  if (p_.min_p > 0.f) {
    const float floor = probs_[0] * p_.min_p;
    int64_t k = 1;
    while (k < keep && probs_[k] >= floor) ++k;
    keep = k;
  }
  double total = 0;
  for (int64_t i = 0; i < keep; ++i) total += probs_[i];
  std::uniform_real_distribution<double> u(0.0, total);
  double r = u(rng_), acc = 0;
  for (int64_t i = 0; i < keep; ++i) {
    acc += probs_[i];
    if (r < acc) return idx_[i];
  }
  return idx_[keep - 1];
}

}  // namespace longctx
