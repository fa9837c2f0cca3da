#include "model/decoder.h"

#include <cmath>
#include <string>

#include "core/error.h"
#include "core/huge_pages.h"
#include "model/rope_freqs.h"

namespace longctx {

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

const io::TensorInfo& expect_tensor(const io::WeightSource& w, const std::string& name,
                                    const std::vector<int64_t>& shape) {
  const io::TensorInfo& t = w.get(name);
  if (t.shape != shape)
    throw Error(ErrorKind::kShape, "tensor " + name + " has shape " + shape_str(t.shape) +
                                       " but config.json implies " + shape_str(shape) +
                                       "; the weights do not belong to this config.json");
  return t;
}

kernels::WeightView matrix(const io::TensorInfo& t, int64_t row0, int64_t rows) {
  const TensorType type = tensor_type(t.dtype);
  const int64_t rb = row_bytes(type, t.shape[1]);
  return kernels::weight_view(type, static_cast<const uint8_t*>(t.data) + row0 * rb, rows,
                              t.shape[1]);
}

std::vector<float> to_vec(const io::TensorInfo& t, int64_t off = 0, int64_t n = -1) {
  if (n < 0) n = t.numel();
  std::vector<float> out(static_cast<size_t>(n));
  to_f32(t.dtype, static_cast<const uint8_t*>(t.data) + off * dtype_size(t.dtype), out.data(),
         out.size());
  return out;
}

// Loads an optional bias "<name without .weight>.bias" of `rows` elements; `required` makes its
// absence an error.
std::vector<float> load_bias(const io::WeightSource& w, const std::string& weight_name,
                             int64_t rows, bool required) {
  std::string name = weight_name.substr(0, weight_name.size() - std::string("weight").size()) +
                     "bias";
  if (!w.find(name)) {
    if (required)
      throw Error(ErrorKind::kShape, "tensor " + name +
                                         " is missing but config.json says the model has biases");
    return {};
  }
  return to_vec(expect_tensor(w, name, {rows}));
}

}  // namespace

std::unique_ptr<Model> Model::load(const std::string& dir, WeightMemory memory) {
  ModelConfig cfg = load_model_config(dir);
  arch_spec_for(cfg.model_type);  // fail on an unknown architecture before mapping anything
  auto weights = io::WeightSource::open_dir(dir);
  // Copy only once the headers validated, and only where huge pages make the copy pay.
  if (memory == WeightMemory::kResident && transparent_huge_pages_available())
    weights->make_resident();
  return std::make_unique<Model>(std::move(cfg), std::move(weights));
}

bool Model::weights_resident() const {
  for (const auto& f : weights_->files())
    if (!f->resident()) return false;
  return !weights_->files().empty();
}

