// Every family (llama + llama3 scaling, mistral, qwen2 + yarn with mixed window layers, phi3 with
// LongRoPE and Phi-3-mini-4k's window with partial rotary, llama + dynamic NTK): a random-weight
// checkpoint with a real head layout gives the logits of an independent, straightforward float64
// forward pass (explicit n x n mask, written here, not using longctx's kernels) over prompts
// longer than the sliding window and on both sides of the LongRoPE boundary. The RoPE frequencies
// of the reference come from the NumPy fixture (gen_rope_fixture.py), not from longctx.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "config/model_config.h"
#include "io/weights.h"
#include "model/decoder.h"
#include "model/random_checkpoint.h"
#include "model/test_util.h"
#include "runtime/session.h"

namespace longctx {
namespace {

using json = nlohmann::json;
using Vec = std::vector<double>;

const json& fixture_case(const std::string& name) {
  static const json fx =
      test::read_json(std::string(LONGCTX_SOURCE_DIR) + "/tests/model/fixtures/rope_freqs.json");
  for (const auto& c : fx["cases"])
    if (c["name"] == name) return c;
  throw std::runtime_error("no fixture case " + name);
}

// NumPy's (inv_freq, attention_factor) for a pass over seq_len tokens.
std::pair<Vec, double> numpy_rope(const json& c, int64_t seq_len) {
  for (const auto& e : c["expect"])
    if (e["seq_len"] == seq_len) return {e["inv_freq"].get<Vec>(), e["attention_factor"]};
  throw std::runtime_error("fixture has no seq_len " + std::to_string(seq_len));
}

// ---- the reference: float64, every tensor read by its Hugging Face name ----
struct Reference {
  json cfg;
  std::unique_ptr<io::WeightSource> w;
  int H, I, L, nh, nkv, hd, V;
  double eps;

