// Each branch follows transformers' modeling_rope_utils._compute_<type>_parameters, in double
// precision (transformers works in float32; the difference is below float32 rounding of the result).
#include "model/rope_freqs.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numbers>

namespace longctx {

namespace {

// base^(-2i/dim) for i in [0, dim/2).
std::vector<double> default_inv_freq(double base, int dim) {
  std::vector<double> inv(static_cast<size_t>(dim / 2));
  for (int i = 0; i < dim / 2; ++i)
    inv[static_cast<size_t>(i)] = 1.0 / std::pow(base, static_cast<double>(2 * i) / dim);
  return inv;
}

void apply_llama3(const RopeScaling& rs, std::vector<double>& inv) {
  // Llama 3.1: keep high frequencies, divide low ones by `factor`, blend in between.
  const double orig = static_cast<double>(rs.original_max_position_embeddings);
  const double lo = rs.low_freq_factor, hi = rs.high_freq_factor, f = rs.factor;
  const double low_wavelen = orig / lo, high_wavelen = orig / hi;
  for (double& x : inv) {
    const double wavelen = 2 * std::numbers::pi / x;
    if (wavelen < high_wavelen) continue;
    if (wavelen > low_wavelen) {
      x /= f;
    } else {
      const double smooth = (orig / wavelen - lo) / (hi - lo);
      x = (1 - smooth) * x / f + smooth * x;
    }
  }
}

void apply_yarn(const RopeScaling& rs, double base, int dim, std::vector<double>& inv) {
  // Dimensions that rotate fewer than beta_slow times over the original context are interpolated
  // (divided by factor), those rotating more than beta_fast times are kept, a linear ramp between.
  const double orig = static_cast<double>(rs.original_max_position_embeddings);
  auto correction_dim = [&](double rotations) {
    return dim * std::log(orig / (rotations * 2 * std::numbers::pi)) / (2 * std::log(base));
  };
  double low = correction_dim(rs.beta_fast), high = correction_dim(rs.beta_slow);
  if (rs.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(dim - 1));
  if (low == high) high += 0.001;  // avoids a division by zero, as transformers does
  for (size_t i = 0; i < inv.size(); ++i) {
    const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
    const double extrapolation = 1 - ramp;
    inv[i] = inv[i] / rs.factor * (1 - extrapolation) + inv[i] * extrapolation;
  }
}

}  // namespace

RopeFreqs compute_rope_freqs(const ModelConfig& cfg, int64_t seq_len) {
  const RopeScaling& rs = cfg.rope_scaling;
  const int dim = cfg.rot_dim();
  double base = cfg.rope_theta;
  double attn = 1.0;
  std::vector<double> inv;
  switch (rs.type) {
    case RopeType::kDefault:
      inv = default_inv_freq(base, dim);
      break;
    case RopeType::kLinear:
      inv = default_inv_freq(base, dim);
      for (double& x : inv) x /= rs.factor;
      break;
    case RopeType::kDynamic: {
      // NTK-aware: a larger base once the sequence outgrows max_position_embeddings.
      const double max_pos = static_cast<double>(cfg.max_position_embeddings);
      const double len = std::max(static_cast<double>(seq_len), max_pos);
      base *= std::pow(rs.factor * len / max_pos - (rs.factor - 1),
                       static_cast<double>(dim) / (dim - 2));
      inv = default_inv_freq(base, dim);
      break;
    }
    case RopeType::kYarn:
      inv = default_inv_freq(base, dim);
      apply_yarn(rs, base, dim, inv);
      attn = rs.attention_factor;
      break;
    case RopeType::kLlama3:
      inv = default_inv_freq(base, dim);
      if (rs.freq_factors.empty())
        apply_llama3(rs, inv);
      else
        for (size_t i = 0; i < inv.size(); ++i) inv[i] /= rs.freq_factors[i];
      break;
    case RopeType::kLongRope: {
      const bool long_ctx = seq_len > rs.original_max_position_embeddings;
      const std::vector<double>& ext = long_ctx ? rs.long_factor : rs.short_factor;
      inv = default_inv_freq(base, dim);
      for (size_t i = 0; i < inv.size(); ++i) inv[i] /= ext[i];
      attn = rs.attention_factor;
      break;
    }
  }
  RopeFreqs r;
  r.inv_freq.assign(inv.begin(), inv.end());
  r.attn_factor = static_cast<float>(attn);
  return r;
}

int64_t rope_length(const RopeScaling& rs, int64_t len_after, int64_t planned) {
  return rs.type == RopeType::kLongRope ? std::max(len_after, planned) : len_after;
}

bool rope_needs_recompute(const RopeScaling& rs, int64_t cached, int64_t next) {
  if (rs.type != RopeType::kLongRope || cached <= 0) return false;
  const int64_t orig = rs.original_max_position_embeddings;
  return cached <= orig && next > orig;
}

std::string rope_summary(const ModelConfig& cfg, int64_t planned) {
  const RopeScaling& rs = cfg.rope_scaling;
  const long long orig = static_cast<long long>(rs.original_max_position_embeddings);
  char buf[320];
  switch (rs.type) {
    case RopeType::kLongRope:
      if (planned > 0)
        std::snprintf(buf, sizeof buf,
                      "longrope, %s factors (%lld tokens planned %s original_max_position_"
                      "embeddings %lld), attention factor %.4f",
                      planned > orig ? "long" : "short", static_cast<long long>(planned),
                      planned > orig ? ">" : "<=", orig, rs.attention_factor);
      else
        std::snprintf(buf, sizeof buf,
                      "longrope, short factors up to %lld tokens, long factors beyond, attention "
                      "factor %.4f",
                      orig, rs.attention_factor);
      break;
    case RopeType::kDynamic:
      std::snprintf(buf, sizeof buf,
                    "dynamic NTK, factor %g; the base grows per forward pass once the sequence "
                    "exceeds %lld tokens",
                    rs.factor, static_cast<long long>(cfg.max_position_embeddings));
      break;
    case RopeType::kYarn:
      std::snprintf(buf, sizeof buf,
                    "yarn, factor %g over original_max_position_embeddings %lld, attention factor "
                    "%.4f",
                    rs.factor, orig, rs.attention_factor);
      break;
    case RopeType::kLlama3:
      std::snprintf(buf, sizeof buf,
                    "llama3, factor %g (low_freq_factor %g, high_freq_factor %g, "
                    "original_max_position_embeddings %lld)",
                    rs.factor, rs.low_freq_factor, rs.high_freq_factor, orig);
      break;
    case RopeType::kLinear:
      std::snprintf(buf, sizeof buf, "linear, factor %g", rs.factor);
      break;
    case RopeType::kDefault:
      std::snprintf(buf, sizeof buf, "default (theta %g)", cfg.rope_theta);
      break;
  }
  std::string s = buf;
  if (cfg.rot_dim() != cfg.head_dim)
    s += ", rotary on " + std::to_string(cfg.rot_dim()) + " of " + std::to_string(cfg.head_dim) +
         " head dims";
  return s;
}

}  // namespace longctx
