// Hook points end to end (docs/hooks.md): what HookRunner captures through a Session equals the
// independent float64 reference of tests/model/reference_model.h (explicit n x n mask, HF tensor
// names, RoPE from the NumPy fixture or the textbook formula) for every hook name, on the real
// tiny llama checkpoints and on random qwen2 / phi3 (LongRoPE long side) / mistral (prompt past
// the window) checkpoints; pattern rows, key mass and entropy, also for sliding-window layers and
// an int8 KV cache; the same captures for every prefill chunk; and patching and steering give the
// reference's patched logits.
//
// Error metric everywhere: per element |got - want| / max(1, |want|) (absolute for values below 1,
// relative above), worst element reported with its coordinates. Entries the reference masks are
// compared exactly: hook_attn_scores -inf, hook_pattern 0.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "config/model_config.h"
#include "hooks/hook_point.h"
#include "hooks/hook_runner.h"
#include "kernels/kv_quant.h"
#include "model/decoder.h"
#include "model/reference_model.h"
#include "model/test_util.h"
#include "runtime/session.h"

namespace longctx {
namespace {

using test::Reference;
using test::RefTrace;
using test::RopeFn;
using test::Vec;

constexpr double kRefTol = 1e-4;    // longctx (f32) against the float64 reference
constexpr double kChunkTol = 1e-5;  // one chunking of longctx against another
constexpr double kSameTol = 1e-6;   // patching a value with itself, steering by zero

// ---- models ----

// A checkpoint, its reference and a prompt length that exercises what the family has.
struct Case {
  std::string name;
  std::string dir;
  RopeFn rope;  // what the reference rotates with for a prompt of n tokens
  size_t n = 0;
  bool real = false;
};

Case make_case(const std::string& name) {
  Case c;
  c.name = name;
  if (name == "stories260K" || name == "babyllama-tok105") {
    // Real trained checkpoints: unscaled RoPE over the whole head, theta from the config.
    c.dir = test::model_dir(name);
    const auto cfg = test::read_json(c.dir + "/config.json");
    const int hd = cfg["hidden_size"].get<int>() / cfg["num_attention_heads"].get<int>();
    c.rope = test::default_rope(cfg["rope_theta"].get<double>(), hd);
    c.n = 48;
    c.real = true;
  } else if (name == "tiny-phi3-longrope") {
    // original_max_position_embeddings 40: an 80-token prompt uses the long factors.
    c.dir = test::make_checkpoint(name);
    c.rope = test::fixed_rope(name, 41);
    c.n = 80;
  } else if (name == "tiny-mistral") {
    c.dir = test::make_checkpoint(name);  // window 24
    c.rope = test::fixed_rope(name);
    c.n = 80;
  } else if (name == "tiny-qwen2-yarn") {
    c.dir = test::make_checkpoint(name);  // layer 0 full, layers 1-2 window 20; q/k/v biases
    c.rope = test::fixed_rope(name);
    c.n = 70;
  } else {
    throw std::runtime_error("no case " + name);
  }
  return c;
}

// A prompt of n tokens for the case's vocabulary (real checkpoints start with BOS).
std::vector<int32_t> prompt(const Case& c, const Reference& ref, size_t n, uint32_t seed) {
  std::vector<int32_t> t = test::tokens(n, seed, static_cast<uint32_t>(ref.V - 3));
  if (c.real) t[0] = 1;
  return t;
}

// ---- running longctx with hooks ----

struct Captured {
  std::vector<hooks::CaptureTensor> tensors;
  std::vector<std::vector<float>> f32;
  std::vector<std::vector<int64_t>> i64;
  std::vector<float> logits;  // Session::append's all_logits: [n][V]

