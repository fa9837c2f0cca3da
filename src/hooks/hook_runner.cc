#include "hooks/hook_runner.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <tuple>

#include "core/error.h"
#include "kernels/attention_probe.h"

namespace longctx::hooks {

namespace {

// Pattern rows of at most this many bytes are computed before they go to the sink.
constexpr size_t kRowBufferBytes = size_t{16} << 20;
// Logits rows the decoder computes at a time for the logits hook (decoder.cc).
constexpr int64_t kLogitRows = 16;

int64_t parse_int(const std::string& s, const std::string& what) {
  int64_t v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || s.empty())
    throw Error(ErrorKind::kInvalidArg, what + ": '" + s + "' is not an integer position");
  return v;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? "," : "") + std::to_string(s[i]);
  return r + "]";
}

}  // namespace

PosSlice PosSlice::parse(const std::string& s) {
  PosSlice r;
  const size_t colon = s.find(':');
  if (colon == std::string::npos) {
    const int64_t a = parse_int(s, "--pos");
    r.start = a;
    r.stop = a == -1 ? std::nullopt : std::optional<int64_t>(a + 1);
    return r;
  }
  if (s.find(':', colon + 1) != std::string::npos)
    throw Error(ErrorKind::kInvalidArg, "--pos '" + s + "': steps are not supported; use A:B");
  const std::string a = s.substr(0, colon), b = s.substr(colon + 1);
  if (!a.empty()) r.start = parse_int(a, "--pos");
  if (!b.empty()) r.stop = parse_int(b, "--pos");
  return r;
}

std::pair<int64_t, int64_t> PosSlice::resolve(int64_t n) const {
  auto fix = [n](int64_t v) { return std::clamp<int64_t>(v < 0 ? v + n : v, 0, n); };
  const int64_t a = start ? fix(*start) : 0, b = stop ? fix(*stop) : n;
  if (a >= b)
    throw Error(ErrorKind::kOutOfRange, "--pos " + str() + " selects no position of the " +
                                            std::to_string(n) +
                                            "-token prompt; positions are 0.." +
                                            std::to_string(n - 1) + " (or -" +
                                            std::to_string(n) + "..-1 from the end)");
  return {a, b};
}

std::string PosSlice::str() const {
  return (start ? std::to_string(*start) : "") + ":" + (stop ? std::to_string(*stop) : "");
}

Patch Patch::from_vector(HookId id, std::vector<int64_t> shape, std::vector<float> values) {
  auto owned = std::make_shared<std::vector<float>>(std::move(values));
  Patch p;
  p.id = id;
  p.shape = std::move(shape);
  p.data = owned->data();
  p.keep = owned;
  return p;
}

int64_t CaptureTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

MemorySink::MemorySink(const std::vector<CaptureTensor>& tensors)
    : f32(tensors.size()), i64(tensors.size()) {
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (tensors[i].is_int64) i64[i].assign(static_cast<size_t>(tensors[i].numel()), 0);
    else f32[i].assign(static_cast<size_t>(tensors[i].numel()), 0.f);
  }
}

void MemorySink::write(size_t index, int64_t offset, const float* data, int64_t count) {
  std::copy(data, data + count, f32.at(index).begin() + offset);
}

void MemorySink::write_i64(size_t index, int64_t offset, const int64_t* data, int64_t count) {
  std::copy(data, data + count, i64.at(index).begin() + offset);
}

