// Hook points end to end (docs/hooks.md): what HookRunner captures through a Session equals the
// independent float64 reference of tests/model/reference_model.h (explicit n x n mask, HF tensor
// names, RoPE from the NumPy fixture or the textbook formula) for every hook name, on the real
// tiny llama checkpoints and on random qwen2 / phi3 (LongRoPE long side) / mistral (prompt past
// the window) checkpoints; pattern rows, key mass and entropy, also for sliding-window layers and
// an int8 KV cache; and the same captures for every prefill chunk (patching and steering:
// hooks_patching_test.cc; shared helpers: hooks_test_util.h).
//
// Error metric everywhere: per element |got - want| / max(1, |want|) (absolute for values below 1,
// relative above), worst element reported with its coordinates. Entries the reference masks are
// compared exactly: hook_attn_scores -inf, hook_pattern 0.
#include "hooks/hooks_test_util.h"

namespace longctx {
namespace {

using namespace hooktest;

// ---- every hook against the reference ----

class EveryHook : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryHook, MatchesReference) {
  const Case c = make_case(GetParam());
  const auto model = Model::load(c.dir);
  ThreadPool pool(2);
  const Reference ref(c.dir);
  const auto toks = prompt(c, ref, c.n, 99);
  hooks::HookRequest req;
  req.capture = hooks::expand_hook_list("*", ref.L);
  const Captured got = run(*model, pool, req, toks);
  EXPECT_EQ(names(got), every_name(ref.L));

