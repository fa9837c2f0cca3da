// An independent float64 forward pass of the decoder families (llama, mistral, qwen2, phi3), for
// tests: every tensor is read by its Hugging Face name, attention is the textbook one with an
// explicit n x n mask, and no longctx kernel is used. The RoPE frequencies come from the caller
// (the NumPy fixture of gen_rope_fixture.py, or default_rope for an unscaled model).
//
// Besides logits, forward() can record every intermediate under its TransformerLens hook name
// (docs/hooks.md), change any position-major one on its way through (patching, steering), and
// pass the rotated keys and values through a round trip before attention reads them (a quantized
// KV cache).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "io/weights.h"
#include "model/random_checkpoint.h"
#include "model/test_util.h"

namespace longctx::test {

using Vec = std::vector<double>;
// (inv_freq over the rotated half-dimensions, attention factor) for a position.
using RopeFn = std::function<std::pair<Vec, double>(int64_t)>;

inline const nlohmann::json& fixture_case(const std::string& name) {
  static const nlohmann::json fx =
      read_json(std::string(LONGCTX_SOURCE_DIR) + "/tests/model/fixtures/rope_freqs.json");
  for (const auto& c : fx["cases"])
    if (c["name"] == name) return c;
  throw std::runtime_error("no fixture case " + name);
}

// NumPy's (inv_freq, attention_factor) for a pass over seq_len tokens.
inline std::pair<Vec, double> numpy_rope(const nlohmann::json& c, int64_t seq_len) {
  for (const auto& e : c["expect"])
    if (e["seq_len"] == seq_len) return {e["inv_freq"].get<Vec>(), e["attention_factor"]};
  throw std::runtime_error("fixture has no seq_len " + std::to_string(seq_len));
}

// The fixture's frequencies for seq_len, at every position.
inline RopeFn fixed_rope(const std::string& name, int64_t seq_len = 0) {
  const auto r = numpy_rope(fixture_case(name), seq_len);
  return [r](int64_t) { return r; };
}

// Unscaled RoPE over rot_dim dimensions: inv_freq[i] = theta^(-2i / rot_dim), factor 1.
inline RopeFn default_rope(double theta, int rot_dim) {
  Vec inv(static_cast<size_t>(rot_dim / 2));
  for (size_t i = 0; i < inv.size(); ++i)
    inv[i] = 1.0 / std::pow(theta, 2.0 * static_cast<double>(i) / rot_dim);
  return [inv](int64_t) { return std::make_pair(inv, 1.0); };
}

// A random F32 checkpoint with the config of a fixture case (seed 7); returns its folder.
inline std::string make_checkpoint(const std::string& name) {
  RandomCheckpointOptions o;
  o.config_json = fixture_case(name)["config"].dump();
  o.dtype = DType::kF32;
  o.seed = 7;
  return random_checkpoint_dir("family-" + name, o);
}

// n pseudo-random token ids in [3, 3 + range).
inline std::vector<int32_t> tokens(size_t n, uint32_t seed, uint32_t range = 290) {
  std::vector<int32_t> t;
  for (size_t i = 0; i < n; ++i) {
    seed = seed * 1664525u + 1013904223u;
    t.push_back(3 + static_cast<int32_t>((seed >> 8) % range));
  }
  return t;
}

// What forward() records and changes besides computing logits. Position-major hooks are recorded
// as [n][row] flattened (row = the hook's dims after [1, pos]); hook_attn_scores and hook_pattern
// as the full [n_heads][n][n] matrices (masked scores -inf, masked probabilities exactly 0).
struct RefTrace {
  // Called for every position-major hook at every position, in the order the model computes
  // them, with the row as computed; whatever it leaves in `row` is what the model goes on with.
  std::function<void(const std::string& name, int64_t pos, Vec& row)> override;
  // Called with the rotated key (key = true) or value row [n_kv_heads * head_dim] of a position
  // before attention reads it: what a KV cache stores and gives back.
  std::function<void(int layer, int64_t pos, bool key, Vec& row)> kv_roundtrip;
  bool record = false;
  std::map<std::string, Vec> hooks;  // filled when record
};

// ---- the reference: float64, every tensor read by its Hugging Face name ----
struct Reference {
  nlohmann::json cfg;
  std::unique_ptr<io::WeightSource> w;
  int H, I, L, nh, nkv, hd, V;
  double eps;