HookRunner::HookRunner(const ModelConfig& cfg, HookRequest req, int64_t n_tokens)
    : cfg_(cfg), req_(std::move(req)), n_tokens_(n_tokens) {
  const int L = cfg_.num_hidden_layers;
  if (n_tokens_ <= 0) throw Error(ErrorKind::kInvalidArg, "hooks need a non-empty prompt");
  std::tie(first_, last_) = req_.pos.resolve(n_tokens_);
  open_ended_ = !req_.pos.stop;
  reset_points(L);
  const size_t slots = static_cast<size_t>(L + 1) * kPointCount;
  tensor_of_.assign(slots, -1);
  patch_of_.assign(slots, nullptr);
  patch_rows_.assign(slots, false);
  patch_span_.assign(slots, {0, 0});
  steer_of_.assign(slots, nullptr);
  query_pos_tensor_.assign(static_cast<size_t>(L), -1);

  // Query rows of the pattern points.
  if (!req_.pattern_queries.empty()) {
    for (int64_t qp : req_.pattern_queries) {
      const int64_t a = qp < 0 ? qp + n_tokens_ : qp;
      if (a < 0 || a >= n_tokens_)
        throw Error(ErrorKind::kOutOfRange,
                    "--pattern-queries " + std::to_string(qp) + " is outside the " +
                        std::to_string(n_tokens_) + "-token prompt; use 0.." +
                        std::to_string(n_tokens_ - 1) + " or -1..-" + std::to_string(n_tokens_));
      queries_.push_back(a);
    }
    std::sort(queries_.begin(), queries_.end());
    queries_.erase(std::unique(queries_.begin(), queries_.end()), queries_.end());
  } else {
    for (int64_t i = first_; i < last_; ++i) queries_.push_back(i);
  }

  const int64_t S = last_ - first_, T = n_tokens_, Q = static_cast<int64_t>(queries_.size());
  const int64_t heads = cfg_.num_attention_heads;
  for (const HookId& id : req_.capture) {
    CaptureTensor t;
    t.name = hook_name(id);
    switch (id.point) {
      case Point::kAttnScores:
      case Point::kPattern:
        t.shape = {1, heads, Q, T};
        break;
      case Point::kPatternKeyMass:
        t.shape = {1, heads, T};
        break;
      case Point::kPatternEntropy:
        t.shape = {1, heads, S};
        break;
      default:
        t.shape = {1, S};
        for (int64_t d : row_dims(id.point, cfg_)) t.shape.push_back(d);
    }
    if (tensor_of_[slot(id.layer, id.point)] >= 0) continue;
    tensor_of_[slot(id.layer, id.point)] = static_cast<int64_t>(tensors_.size());
    tensors_.push_back(std::move(t));
    turn_on(id);
    const bool rows = id.point == Point::kAttnScores || id.point == Point::kPattern;
    if (rows && query_pos_tensor_[id.layer] < 0) {
      query_pos_tensor_[id.layer] = static_cast<int64_t>(tensors_.size());
      tensors_.push_back({"blocks." + std::to_string(id.layer) + ".attn.pattern_query_pos", {Q}, true});
    }
    if (id.point == Point::kPatternKeyMass) {
      key_mass_.resize(static_cast<size_t>(L));
      key_mass_[id.layer].assign(static_cast<size_t>(heads * T), 0.0);
    }
  }

  // Patches and steering vectors: shapes and values checked before anything runs.
  auto check_target = [&](HookId id, const char* what) {
    if (is_pattern_point(id.point) || id.point == Point::kLogits)
      throw Error(ErrorKind::kInvalidArg,
                  std::string(what) + " " + hook_name(id) +
                      ": attention patterns and logits are read-only; patch attn.hook_rot_k, "
                      "attn.hook_v or attn.hook_z to change what attention does");
    if (patch_of_[slot(id.layer, id.point)] || steer_of_[slot(id.layer, id.point)])
      throw Error(ErrorKind::kInvalidArg, std::string(what) + " " + hook_name(id) +
                                              ": the hook already has a patch or steering "
                                              "vector; give one per hook");
  };
  auto check_finite = [&](HookId id, const float* v, int64_t n, const char* what) {
    for (int64_t i = 0; i < n; ++i)
      if (!std::isfinite(v[i]))
        throw Error(ErrorKind::kInvalidArg,
                    std::string(what) + " for " + hook_name(id) + " holds " +
                        (std::isnan(v[i]) ? "NaN" : "an infinity") + " at element " +
                        std::to_string(i) + "; give finite values");
  };
  for (const Patch& p : req_.patches) {
    check_target(p.id, "--patch");
    const std::vector<int64_t> dims = row_dims(p.id.point, cfg_);
    const int64_t width = row_width(p.id.point, cfg_);
    // Rows: [1, P, dims...] or [P, dims...]; P is the slice's length unless the patch says
    // where its rows start.
    const size_t lead = p.shape.size() == dims.size() + 2 ? 2 : 1;
    const bool rows_shape =
        p.shape.size() >= dims.size() + 1 && (lead == 1 || p.shape[0] == 1) &&
        std::equal(dims.begin(), dims.end(), p.shape.end() - static_cast<int64_t>(dims.size())) &&
        p.shape.size() == dims.size() + lead;
    const int64_t P = rows_shape ? p.shape[lead - 1] : 0;
    const int64_t a = p.first ? *p.first : first_;
    const bool per_row = rows_shape && (p.first ? P > 0 : P == S);
    std::vector<int64_t> full = {1, p.first ? P : S};
    full.insert(full.end(), dims.begin(), dims.end());
    int64_t numel = 0;
    if (per_row) numel = P * width;
    else if (p.shape == dims || p.shape == std::vector<int64_t>{width}) numel = width;
    else
      throw Error(ErrorKind::kShape,
                  "--patch " + hook_name(p.id) + " has shape " + shape_str(p.shape) +
                      " but the hook over --pos " + req_.pos.str() + " (" + std::to_string(S) +
                      " positions) is " + shape_str(full) + "; give that shape, or " +
                      shape_str(dims) + " to patch every position with one row");
    if (per_row && (a < 0 || a + P > n_tokens_))
      throw Error(ErrorKind::kOutOfRange,
                  "--patch " + hook_name(p.id) + " holds positions " + std::to_string(a) + ".." +
                      std::to_string(a + P - 1) + " but the prompt has " +
                      std::to_string(n_tokens_) + " tokens; patch a prompt at least as long");
    patch_span_[slot(p.id.layer, p.id.point)] = {a, a + P};
    check_finite(p.id, p.data, numel, "--patch");
    patch_of_[slot(p.id.layer, p.id.point)] = &p;
    patch_rows_[slot(p.id.layer, p.id.point)] = per_row;
    turn_on(p.id);
  }
  for (const Steer& s : req_.steers) {
    check_target(s.id, "--steer");
    const int64_t width = row_width(s.id.point, cfg_);
    if (static_cast<int64_t>(s.vec.size()) != width)
      throw Error(ErrorKind::kShape, "--steer " + hook_name(s.id) + " has " +
                                         std::to_string(s.vec.size()) +
                                         " values but one row of the hook has " +
                                         std::to_string(width) + "; give a [" +
                                         std::to_string(width) + "] vector");
    check_finite(s.id, s.vec.data(), width, "--steer");
    if (!std::isfinite(s.scale))
      throw Error(ErrorKind::kInvalidArg, "--steer " + hook_name(s.id) + ": the scale must be finite");
    steer_of_[slot(s.id.layer, s.id.point)] = &s;
    turn_on(s.id);
  }
}

