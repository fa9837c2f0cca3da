// Shared by the hook tests (hooks_test.cc, hooks_patching_test.cc): the models and prompts they
// run, running longctx with a HookRunner into a MemorySink, and the comparison against the
// float64 reference of tests/model/reference_model.h (metric: see hooks_test.cc).
#pragma once

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

namespace longctx::hooktest {


using test::Reference;
using test::RefTrace;
using test::RopeFn;
using test::Vec;

inline constexpr double kRefTol = 1e-4;    // longctx (f32) against the float64 reference
inline constexpr double kChunkTol = 1e-5;  // one chunking of longctx against another
inline constexpr double kSameTol = 1e-6;   // patching a value with itself, steering by zero

// ---- models ----

// A checkpoint, its reference and a prompt length that exercises what the family has.
struct Case {
  std::string name;
  std::string dir;
  RopeFn rope;  // what the reference rotates with for a prompt of n tokens
  size_t n = 0;
  bool real = false;
};

inline Case make_case(const std::string& name) {
  Case c;
  c.name = name;
  if (name == "stories260K" || name == "babyllama-tok105") {
    // Real trained checkpoints: unscaled RoPE over the whole head, theta from the config.
    c.dir = test::model_path(name);
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
inline std::vector<int32_t> prompt(const Case& c, const Reference& ref, size_t n, uint32_t seed) {
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

inline Captured run(const Model& model, ThreadPool& pool, hooks::HookRequest req,
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

inline std::string coords(const std::vector<int64_t>& shape, int64_t flat) {
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
inline ::testing::AssertionResult close(const std::string& name, const std::vector<int64_t>& shape,
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

inline ::testing::AssertionResult close(const std::string& name, const std::vector<float>& got,
                                 const Vec& want, double tol) {
  return close(name, {static_cast<int64_t>(got.size())}, got.data(), want, tol);
}

inline Vec flat(const std::vector<Vec>& rows) {
  Vec out;
  for (const Vec& r : rows) out.insert(out.end(), r.begin(), r.end());
  return out;
}

inline bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "blocks.3.attn.hook_pattern" -> "blocks.3."
inline std::string block_prefix(const std::string& name) {
  return name.substr(0, name.find('.', 7) + 1);
}

// What a capture over positions [first, last) with pattern rows `queries` holds for tensor t,
// from a reference trace over n positions. Shapes are TransformerLens's, written out here.
struct Expected {
  std::vector<int64_t> shape;
  Vec f32;
  std::vector<int64_t> i64;
};

inline Expected expected(const std::string& name, const RefTrace& tr, const Reference& ref, size_t n,
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
inline double expect_capture_matches(const Captured& got, const RefTrace& tr, const Reference& ref,
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
inline std::set<std::string> every_name(int L) {
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

inline std::set<std::string> names(const Captured& c) {
  std::set<std::string> s;
  for (const auto& t : c.tensors) s.insert(t.name);
  return s;
}

inline std::vector<int64_t> iota(int64_t a, int64_t b) {
  std::vector<int64_t> v;
  for (int64_t i = a; i < b; ++i) v.push_back(i);
  return v;
}

// A parameterized test's name from its model name ("tiny-mistral" -> "tiny_mistral").
inline std::string test_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string s = info.param;
  for (char& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
}

}  // namespace longctx::hooktest
