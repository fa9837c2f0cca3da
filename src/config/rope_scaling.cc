// rope_scaling -> RopeScaling, following transformers' modeling_rope_utils (_compute_*_parameters)
// and Phi3Config; see docs/rope-scaling.md.
#include "config/rope_scaling.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace longctx {

namespace {

using json = nlohmann::json;

class RopeFields {
 public:
  RopeFields(const json& j, const RopeContext& ctx, std::string type)
      : j_(j), ctx_(ctx), type_(std::move(type)) {}

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw Error(ErrorKind::kConfig,
                ctx_.origin + ": field \"rope_scaling." + key + "\" " + what +
                    "; use the config.json that came with the checkpoint, or fix the field");
  }
  bool has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }
  double number(const char* key) const {
    if (!has(key))
      fail(key, "is required for rope type \"" + type_ + "\" but missing");
    return checked(key);
  }
  double number_or(const char* key, double def) const { return has(key) ? checked(key) : def; }
  // A scaling factor: positive and at most kMaxFactor (real ones are below 100), so that the
  // frequencies it divides stay finite, non-zero floats.
  static constexpr double kMaxFactor = 1e6;
  double positive(const char* key) const {
    const double x = number(key);
    if (!(x > 0)) fail(key, "is " + j_[key].dump() + " but must be positive");
    if (!(x <= kMaxFactor)) fail(key, "is " + j_[key].dump() + " but must be at most 1e6");
    return x;
  }
  // A context length (original_max_position_embeddings): a positive number no larger than
  // config.json's own limit for max_position_embeddings, so that it converts to an integer.
  int64_t length(const char* key) const {
    const double x = number(key);
    constexpr int64_t kMax = int64_t{1} << 28;
    if (!(x > 0)) fail(key, "is " + j_[key].dump() + " but must be positive");
    if (!(x <= static_cast<double>(kMax)))
      fail(key, "is " + j_[key].dump() + " but must be at most " + std::to_string(kMax));
    return static_cast<int64_t>(x);
  }
  bool boolean_or(const char* key, bool def) const {
    if (!has(key)) return def;
    if (!j_[key].is_boolean()) fail(key, "must be true or false but is " + j_[key].dump());
    return j_[key].get<bool>();
  }
  // A list of rot_dim / 2 positive numbers.
  std::vector<double> factors(const char* key) const {
    if (!has(key)) fail(key, "is required for rope type \"" + type_ + "\" but missing");
    const json& a = j_[key];
    const size_t want = static_cast<size_t>(ctx_.rot_dim / 2);
    if (!a.is_array()) fail(key, "must be a list of numbers but is " + a.dump());
    if (a.size() != want)
      fail(key, "has " + std::to_string(a.size()) + " entries but must have rot_dim / 2 = " +
                    std::to_string(want) + " (head_dim x partial_rotary_factor / 2)");
    std::vector<double> out;
    for (size_t i = 0; i < a.size(); ++i) {
      if (!a[i].is_number() || !(a[i].get<double>() > 0) || !(a[i].get<double>() <= kMaxFactor))
        fail(key, "entry " + std::to_string(i) + " is " + a[i].dump() +
                      " but must be a positive number, at most 1e6");
      out.push_back(a[i].get<double>());
    }
    return out;
  }

 private:
  double checked(const char* key) const {
    const json& v = j_[key];
    if (!v.is_number()) fail(key, "must be a number but is " + v.dump());
    const double x = v.get<double>();
    if (!std::isfinite(x)) fail(key, "must be finite");
    return x;
  }
  const json& j_;
  const RopeContext& ctx_;
  std::string type_;
};

// YaRN's attention scaling ("mscale") for a context extended by `scale`.
double yarn_mscale(double scale, double mscale = 1.0) {
  return scale <= 1 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

}  // namespace

const char* rope_type_name(RopeType type) {
  switch (type) {
    case RopeType::kDefault: return "default";
    case RopeType::kLinear: return "linear";
    case RopeType::kDynamic: return "dynamic";
    case RopeType::kYarn: return "yarn";
    case RopeType::kLlama3: return "llama3";
    case RopeType::kLongRope: return "longrope";
  }
  return "?";
}