size_t HookRunner::memory_bytes(const ModelConfig& cfg, const HookRequest& req, int64_t n_tokens,
                                int64_t chunk, int threads) {
  const int64_t heads = cfg.num_attention_heads;
  const int64_t group = heads / std::max(cfg.num_key_value_heads, 1);
  size_t bytes = 0;
  bool pattern = false;
  int row_kinds = 0;  // hook_attn_scores and / or hook_pattern
  for (const HookId& id : req.capture) {
    if (id.point == Point::kPatternKeyMass) bytes += sizeof(double) * heads * n_tokens;
    if (id.point == Point::kLogits) bytes += sizeof(float) * kLogitRows * cfg.vocab_size;
    pattern |= is_pattern_point(id.point);
  }
  for (const Point p : {Point::kAttnScores, Point::kPattern})
    for (const HookId& id : req.capture)
      if (id.point == p) {
        ++row_kinds;
        break;
      }
  if (pattern) {
    // Probe scratch (scores of one row group + a key tile per thread), the row buffer of one
    // query block (as attention() sizes it), entropies of a chunk.
    bytes += sizeof(float) * threads * (group * n_tokens + 64 * cfg.head_dim);
    const size_t row_floats = static_cast<size_t>(heads * n_tokens * row_kinds);
    if (row_floats > 0) {
      const size_t block = std::clamp<size_t>(kRowBufferBytes / sizeof(float) / row_floats, 1,
                                              static_cast<size_t>(std::max<int64_t>(chunk, 1)));
      bytes += sizeof(float) * row_floats * block;
    }
    bytes += sizeof(float) * heads * std::max<int64_t>(chunk, 1);
  }
  for (const Patch& p : req.patches) {
    int64_t n = 1;
    for (int64_t d : p.shape) n *= d;
    bytes += sizeof(float) * static_cast<size_t>(n);  // patch values in memory
  }
  return bytes;
}