  int index(const std::string& name) const {
    for (size_t i = 0; i < tensors.size(); ++i)
      if (tensors[i].name == name) return static_cast<int>(i);
    return -1;
  }
  const std::vector<float>& at(const std::string& name) const {
    const int i = index(name);
    if (i < 0) throw std::runtime_error("not captured: " + name);
    return f32[static_cast<size_t>(i)];
  }
};

struct RunOptions {
  int64_t chunk = 7;
  KvType kv = KvType::kF32;
};

Captured run(const Model& model, ThreadPool& pool, hooks::HookRequest req,
             const std::vector<int32_t>& toks, const RunOptions& o = {}) {
  hooks::HookRunner runner(model.config(), std::move(req), static_cast<int64_t>(toks.size()));
  hooks::MemorySink sink(runner.tensors());
  runner.set_sink(&sink);
  SessionOptions so;
  so.context = 256;
  so.prefill_chunk = o.chunk;
  so.kv_k = so.kv_v = o.kv;
  so.hooks = &runner;
  Session s(model, pool, so);
  Captured c;
  s.append(toks, &c.logits);
  runner.finish();
  c.tensors = runner.tensors();
  c.f32 = std::move(sink.f32);
  c.i64 = std::move(sink.i64);
  return c;
}

// ---- comparison ----

std::string coords(const std::vector<int64_t>& shape, int64_t flat) {
  std::vector<int64_t> idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = flat % shape[d];
    flat /= shape[d];
  }
  std::string s = "[";
  for (size_t d = 0; d < idx.size(); ++d) s += (d ? "," : "") + std::to_string(idx[d]);
  return s + "]";
}

enum class Scale { kElement, kRow };

// got ~ want elementwise (metric at the top of the file); -inf and exact zeros where `want` has
// them (masked scores / pattern entries) must be exactly that. Scale::kRow divides by the scale
// of the innermost row instead of max(1, |want|): max(1, largest finite |want| of the row,
// row_scale[row] when given). That is for comparing two f32 runs whose summation orders differ
// (as the chunked-prefill logits test of tests/model does), where a small entry can be the
// difference of large terms: a score q.k is only as exact as |q| |k| / sqrt(d_head) allows.
::testing::AssertionResult close(const std::string& name, const std::vector<int64_t>& shape,
                                 const float* got, const Vec& want, double tol,
                                 double* worst_out = nullptr, bool exact_zeros = false,
                                 Scale scale = Scale::kElement, const Vec* row_scale = nullptr) {
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  if (numel != static_cast<int64_t>(want.size()))
    return ::testing::AssertionFailure() << name << ": " << numel << " elements captured, "
                                         << want.size() << " expected";
  const int64_t row = shape.empty() ? 1 : std::max<int64_t>(shape.back(), 1);
  double worst = 0, row_max = 1;
  int64_t worst_at = -1;
  for (int64_t i = 0; i < numel; ++i) {
    if (scale == Scale::kRow && i % row == 0) {
      row_max = row_scale ? std::max(1.0, (*row_scale)[static_cast<size_t>(i / row)]) : 1.0;
      for (int64_t j = i; j < i + row; ++j)
        if (std::isfinite(want[static_cast<size_t>(j)]))
          row_max = std::max(row_max, std::abs(want[static_cast<size_t>(j)]));
    }
    const double g = got[i], w = want[static_cast<size_t>(i)];
    if (std::isinf(w) || std::isinf(g) || std::isnan(g) || (exact_zeros && w == 0.0)) {
      if (g != w)
        return ::testing::AssertionFailure()
               << name << coords(shape, i) << ": got " << g << ", want " << w << " exactly";
      continue;
    }
    const double e = std::abs(g - w) / (scale == Scale::kRow ? row_max : std::max(1.0, std::abs(w)));
    if (e > worst) worst = e, worst_at = i;
  }
  if (worst_out) *worst_out = std::max(*worst_out, worst);
  if (worst > tol)
    return ::testing::AssertionFailure()
           << name << coords(shape, worst_at) << ": got " << got[worst_at] << ", want "
           << want[static_cast<size_t>(worst_at)] << " (error " << worst << " > " << tol << ")";
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult close(const std::string& name, const std::vector<float>& got,
                                 const Vec& want, double tol) {
  return close(name, {static_cast<int64_t>(got.size())}, got.data(), want, tol);
}

Vec flat(const std::vector<Vec>& rows) {
  Vec out;
  for (const Vec& r : rows) out.insert(out.end(), r.begin(), r.end());
  return out;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "blocks.3.attn.hook_pattern" -> "blocks.3."
std::string block_prefix(const std::string& name) {
  return name.substr(0, name.find('.', 7) + 1);
}

// What a capture over positions [first, last) with pattern rows `queries` holds for tensor t,
// from a reference trace over n positions. Shapes are TransformerLens's, written out here.
struct Expected {
  std::vector<int64_t> shape;
  Vec f32;
  std::vector<int64_t> i64;
};

Expected expected(const std::string& name, const RefTrace& tr, const Reference& ref, size_t n,
                  int64_t first, int64_t last, const std::vector<int64_t>& queries) {
  const int64_t S = last - first, Q = static_cast<int64_t>(queries.size());
  const int64_t N = static_cast<int64_t>(n);
  std::vector<int64_t> slice(static_cast<size_t>(S));
  for (int64_t i = 0; i < S; ++i) slice[static_cast<size_t>(i)] = first + i;
  Expected e;
  if (ends_with(name, "attn.hook_attn_scores") || ends_with(name, "attn.hook_pattern")) {
    e.shape = {1, ref.nh, Q, N};
    e.f32 = test::pattern_rows(tr.hooks.at(name), ref.nh, n, queries);
    return e;
  }
  if (ends_with(name, "attn.pattern_query_pos")) {
    e.shape = {Q};
    e.i64 = queries;
    return e;
  }
  const std::string pattern = block_prefix(name) + "attn.hook_pattern";
  if (ends_with(name, "attn.pattern_key_mass")) {
    e.shape = {1, ref.nh, N};
    e.f32 = test::pattern_key_mass(tr.hooks.at(pattern), ref.nh, n, slice);
    return e;
  }
  if (ends_with(name, "attn.pattern_entropy")) {
    e.shape = {1, ref.nh, S};
    e.f32 = test::pattern_entropy(tr.hooks.at(pattern), ref.nh, n, slice);
    return e;
  }
  // Position-major: [1, S, row...].
  std::vector<int64_t> row;
  if (ends_with(name, "hook_scale")) row = {1};
  else if (ends_with(name, "attn.hook_q") || ends_with(name, "attn.hook_rot_q") ||
           ends_with(name, "attn.hook_z"))
    row = {ref.nh, ref.hd};
  else if (ends_with(name, "attn.hook_k") || ends_with(name, "attn.hook_v") ||
           ends_with(name, "attn.hook_rot_k"))
    row = {ref.nkv, ref.hd};
  else if (ends_with(name, "mlp.hook_pre") || ends_with(name, "mlp.hook_pre_linear") ||
           ends_with(name, "mlp.hook_post"))
    row = {ref.I};
  else if (name == "logits") row = {ref.V};
  else row = {ref.H};
  int64_t width = 1;
  for (int64_t d : row) width *= d;
  e.shape = {1, S};
  e.shape.insert(e.shape.end(), row.begin(), row.end());
  const Vec& rec = tr.hooks.at(name);
  EXPECT_EQ(rec.size(), static_cast<size_t>(width) * n) << name;
  e.f32 = test::position_rows(rec, static_cast<size_t>(width), first, last);
  return e;
}

// Every tensor of a capture against the reference; returns the worst error.
double expect_capture_matches(const Captured& got, const RefTrace& tr, const Reference& ref,
                              size_t n, int64_t first, int64_t last,
                              const std::vector<int64_t>& queries, double tol) {
  double worst = 0;
  for (size_t i = 0; i < got.tensors.size(); ++i) {
    const hooks::CaptureTensor& t = got.tensors[i];
    const Expected e = expected(t.name, tr, ref, n, first, last, queries);
    EXPECT_EQ(t.shape, e.shape) << t.name;
    if (t.shape != e.shape) continue;
    if (t.is_int64) {
      EXPECT_EQ(got.i64[i], e.i64) << t.name;
      continue;
    }
    const bool pattern = ends_with(t.name, "attn.hook_pattern");
    EXPECT_TRUE(close(t.name, t.shape, got.f32[i].data(), e.f32, tol, &worst, pattern));
  }
  return worst;
}

// Every hook name a model of L layers has, as TransformerLens spells it (independent of
// hooks::all_hooks), plus the query positions of each layer's pattern rows.
std::set<std::string> every_name(int L) {
  std::set<std::string> s = {"hook_embed", "ln_final.hook_scale", "ln_final.hook_normalized",
                             "logits"};
  for (int l = 0; l < L; ++l)
    for (const char* p :
         {"hook_resid_pre", "ln1.hook_scale", "ln1.hook_normalized", "attn.hook_q", "attn.hook_k",
          "attn.hook_v", "attn.hook_rot_q", "attn.hook_rot_k", "attn.hook_attn_scores",
          "attn.hook_pattern", "attn.pattern_key_mass", "attn.pattern_entropy",
          "attn.pattern_query_pos", "attn.hook_z", "hook_attn_out", "hook_resid_mid",
          "ln2.hook_scale", "ln2.hook_normalized", "mlp.hook_pre", "mlp.hook_pre_linear",
          "mlp.hook_post", "hook_mlp_out", "hook_resid_post"})
      s.insert("blocks." + std::to_string(l) + "." + p);
  return s;
}

std::set<std::string> names(const Captured& c) {
  std::set<std::string> s;
  for (const auto& t : c.tensors) s.insert(t.name);
  return s;
}

std::vector<int64_t> iota(int64_t a, int64_t b) {
  std::vector<int64_t> v;
  for (int64_t i = a; i < b; ++i) v.push_back(i);
  return v;
}

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
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& ch : s)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return s;
                         });

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
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& ch : s)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return s;
                         });

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
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& ch : s)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return s;
                         });

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
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& ch : s)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return s;
                         });

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
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& ch : s)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return s;
                         });

}  // namespace
}  // namespace longctx
