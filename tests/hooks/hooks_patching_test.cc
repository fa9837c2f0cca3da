// Patching and steering through HookRunner: a hook patched with its own value changes no logit,
// resid_post patched from another prompt and steering give the float64 reference's logits.
#include "hooks/hooks_test_util.h"

namespace longctx {
namespace {

using namespace hooktest;

// ---- patching and steering ----

// Names of every hook that can be patched (position-major, not logits).
std::vector<std::string> patchable(int L) {
  std::vector<std::string> out;
  for (const std::string& n : every_name(L)) {
    if (n == "logits" || n.find("pattern") != std::string::npos ||
        n.find("attn_scores") != std::string::npos)
      continue;
    out.push_back(n);
  }
  return out;
}

hooks::Patch patch_from(const Captured& c, const std::string& name, int L) {
  const int i = c.index(name);
  EXPECT_GE(i, 0) << name;
  return hooks::Patch::from_vector(hooks::parse_hook_name(name, L), c.tensors[i].shape,
                                   c.f32[static_cast<size_t>(i)]);
}

class Patching : public ::testing::TestWithParam<std::string> {};

// Every patchable hook, one at a time and all at once, over the whole prompt and over a slice.
TEST_P(Patching, OwnValueLeavesLogitsUnchanged) {
  const Case c = make_case(GetParam());
  const auto model = Model::load(c.dir);
  ThreadPool pool(2);
  const Reference ref(c.dir);
  const auto toks = prompt(c, ref, 40, 21);
  for (const char* pos : {":", "5:17"}) {
    SCOPED_TRACE(std::string("pos ") + pos);
    hooks::HookRequest cap;
    cap.pos = hooks::PosSlice::parse(pos);
    for (const std::string& n : patchable(ref.L))
      cap.capture.push_back(hooks::parse_hook_name(n, ref.L));
    const Captured base = run(*model, pool, cap, toks);
    const Vec want(base.logits.begin(), base.logits.end());
    hooks::HookRequest all;
    all.pos = cap.pos;
    for (const std::string& n : patchable(ref.L)) {
      hooks::HookRequest one;
      one.pos = cap.pos;
      one.patches.push_back(patch_from(base, n, ref.L));
      all.patches.push_back(one.patches.back());
      const Captured got = run(*model, pool, one, toks);
      EXPECT_TRUE(close("logits patched at " + n, got.logits, want, kSameTol));
    }
    const Captured got = run(*model, pool, all, toks);
    EXPECT_TRUE(close("logits patched at every hook", got.logits, want, kSameTol));
  }
}

// blocks.{l}.hook_resid_post of prompt A replaced by prompt B's, over all positions and over a
// slice: the logits are the reference's with the same replacement.
TEST_P(Patching, ResidPostFromAnotherPromptMatchesReference) {
  const Case c = make_case(GetParam());
  const auto model = Model::load(c.dir);
  ThreadPool pool(2);
  const Reference ref(c.dir);
  const size_t n = 40;
  const auto a = prompt(c, ref, n, 31), b = prompt(c, ref, n, 32);
  RefTrace trb;
  trb.record = true;
  ref.forward(b, c.rope, &trb);
  for (const char* pos : {":", "10:25"}) {
    SCOPED_TRACE(std::string("pos ") + pos);
    const auto [first, last] = hooks::PosSlice::parse(pos).resolve(static_cast<int64_t>(n));
    for (int l = 0; l < ref.L; ++l) {
      const std::string name = "blocks." + std::to_string(l) + ".hook_resid_post";
      SCOPED_TRACE(name);
      hooks::HookRequest cap;
      cap.pos = hooks::PosSlice::parse(pos);
      cap.capture = {hooks::parse_hook_name(name, ref.L)};
      const Captured from_b = run(*model, pool, cap, b);
      hooks::HookRequest req;
      req.pos = cap.pos;
      req.patches.push_back(patch_from(from_b, name, ref.L));
      const Captured got = run(*model, pool, req, a);
      const Vec& rb = trb.hooks.at(name);
      RefTrace tr;
      tr.override = [&, first = first, last = last](const std::string& hook, int64_t p, Vec& row) {
        if (hook != name || p < first || p >= last) return;
        std::copy(rb.begin() + p * ref.H, rb.begin() + (p + 1) * ref.H, row.begin());
      };
      const auto want = ref.forward(a, c.rope, &tr);
      EXPECT_TRUE(close("patched logits", got.logits, flat(want), kRefTol));
      // And the patch did something.
      const auto plain = ref.forward(a, c.rope);
      EXPECT_FALSE(close("unpatched logits", got.logits, flat(plain), 1e-3));
    }
  }
}

// Steering adds scale x vec at every position of the hook: by zero nothing changes; otherwise
// the logits are the reference's with the same addition.
TEST_P(Patching, SteeringMatchesReference) {
  const Case c = make_case(GetParam());
  const auto model = Model::load(c.dir);
  ThreadPool pool(2);
  const Reference ref(c.dir);
  const auto toks = prompt(c, ref, 40, 41);
  const int last = ref.L - 1;
  const std::vector<std::string> targets = {
      "hook_embed",
      "blocks.0.hook_resid_post",
      // Not attn.hook_rot_k: one vector added to every key shifts a query's scores by a
      // constant, which softmax ignores. Before RoPE the added vector turns with the position.
      "blocks.0.attn.hook_k",
      "blocks.0.attn.hook_rot_q",
      "blocks." + std::to_string(last) + ".attn.hook_v",
      "blocks." + std::to_string(last) + ".attn.hook_z",
      "blocks." + std::to_string(last) + ".mlp.hook_post",
      "blocks." + std::to_string(last) + ".ln2.hook_normalized",
      "ln_final.hook_normalized"};
  const Captured base = run(*model, pool, {}, toks);
  const Vec base_logits(base.logits.begin(), base.logits.end());
  uint32_t seed = 77;
  for (const std::string& name : targets) {
    SCOPED_TRACE(name);
    const hooks::HookId id = hooks::parse_hook_name(name, ref.L);
    const int64_t width = hooks::row_width(id.point, model->config());
    {
      hooks::HookRequest req;
      req.steers.push_back({id, std::vector<float>(static_cast<size_t>(width), 0.f), 3.f});
      const Captured got = run(*model, pool, req, toks);
      EXPECT_TRUE(close("logits steered by zero", got.logits, base_logits, kSameTol));
    }
    std::vector<float> vec(static_cast<size_t>(width));
    for (float& v : vec) {
      seed = seed * 1664525u + 1013904223u;
      v = static_cast<float>((seed >> 8) % 2001) / 1000.f - 1.f;  // [-1, 1]
    }
    const float scale = -0.75f;
    hooks::HookRequest req;
    req.steers.push_back({id, vec, scale});
    const Captured got = run(*model, pool, req, toks);
    RefTrace tr;
    tr.override = [&](const std::string& hook, int64_t, Vec& row) {
      if (hook != name) return;
      for (size_t i = 0; i < row.size(); ++i)
        row[i] += static_cast<double>(scale) * static_cast<double>(vec[i]);
    };
    const auto want = ref.forward(toks, c.rope, &tr);
    EXPECT_TRUE(close("steered logits", got.logits, flat(want), kRefTol));
    EXPECT_FALSE(close("steered vs plain", got.logits, base_logits, 1e-3));
  }
}

INSTANTIATE_TEST_SUITE_P(Models, Patching, ::testing::Values("stories260K", "tiny-qwen2-yarn"),
                         test_name);

}  // namespace
}  // namespace longctx