  explicit Reference(const std::string& dir) {
    cfg = test::read_json(dir + "/config.json");
    w = io::WeightSource::open_dir(dir);
    H = cfg["hidden_size"];
    I = cfg["intermediate_size"];
    L = cfg["num_hidden_layers"];
    nh = cfg["num_attention_heads"];
    nkv = cfg["num_key_value_heads"];
    hd = H / nh;
    V = cfg["vocab_size"];
    eps = cfg["rms_norm_eps"];
  }
  Vec tensor(const std::string& name) const {
    const io::TensorInfo& t = w->get(name);
    EXPECT_EQ(t.dtype, DType::kF32);
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
  std::vector<Vec> rmsnorm(const std::vector<Vec>& x, const Vec& g) const {
    std::vector<Vec> y = x;
    for (auto& row : y) {
      double ss = 0;
      for (double v : row) ss += v * v;
      const double r = 1.0 / std::sqrt(ss / row.size() + eps);
      for (size_t i = 0; i < row.size(); ++i) row[i] = row[i] * r * g[i];
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

  // Logits [n][V] for tokens at positions 0..n-1; position p is rotated with rope(p).
  std::vector<Vec> forward(const std::vector<int32_t>& tokens,
                           const std::function<std::pair<Vec, double>(int64_t)>& rope) const {
    const size_t n = tokens.size();
    const std::string type = cfg["model_type"];
    const bool phi3 = type == "phi3";
    const Vec emb = tensor("model.embed_tokens.weight");
    std::vector<Vec> x(n, Vec(H));
    for (size_t t = 0; t < n; ++t)
      for (int i = 0; i < H; ++i) x[t][i] = emb[tokens[t] * H + i];
    const int qd = nh * hd, kvd = nkv * hd;
    for (int l = 0; l < L; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      const std::vector<Vec> xn = rmsnorm(x, tensor(p + "input_layernorm.weight"));
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
      // Explicit mask: key j visible to query i iff j <= i and (no window or i - j < window).
      const int64_t W = window(l);
      std::vector<std::vector<bool>> mask(n, std::vector<bool>(n));
      for (size_t i = 0; i < n; ++i)
        for (size_t j = 0; j < n; ++j)
          mask[i][j] = j <= i && (W == 0 || static_cast<int64_t>(i - j) < W);
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
            for (int e = 0; e < hd; ++e) d += q[i][h * hd + e] * k[j][g * hd + e];
            s[j] = d * scale;
            mx = std::max(mx, s[j]);
          }
          double sum = 0;
          for (size_t j = 0; j < n; ++j) sum += (s[j] = mask[i][j] ? std::exp(s[j] - mx) : 0);
          for (size_t j = 0; j < n; ++j)
            for (int e = 0; e < hd; ++e) att_out[i][h * hd + e] += s[j] / sum * v[j][g * hd + e];
        }
      }
      const std::vector<Vec> o = linear(att_out, tensor(p + "self_attn.o_proj.weight"), 0, H);
      for (size_t t = 0; t < n; ++t)
        for (int i = 0; i < H; ++i) x[t][i] += o[t][i];
      const std::vector<Vec> xm = rmsnorm(x, tensor(p + "post_attention_layernorm.weight"));
      std::vector<Vec> gate, up;
      if (phi3) {
        const Vec W = tensor(p + "mlp.gate_up_proj.weight");
        gate = linear(xm, W, 0, I);
        up = linear(xm, W, I, I);
      } else {
        gate = linear(xm, tensor(p + "mlp.gate_proj.weight"), 0, I);
        up = linear(xm, tensor(p + "mlp.up_proj.weight"), 0, I);
      }
      for (size_t t = 0; t < n; ++t)
        for (int i = 0; i < I; ++i) gate[t][i] = gate[t][i] / (1 + std::exp(-gate[t][i])) * up[t][i];
      const std::vector<Vec> d = linear(gate, tensor(p + "mlp.down_proj.weight"), 0, H);
      for (size_t t = 0; t < n; ++t)
        for (int i = 0; i < H; ++i) x[t][i] += d[t][i];
    }
    const std::vector<Vec> xf = rmsnorm(x, tensor("model.norm.weight"));
    const bool tied = cfg.value("tie_word_embeddings", false);
    return linear(xf, tensor(tied ? "model.embed_tokens.weight" : "lm_head.weight"), 0, V);
  }
};

std::string make_checkpoint(const std::string& name) {
  RandomCheckpointOptions o;
  o.config_json = fixture_case(name)["config"].dump();
  o.dtype = DType::kF32;
  o.seed = 7;
  return test::random_checkpoint_dir("family-" + name, o);
}

std::vector<int32_t> tokens(size_t n, uint32_t seed) {
  std::vector<int32_t> t;
  for (size_t i = 0; i < n; ++i) {
    seed = seed * 1664525u + 1013904223u;
    t.push_back(3 + static_cast<int32_t>((seed >> 8) % 290));
  }
  return t;
}

// Worst |got - want| / max(1, |want|) over a row of logits.
double worst_rel(const float* got, const Vec& want) {
  double w = 0;
  for (size_t i = 0; i < want.size(); ++i)
    w = std::max(w, std::abs(got[i] - want[i]) / std::max(1.0, std::abs(want[i])));
  return w;
}

struct Loaded {
  std::unique_ptr<Model> model;
  ThreadPool pool{2};
  explicit Loaded(const std::string& dir) : model(Model::load(dir)) {}
  SessionOptions opts(int64_t planned = 0) const {
    SessionOptions so;
    so.context = 512;
    so.kv_dtype = DType::kF32;
    so.prefill_chunk = 16;  // several chunks per prompt
    so.planned_tokens = planned;
    return so;
  }
};

constexpr double kTol = 1e-4;

// Prefill of `n` tokens: the logits at every position equal the reference's.
void expect_prefill_matches(const std::string& name, size_t n,
                            const std::function<std::pair<Vec, double>(int64_t)>& rope) {
  const std::string dir = make_checkpoint(name);
  Loaded r(dir);
  const Reference ref(dir);
  const auto toks = tokens(n, 99);
  Session s(*r.model, r.pool, r.opts());
  std::vector<float> all;
  s.append(toks, &all);
  const auto want = ref.forward(toks, rope);
  double worst = 0;
  for (size_t t = 0; t < n; ++t) worst = std::max(worst, worst_rel(&all[t * ref.V], want[t]));
  EXPECT_LE(worst, kTol);
  ::testing::Test::RecordProperty("worst_rel_" + name, std::to_string(worst));
}

std::function<std::pair<Vec, double>(int64_t)> fixed_rope(const std::string& name,
                                                          int64_t seq_len = 0) {
  const auto r = numpy_rope(fixture_case(name), seq_len);
  return [r](int64_t) { return r; };
}

TEST(Families, LlamaWithLlama3Scaling) {
  expect_prefill_matches("tiny-llama31", 100, fixed_rope("tiny-llama31"));
}

TEST(Families, MistralPromptLongerThanWindow) {
  expect_prefill_matches("tiny-mistral", 80, fixed_rope("tiny-mistral"));  // window 24
}

TEST(Families, Qwen2BiasesYarnAndWindowOnUpperLayersOnly) {
  // use_sliding_window with max_window_layers 1: layer 0 full, layers 1-2 window 20.
  expect_prefill_matches("tiny-qwen2-yarn", 70, fixed_rope("tiny-qwen2-yarn"));
}

TEST(Families, Phi3Mini4kWindowAndPartialRotary) {
  expect_prefill_matches("tiny-phi3-mini-4k", 60, fixed_rope("tiny-phi3-mini-4k"));  // window 19
}

TEST(Families, Phi3LongRopeShortSideOfBoundary) {
  // original_max_position_embeddings 40: a 40-token sequence uses the short factors.
  expect_prefill_matches("tiny-phi3-longrope", 40, fixed_rope("tiny-phi3-longrope", 40));
}

TEST(Families, Phi3LongRopeLongSideOfBoundary) {
  expect_prefill_matches("tiny-phi3-longrope", 80, fixed_rope("tiny-phi3-longrope", 41));
}

// A generation that crosses the boundary: unplanned, the session recomputes the cache once (and
// says so); planned, it uses the long factors from the first token. Either way every step's
// logits are those of the reference over the sequence so far with the factors transformers picks
// for that step (Phi-3 recomputes at the crossing too); planned, those of the whole final sequence.
TEST(Families, Phi3LongRopeGenerationAcrossBoundary) {
  const std::string name = "tiny-phi3-longrope";
  const std::string dir = make_checkpoint(name);
  Loaded r(dir);
  const Reference ref(dir);
  const auto seq = tokens(52, 5);
  const size_t prompt = 30;
  const auto short_rope = numpy_rope(fixture_case(name), 40);
  const auto long_rope = numpy_rope(fixture_case(name), 41);
  const auto want_short =
      ref.forward({seq.begin(), seq.begin() + 40}, [&](int64_t) { return short_rope; });
  const auto want_long = ref.forward(seq, [&](int64_t) { return long_rope; });

  for (const int64_t planned : {int64_t{0}, int64_t{52}}) {
    SCOPED_TRACE("planned " + std::to_string(planned));
    SessionOptions so = r.opts(planned);
    std::vector<std::string> notices;
    so.on_notice = [&](const std::string& m) { notices.push_back(m); };
    Session s(*r.model, r.pool, so);
    std::vector<float> logits = s.append({seq.begin(), seq.begin() + prompt});
    for (size_t len = prompt; len <= seq.size(); ++len) {
      // logits after `len` tokens predict token `len`.
      const bool long_now = planned > 40 || len > 40;
      const Vec& want = long_now ? want_long[len - 1] : want_short[len - 1];
      EXPECT_LE(worst_rel(logits.data(), want), kTol) << "after " << len << " tokens";
      if (len < seq.size()) logits = s.append({seq[len]});
    }
    EXPECT_EQ(s.recomputes(), planned ? 0 : 1);
    ASSERT_EQ(notices.size(), planned ? 0u : 1u);
    if (!notices.empty()) {
      EXPECT_NE(notices[0].find("original_max_position_embeddings (40)"), std::string::npos)
          << notices[0];
      EXPECT_NE(notices[0].find("recomputing the 40 cached tokens"), std::string::npos)
          << notices[0];
    }
  }
}

// Dynamic NTK: like transformers, the base is recomputed for each forward call from the length
// reached at its end, and cached keys keep the rotation they were written with. A 48-token prompt
// (chunked, but one call) uses the base for 48 throughout; 16 more tokens in one call use the
// base for 64.
TEST(Families, LlamaDynamicNtkPerForwardCall) {
  const std::string name = "tiny-llama-dynamic";  // max_position_embeddings 32
  const std::string dir = make_checkpoint(name);
  Loaded r(dir);
  const Reference ref(dir);
  const auto seq = tokens(64, 11);
  const auto at48 = numpy_rope(fixture_case(name), 48);
  const auto at64 = numpy_rope(fixture_case(name), 64);
  const auto want =
      ref.forward(seq, [&](int64_t pos) { return pos < 48 ? at48 : at64; });
  Session s(*r.model, r.pool, r.opts(/*planned=*/64));  // the plan does not change dynamic
  std::vector<float> all;
  s.append({seq.begin(), seq.begin() + 48}, &all);
  double worst = 0;
  for (size_t t = 0; t < 48; ++t) worst = std::max(worst, worst_rel(&all[t * ref.V], want[t]));
  s.append({seq.begin() + 48, seq.end()}, &all);
  for (size_t t = 0; t < 16; ++t)
    worst = std::max(worst, worst_rel(&all[t * ref.V], want[48 + t]));
  EXPECT_LE(worst, kTol);
  EXPECT_EQ(s.recomputes(), 0);
  // Below max_position_embeddings the base is the configured one.
  const auto short_seq = std::vector<int32_t>(seq.begin(), seq.begin() + 32);
  const auto base = numpy_rope(fixture_case(name), 32);
  const auto want32 = ref.forward(short_seq, [&](int64_t) { return base; });
  Session s2(*r.model, r.pool, r.opts());
  s2.append(short_seq, &all);
  double worst32 = 0;
  for (size_t t = 0; t < 32; ++t)
    worst32 = std::max(worst32, worst_rel(&all[t * ref.V], want32[t]));
  EXPECT_LE(worst32, kTol);
}

}  // namespace
}  // namespace longctx