void HookRunner::fire(int layer, Point p, const Rows& rows) {
  const size_t s = slot(layer, p);
  const int64_t w = rows.width;
  // Positions of this chunk inside the slice: [a, b).
  const int64_t a = std::max(rows.pos0, first_);
  const int64_t b = std::min(rows.pos0 + rows.n, open_ended_ ? INT64_MAX : last_);
  if (const Patch* pt = patch_of_[s]) {
    if (patch_rows_[s]) {  // rows for positions [span.first, span.second)
      const auto span = patch_span_[s];
      for (int64_t i = std::max(rows.pos0, span.first);
           i < std::min(rows.pos0 + rows.n, span.second); ++i)
        std::copy(pt->data + (i - span.first) * w, pt->data + (i - span.first + 1) * w,
                  rows.data + (i - rows.pos0) * w);
    } else {  // one row for every position of the slice (and past the prompt when open-ended)
      for (int64_t i = a; i < b; ++i)
        std::copy(pt->data, pt->data + w, rows.data + (i - rows.pos0) * w);
    }
  }
  if (const Steer* st = steer_of_[s]) {
    for (int64_t r = 0; r < rows.n; ++r) {
      float* row = rows.data + r * w;
      for (int64_t c = 0; c < w; ++c) row[c] += st->scale * st->vec[c];
    }
  }
  const int64_t ti = tensor_of_[s];
  if (ti >= 0 && sink_) {
    const int64_t c0 = std::max(rows.pos0, first_), c1 = std::min(rows.pos0 + rows.n, last_);
    if (c0 < c1)
      sink_->write(static_cast<size_t>(ti), (c0 - first_) * w, rows.data + (c0 - rows.pos0) * w,
                   (c1 - c0) * w);
  }
}