  explicit Reference(const std::string& dir) {
    cfg = read_json(dir + "/config.json");
    w = io::WeightSource::open_dir(dir);
    H = cfg["hidden_size"];
    I = cfg["intermediate_size"];
    L = cfg["num_hidden_layers"];
    nh = cfg["num_attention_heads"];
    nkv = cfg.value("num_key_value_heads", nh);
    hd = H / nh;
    if (cfg.contains("head_dim") && !cfg["head_dim"].is_null()) hd = cfg["head_dim"];
    V = cfg["vocab_size"];
    eps = cfg["rms_norm_eps"];
  }
  Vec tensor(const std::string& name) const {
    const io::TensorInfo& t = w->get(name);
    EXPECT_EQ(t.type, TensorType::kF32);
    const float* p = static_cast<const float*>(t.data);
    return Vec(p, p + t.numel());
  }
  bool has(const std::string& name) const { return w->find(name) != nullptr; }
  // y[n][rows] = x[n][cols] W^T (+ b), W rows [r0, r0 + rows) of a [*, cols] matrix.
  static std::vector<Vec> linear(const std::vector<Vec>& x, const Vec& W, size_t r0, size_t rows,
                                 const Vec* b = nullptr, size_t b0 = 0) {
    std::vector<Vec> y(x.size(), Vec(rows));
    const size_t cols = x[0].size();
    for (size_t t = 0; t < x.size(); ++t)
      for (size_t r = 0; r < rows; ++r) {
        double s = b ? (*b)[b0 + r] : 0.0;
        for (size_t c = 0; c < cols; ++c) s += x[t][c] * W[(r0 + r) * cols + c];
        y[t][r] = s;
      }
    return y;
  }
  int64_t window(int layer) const {
    const std::string type = cfg["model_type"];
    if (type == "llama" || !cfg.contains("sliding_window") || cfg["sliding_window"].is_null())
      return 0;
    if (type == "qwen2" && (!cfg.value("use_sliding_window", false) ||
                            layer < cfg.value("max_window_layers", 28)))
      return 0;
    return cfg["sliding_window"].get<int64_t>();
  }

