#include "model/decoder.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "config/gguf_config.h"
#include "core/error.h"
#include "core/huge_pages.h"
#include "io/gguf.h"
#include "model/checkpoint_check.h"
#include "model/rope_freqs.h"

namespace longctx {

namespace {

const io::TensorInfo& expect_tensor(const io::WeightSource& w, const std::string& name,
                                    const std::vector<int64_t>& shape) {
  const io::TensorInfo& t = w.get(name);
  if (t.shape != shape)
    throw Error(ErrorKind::kShape, "tensor " + name + " has shape " + shape_str(t.shape) +
                                       " but the model's configuration implies " +
                                       shape_str(shape) +
                                       "; the weights do not belong to this configuration");
  return t;
}

kernels::WeightView matrix(const io::TensorInfo& t, int64_t row0, int64_t rows) {
  const int64_t rb = row_bytes(t.type, t.shape[1]);
  return kernels::weight_view(t.type, static_cast<const uint8_t*>(t.data) + row0 * rb, rows,
                              t.shape[1]);
}

// A vector parameter (norm weight, bias) in f32. GGUF files store these as F32 (llama.cpp never
// quantizes 1-D tensors); a block type here is a malformed file.
std::vector<float> to_vec(const io::TensorInfo& t) {
  const std::optional<DType> dt = float_dtype(t.type);
  if (!dt)
    throw Error(ErrorKind::kFormat, t.file + ": tensor " + t.name + " is stored as " +
                                        tensor_type_name(t.type) +
                                        "; norm weights and biases must be F32, F16 or BF16");
  std::vector<float> out(static_cast<size_t>(t.numel()));
  to_f32(*dt, t.data, out.data(), out.size());
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

// llama.cpp's converter stores q/k rows of `llama` models so that RoPE pairs dimensions (2i, 2i+1)
// of a head: its row 2i + s is Hugging Face's row i + s * head_dim/2. Puts n rows of `heads` heads
// back in Hugging Face order, in place.
void unpermute_heads(float* x, int64_t n, int heads, int head_dim) {
  const int half = head_dim / 2;
  thread_local std::vector<float> tmp;
  tmp.resize(static_cast<size_t>(head_dim));
  for (int64_t r = 0; r < n * heads; ++r) {
    float* v = x + r * head_dim;
    for (int i = 0; i < half; ++i) {
      tmp[static_cast<size_t>(i)] = v[2 * i];
      tmp[static_cast<size_t>(i + half)] = v[2 * i + 1];
    }
    std::copy(tmp.begin(), tmp.end(), v);
  }
}

}  // namespace

bool is_gguf_path(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".gguf") == 0) return true;
  char magic[4] = {};
  std::ifstream f(path, std::ios::binary);
  return f.read(magic, 4) && std::string(magic, 4) == "GGUF";
}

std::unique_ptr<Model> Model::load(const std::string& path, WeightMemory memory,
                                   StageRange stage) {
  ModelConfig cfg;
  std::unique_ptr<io::WeightSource> weights;
  WeightFormat format = WeightFormat::kHuggingFace;
  if (is_gguf_path(path)) {
    const auto gguf = io::GgufFile::open(path);
    cfg = config_from_gguf(*gguf);
    weights = io::WeightSource::from_gguf(*gguf);
    format = WeightFormat::kGguf;
  } else {
    cfg = load_model_config(path);
    arch_spec_for(cfg.model_type);  // fail on an unknown architecture before mapping anything
    weights = io::WeightSource::open_dir(path);
  }
  check_checkpoint(cfg, *weights, format);  // the same check `plan` makes
  if (!stage.whole(cfg)) {
    // A pipeline stage: the mapping stays (a private copy would hold every layer); reading the
    // stage's tensors once checks them and makes exactly them resident.
    auto m = std::make_unique<Model>(std::move(cfg), std::move(weights), format, stage);
    if (memory == WeightMemory::kResident) check_finite_weights(m->weights(), &m->stage_tensors());
    return m;
  }
  // Copy only once the headers validated, and only where huge pages make the copy pay.
  if (memory == WeightMemory::kResident) {
    if (transparent_huge_pages_available()) weights->make_resident();
    // The weights are about to be read whole anyway; one pass over them (at memory bandwidth)
    // turns a NaN/Inf in the file into a message instead of garbage text. --mmap keeps its
    // lazy paging and relies on the logits check (check_finite_logits).
    check_finite_weights(*weights);
  }
  return std::make_unique<Model>(std::move(cfg), std::move(weights), format);
}

