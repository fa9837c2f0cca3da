// Hook names (hooks/hook_point.h), globs, row shapes, position slices and the request checks of
// HookRunner: the names are TransformerLens's (docs/hooks.md), written out here independently.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "config/model_config.h"
#include "core/error.h"
#include "hooks/hook_point.h"
#include "hooks/hook_runner.h"

namespace longctx::hooks {
namespace {

// TransformerLens names of one block, in the order a block computes them.
const std::vector<std::string> kBlockSuffixes = {
    "hook_resid_pre",        "ln1.hook_scale",        "ln1.hook_normalized",
    "attn.hook_q",           "attn.hook_k",           "attn.hook_v",
    "attn.hook_rot_q",       "attn.hook_rot_k",       "attn.hook_attn_scores",
    "attn.hook_pattern",     "attn.pattern_key_mass", "attn.pattern_entropy",
    "attn.hook_z",           "hook_attn_out",         "hook_resid_mid",
    "ln2.hook_scale",        "ln2.hook_normalized",   "mlp.hook_pre",
    "mlp.hook_pre_linear",   "mlp.hook_post",         "hook_mlp_out",
    "hook_resid_post"};

std::vector<std::string> names_of(const std::vector<HookId>& ids) {
  std::vector<std::string> out;
  for (const HookId& id : ids) out.push_back(hook_name(id));
  return out;
}

std::vector<std::string> block_names(int layer, const std::vector<std::string>& suffixes) {
  std::vector<std::string> out;
  for (const auto& s : suffixes) out.push_back("blocks." + std::to_string(layer) + "." + s);
  return out;
}

// The message of the Error `f` throws, after checking its kind.
template <typename F>
std::string error_of(F&& f, ErrorKind kind) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no Error thrown";
  return "";
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

TEST(HookNames, AllHooksInModelOrder) {
  std::vector<std::string> want = {"hook_embed"};
  for (int l = 0; l < 3; ++l)
    for (const auto& n : block_names(l, kBlockSuffixes)) want.push_back(n);
  for (const char* n : {"ln_final.hook_scale", "ln_final.hook_normalized", "logits"})
    want.push_back(n);
  EXPECT_EQ(names_of(all_hooks(3)), want);
}

TEST(HookNames, ParseEveryNameRoundTrips) {
  for (const HookId& id : all_hooks(4)) {
    const std::string name = hook_name(id);
    EXPECT_EQ(parse_hook_name(name, 4), id) << name;
  }
  EXPECT_EQ(parse_hook_name("hook_embed", 2), (HookId{Point::kEmbed, -1}));
  EXPECT_EQ(parse_hook_name("logits", 2), (HookId{Point::kLogits, -1}));
  EXPECT_EQ(parse_hook_name("ln_final.hook_normalized", 2),
            (HookId{Point::kLnFinalNormalized, -1}));
  EXPECT_EQ(parse_hook_name("blocks.1.attn.hook_rot_k", 2), (HookId{Point::kRotK, 1}));
  EXPECT_EQ(parse_hook_name("blocks.0.mlp.hook_pre_linear", 2), (HookId{Point::kMlpPreLinear, 0}));
  EXPECT_EQ(point_suffix(Point::kPatternKeyMass), "attn.pattern_key_mass");
  EXPECT_EQ(point_suffix(Point::kLogits), "logits");
}

TEST(HookNames, UnknownNameSuggestsNearestValidNames) {
  std::string m = error_of([] { parse_hook_name("blocks.0.hook_resid_psot", 4); },
                           ErrorKind::kInvalidArg);
  EXPECT_TRUE(contains(m, "blocks.0.hook_resid_psot")) << m;   // names what was asked
  EXPECT_TRUE(contains(m, "blocks.0.hook_resid_post")) << m;   // and the nearest valid name
  m = error_of([] { parse_hook_name("blocks.2.attn.hook_pattrn", 4); }, ErrorKind::kInvalidArg);
  EXPECT_TRUE(contains(m, "blocks.2.attn.hook_pattern")) << m;
  m = error_of([] { parse_hook_name("hook_embd", 4); }, ErrorKind::kInvalidArg);
  EXPECT_TRUE(contains(m, "hook_embed")) << m;
  // Not a hook at all, and prefixes / suffixes of valid names.
  error_of([] { parse_hook_name("", 4); }, ErrorKind::kInvalidArg);
  error_of([] { parse_hook_name("blocks.0", 4); }, ErrorKind::kInvalidArg);
  error_of([] { parse_hook_name("blocks.0.attn.hook_q.x", 4); }, ErrorKind::kInvalidArg);
  error_of([] { parse_hook_name("blocks.x.hook_resid_post", 4); }, ErrorKind::kInvalidArg);
  error_of([] { parse_hook_name("hook_resid_post", 4); }, ErrorKind::kInvalidArg);
  error_of([] { parse_hook_name("blocks.0.logits", 4); }, ErrorKind::kInvalidArg);
}

// The suggestions come from one layer's names (the request's), and a hostile name is compared and
// echoed by its first 80 characters: a 1 MB name or an 80-layer model stays cheap.
TEST(HookNames, SuggestionsStayCheapForHugeNamesAndModels) {
  std::string m = error_of([] { parse_hook_name("blocks.61.hook_resid_psot", 80); },
                           ErrorKind::kInvalidArg);
  EXPECT_TRUE(contains(m, "did you mean blocks.61.hook_resid_post")) << m;
  const std::string huge = "blocks.0.hook_resid_post" + std::string(1 << 20, 'x');
  m = error_of([&] { parse_hook_name(huge, 80); }, ErrorKind::kInvalidArg);
  EXPECT_LT(m.size(), 1000u);
  EXPECT_TRUE(contains(m, "blocks.0.hook_resid_postxxx")) << m;
  EXPECT_TRUE(contains(m, "...'")) << m;
  EXPECT_TRUE(contains(m, "did you mean blocks.0.hook_resid_post")) << m;
}

TEST(HookNames, LayerOutOfRange) {
  std::string m = error_of([] { parse_hook_name("blocks.4.hook_resid_post", 4); },
                           ErrorKind::kInvalidArg);
  EXPECT_TRUE(contains(m, "4")) << m;
  EXPECT_TRUE(contains(m, "0..3")) << m;  // the valid layers
  error_of([] { parse_hook_name("blocks.-1.hook_resid_post", 4); }, ErrorKind::kInvalidArg);
  error_of([] { parse_hook_name("blocks.100.attn.hook_q", 4); }, ErrorKind::kInvalidArg);
  EXPECT_EQ(parse_hook_name("blocks.3.hook_resid_post", 4), (HookId{Point::kResidPost, 3}));
}

TEST(HookLists, GlobsExpandInModelOrderWithoutDuplicates) {
  EXPECT_EQ(names_of(expand_hook_list("blocks.*.hook_resid_post", 3)),
            (std::vector<std::string>{"blocks.0.hook_resid_post", "blocks.1.hook_resid_post",
                                      "blocks.2.hook_resid_post"}));
  EXPECT_EQ(names_of(expand_hook_list("blocks.1.attn.*", 3)),
            block_names(1, {"attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_rot_q",
                            "attn.hook_rot_k", "attn.hook_attn_scores", "attn.hook_pattern",
                            "attn.pattern_key_mass", "attn.pattern_entropy", "attn.hook_z"}));
  // Duplicates (exact and through globs) collapse; the order is the model's, not the list's.
  EXPECT_EQ(names_of(expand_hook_list(
                "logits, blocks.1.hook_resid_post,blocks.*.hook_resid_post,hook_embed,"
                "blocks.1.hook_resid_post,logits",
                2)),
            (std::vector<std::string>{"hook_embed", "blocks.0.hook_resid_post",
                                      "blocks.1.hook_resid_post", "logits"}));
  EXPECT_EQ(expand_hook_list("*", 2), all_hooks(2));
  EXPECT_EQ(names_of(expand_hook_list("*.hook_scale", 1)),
            (std::vector<std::string>{"blocks.0.ln1.hook_scale", "blocks.0.ln2.hook_scale",
                                      "ln_final.hook_scale"}));
  EXPECT_EQ(names_of(expand_hook_list("blocks.*.mlp.hook_pre", 2)),
            (std::vector<std::string>{"blocks.0.mlp.hook_pre", "blocks.1.mlp.hook_pre"}));
  EXPECT_TRUE(expand_hook_list("", 2).empty());
}

TEST(HookLists, Errors) {
  std::string m = error_of([] { expand_hook_list("blocks.*.hook_nothing", 3); },
                           ErrorKind::kInvalidArg);
  EXPECT_TRUE(contains(m, "blocks.*.hook_nothing")) << m;
  error_of([] { expand_hook_list("blocks.7.*", 3); }, ErrorKind::kInvalidArg);  // no layer 7
  // One bad item spoils the list, whether exact or out of range.
  m = error_of([] { expand_hook_list("blocks.*.hook_resid_post,blocks.0.hook_q", 3); },
               ErrorKind::kInvalidArg);
  EXPECT_TRUE(contains(m, "blocks.0.attn.hook_q")) << m;
  error_of([] { expand_hook_list("hook_embed,blocks.3.hook_resid_pre", 3); },
           ErrorKind::kInvalidArg);
  // A list far longer than the model has hooks is refused with the counts, before any matching
  // (200,000 globs used to mean 200,000 passes over every hook name); one within the bound with
  // repeats still collapses to each hook once.
  std::string many;
  for (int i = 0; i < 200000; ++i) many += i ? ",*" : "*";
  const size_t hooks = all_hooks(3).size();
  m = error_of([&] { expand_hook_list(many, 3); }, ErrorKind::kInvalidArg);
  EXPECT_TRUE(contains(m, "200000 items")) << m;
  EXPECT_TRUE(contains(m, "at most " + std::to_string(4 * hooks + 64))) << m;
  std::string repeats;
  for (size_t i = 0; i < 4 * hooks + 64; ++i) repeats += i ? ",logits" : "logits";
  EXPECT_EQ(names_of(expand_hook_list(repeats, 3)), (std::vector<std::string>{"logits"}));
}

ModelConfig test_config() {
  ModelConfig c;
  c.model_type = "llama";
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.vocab_size = 300;
  c.max_position_embeddings = 256;
  return c;
}

TEST(HookShapes, RowDims) {
  const ModelConfig c = test_config();
  using D = std::vector<int64_t>;
  const std::vector<std::pair<Point, D>> want = {
      {Point::kEmbed, {64}},           {Point::kLnFinalScale, {1}},
      {Point::kLnFinalNormalized, {64}}, {Point::kLogits, {300}},
      {Point::kResidPre, {64}},        {Point::kLn1Scale, {1}},
      {Point::kLn1Normalized, {64}},   {Point::kQ, {4, 16}},
      {Point::kK, {2, 16}},            {Point::kV, {2, 16}},
      {Point::kRotQ, {4, 16}},         {Point::kRotK, {2, 16}},
      {Point::kAttnScores, {}},        {Point::kPattern, {}},
      {Point::kPatternKeyMass, {}},    {Point::kPatternEntropy, {}},
      {Point::kZ, {4, 16}},            {Point::kAttnOut, {64}},
      {Point::kResidMid, {64}},        {Point::kLn2Scale, {1}},
      {Point::kLn2Normalized, {64}},   {Point::kMlpPre, {96}},
      {Point::kMlpPreLinear, {96}},    {Point::kMlpPost, {96}},
      {Point::kMlpOut, {64}},          {Point::kResidPost, {64}}};
  ASSERT_EQ(want.size(), static_cast<size_t>(kPointCount));
  for (const auto& [p, dims] : want) {
    SCOPED_TRACE(std::string(point_suffix(p)));
    EXPECT_EQ(row_dims(p, c), dims);
    int64_t w = 1;
    for (int64_t d : dims) w *= d;
    if (!dims.empty()) {
      EXPECT_EQ(row_width(p, c), w);
    }
    EXPECT_EQ(is_pattern_point(p), dims.empty());
    EXPECT_EQ(is_layer_point(p), p >= Point::kResidPre);
  }
}

TEST(PosSlices, ParseAndResolve) {
  using P = std::pair<int64_t, int64_t>;
  EXPECT_EQ(PosSlice::parse("3:10").resolve(40), P(3, 10));
  EXPECT_EQ(PosSlice::parse(":").resolve(40), P(0, 40));
  EXPECT_EQ(PosSlice{}.resolve(40), P(0, 40));
  EXPECT_EQ(PosSlice::parse("-16:").resolve(40), P(24, 40));
  EXPECT_EQ(PosSlice::parse(":-1").resolve(40), P(0, 39));
  EXPECT_EQ(PosSlice::parse("-10:-2").resolve(40), P(30, 38));
  EXPECT_EQ(PosSlice::parse("5").resolve(40), P(5, 6));
  EXPECT_EQ(PosSlice::parse("-1").resolve(40), P(39, 40));
  EXPECT_EQ(PosSlice::parse("-3").resolve(40), P(37, 38));
  EXPECT_EQ(PosSlice::parse("0").resolve(1), P(0, 1));
  // Python clamps slice ends to the sequence.
  EXPECT_EQ(PosSlice::parse("0:1000").resolve(40), P(0, 40));
  EXPECT_EQ(PosSlice::parse("-100:5").resolve(40), P(0, 5));
  EXPECT_EQ(PosSlice::parse("3:10").str(), "3:10");
  EXPECT_EQ(PosSlice::parse("-16:").str(), "-16:");
}

TEST(PosSlices, EmptySliceIsAnError) {
  for (const char* s : {"10:5", "7:7", "40:", "50:60", "-100:-90", "40", ":0"}) {
    SCOPED_TRACE(s);
    const PosSlice sl = PosSlice::parse(s);
    const std::string m = error_of([&] { sl.resolve(40); }, ErrorKind::kOutOfRange);
    EXPECT_TRUE(contains(m, "40")) << m;  // names the prompt length
  }
  for (const char* s : {"a:b", "1:2:3", "x", "1.5:"}) {
    SCOPED_TRACE(s);
    error_of([&] { PosSlice::parse(s); }, ErrorKind::kInvalidArg);
  }
}

// The runner checks a request before anything runs, naming the hook.
TEST(HookRequests, RejectedBeforeRunning) {
  const ModelConfig c = test_config();
  auto make = [&](HookRequest r, int64_t n = 20) { HookRunner run(c, std::move(r), n); };
  const HookId resid{Point::kResidPost, 1};
  {
    HookRequest r;  // rows over the slice: [1, 20, 64]; a [1, 19, 64] patch is wrong
    r.patches.push_back(Patch::from_vector(resid, {1, 19, 64}, std::vector<float>(19 * 64)));
    const std::string m = error_of([&] { make(r); }, ErrorKind::kShape);
    EXPECT_TRUE(contains(m, "blocks.1.hook_resid_post")) << m;
  }
  {
    HookRequest r;
    r.pos = PosSlice::parse("5:9");  // 4 positions
    r.patches.push_back(Patch::from_vector(resid, {1, 4, 64}, std::vector<float>(4 * 64)));
    r.patches.push_back(Patch::from_vector({Point::kZ, 0}, {4, 16}, std::vector<float>(64)));
    EXPECT_NO_THROW(make(r));
  }
  {
    HookRequest r;
    std::vector<float> v(64, 0.f);
    v[3] = std::nanf("");
    r.patches.push_back(Patch::from_vector(resid, {64}, v));
    error_of([&] { make(r); }, ErrorKind::kInvalidArg);
  }
  {
    HookRequest r;
    r.steers.push_back({{Point::kMlpPost, 0}, std::vector<float>(64), 1.f});  // width is 96
    const std::string m = error_of([&] { make(r); }, ErrorKind::kShape);
    EXPECT_TRUE(contains(m, "blocks.0.mlp.hook_post")) << m;
  }
  {
    HookRequest r;
    r.steers.push_back({{Point::kPattern, 0}, std::vector<float>(64), 1.f});
    error_of([&] { make(r); }, ErrorKind::kInvalidArg);
  }
  {
    HookRequest r;
    r.capture = expand_hook_list("blocks.0.attn.hook_pattern", 2);
    r.pattern_queries = {3, 20};  // 20 is past a 20-token prompt
    error_of([&] { make(r); }, ErrorKind::kOutOfRange);
    r.pattern_queries = {-21};
    error_of([&] { make(r); }, ErrorKind::kOutOfRange);
    r.pattern_queries = {-20, 19, 5, 5};
    HookRunner ok(c, r, 20);
    std::set<std::string> names;
    for (const auto& t : ok.tensors()) names.insert(t.name);
    EXPECT_EQ(names, (std::set<std::string>{"blocks.0.attn.hook_pattern",
                                            "blocks.0.attn.pattern_query_pos"}));
    for (const auto& t : ok.tensors()) {
      if (t.name == "blocks.0.attn.hook_pattern") {
        EXPECT_EQ(t.shape, (std::vector<int64_t>{1, 4, 3, 20}));  // 3 distinct queries
      }
    }
  }
  {
    HookRequest r;
    r.pos = PosSlice::parse("30:");
    error_of([&] { make(r); }, ErrorKind::kOutOfRange);
  }
}

}  // namespace
}  // namespace longctx::hooks
