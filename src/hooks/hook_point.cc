#include "hooks/hook_point.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <set>

#include "core/error.h"
#include "core/strings.h"

namespace longctx::hooks {

namespace {

constexpr std::array<std::string_view, kPointCount> kSuffix = {
    "hook_embed",
    "ln_final.hook_scale",
    "ln_final.hook_normalized",
    "logits",
    "hook_resid_pre",
    "ln1.hook_scale",
    "ln1.hook_normalized",
    "attn.hook_q",
    "attn.hook_k",
    "attn.hook_v",
    "attn.hook_rot_q",
    "attn.hook_rot_k",
    "attn.hook_attn_scores",
    "attn.hook_pattern",
    "attn.pattern_key_mass",
    "attn.pattern_entropy",
    "attn.hook_z",
    "hook_attn_out",
    "hook_resid_mid",
    "ln2.hook_scale",
    "ln2.hook_normalized",
    "mlp.hook_pre",
    "mlp.hook_pre_linear",
    "mlp.hook_post",
    "hook_mlp_out",
    "hook_resid_post",
};

// Order in which the decoder fires the points of one block (enum order puts the pattern points
// beside the attention they come from, which is also firing order).
constexpr std::string_view kBlocks = "blocks.";

// '*' matches any run of characters (including dots and none).
bool glob_match(std::string_view pat, std::string_view s) {
  size_t p = 0, i = 0, star = std::string_view::npos, mark = 0;
  while (i < s.size()) {
    if (p < pat.size() && pat[p] == '*') {
      star = p++;
      mark = i;
    } else if (p < pat.size() && pat[p] == s[i]) {
      ++p;
      ++i;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      i = ++mark;
    } else {
      return false;
    }
  }
  while (p < pat.size() && pat[p] == '*') ++p;
  return p == pat.size();
}


std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return std::string(s);
}

}  // namespace

std::string_view point_suffix(Point p) { return kSuffix[static_cast<size_t>(p)]; }

std::string hook_name(HookId id) {
  if (!is_layer_point(id.point)) return std::string(point_suffix(id.point));
  return std::string(kBlocks) + std::to_string(id.layer) + "." + std::string(point_suffix(id.point));
}

std::vector<HookId> all_hooks(int n_layers) {
  std::vector<HookId> out;
  out.push_back({Point::kEmbed, -1});
  for (int l = 0; l < n_layers; ++l)
    for (int p = static_cast<int>(Point::kResidPre); p < kPointCount; ++p)
      out.push_back({static_cast<Point>(p), l});
  out.push_back({Point::kLnFinalScale, -1});
  out.push_back({Point::kLnFinalNormalized, -1});
  out.push_back({Point::kLogits, -1});
  return out;
}

HookId parse_hook_name(std::string_view name, int n_layers) {
  for (int p = 0; p < static_cast<int>(Point::kResidPre); ++p)
    if (name == kSuffix[static_cast<size_t>(p)]) return {static_cast<Point>(p), -1};
  int layer = -1;  // the request's layer, where it names one
  if (name.substr(0, kBlocks.size()) == kBlocks) {
    std::string_view rest = name.substr(kBlocks.size());
    const auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), layer);
    const size_t digits = static_cast<size_t>(ptr - rest.data());
    if (ec != std::errc()) layer = -1;
    if (ec == std::errc() && digits > 0 && digits < rest.size() && rest[digits] == '.') {
      const std::string_view suffix = rest.substr(digits + 1);
      for (int p = static_cast<int>(Point::kResidPre); p < kPointCount; ++p) {
        if (suffix != kSuffix[static_cast<size_t>(p)]) continue;
        if (layer < 0 || layer >= n_layers)
          throw Error(ErrorKind::kInvalidArg,
                      "hook " + std::string(name) + ": layer " + std::to_string(layer) +
                          " is out of range; this model has layers 0.." +
                          std::to_string(n_layers - 1));
        return {static_cast<Point>(p), layer};
      }
    }
  }
  // Suggest the nearest names among the model-wide ones and one layer's (the request's layer when
  // it is in range, else layer 0): comparing with every layer's names cost O(layers) edit
  // distances per unknown name. A long name is compared and echoed by its first 80 characters, so
  // a hostile --hooks value cannot make the suggestion quadratic in its length.
  constexpr size_t kShown = 80;
  const std::string_view shown = name.substr(0, kShown);
  const std::string echo = std::string(shown) + (name.size() > kShown ? "..." : "");
  const int l = layer >= 0 && layer < n_layers ? layer : 0;
  std::vector<std::pair<size_t, std::string>> near;
  for (int p = 0; p < kPointCount; ++p) {
    const HookId id{static_cast<Point>(p), p >= static_cast<int>(Point::kResidPre) ? l : -1};
    const std::string n = hook_name(id);
    near.emplace_back(edit_distance(shown, n), n);
  }
  std::sort(near.begin(), near.end());
  std::string hint;
  for (size_t i = 0; i < std::min<size_t>(3, near.size()); ++i)
    hint += (i ? ", " : "") + near[i].second;
  throw Error(ErrorKind::kInvalidArg, "unknown hook name '" + echo + "'; did you mean " + hint +
                                          "? (the table is in docs/hooks.md; globs like "
                                          "blocks.*.hook_resid_post work too)");
}