void HookRunner::attention(int layer, const AttentionInputs& in) {
  const int64_t T = n_tokens_, S = last_ - first_;
  const int64_t heads = cfg_.num_attention_heads;
  const int64_t ti_scores = tensor_of_[slot(layer, Point::kAttnScores)];
  const int64_t ti_pattern = tensor_of_[slot(layer, Point::kPattern)];
  const int64_t ti_entropy = tensor_of_[slot(layer, Point::kPatternEntropy)];
  const bool mass = tensor_of_[slot(layer, Point::kPatternKeyMass)] >= 0;
  const bool rows_on = ti_scores >= 0 || ti_pattern >= 0;
  const bool stats_on = mass || ti_entropy >= 0;
  // Queries of this chunk (indices into it): requested rows, and the slice for the reductions.
  const int64_t c0 = in.pos0, c1 = std::min(in.pos0 + in.n, T);
  std::vector<int64_t> probe;
  std::vector<int64_t> row_index;  // per probe entry: index into queries_, or -1
  auto qit = std::lower_bound(queries_.begin(), queries_.end(), c0);
  for (int64_t i = c0; i < c1; ++i) {
    const bool row = rows_on && qit != queries_.end() && *qit == i;
    const bool stat = stats_on && i >= first_ && i < last_;
    if (row || stat) {
      probe.push_back(i - in.pos0);
      row_index.push_back(row ? qit - queries_.begin() : -1);
    }
    if (row) ++qit;
  }
  if (probe.empty() || !sink_) return;
  // Query blocks whose rows fit the row buffer.
  const int64_t row_floats = heads * T * ((ti_scores >= 0) + (ti_pattern >= 0));
  const int64_t block =
      rows_on ? std::max<int64_t>(1, kRowBufferBytes / sizeof(float) / row_floats) : probe.size();
  std::vector<float> entropy;
  for (size_t b0 = 0; b0 < probe.size(); b0 += static_cast<size_t>(block)) {
    const size_t b1 = std::min(probe.size(), b0 + static_cast<size_t>(block));
    const std::vector<int64_t> qs(probe.begin() + b0, probe.begin() + b1);
    const int64_t nb = static_cast<int64_t>(qs.size());
    if (rows_on) rowbuf_.assign(static_cast<size_t>(row_floats * nb), 0.f);
    if (ti_entropy >= 0) entropy.assign(static_cast<size_t>(heads * nb), 0.f);
    // Rows of one head come in query order: the position of row t inside the block is found by
    // walking qs alongside (per head, so threads never share a cursor).
    std::vector<size_t> cursor(static_cast<size_t>(heads), 0);
    float* scores_buf = rowbuf_.data();
    float* pattern_buf = rowbuf_.data() + (ti_scores >= 0 ? heads * T * nb : 0);
    kernels::attention_probe(
        *in.pool, *in.params, in.q, in.n, in.pos0, *in.kv, qs, [&](const kernels::ProbeRow& r) {
          size_t& k = cursor[static_cast<size_t>(r.head)];
          while (qs[k] != r.t) ++k;
          const int64_t abs = in.pos0 + r.t;
          const double inv_l = 1.0 / r.l, log_l = std::log(r.l);
          const int64_t n = r.hi - r.lo;
          if (rows_on && row_index[b0 + k] >= 0) {
            const size_t off = (static_cast<size_t>(r.head) * nb + k) * T;
            if (ti_scores >= 0) {
              float* d = scores_buf + off;
              std::fill(d, d + T, -std::numeric_limits<float>::infinity());
              std::copy(r.s, r.s + n, d + r.lo);
            }
            if (ti_pattern >= 0) {
              float* d = pattern_buf + off;  // zero-filled by assign
              for (int64_t j = 0; j < n; ++j)
                d[r.lo + j] = static_cast<float>(std::exp(r.s[j] - r.m) * inv_l);
            }
          }
          if (abs >= first_ && abs < last_ && stats_on) {
            double* km = mass ? key_mass_[layer].data() + r.head * T : nullptr;
            double h = 0;
            for (int64_t j = 0; j < n; ++j) {
              const double ls = r.s[j] - r.m, pj = std::exp(ls) * inv_l;
              if (km) km[r.lo + j] += pj;
              h -= pj * (ls - log_l);
            }
            if (ti_entropy >= 0) entropy[static_cast<size_t>(r.head * nb) + k] = static_cast<float>(h);
          }
        });
    // Hand the block's rows and entropies to the sink (main thread).
    const int64_t Q = static_cast<int64_t>(queries_.size());
    for (int64_t k = 0; k < nb; ++k) {
      const int64_t qi = row_index[b0 + k];
      const int64_t abs = in.pos0 + qs[k];
      for (int64_t h = 0; h < heads; ++h) {
        const size_t off = (static_cast<size_t>(h) * nb + k) * T;
        if (qi >= 0 && ti_scores >= 0)
          sink_->write(static_cast<size_t>(ti_scores), (h * Q + qi) * T, scores_buf + off, T);
        if (qi >= 0 && ti_pattern >= 0)
          sink_->write(static_cast<size_t>(ti_pattern), (h * Q + qi) * T, pattern_buf + off, T);
        if (ti_entropy >= 0 && abs >= first_ && abs < last_)
          sink_->write(static_cast<size_t>(ti_entropy), h * S + (abs - first_),
                       &entropy[static_cast<size_t>(h * nb + k)], 1);
      }
    }
  }
}

void HookRunner::finish() {
  if (!sink_) return;
  const int64_t T = n_tokens_;
  std::vector<float> row(static_cast<size_t>(T));
  for (int l = 0; l < static_cast<int>(key_mass_.size()); ++l) {
    if (key_mass_[l].empty()) continue;
    const auto ti = static_cast<size_t>(tensor_of_[slot(l, Point::kPatternKeyMass)]);
    for (int64_t h = 0; h < cfg_.num_attention_heads; ++h) {
      for (int64_t j = 0; j < T; ++j) row[j] = static_cast<float>(key_mass_[l][h * T + j]);
      sink_->write(ti, h * T, row.data(), T);
    }
  }
  for (int l = 0; l < static_cast<int>(query_pos_tensor_.size()); ++l)
    if (query_pos_tensor_[l] >= 0)
      sink_->write_i64(static_cast<size_t>(query_pos_tensor_[l]), 0, queries_.data(),
                       static_cast<int64_t>(queries_.size()));
}

}  // namespace longctx::hooks
