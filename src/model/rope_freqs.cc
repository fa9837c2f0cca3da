#include "model/rope_freqs.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <numbers>
#include <string>

#include "core/error.h"

namespace longctx {

namespace {

double number_field(const nlohmann::json& j, const char* name) {
  if (!j.contains(name) || !j[name].is_number())
    throw Error(ErrorKind::kConfig, std::string("rope_scaling.") + name +
                                        " is missing or not a number in config.json");
  return j[name].get<double>();
}

}  // namespace

RopeFreqs compute_rope_freqs(const ModelConfig& cfg) {
  const int rot = cfg.rot_dim();
  RopeFreqs r;
  r.inv_freq.resize(rot / 2);
  std::vector<double> inv(rot / 2);
  for (int i = 0; i < rot / 2; ++i)
    inv[i] = 1.0 / std::pow(cfg.rope_theta, static_cast<double>(2 * i) / rot);

  nlohmann::json rs;
  if (!cfg.rope_scaling_json.empty()) {
    try {
      rs = nlohmann::json::parse(cfg.rope_scaling_json);
    } catch (const nlohmann::json::exception&) {
      throw Error(ErrorKind::kConfig, "rope_scaling in config.json is not valid JSON");
    }
  }
  std::string type = "default";
  if (rs.is_object()) {
    const char* key = rs.contains("rope_type") ? "rope_type" : "type";
    if (!rs.contains(key) || !rs[key].is_string())
      throw Error(ErrorKind::kConfig, "rope_scaling in config.json has no 'rope_type' (or 'type')");
    type = rs[key].get<std::string>();
  } else if (!rs.is_null()) {
    throw Error(ErrorKind::kConfig, "rope_scaling in config.json must be an object or null");
  }

  if (type == "default") {
  } else if (type == "linear") {
    const double f = number_field(rs, "factor");
    if (f <= 0) throw Error(ErrorKind::kConfig, "rope_scaling.factor must be positive");
    for (double& x : inv) x /= f;
  } else if (type == "llama3") {
    // Llama 3.1: keep high frequencies, divide low ones by `factor`, blend in between.
    const double f = number_field(rs, "factor");
    const double lo = number_field(rs, "low_freq_factor");
    const double hi = number_field(rs, "high_freq_factor");
    const double orig = number_field(rs, "original_max_position_embeddings");
    if (f <= 0 || lo <= 0 || hi <= lo || orig <= 0)
      throw Error(ErrorKind::kConfig,
                  "rope_scaling (llama3) needs factor > 0 and high_freq_factor > low_freq_factor > 0");
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
  } else {
    throw Error(ErrorKind::kUnsupported, "rope_scaling type '" + type +
                                             "' is not supported yet (supported: default, "
                                             "linear, llama3)");
  }
  for (int i = 0; i < rot / 2; ++i) r.inv_freq[i] = static_cast<float>(inv[i]);
  return r;
}

}  // namespace longctx