Model::Model(ModelConfig cfg, std::unique_ptr<io::WeightSource> weights)
    : cfg_(std::move(cfg)), weights_(std::move(weights)) {
  const ArchSpec& arch = arch_spec_for(cfg_.model_type);
  const io::WeightSource& w = *weights_;
  const int64_t H = cfg_.hidden_size, I = cfg_.intermediate_size, V = cfg_.vocab_size;
  const int64_t qd = static_cast<int64_t>(cfg_.num_attention_heads) * cfg_.head_dim;
  const int64_t kvd = static_cast<int64_t>(cfg_.num_key_value_heads) * cfg_.head_dim;

  embed_ = matrix(expect_tensor(w, arch.embed, {V, H}), 0, V);
  if (const io::TensorInfo* head = w.find(arch.lm_head)) {
    lm_head_ = matrix(expect_tensor(w, arch.lm_head, {V, H}), 0, V);
    (void)head;
  } else if (cfg_.tie_word_embeddings) {
    lm_head_ = embed_;
  } else {
    throw Error(ErrorKind::kShape, "tensor " + arch.lm_head +
                                       " is missing and config.json does not set "
                                       "tie_word_embeddings; the checkpoint is incomplete");
  }
  final_norm_ = to_vec(expect_tensor(w, arch.final_norm, {H}));
  ones_.assign(static_cast<size_t>(H), 1.f);

  const bool qkv_bias = arch.qkv_bias_always || cfg_.attention_bias;
  const bool o_bias = cfg_.attention_bias && arch.o_bias_with_attention_bias;
  layers_.resize(cfg_.num_hidden_layers);
  for (int l = 0; l < cfg_.num_hidden_layers; ++l) {
    LayerWeights& L = layers_[l];
    auto name = [&](const std::string& t) { return layer_tensor_name(t, l); };
    L.attn_norm = to_vec(expect_tensor(w, name(arch.attn_norm), {H}));
    L.mlp_norm = to_vec(expect_tensor(w, name(arch.mlp_norm), {H}));
    if (!arch.qkv_proj.empty()) {
      const std::string n = name(arch.qkv_proj);
      const io::TensorInfo& t = expect_tensor(w, n, {qd + 2 * kvd, H});
      L.wq = matrix(t, 0, qd);
      L.wk = matrix(t, qd, kvd);
      L.wv = matrix(t, qd + kvd, kvd);
      std::vector<float> b = load_bias(w, n, qd + 2 * kvd, qkv_bias);
      if (!b.empty()) {
        L.bq.assign(b.begin(), b.begin() + qd);
        L.bk.assign(b.begin() + qd, b.begin() + qd + kvd);
        L.bv.assign(b.begin() + qd + kvd, b.end());
      }
    } else {
      L.wq = matrix(expect_tensor(w, name(arch.q_proj), {qd, H}), 0, qd);
      L.wk = matrix(expect_tensor(w, name(arch.k_proj), {kvd, H}), 0, kvd);
      L.wv = matrix(expect_tensor(w, name(arch.v_proj), {kvd, H}), 0, kvd);
      L.bq = load_bias(w, name(arch.q_proj), qd, qkv_bias);
      L.bk = load_bias(w, name(arch.k_proj), kvd, qkv_bias);
      L.bv = load_bias(w, name(arch.v_proj), kvd, qkv_bias);
    }
    L.wo = matrix(expect_tensor(w, name(arch.o_proj), {H, qd}), 0, H);
    L.bo = load_bias(w, name(arch.o_proj), H, o_bias);
    if (!arch.gate_up_proj.empty()) {
      const io::TensorInfo& t = expect_tensor(w, name(arch.gate_up_proj), {2 * I, H});
      L.w_gate = matrix(t, 0, I);
      L.w_up = matrix(t, I, I);
    } else {
      L.w_gate = matrix(expect_tensor(w, name(arch.gate_proj), {I, H}), 0, I);
      L.w_up = matrix(expect_tensor(w, name(arch.up_proj), {I, H}), 0, I);
    }
    L.w_down = matrix(expect_tensor(w, name(arch.down_proj), {H, I}), 0, H);
    if (cfg_.mlp_bias)
      throw Error(ErrorKind::kUnsupported, "mlp_bias=true is not supported yet");
    L.window = l < static_cast<int>(cfg_.layer_window.size()) ? cfg_.layer_window[l] : 0;
  }

  rope_init_ = compute_rope_freqs(cfg_);
  if (cfg_.rope_scaling.type == RopeType::kLongRope)
    rope_long_ =
        compute_rope_freqs(cfg_, cfg_.rope_scaling.original_max_position_embeddings + 1);
}

const RopeFreqs& Model::select_rope(int64_t rope_len, RopeFreqs& scratch) const {
  const RopeScaling& rs = cfg_.rope_scaling;
  if (rs.type == RopeType::kLongRope && rope_len > rs.original_max_position_embeddings)
    return rope_long_;
  if (rs.type == RopeType::kDynamic && rope_len > cfg_.max_position_embeddings) {
    scratch = compute_rope_freqs(cfg_, rope_len);
    return scratch;
  }
  return rope_init_;
}

KVCacheShape Model::kv_shape(KvType k, KvType v, int64_t capacity) const {
  KVCacheShape s;
  s.n_layers = cfg_.num_hidden_layers;
  s.n_kv_heads = cfg_.num_key_value_heads;
  s.head_dim = cfg_.head_dim;
  s.k_type = k;
  s.v_type = v;
  s.capacity = capacity;
  s.layer_window = cfg_.layer_window;
  return s;
}