bool Model::weights_resident() const {
  for (const auto& f : weights_->files())
    if (!f->resident()) return false;
  return !weights_->files().empty();
}

Model::Model(ModelConfig cfg, std::unique_ptr<io::WeightSource> weights, WeightFormat format,
             StageRange stage)
    : cfg_(std::move(cfg)), stage_(stage), weights_(std::move(weights)) {
  const int L = cfg_.num_hidden_layers;
  stage_.end = stage_.end_layer(cfg_);
  if (stage_.first < 0 || stage_.first >= stage_.end || stage_.end > L)
    throw Error(ErrorKind::kInvalidArg, "stage layers [" + std::to_string(stage_.first) + ", " +
                                            std::to_string(stage_.end) + ") are not inside the " +
                                            std::to_string(L) + " layers of the model");
  const ArchSpec& spec = arch_spec_for(cfg_.model_type);
  const TensorNames& arch = format == WeightFormat::kGguf ? spec.gguf : spec.hf;
  names_ = arch;
  qk_interleaved_ = format == WeightFormat::kGguf && spec.gguf_qk_interleaved;
  const io::WeightSource& w = *weights_;
  // The stage's tensors, as they are read (check_finite_weights of a stage scans these).
  auto expect_tensor = [this](const io::WeightSource& src, const std::string& name,
                              const std::vector<int64_t>& shape) -> const io::TensorInfo& {
    const io::TensorInfo& t = longctx::expect_tensor(src, name, shape);
    if (std::find(stage_tensors_.begin(), stage_tensors_.end(), name) == stage_tensors_.end())
      stage_tensors_.push_back(name);
    return t;
  };
  auto load_bias = [this](const io::WeightSource& src, const std::string& weight_name,
                          int64_t rows, bool required) {
    std::vector<float> b = longctx::load_bias(src, weight_name, rows, required);
    if (!b.empty())
      stage_tensors_.push_back(weight_name.substr(0, weight_name.size() - 6) + "bias");
    return b;
  };
  const int64_t H = cfg_.hidden_size, I = cfg_.intermediate_size, V = cfg_.vocab_size;
  const int64_t qd = static_cast<int64_t>(cfg_.num_attention_heads) * cfg_.head_dim;
  const int64_t kvd = static_cast<int64_t>(cfg_.num_key_value_heads) * cfg_.head_dim;

  if (stage_.has_embed()) embed_ = matrix(expect_tensor(w, arch.embed, {V, H}), 0, V);
  if (stage_.has_head(cfg_)) {
    if (const io::TensorInfo* head = w.find(arch.lm_head)) {
      lm_head_ = matrix(expect_tensor(w, arch.lm_head, {V, H}), 0, V);
      (void)head;
    } else if (cfg_.tie_word_embeddings) {
      lm_head_ = matrix(expect_tensor(w, arch.embed, {V, H}), 0, V);
    } else {
      throw Error(ErrorKind::kShape, "tensor " + arch.lm_head +
                                         " is missing and config.json does not set "
                                         "tie_word_embeddings; the checkpoint is incomplete");
    }
    final_norm_ = to_vec(expect_tensor(w, arch.final_norm, {H}));
  }
  ones_.assign(static_cast<size_t>(H), 1.f);

  const bool qkv_bias = cfg_.attention_bias;
  const bool o_bias = cfg_.o_bias;
  layers_.resize(cfg_.num_hidden_layers);
  for (int l = stage_.first; l < stage_.end; ++l) {
    LayerWeights& Lw = layers_[l];
    auto name = [&](const std::string& t) { return layer_tensor_name(t, l); };
    Lw.attn_norm = to_vec(expect_tensor(w, name(arch.attn_norm), {H}));
    Lw.mlp_norm = to_vec(expect_tensor(w, name(arch.mlp_norm), {H}));
    if (!arch.qkv.empty()) {
      const std::string n = name(arch.qkv);
      const io::TensorInfo& t = expect_tensor(w, n, {qd + 2 * kvd, H});
      Lw.wq = matrix(t, 0, qd);
      Lw.wk = matrix(t, qd, kvd);
      Lw.wv = matrix(t, qd + kvd, kvd);
      std::vector<float> b = load_bias(w, n, qd + 2 * kvd, qkv_bias);
      if (!b.empty()) {
        Lw.bq.assign(b.begin(), b.begin() + qd);
        Lw.bk.assign(b.begin() + qd, b.begin() + qd + kvd);
        Lw.bv.assign(b.begin() + qd + kvd, b.end());
      }
    } else {
      Lw.wq = matrix(expect_tensor(w, name(arch.q), {qd, H}), 0, qd);
      Lw.wk = matrix(expect_tensor(w, name(arch.k), {kvd, H}), 0, kvd);
      Lw.wv = matrix(expect_tensor(w, name(arch.v), {kvd, H}), 0, kvd);
      Lw.bq = load_bias(w, name(arch.q), qd, qkv_bias);
      Lw.bk = load_bias(w, name(arch.k), kvd, qkv_bias);
      Lw.bv = load_bias(w, name(arch.v), kvd, qkv_bias);
    }
    Lw.wo = matrix(expect_tensor(w, name(arch.o), {H, qd}), 0, H);
    Lw.bo = load_bias(w, name(arch.o), H, o_bias);
    if (!arch.gate_up.empty()) {
      const io::TensorInfo& t = expect_tensor(w, name(arch.gate_up), {2 * I, H});
      Lw.w_gate = matrix(t, 0, I);
      Lw.w_up = matrix(t, I, I);
    } else {
      Lw.w_gate = matrix(expect_tensor(w, name(arch.gate), {I, H}), 0, I);
      Lw.w_up = matrix(expect_tensor(w, name(arch.up), {I, H}), 0, I);
    }
    Lw.w_down = matrix(expect_tensor(w, name(arch.down), {H, I}), 0, H);
  }
  for (int l = 0; l < L; ++l)
    layers_[l].window = l < static_cast<int>(cfg_.layer_window.size()) ? cfg_.layer_window[l] : 0;

  fingerprint_ = model_fingerprint(cfg_, w);
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

KVCacheShape kv_cache_shape(const ModelConfig& cfg, KvType k, KvType v, int64_t capacity,
                            StageRange stage) {
  KVCacheShape s;
  const int end = stage.end_layer(cfg);
  s.n_layers = end - stage.first;
  s.n_kv_heads = cfg.num_key_value_heads;
  s.head_dim = cfg.head_dim;
  s.k_type = k;
  s.v_type = v;
  s.capacity = capacity;
  for (int l = stage.first; l < end && l < static_cast<int>(cfg.layer_window.size()); ++l)
    s.layer_window.push_back(cfg.layer_window[l]);
  return s;
}

void Model::rotate_keys(float* keys, int64_t m, int64_t delta, int64_t rope_len) const {
  RopeFreqs scratch;
  const RopeFreqs& rope = select_rope(rope_len, scratch);
  // RoPE composes: R(p - d) = R(-d) R(p). The attention factor was applied once already.
  const std::vector<int64_t> pos(static_cast<size_t>(m), -delta);
  kernels::rope(keys, m, cfg_.num_key_value_heads, cfg_.head_dim, cfg_.rot_dim(), pos.data(),
                rope.inv_freq.data(), 1.0f);
}

KVCacheShape Model::kv_shape(KvType k, KvType v, int64_t capacity) const {
  return kv_cache_shape(cfg_, k, v, capacity, stage_);
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

void Model::attention_block(ThreadPool& pool, int layer, const Segment* segs, int n_segs,
                            int64_t n, int64_t decode_rows, Activations& a,
                            hooks::ForwardHooks* h) const {
  const LayerWeights& L = layers_[layer];
  const int64_t H = cfg_.hidden_size;
  const int64_t qd = static_cast<int64_t>(cfg_.num_attention_heads) * cfg_.head_dim;
  const int64_t kvd = static_cast<int64_t>(cfg_.num_key_value_heads) * cfg_.head_dim;
  const int64_t pos0 = segs[0].pos0;  // what hooks see (they run with one segment)
  fire(h, layer, Point::kResidPre, a.x.data(), pos0, n, H);
  norm(a.x.data(), L.attn_norm, n, pos0, a.xb.data(), a, h, layer, Point::kLn1Scale,
       Point::kLn1Normalized);
  auto bias = [](const std::vector<float>& b) { return b.empty() ? nullptr : b.data(); };
  const kernels::MatmulOut qkv[] = {{&L.wq, bias(L.bq), a.q.data()},
                                    {&L.wk, bias(L.bk), a.k.data()},
                                    {&L.wv, bias(L.bv), a.v.data()}};
  kernels::matmul_many(pool, a.xb.data(), n, qkv, 3, decode_rows);
  if (qk_interleaved_) {
    unpermute_heads(a.q.data(), n, cfg_.num_attention_heads, cfg_.head_dim);
    unpermute_heads(a.k.data(), n, cfg_.num_key_value_heads, cfg_.head_dim);
  }
  if (h) {
    fire(h, layer, Point::kQ, a.q.data(), pos0, n, qd);
    fire(h, layer, Point::kK, a.k.data(), pos0, n, kvd);
    fire(h, layer, Point::kV, a.v.data(), pos0, n, kvd);
  }
  for (int s = 0; s < n_segs; ++s) {  // a.pos holds each row's position
    const Segment& g = segs[s];
    kernels::rope(a.q.data() + g.row0 * qd, g.n, cfg_.num_attention_heads, cfg_.head_dim,
                  cfg_.rot_dim(), a.pos.data() + g.row0, g.rope->inv_freq.data(),
                  g.rope->attn_factor);
    kernels::rope(a.k.data() + g.row0 * kvd, g.n, cfg_.num_key_value_heads, cfg_.head_dim,
                  cfg_.rot_dim(), a.pos.data() + g.row0, g.rope->inv_freq.data(),
                  g.rope->attn_factor);
  }
  if (h) {
    fire(h, layer, Point::kRotQ, a.q.data(), pos0, n, qd);
    fire(h, layer, Point::kRotK, a.k.data(), pos0, n, kvd);  // before the cache sees the keys
  }

  kernels::AttentionParams p;
  p.n_heads = cfg_.num_attention_heads;
  p.scale = 1.0f / std::sqrt(static_cast<float>(cfg_.head_dim));
  p.window = L.window;
  for (int s = 0; s < n_segs; ++s) {
    const Segment& g = segs[s];
    g.kv->write(layer - stage_.first, g.pos0, g.n, a.k.data() + g.row0 * kvd, a.v.data() + g.row0 * kvd);
  }
  auto attend = [&](ThreadPool& tp, const Segment& g) {
    const kernels::KVView view = g.kv->view(layer - stage_.first, g.pos0 + g.n);
    const float* q = a.q.data() + g.row0 * qd;
    kernels::attention(tp, p, q, g.n, g.pos0, view, a.att.data() + g.row0 * qd);
    if (h && h->any_pattern(layer))
      h->attention(layer, hooks::AttentionInputs{&tp, &p, q, g.pos0, g.n, &view});
  };
  // A decode batch (every thread has a sequence of a few rows): one fork-join over the sequences,
  // each attended on one thread, instead of one fork-join per sequence per layer, which costs
  // more than the attention of a short sequence. Longer segments split over the threads as usual.
  bool per_thread = !h && n_segs >= pool.size() && pool.size() > 1;
  for (int s = 0; s < n_segs && per_thread; ++s) per_thread = segs[s].n <= 4;
  if (per_thread) {
    p.split_threads = pool.size();  // the keys split as alone: the same sums
    pool.parallel_for(n_segs, 1, [&](int64_t b, int64_t e, int) {
      thread_local ThreadPool inline_pool(1);  // runs on the calling thread
      for (int64_t s = b; s < e; ++s) attend(inline_pool, segs[s]);
    });
  } else {
    for (int s = 0; s < n_segs; ++s) attend(pool, segs[s]);
  }
  fire(h, layer, Point::kZ, a.att.data(), pos0, n, qd);

  kernels::matmul(pool, a.att.data(), n, L.wo, L.bo.empty() ? nullptr : L.bo.data(), a.xb.data(),
                  decode_rows);
  fire(h, layer, Point::kAttnOut, a.xb.data(), pos0, n, H);
  for (int64_t i = 0; i < n * H; ++i) a.x[i] += a.xb[i];
  fire(h, layer, Point::kResidMid, a.x.data(), pos0, n, H);
}

void Model::mlp_block(ThreadPool& pool, int layer, int64_t n, int64_t decode_rows, int64_t pos0,
                      Activations& a, hooks::ForwardHooks* h) const {
  const LayerWeights& L = layers_[layer];
  const int64_t H = cfg_.hidden_size, I = cfg_.intermediate_size;
  norm(a.x.data(), L.mlp_norm, n, pos0, a.xb.data(), a, h, layer, Point::kLn2Scale,
       Point::kLn2Normalized);
  const kernels::MatmulOut gate_up[] = {{&L.w_gate, nullptr, a.gate.data()},
                                        {&L.w_up, nullptr, a.up.data()}};
  kernels::matmul_many(pool, a.xb.data(), n, gate_up, 2, decode_rows);
  if (h) {
    fire(h, layer, Point::kMlpPre, a.gate.data(), pos0, n, I);
    fire(h, layer, Point::kMlpPreLinear, a.up.data(), pos0, n, I);
  }
  kernels::silu_mul(a.gate.data(), a.up.data(), n * I, a.gate.data());
  fire(h, layer, Point::kMlpPost, a.gate.data(), pos0, n, I);
  kernels::matmul(pool, a.gate.data(), n, L.w_down, nullptr, a.xb.data(), decode_rows);
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
    check_finite_logits(logits, n - first, V, pos0 + first);
    return;
  }
  if (!h->on(-1, Point::kLogits)) {
    kernels::matmul(pool, a.xb.data() + (n - 1) * H, 1, lm_head_, nullptr, logits);
    check_finite_logits(logits, 1, V, pos0 + n - 1);
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
  check_finite_logits(logits, 1, V, pos0 + n - 1);
}

namespace {
void check_tokens(const int32_t* tokens, int64_t n, int64_t vocab) {
  for (int64_t t = 0; t < n; ++t) {
    if (tokens[t] < 0 || tokens[t] >= vocab)
      throw Error(ErrorKind::kOutOfRange,
                  "token id " + std::to_string(tokens[t]) + " is outside the vocabulary [0, " +
                      std::to_string(vocab) + "); check the tokenizer matches the model");
  }
}
}  // namespace

void Model::run_layers(ThreadPool& pool, const int32_t* const* tokens, const Segment* segs,
                       int n_segs, int64_t rows, int64_t decode_rows, Activations& a,
                       hooks::ForwardHooks* h) const {
  const int64_t H = cfg_.hidden_size;
  for (int s = 0; s < n_segs; ++s) {
    const Segment& g = segs[s];
    g.kv->prepare(g.pos0, g.n);
    for (int64_t t = 0; t < g.n; ++t) {
      // A later pipeline stage: a.x already holds the previous stage's rows.
      if (stage_.has_embed())
        kernels::embedding_row(embed_, tokens[s][t], a.x.data() + (g.row0 + t) * H);
      a.pos[g.row0 + t] = g.pos0 + t;
    }
  }
  if (stage_.has_embed()) fire(h, -1, Point::kEmbed, a.x.data(), segs[0].pos0, rows, H);
  for (int l = stage_.first; l < stage_.end; ++l) {
    attention_block(pool, l, segs, n_segs, rows, decode_rows, a, h);
    mlp_block(pool, l, rows, decode_rows, segs[0].pos0, a, h);
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
  if (stage_.has_embed()) check_tokens(tokens, n, cfg_.vocab_size);
  RopeFreqs rope_scratch;
  const Segment seg{&kv, 0, n, pos0,
                    &select_rope(rope_len > 0 ? rope_len : pos0 + n, rope_scratch)};
  run_layers(pool, &tokens, &seg, 1, n, kernels::default_decode_rows(n), a, h);
  if (stage_.has_head(cfg_)) head(pool, n, pos0, all_logits, a, logits, h);
}

void Model::forward_batch(ThreadPool& pool, const BatchEntry* entries, int n_entries,
                          Activations& a) const {
  if (n_entries <= 0) return;
  if (!stage_.whole(cfg_))
    throw Error(ErrorKind::kUnsupported, "batched forward passes run on a whole model, not a "
                                         "pipeline stage");
  std::vector<Segment> segs(static_cast<size_t>(n_entries));
  std::vector<const int32_t*> tokens(static_cast<size_t>(n_entries));
  std::vector<RopeFreqs> rope_scratch(static_cast<size_t>(n_entries));
  // Rows: the entries of fewer than kGemmMinRows tokens first (decode tokens, short prefill
  // chunks: the decode order of the projections, as Model::forward gives such a chunk alone),
  // then the long chunks (the prefill order, as alone). Each row thus gets the bits it gets alone.
  int64_t rows = 0, decode_rows = 0;
  for (const bool short_pass : {true, false})
    for (int s = 0; s < n_entries; ++s) {
      const BatchEntry& e = entries[s];
      if (short_pass) {
        if (!e.kv || e.n <= 0 || !e.tokens)
          throw Error(ErrorKind::kInternal, "batch entry without a cache or tokens");
        for (int o = 0; o < s; ++o)
          if (entries[o].kv == e.kv)
            throw Error(ErrorKind::kInternal, "two batch entries share one KV cache");
        check_tokens(e.tokens, e.n, cfg_.vocab_size);
      }
      if ((kernels::default_decode_rows(e.n) > 0) != short_pass) continue;
      const int64_t pos0 = e.kv->n_tokens();
      segs[s] = Segment{e.kv, rows, e.n, pos0,
                        &select_rope(e.rope_len > 0 ? e.rope_len : pos0 + e.n, rope_scratch[s])};
      tokens[s] = e.tokens;
      rows += e.n;
      if (short_pass) decode_rows = rows;
    }
  if (rows > a.max_tokens())
    throw Error(ErrorKind::kInternal, "batch of " + std::to_string(rows) +
                                          " rows larger than its activation buffers");
  run_layers(pool, tokens.data(), segs.data(), n_entries, rows, decode_rows, a, nullptr);

  // The final norm and the output head over each wanted entry's last row: normed into row i of
  // a.xb for the i-th wanted entry, then one head pass over all of them in the decode order (the
  // order one last row gets alone).
  const int64_t H = cfg_.hidden_size, V = cfg_.vocab_size;
  std::vector<int> wanted;
  for (int s = 0; s < n_entries; ++s)
    if (entries[s].logits) wanted.push_back(s);
  if (wanted.empty()) return;
  const int64_t m = static_cast<int64_t>(wanted.size());
  bool consecutive = true;  // the entries' logits are rows of one [m][V] array
  for (int64_t i = 0; i < m; ++i) {
    const Segment& g = segs[wanted[i]];
    kernels::rmsnorm(a.x.data() + (g.row0 + g.n - 1) * H, final_norm_.data(), 1, H,
                     cfg_.rms_norm_eps, a.xb.data() + i * H);
    consecutive = consecutive && entries[wanted[i]].logits == entries[wanted[0]].logits + i * V;
  }
  if (consecutive) {
    kernels::matmul(pool, a.xb.data(), m, lm_head_, nullptr, entries[wanted[0]].logits, m);
  } else {
    for (int64_t i = 0; i < m; ++i)
      kernels::matmul(pool, a.xb.data() + i * H, 1, lm_head_, nullptr, entries[wanted[i]].logits,
                      1);
  }
  for (int64_t i = 0; i < m; ++i) {
    const Segment& g = segs[wanted[i]];
    check_finite_logits(entries[wanted[i]].logits, 1, V, g.pos0 + g.n - 1);
  }
}

}  // namespace longctx