  // Logits [n][V] for tokens at positions 0..n-1; position p is rotated with rope(p). With a
  // trace: records / overrides the hooks and round-trips the stored keys and values (RefTrace).
  std::vector<Vec> forward(const std::vector<int32_t>& tokens, const RopeFn& rope,
                           RefTrace* trace = nullptr) const {
    const size_t n = tokens.size();
    const std::string type = cfg["model_type"];
    const bool phi3 = type == "phi3";
    // A position-major hook: override, then record.
    auto fire = [&](const std::string& name, std::vector<Vec>& rows) {
      if (!trace) return;
      if (trace->override)
        for (size_t t = 0; t < n; ++t) trace->override(name, static_cast<int64_t>(t), rows[t]);
      if (trace->record) {
        Vec& out = trace->hooks[name];
        out.clear();
        for (const Vec& r : rows) out.insert(out.end(), r.begin(), r.end());
      }
    };
    // RMSNorm as TransformerLens splits it: scale = sqrt(mean(x^2) + eps) [n][1], normalized =
    // x / scale, then the weight.
    auto rmsnorm = [&](const std::vector<Vec>& x, const Vec& g, const std::string& hook) {
      std::vector<Vec> scale(n, Vec(1));
      for (size_t t = 0; t < n; ++t) {
        double ss = 0;
        for (double v : x[t]) ss += v * v;
        scale[t][0] = std::sqrt(ss / static_cast<double>(x[t].size()) + eps);
      }
      fire(hook + ".hook_scale", scale);
      std::vector<Vec> y = x;
      for (size_t t = 0; t < n; ++t)
        for (double& v : y[t]) v /= scale[t][0];
      fire(hook + ".hook_normalized", y);
      for (auto& row : y)
        for (size_t i = 0; i < row.size(); ++i) row[i] *= g[i];
      return y;
    };
    auto maybe_bias = [&](const std::string& name) { return has(name) ? tensor(name) : Vec(); };

    const Vec emb = tensor("model.embed_tokens.weight");
    std::vector<Vec> x(n, Vec(H));
    for (size_t t = 0; t < n; ++t)
      for (int i = 0; i < H; ++i) x[t][i] = emb[static_cast<size_t>(tokens[t]) * H + i];
    fire("hook_embed", x);
    const int qd = nh * hd, kvd = nkv * hd;
    for (int l = 0; l < L; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      const std::string b = "blocks." + std::to_string(l) + ".";
      fire(b + "hook_resid_pre", x);
      const std::vector<Vec> xn = rmsnorm(x, tensor(p + "input_layernorm.weight"), b + "ln1");
      std::vector<Vec> q, k, v;
      if (phi3) {
        const Vec W = tensor(p + "self_attn.qkv_proj.weight");
        q = linear(xn, W, 0, qd);
        k = linear(xn, W, qd, kvd);
        v = linear(xn, W, qd + kvd, kvd);
      } else {
        const bool bias = has(p + "self_attn.q_proj.bias");
        EXPECT_EQ(bias, type == "qwen2");
        const Vec bq = bias ? tensor(p + "self_attn.q_proj.bias") : Vec();
        const Vec bk = bias ? tensor(p + "self_attn.k_proj.bias") : Vec();
        const Vec bv = bias ? tensor(p + "self_attn.v_proj.bias") : Vec();
        q = linear(xn, tensor(p + "self_attn.q_proj.weight"), 0, qd, bias ? &bq : nullptr);
        k = linear(xn, tensor(p + "self_attn.k_proj.weight"), 0, kvd, bias ? &bk : nullptr);
        v = linear(xn, tensor(p + "self_attn.v_proj.weight"), 0, kvd, bias ? &bv : nullptr);
      }
      fire(b + "attn.hook_q", q);
      fire(b + "attn.hook_k", k);
      fire(b + "attn.hook_v", v);
      // rotate_half on the first rot dims of every head: (x1, x2) -> (x1 c - x2 s, x2 c + x1 s)
      for (size_t t = 0; t < n; ++t) {
        const auto [inv, att] = rope(static_cast<int64_t>(t));
        const int half = static_cast<int>(inv.size());
        auto rot = [&](Vec& vec, int heads) {
          for (int h = 0; h < heads; ++h)
            for (int i = 0; i < half; ++i) {
              const double a = static_cast<double>(t) * inv[i];
              const double c = std::cos(a) * att, s = std::sin(a) * att;
              double& x1 = vec[h * hd + i];
              double& x2 = vec[h * hd + i + half];
              const double a1 = x1, a2 = x2;
              x1 = a1 * c - a2 * s;
              x2 = a2 * c + a1 * s;
            }
        };
        rot(q[t], nh);
        rot(k[t], nkv);
      }
      fire(b + "attn.hook_rot_q", q);
      fire(b + "attn.hook_rot_k", k);
      // What the cache gives back.
      std::vector<Vec> ks = k, vs = v;
      if (trace && trace->kv_roundtrip)
        for (size_t t = 0; t < n; ++t) {
          trace->kv_roundtrip(l, static_cast<int64_t>(t), true, ks[t]);
          trace->kv_roundtrip(l, static_cast<int64_t>(t), false, vs[t]);
        }
      // Explicit mask: key j visible to query i iff j <= i and (no window or i - j < window).
      const int64_t W = window(l);
      std::vector<std::vector<bool>> mask(n, std::vector<bool>(n));
      for (size_t i = 0; i < n; ++i)
        for (size_t j = 0; j < n; ++j)
          mask[i][j] = j <= i && (W == 0 || static_cast<int64_t>(i - j) < W);
      const bool rec = trace && trace->record;
      Vec scores_all, pattern_all;
      if (rec) {
        scores_all.assign(static_cast<size_t>(nh) * n * n, -INFINITY);
        pattern_all.assign(static_cast<size_t>(nh) * n * n, 0.0);
      }
      std::vector<Vec> att_out(n, Vec(qd));
      const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
      for (int h = 0; h < nh; ++h) {
        const int g = h / (nh / nkv);
        for (size_t i = 0; i < n; ++i) {
          Vec s(n, -INFINITY);
          double mx = -INFINITY;
          for (size_t j = 0; j < n; ++j) {
            if (!mask[i][j]) continue;
            double d = 0;
            for (int e = 0; e < hd; ++e) d += q[i][h * hd + e] * ks[j][g * hd + e];
            s[j] = d * scale;
            mx = std::max(mx, s[j]);
          }
          const size_t row = (static_cast<size_t>(h) * n + i) * n;
          if (rec) std::copy(s.begin(), s.end(), scores_all.begin() + row);
          double sum = 0;
          for (size_t j = 0; j < n; ++j) sum += (s[j] = mask[i][j] ? std::exp(s[j] - mx) : 0);
          for (size_t j = 0; j < n; ++j) {
            if (rec) pattern_all[row + j] = s[j] / sum;
            for (int e = 0; e < hd; ++e) att_out[i][h * hd + e] += s[j] / sum * vs[j][g * hd + e];
          }
        }
      }
      if (rec) {
        trace->hooks[b + "attn.hook_attn_scores"] = std::move(scores_all);
        trace->hooks[b + "attn.hook_pattern"] = std::move(pattern_all);
      }
      fire(b + "attn.hook_z", att_out);
      const Vec bo = maybe_bias(p + "self_attn.o_proj.bias");
      std::vector<Vec> o = linear(att_out, tensor(p + "self_attn.o_proj.weight"), 0, H,
                                  bo.empty() ? nullptr : &bo);
      fire(b + "hook_attn_out", o);
      for (size_t t = 0; t < n; ++t)
        for (int i = 0; i < H; ++i) x[t][i] += o[t][i];
      fire(b + "hook_resid_mid", x);
      const std::vector<Vec> xm =
          rmsnorm(x, tensor(p + "post_attention_layernorm.weight"), b + "ln2");
      std::vector<Vec> gate, up;
      if (phi3) {
        const Vec Wgu = tensor(p + "mlp.gate_up_proj.weight");
        gate = linear(xm, Wgu, 0, I);
        up = linear(xm, Wgu, I, I);
      } else {
        gate = linear(xm, tensor(p + "mlp.gate_proj.weight"), 0, I);
        up = linear(xm, tensor(p + "mlp.up_proj.weight"), 0, I);
      }
      fire(b + "mlp.hook_pre", gate);
      fire(b + "mlp.hook_pre_linear", up);
      std::vector<Vec> post(n, Vec(I));
      for (size_t t = 0; t < n; ++t)
        for (int i = 0; i < I; ++i) post[t][i] = gate[t][i] / (1 + std::exp(-gate[t][i])) * up[t][i];
      fire(b + "mlp.hook_post", post);
      const Vec bd = maybe_bias(p + "mlp.down_proj.bias");
      std::vector<Vec> d =
          linear(post, tensor(p + "mlp.down_proj.weight"), 0, H, bd.empty() ? nullptr : &bd);
      fire(b + "hook_mlp_out", d);
      for (size_t t = 0; t < n; ++t)
        for (int i = 0; i < H; ++i) x[t][i] += d[t][i];
      fire(b + "hook_resid_post", x);
    }
    const std::vector<Vec> xf = rmsnorm(x, tensor("model.norm.weight"), "ln_final");
    const bool tied = cfg.value("tie_word_embeddings", false);
    std::vector<Vec> logits =
        linear(xf, tensor(tied ? "model.embed_tokens.weight" : "lm_head.weight"), 0, V);
    fire("logits", logits);
    return logits;
  }
};

// ---- reductions of a recorded [n_heads][n][n] pattern (or score) matrix ----

// Rows of the given query positions: [n_heads][queries][n].
inline Vec pattern_rows(const Vec& full, int n_heads, size_t n,
                        const std::vector<int64_t>& queries) {
  Vec out;
  for (int h = 0; h < n_heads; ++h)
    for (int64_t q : queries) {
      const auto row = full.begin() + static_cast<std::ptrdiff_t>((h * n + q) * n);
      out.insert(out.end(), row, row + static_cast<std::ptrdiff_t>(n));
    }
  return out;
}

// Attention each key receives, summed over the given query positions: [n_heads][n].
inline Vec pattern_key_mass(const Vec& full, int n_heads, size_t n,
                            const std::vector<int64_t>& queries) {
  Vec out(static_cast<size_t>(n_heads) * n, 0.0);
  for (int h = 0; h < n_heads; ++h)
    for (int64_t q : queries)
      for (size_t j = 0; j < n; ++j) out[h * n + j] += full[(h * n + q) * n + j];
  return out;
}

// -sum p log p of each given query row (0 log 0 = 0): [n_heads][queries].
inline Vec pattern_entropy(const Vec& full, int n_heads, size_t n,
                           const std::vector<int64_t>& queries) {
  Vec out;
  for (int h = 0; h < n_heads; ++h)
    for (int64_t q : queries) {
      double e = 0;
      for (size_t j = 0; j < n; ++j) {
        const double p = full[(h * n + q) * n + j];
        if (p > 0) e -= p * std::log(p);
      }
      out.push_back(e);
    }
  return out;
}

// Rows [first, last) of a position-major recording with rows of `width`.
inline Vec position_rows(const Vec& rec, size_t width, int64_t first, int64_t last) {
  return Vec(rec.begin() + static_cast<std::ptrdiff_t>(first * width),
             rec.begin() + static_cast<std::ptrdiff_t>(last * width));
}

}  // namespace longctx::test