Activations::Activations(const ModelConfig& cfg, int64_t max_tokens, MemoryAccount* account)
    : max_tokens_(max_tokens), account_(account) {
  if (account_) {
    charged_ = bytes_for(cfg, max_tokens);
    account_->charge(charged_, "activation buffers");
  }
  const size_t n = static_cast<size_t>(max_tokens);
  const size_t qd = static_cast<size_t>(cfg.num_attention_heads) * cfg.head_dim;
  const size_t kvd = static_cast<size_t>(cfg.num_key_value_heads) * cfg.head_dim;
  x.resize(n * cfg.hidden_size);
  xb.resize(n * cfg.hidden_size);
  q.resize(n * qd);
  k.resize(n * kvd);
  v.resize(n * kvd);
  att.resize(n * qd);
  gate.resize(n * cfg.intermediate_size);
  up.resize(n * cfg.intermediate_size);
  pos.resize(n);
  scale.resize(n);
  scale0.resize(n);
}

Activations::~Activations() {
  if (account_) account_->release(charged_);
}

size_t Activations::bytes_for(const ModelConfig& cfg, int64_t max_tokens) {
  const size_t qd = static_cast<size_t>(cfg.num_attention_heads) * cfg.head_dim;
  const size_t kvd = static_cast<size_t>(cfg.num_key_value_heads) * cfg.head_dim;
  const size_t floats = 2 * cfg.hidden_size + 2 * qd + 2 * kvd + 2 * cfg.intermediate_size;
  return static_cast<size_t>(max_tokens) * ((floats + 2) * sizeof(float) + sizeof(int64_t));
}

namespace {
using hooks::Point;

// Fires point p of `layer` over the chunk's rows [n][width] when it is on.
inline void fire(hooks::ForwardHooks* h, int layer, Point p, float* data, int64_t pos0, int64_t n,
                 int64_t width) {
  if (h && h->on(layer, p)) h->fire(layer, p, hooks::Rows{data, pos0, n, width});
}
}  // namespace

void Model::norm(const float* x, const std::vector<float>& weight, int64_t n, int64_t pos0,
                 float* y, Activations& a, hooks::ForwardHooks* h, int layer, Point scale_p,
                 Point norm_p) const {
  const int64_t H = cfg_.hidden_size;
  const float eps = cfg_.rms_norm_eps;
  if (!h || !(h->on(layer, scale_p) || h->on(layer, norm_p))) {
    kernels::rmsnorm(x, weight.data(), n, H, eps, y);
    return;
  }
  // TransformerLens' RMSNorm: scale = sqrt(mean(x^2) + eps) (hook_scale), x / scale
  // (hook_normalized), times the weight. The normalized rows come from the same kernel as the
  // unhooked path (weight 1), so a hook that changes nothing changes no bit downstream.
  kernels::rmsnorm(x, ones_.data(), n, H, eps, y);
  if (h->on(layer, scale_p)) {
    for (int64_t t = 0; t < n; ++t) {
      double ss = 0;
      for (int64_t i = 0; i < H; ++i) ss += static_cast<double>(x[t * H + i]) * x[t * H + i];
      a.scale[t] = a.scale0[t] = static_cast<float>(std::sqrt(ss / H + eps));
    }
    h->fire(layer, scale_p, hooks::Rows{a.scale.data(), pos0, n, 1});
    for (int64_t t = 0; t < n; ++t)  // a patched or steered scale divides x
      if (a.scale[t] != a.scale0[t])
        for (int64_t i = 0; i < H; ++i) y[t * H + i] = x[t * H + i] / a.scale[t];
  }
  fire(h, layer, norm_p, y, pos0, n, H);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < H; ++i) y[t * H + i] *= weight[i];
}