  RefTrace tr;
  tr.record = true;
  const auto want_logits = ref.forward(toks, c.rope, &tr);
  // The reference records every position-major hook it has a name for, and nothing else.
  for (const auto& [name, v] : tr.hooks) EXPECT_TRUE(every_name(ref.L).count(name)) << name;
  const double worst = expect_capture_matches(got, tr, ref, c.n, 0, static_cast<int64_t>(c.n),
                                              iota(0, static_cast<int64_t>(c.n)), kRefTol);
  EXPECT_TRUE(close("all_logits", got.logits, flat(want_logits), kRefTol));
  EXPECT_TRUE(close("logits capture vs all_logits", got.at("logits"),
                    Vec(got.logits.begin(), got.logits.end()), 0.0));
  RecordProperty("worst_error", std::to_string(worst));
}

INSTANTIATE_TEST_SUITE_P(Models, EveryHook,
                         ::testing::Values("stories260K", "babyllama-tok105", "tiny-qwen2-yarn",
                                           "tiny-phi3-longrope", "tiny-mistral"),
                         test_name);

// Pattern rows for chosen queries (negative from the end, repeated, beyond the window), and a
// position slice: position-major hooks, key mass and entropy cover the slice only.
class PatternRows : public ::testing::TestWithParam<std::string> {};

TEST_P(PatternRows, ChosenQueriesAndSliceMatchReference) {
  const Case c = make_case(GetParam());
  const auto model = Model::load(c.dir);
  ThreadPool pool(2);
  const Reference ref(c.dir);
  const auto toks = prompt(c, ref, c.n, 3);
  const int64_t N = static_cast<int64_t>(c.n);
  hooks::HookRequest req;
  req.capture = hooks::expand_hook_list(
      "blocks.*.attn.*,blocks.*.hook_resid_post,ln_final.hook_scale,logits", ref.L);
  req.pos = hooks::PosSlice::parse("-30:");
  // 0: one visible key; 23/24/25 around the window edges; -1 the last position.
  req.pattern_queries = {24, 0, 23, -1, 51, 25, 24, N - 1};
  const std::vector<int64_t> queries = {0, 23, 24, 25, 51, N - 1};
  const Captured got = run(*model, pool, req, toks, {.chunk = 16});
  RefTrace tr;
  tr.record = true;
  ref.forward(toks, c.rope, &tr);
  expect_capture_matches(got, tr, ref, c.n, N - 30, N, queries, kRefTol);
  // A window layer shows -inf before the window in the last query's scores.
  for (int l = 0; l < ref.L; ++l) {
    if (ref.window(l) == 0) continue;
    const auto& sc = got.at("blocks." + std::to_string(l) + ".attn.hook_attn_scores");
    const size_t last_row = (queries.size() - 1) * c.n;  // head 0, query N-1
    EXPECT_TRUE(std::isinf(sc[last_row + 0]));
    EXPECT_FALSE(std::isinf(sc[last_row + c.n - 1]));
  }
}

INSTANTIATE_TEST_SUITE_P(WindowModels, PatternRows,
                         ::testing::Values("tiny-mistral", "tiny-qwen2-yarn"),
                         test_name);

// ---- int8 KV cache: the reference attends over the keys and values the cache gives back ----

// Rows [n_kv_heads * head_dim] through longctx's int8 codec, one kv head at a time.
Vec int8_roundtrip(const float* row, int n_kv_heads, int head_dim, bool key) {
  Vec out;
  std::vector<uint8_t> section(kernels::kv_row_bytes(KvType::kInt8, head_dim, key));
  std::vector<float> dec(static_cast<size_t>(head_dim));
  for (int h = 0; h < n_kv_heads; ++h) {
    kernels::kv_encode(KvType::kInt8, row + static_cast<size_t>(h) * head_dim, head_dim, 1,
                       head_dim, section.data(), 1, 0);
    kernels::kv_decode(KvType::kInt8, key, section.data(), 1, 0, 1, head_dim, dec.data());
    out.insert(out.end(), dec.begin(), dec.end());
  }
  return out;
}

class Int8Kv : public ::testing::TestWithParam<std::string> {};

TEST_P(Int8Kv, HooksMatchReferenceOnDequantizedKeysAndValues) {
  const Case c = make_case(GetParam());
  const auto model = Model::load(c.dir);
  ThreadPool pool(2);
  const Reference ref(c.dir);
  const auto toks = prompt(c, ref, c.n, 17);
  const int64_t N = static_cast<int64_t>(c.n);
  hooks::HookRequest req;
  req.capture = hooks::expand_hook_list("*", ref.L);
  req.pattern_queries = {1, 20, 30, N - 2, N - 1};
  const Captured got = run(*model, pool, req, toks, {.chunk = 7, .kv = KvType::kInt8});
  // The codes the cache holds are those of the rotated keys and values it was given, which the
  // hook_rot_k / hook_v captures hold (and which are checked against the reference's own values
  // below): encoding those f32 rows rather than the reference's float64 ones keeps a value near
  // a rounding boundary from taking the other code (one quantization step, ~1% of the row's
  // range, far above the tolerance). The attention over them is the reference's.
  RefTrace tr;
  tr.record = true;
  tr.kv_roundtrip = [&](int layer, int64_t pos, bool key, Vec& row) {
    const std::string b = "blocks." + std::to_string(layer) + ".";
    const auto& cap = got.at(b + (key ? "attn.hook_rot_k" : "attn.hook_v"));
    const size_t w = static_cast<size_t>(ref.nkv) * ref.hd;
    const float* stored = cap.data() + static_cast<size_t>(pos) * w;
    EXPECT_TRUE(close(b + (key ? "rot_k" : "v") + " pos " + std::to_string(pos), {int64_t(w)},
                      stored, row, kRefTol));
    row = int8_roundtrip(stored, ref.nkv, ref.hd, key);
  };
  const auto want_logits = ref.forward(toks, c.rope, &tr);
  const std::vector<int64_t> queries = {1, 20, 30, N - 2, N - 1};
  const double worst = expect_capture_matches(got, tr, ref, c.n, 0, N, queries, kRefTol);
  EXPECT_TRUE(close("all_logits", got.logits, flat(want_logits), kRefTol));
  RecordProperty("worst_error", std::to_string(worst));

  // The cache was int8: patterns differ from the unquantized reference's.
  RefTrace plain;
  plain.record = true;
  ref.forward(toks, c.rope, &plain);
  const std::string name = "blocks." + std::to_string(ref.L - 1) + ".attn.hook_pattern";
  const Vec want_plain = test::pattern_rows(plain.hooks.at(name), ref.nh, c.n, queries);
  const auto& p = got.at(name);
  double diff = 0;
  for (size_t i = 0; i < p.size(); ++i) diff = std::max(diff, std::abs(p[i] - want_plain[i]));
  EXPECT_GT(diff, 1e-5) << "the int8 cache made no difference: was it used?";
}

INSTANTIATE_TEST_SUITE_P(Models, Int8Kv, ::testing::Values("tiny-mistral", "babyllama-tok105"),
                         test_name);

// ---- chunked prefill: chunk 1, 7 and the whole prompt give the same captures ----

// For each row (head h, query i) of a layer's hook_attn_scores over `queries`: the largest score
// the row could have, |rot_q[i, h]| max_j<=i |rot_k[j, kv(h)]| / sqrt(d_head) (Cauchy-Schwarz),
// from a capture of rot_q and rot_k over every position.
Vec score_scales(const Captured& qk, const Reference& ref, int layer,
                 const std::vector<int64_t>& queries) {
  const std::string b = "blocks." + std::to_string(layer) + ".";
  const auto& q = qk.at(b + "attn.hook_rot_q");
  const auto& k = qk.at(b + "attn.hook_rot_k");
  auto norm = [&](const std::vector<float>& v, size_t at) {
    double s = 0;
    for (int e = 0; e < ref.hd; ++e) s += double(v[at + e]) * v[at + e];
    return std::sqrt(s);
  };
  Vec out;
  for (int h = 0; h < ref.nh; ++h) {
    const int g = h / (ref.nh / ref.nkv);
    for (const int64_t i : queries) {
      double kmax = 0;
      for (int64_t j = 0; j <= i; ++j)
        kmax = std::max(kmax, norm(k, (static_cast<size_t>(j) * ref.nkv + g) * ref.hd));
      out.push_back(norm(q, (static_cast<size_t>(i) * ref.nh + h) * ref.hd) * kmax /
                    std::sqrt(static_cast<double>(ref.hd)));
    }
  }
  return out;
}

class Chunking : public ::testing::TestWithParam<std::string> {};

TEST_P(Chunking, SameCapturesForEveryChunkSize) {
  const Case c = make_case(GetParam());
  const auto model = Model::load(c.dir);
  ThreadPool pool(2);
  const Reference ref(c.dir);
  const auto toks = prompt(c, ref, c.n, 5);
  hooks::HookRequest qk_req;
  qk_req.capture = hooks::expand_hook_list("blocks.*.attn.hook_rot_q,blocks.*.attn.hook_rot_k", ref.L);
  const Captured qk = run(*model, pool, qk_req, toks, {.chunk = static_cast<int64_t>(c.n)});
  for (const char* pos : {":", "-20:"}) {
    SCOPED_TRACE(std::string("pos ") + pos);
    hooks::HookRequest req;
    req.capture = hooks::expand_hook_list("*", ref.L);
    req.pos = hooks::PosSlice::parse(pos);
    const auto [first, last] = req.pos.resolve(static_cast<int64_t>(c.n));
    const Captured whole = run(*model, pool, req, toks, {.chunk = static_cast<int64_t>(c.n)});
    for (const int64_t chunk : {int64_t{1}, int64_t{7}}) {
      SCOPED_TRACE("chunk " + std::to_string(chunk));
      const Captured got = run(*model, pool, req, toks, {.chunk = chunk});
      ASSERT_EQ(names(got), names(whole));
      double worst = 0;
      for (size_t i = 0; i < got.tensors.size(); ++i) {
        const auto& t = got.tensors[i];
        ASSERT_EQ(t.shape, whole.tensors[i].shape) << t.name;
        if (t.is_int64) {
          EXPECT_EQ(got.i64[i], whole.i64[i]) << t.name;
          continue;
        }
        const Vec want(whole.f32[i].begin(), whole.f32[i].end());
        Vec scales;
        if (ends_with(t.name, "attn.hook_attn_scores"))
          scales = score_scales(qk, ref, std::stoi(t.name.substr(7)), iota(first, last));
        EXPECT_TRUE(close(t.name, t.shape, got.f32[i].data(), want, kChunkTol, &worst,
                          ends_with(t.name, "attn.hook_pattern"), Scale::kRow,
                          scales.empty() ? nullptr : &scales));
      }
      RecordProperty(std::string("worst_chunk_") + std::to_string(chunk) +
                         (pos[0] == ':' ? "" : "_slice"),
                     std::to_string(worst));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Models, Chunking, ::testing::Values("stories260K", "tiny-mistral"),
                         test_name);

}  // namespace
}  // namespace longctx