RopeScaling parse_rope_scaling(const std::string& json_text, const RopeContext& ctx) {
  RopeScaling r;
  if (json_text.empty()) return r;
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception&) {
    throw Error(ErrorKind::kConfig, ctx.origin + ": field \"rope_scaling\" is not valid JSON");
  }
  if (!j.is_object())
    throw Error(ErrorKind::kConfig, ctx.origin + ": field \"rope_scaling\" must be an object");
  // transformers: rope_scaling.get("rope_type", rope_scaling.get("type")).
  const char* key = j.contains("rope_type") && !j["rope_type"].is_null() ? "rope_type" : "type";
  RopeFields f(j, ctx, "");
  if (!f.has(key))
    f.fail("rope_type",
           "is missing (rope_scaling must name its type in \"rope_type\" or \"type\", e.g. "
           "\"llama3\")");
  if (!j[key].is_string()) f.fail(key, "must be a string but is " + j[key].dump());
  r.name = j[key].get<std::string>();
  const bool phi3 = ctx.model_type == "phi3";
  if (r.name == "default") {
    r.type = RopeType::kDefault;
  } else if (r.name == "linear") {
    r.type = RopeType::kLinear;
  } else if (r.name == "dynamic") {
    r.type = RopeType::kDynamic;
  } else if (r.name == "yarn" && !phi3) {
    r.type = RopeType::kYarn;
  } else if (r.name == "llama3") {
    r.type = RopeType::kLlama3;
  } else if (r.name == "longrope" || r.name == "su" || (r.name == "yarn" && phi3)) {
    r.type = RopeType::kLongRope;  // Phi3Config renames "su" and "yarn" to "longrope"
  } else {
    throw Error(ErrorKind::kUnsupported,
                ctx.origin + ": field \"rope_scaling." + key + "\" is \"" + r.name +
                    "\", a RoPE scaling type longctx does not know; supported: default, linear, "
                    "dynamic, yarn, llama3, longrope (also spelled su)");
  }
  const RopeFields rf(j, ctx, r.name);

  switch (r.type) {
    case RopeType::kDefault:
      break;
    case RopeType::kLinear:
      r.factor = rf.positive("factor");
      break;
    case RopeType::kDynamic:
      r.factor = rf.positive("factor");
      if (ctx.rot_dim <= 2)
        throw Error(ErrorKind::kConfig, ctx.origin +
                                            ": rope type \"dynamic\" needs more than 2 rotary "
                                            "dimensions (head_dim x partial_rotary_factor)");
      break;
    case RopeType::kLlama3: {
      r.factor = rf.positive("factor");
      r.low_freq_factor = rf.positive("low_freq_factor");
      r.high_freq_factor = rf.positive("high_freq_factor");
      r.original_max_position_embeddings = rf.length("original_max_position_embeddings");
      if (r.high_freq_factor <= r.low_freq_factor)
        rf.fail("high_freq_factor", "must be greater than low_freq_factor");
      break;
    }
    case RopeType::kYarn: {
      r.factor = rf.positive("factor");
      r.original_max_position_embeddings = rf.has("original_max_position_embeddings")
                                               ? rf.length("original_max_position_embeddings")
                                               : ctx.max_position_embeddings;
      // transformers: rope_scaling.get("beta_fast") or 32 (0 and null mean the default).
      r.beta_fast = rf.number_or("beta_fast", 0);
      if (r.beta_fast == 0) r.beta_fast = 32;
      r.beta_slow = rf.number_or("beta_slow", 0);
      if (r.beta_slow == 0) r.beta_slow = 1;
      if (!(r.beta_fast > 0 && r.beta_slow > 0))
        rf.fail("beta_fast", "and beta_slow must be positive");
      r.truncate = rf.boolean_or("truncate", true);
      const double mscale = rf.number_or("mscale", 0);
      const double mscale_all_dim = rf.number_or("mscale_all_dim", 0);
      if (rf.has("attention_factor"))
        r.attention_factor = rf.positive("attention_factor");
      else if (mscale != 0 && mscale_all_dim != 0)
        r.attention_factor =
            yarn_mscale(r.factor, mscale) / yarn_mscale(r.factor, mscale_all_dim);
      else
        r.attention_factor = yarn_mscale(r.factor);
      if (!(std::isfinite(r.attention_factor) && r.attention_factor > 0))
        rf.fail("mscale", "and mscale_all_dim give the attention factor " +
                              std::to_string(r.attention_factor) + "; it must be positive");
      break;
    }
    case RopeType::kLongRope: {
      r.short_factor = rf.factors("short_factor");
      r.long_factor = rf.factors("long_factor");
      if (ctx.original_max_position_embeddings > 0)
        r.original_max_position_embeddings = ctx.original_max_position_embeddings;
      else if (rf.has("original_max_position_embeddings"))
        r.original_max_position_embeddings = rf.length("original_max_position_embeddings");
      else
        r.original_max_position_embeddings = ctx.max_position_embeddings;
      if (r.original_max_position_embeddings < 2)
        rf.fail("original_max_position_embeddings", "must be at least 2 for longrope");
      r.factor = rf.has("factor") ? rf.positive("factor")
                                  : static_cast<double>(ctx.max_position_embeddings) /
                                        static_cast<double>(r.original_max_position_embeddings);
      if (rf.has("attention_factor"))
        r.attention_factor = rf.positive("attention_factor");
      else
        r.attention_factor =
            r.factor <= 1 ? 1.0
                          : std::sqrt(1 + std::log(r.factor) /
                                              std::log(static_cast<double>(
                                                  r.original_max_position_embeddings)));
      break;
    }
  }
  return r;
}

}  // namespace longctx