void Model::attention_block(ThreadPool& pool, int layer, int64_t n, int64_t pos0, KVCache& kv,
                            Activations& a, const RopeFreqs& rope, hooks::ForwardHooks* h) const {
  const LayerWeights& L = layers_[layer];
  const int64_t H = cfg_.hidden_size;
  const int64_t qd = static_cast<int64_t>(cfg_.num_attention_heads) * cfg_.head_dim;
  const int64_t kvd = static_cast<int64_t>(cfg_.num_key_value_heads) * cfg_.head_dim;
  fire(h, layer, Point::kResidPre, a.x.data(), pos0, n, H);
  norm(a.x.data(), L.attn_norm, n, pos0, a.xb.data(), a, h, layer, Point::kLn1Scale,
       Point::kLn1Normalized);
  auto bias = [](const std::vector<float>& b) { return b.empty() ? nullptr : b.data(); };
  const kernels::MatmulOut qkv[] = {{&L.wq, bias(L.bq), a.q.data()},
                                    {&L.wk, bias(L.bk), a.k.data()},
                                    {&L.wv, bias(L.bv), a.v.data()}};
  kernels::matmul_many(pool, a.xb.data(), n, qkv, 3);
  if (h) {
    fire(h, layer, Point::kQ, a.q.data(), pos0, n, qd);
    fire(h, layer, Point::kK, a.k.data(), pos0, n, kvd);
    fire(h, layer, Point::kV, a.v.data(), pos0, n, kvd);
  }
  kernels::rope(a.q.data(), n, cfg_.num_attention_heads, cfg_.head_dim, cfg_.rot_dim(),
                a.pos.data(), rope.inv_freq.data(), rope.attn_factor);
  kernels::rope(a.k.data(), n, cfg_.num_key_value_heads, cfg_.head_dim, cfg_.rot_dim(),
                a.pos.data(), rope.inv_freq.data(), rope.attn_factor);
  if (h) {
    fire(h, layer, Point::kRotQ, a.q.data(), pos0, n, qd);
    fire(h, layer, Point::kRotK, a.k.data(), pos0, n, kvd);  // before the cache sees the keys
  }
  kv.write(layer, pos0, n, a.k.data(), a.v.data());

  kernels::AttentionParams p;
  p.n_heads = cfg_.num_attention_heads;
  p.scale = 1.0f / std::sqrt(static_cast<float>(cfg_.head_dim));
  p.window = L.window;
  const kernels::KVView view = kv.view(layer, pos0 + n);
  kernels::attention(pool, p, a.q.data(), n, pos0, view, a.att.data());
  if (h) {
    if (h->any_pattern(layer))
      h->attention(layer, hooks::AttentionInputs{&pool, &p, a.q.data(), pos0, n, &view});
    fire(h, layer, Point::kZ, a.att.data(), pos0, n, qd);
  }

  kernels::matmul(pool, a.att.data(), n, L.wo, L.bo.empty() ? nullptr : L.bo.data(), a.xb.data());
  fire(h, layer, Point::kAttnOut, a.xb.data(), pos0, n, H);
  for (int64_t i = 0; i < n * H; ++i) a.x[i] += a.xb[i];
  fire(h, layer, Point::kResidMid, a.x.data(), pos0, n, H);
}

void Model::mlp_block(ThreadPool& pool, int layer, int64_t n, int64_t pos0, Activations& a,
                      hooks::ForwardHooks* h) const {
  const LayerWeights& L = layers_[layer];
  const int64_t H = cfg_.hidden_size, I = cfg_.intermediate_size;
  norm(a.x.data(), L.mlp_norm, n, pos0, a.xb.data(), a, h, layer, Point::kLn2Scale,
       Point::kLn2Normalized);
  const kernels::MatmulOut gate_up[] = {{&L.w_gate, nullptr, a.gate.data()},
                                        {&L.w_up, nullptr, a.up.data()}};
  kernels::matmul_many(pool, a.xb.data(), n, gate_up, 2);
  if (h) {
    fire(h, layer, Point::kMlpPre, a.gate.data(), pos0, n, I);
    fire(h, layer, Point::kMlpPreLinear, a.up.data(), pos0, n, I);
  }
  kernels::silu_mul(a.gate.data(), a.up.data(), n * I, a.gate.data());
  fire(h, layer, Point::kMlpPost, a.gate.data(), pos0, n, I);
  kernels::matmul(pool, a.gate.data(), n, L.w_down, nullptr, a.xb.data());
  fire(h, layer, Point::kMlpOut, a.xb.data(), pos0, n, H);
  for (int64_t i = 0; i < n * H; ++i) a.x[i] += a.xb[i];
  fire(h, layer, Point::kResidPost, a.x.data(), pos0, n, H);
}