std::vector<HookId> expand_hook_list(std::string_view list, int n_layers) {
  std::vector<HookId> out;
  const std::vector<HookId> every = all_hooks(n_layers);
  // Each item costs a pass over every hook name: a list far longer than the model has hooks is a
  // mistake (or hostile), refused before the work.
  const size_t items = static_cast<size_t>(std::count(list.begin(), list.end(), ',')) + 1;
  const size_t max_items = 4 * every.size() + 64;
  if (items > max_items)
    throw Error(ErrorKind::kInvalidArg,
                "the hook list has " + std::to_string(items) + " items; this model has " +
                    std::to_string(every.size()) + " hooks, so at most " +
                    std::to_string(max_items) + " items are accepted (globs like "
                    "blocks.*.hook_resid_post name many hooks at once)");
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    if (comma == std::string_view::npos) comma = list.size();
    const std::string item = trim(list.substr(start, comma - start));
    start = comma + 1;
    if (item.empty()) continue;
    if (item.find('*') == std::string::npos) {
      out.push_back(parse_hook_name(item, n_layers));
      continue;
    }
    bool any = false;
    for (const HookId& id : every)
      if (glob_match(item, hook_name(id))) {
        out.push_back(id);
        any = true;
      }
    if (!any)
      throw Error(ErrorKind::kInvalidArg,
                  "the hook pattern '" + item + "' matches no hook of this model (" +
                      std::to_string(n_layers) +
                      " layers); names are like blocks.0.hook_resid_post or "
                      "blocks.*.attn.hook_q (docs/hooks.md)");
  }
  // Model order, each hook once.
  const std::set<HookId> chosen(out.begin(), out.end());
  std::vector<HookId> ordered;
  for (const HookId& id : every)
    if (chosen.count(id)) ordered.push_back(id);
  return ordered;
}

std::vector<int64_t> row_dims(Point p, const ModelConfig& cfg) {
  switch (p) {
    case Point::kLnFinalScale:
    case Point::kLn1Scale:
    case Point::kLn2Scale:
      return {1};
    case Point::kLogits:
      return {cfg.vocab_size};
    case Point::kQ:
    case Point::kRotQ:
    case Point::kZ:
      return {cfg.num_attention_heads, cfg.head_dim};
    case Point::kK:
    case Point::kV:
    case Point::kRotK:
      return {cfg.num_key_value_heads, cfg.head_dim};
    case Point::kMlpPre:
    case Point::kMlpPreLinear:
    case Point::kMlpPost:
      return {cfg.intermediate_size};
    case Point::kAttnScores:
    case Point::kPattern:
    case Point::kPatternKeyMass:
    case Point::kPatternEntropy:
      return {};
    default:
      return {cfg.hidden_size};
  }
}

int64_t row_width(Point p, const ModelConfig& cfg) {
  int64_t w = 1;
  for (int64_t d : row_dims(p, cfg)) w *= d;
  return w;
}

}  // namespace longctx::hooks