void Model::head(ThreadPool& pool, int64_t n, int64_t pos0, bool all_logits, Activations& a,
                 float* logits, hooks::ForwardHooks* h) const {
  const int64_t H = cfg_.hidden_size, V = cfg_.vocab_size;
  const bool hooked = h && (h->on(-1, Point::kLnFinalScale) ||
                            h->on(-1, Point::kLnFinalNormalized) || h->on(-1, Point::kLogits));
  // Hooks over the final norm or the logits see every row of the chunk.
  const int64_t first = all_logits || hooked ? 0 : n - 1;
  norm(a.x.data() + first * H, final_norm_, n - first, pos0 + first, a.xb.data(), a, h, -1,
       Point::kLnFinalScale, Point::kLnFinalNormalized);
  if (all_logits || !hooked) {
    kernels::matmul(pool, a.xb.data(), n - first, lm_head_, nullptr, logits);
    if (all_logits) fire(h, -1, Point::kLogits, logits, pos0, n, V);
    return;
  }
  if (!h->on(-1, Point::kLogits)) {
    kernels::matmul(pool, a.xb.data() + (n - 1) * H, 1, lm_head_, nullptr, logits);
    return;
  }
  // The logits hook without all_logits: rows a few at a time, the last one kept as the output.
  constexpr int64_t kRows = 16;  // HookRunner::memory_bytes prices this buffer
  std::vector<float> buf(static_cast<size_t>(std::min(n, kRows) * V));
  for (int64_t r0 = 0; r0 < n; r0 += kRows) {
    const int64_t m = std::min(kRows, n - r0);
    kernels::matmul(pool, a.xb.data() + r0 * H, m, lm_head_, nullptr, buf.data());
    h->fire(-1, Point::kLogits, hooks::Rows{buf.data(), pos0 + r0, m, V});
    if (r0 + m == n) std::copy(buf.end() - V, buf.end(), logits);
  }
}

void Model::forward(ThreadPool& pool, const int32_t* tokens, int64_t n, int64_t pos0, KVCache& kv,
                    Activations& a, float* logits, bool all_logits, int64_t rope_len,
                    hooks::ForwardHooks* h) const {
  if (n <= 0) return;
  if (n > a.max_tokens())
    throw Error(ErrorKind::kInternal, "forward chunk larger than its activation buffers");
  if (kv.n_tokens() != pos0)
    throw Error(ErrorKind::kInternal, "forward at position " + std::to_string(pos0) +
                                          " but the KV cache holds " +
                                          std::to_string(kv.n_tokens()) + " tokens");
  const int64_t H = cfg_.hidden_size;
  for (int64_t t = 0; t < n; ++t) {
    if (tokens[t] < 0 || tokens[t] >= cfg_.vocab_size)
      throw Error(ErrorKind::kOutOfRange,
                  "token id " + std::to_string(tokens[t]) + " is outside the vocabulary [0, " +
                      std::to_string(cfg_.vocab_size) + "); check the tokenizer matches the model");
  }
  kv.prepare(pos0, n);
  for (int64_t t = 0; t < n; ++t) {
    kernels::embedding_row(embed_, tokens[t], a.x.data() + t * H);
    a.pos[t] = pos0 + t;
  }
  fire(h, -1, Point::kEmbed, a.x.data(), pos0, n, H);
  RopeFreqs rope_scratch;
  const RopeFreqs& rope = select_rope(rope_len > 0 ? rope_len : pos0 + n, rope_scratch);
  for (int l = 0; l < cfg_.num_hidden_layers; ++l) {
    attention_block(pool, l, n, pos0, kv, a, rope, h);
    mlp_block(pool, l, n, pos0, a, h);
  }
  head(pool, n, pos0, all_logits, a, logits, h);
}

}  // namespace longctx
