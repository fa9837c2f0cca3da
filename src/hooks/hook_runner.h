// The one implementation of ForwardHooks that every front end uses: captures chosen hooks over a
// slice of positions into a CaptureSink, computes attention-pattern rows and reductions with the
// attention probe, and patches or steers activations on their way through the model.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/model_config.h"
#include "hooks/forward_hooks.h"
#include "hooks/hook_point.h"

namespace longctx::hooks {

// A Python-style slice of positions ("A:B", "-16:", ":"; negative counts from the end).
struct PosSlice {
  std::optional<int64_t> start, stop;
  // Parses "A:B" (either side may be empty) or a single position "A" (= "A:A+1").
  static PosSlice parse(const std::string& s);
  // [first, last) for a sequence of n positions; Error(kOutOfRange) when the slice is empty.
  std::pair<int64_t, int64_t> resolve(int64_t n) const;
  std::string str() const;
};

// A replacement for a hook's activation: `data` holds either rows of the hook, shape
// [1, P, row dims...] (or [P, row dims...]), for positions [first, first + P) when `first` is set
// (a file `trace` wrote says where its rows came from) and for the request's slice otherwise
// (then P is the slice's length); or one row, shape [row dims...] or [width], written at every
// position of the slice. Values are f32; `keep` holds whatever owns them.
struct Patch {
  HookId id;
  std::vector<int64_t> shape;
  std::optional<int64_t> first;
  const float* data = nullptr;
  std::shared_ptr<const void> keep;
  // Owns `values`.
  static Patch from_vector(HookId id, std::vector<int64_t> shape, std::vector<float> values);
};

// Adds scale x vec at every position, vec: one row of the hook ([width] floats).
struct Steer {
  HookId id;
  std::vector<float> vec;
  float scale = 1.f;
};

struct HookRequest {
  std::vector<HookId> capture;        // what to capture (expand_hook_list); may be empty
  PosSlice pos;                       // positions captured and patched (default: all)
  std::vector<int64_t> pattern_queries;  // query rows of hook_pattern / hook_attn_scores
                                         // (negative from the end); empty: every position of `pos`
  std::vector<Patch> patches;
  std::vector<Steer> steers;
};

// One tensor of a capture, in the order the sink receives them. Data is f32 unless is_int64.
struct CaptureTensor {
  std::string name;
  std::vector<int64_t> shape;
  bool is_int64 = false;
  int64_t numel() const;
};

// Receives captured values: `count` elements at element offset `offset` of tensor `index`
// (CaptureRun::tensors() order). Writes come in any order and never overlap.
class CaptureSink {
 public:
  virtual ~CaptureSink() = default;
  virtual void write(size_t index, int64_t offset, const float* data, int64_t count) = 0;
  virtual void write_i64(size_t index, int64_t offset, const int64_t* data, int64_t count) = 0;
};

// Keeps every captured tensor in memory (tests, Python).
class MemorySink : public CaptureSink {
 public:
  explicit MemorySink(const std::vector<CaptureTensor>& tensors);
  void write(size_t index, int64_t offset, const float* data, int64_t count) override;
  void write_i64(size_t index, int64_t offset, const int64_t* data, int64_t count) override;
  std::vector<std::vector<float>> f32;    // by index (empty for int64 tensors)
  std::vector<std::vector<int64_t>> i64;  // by index (empty for f32 tensors)
};

class HookRunner : public ForwardHooks {
 public:
  // Validates the request for a sequence of n_tokens positions (captured slice, pattern queries,
  // patch and steer shapes, NaN in their values) and lays out the captured tensors. Error naming
  // the hook and the fix otherwise. The runner applies to positions [0, n_tokens) and, for
  // steering and broadcast patches over an open-ended slice, to every later position too.
  HookRunner(const ModelConfig& cfg, HookRequest req, int64_t n_tokens);

  // Tensors the capture produces, in order: each captured hook (pattern points with their
  // query rows), blocks.{l}.attn.pattern_query_pos for layers with pattern rows, and "logits"
  // when captured. The sink must exist before the first forward pass.
  const std::vector<CaptureTensor>& tensors() const { return tensors_; }
  void set_sink(CaptureSink* sink) { sink_ = sink; }
  // Writes what is only complete at the end (pattern_key_mass) and the query positions. Call
  // once after the last forward pass over the n_tokens positions.
  void finish();

  // Bytes the runner allocates while it runs (reductions, pattern row buffers, one chunk's
  // conversion buffer): what the plan must add for captures.
  static size_t memory_bytes(const ModelConfig& cfg, const HookRequest& req, int64_t n_tokens,
                             int64_t chunk, int threads);
  const HookRequest& request() const { return req_; }
  int64_t first() const { return first_; }
  int64_t last() const { return last_; }

  void fire(int layer, Point p, const Rows& rows) override;
  void attention(int layer, const AttentionInputs& in) override;

 private:
  ModelConfig cfg_;
  HookRequest req_;
  int64_t n_tokens_;
  int64_t first_ = 0, last_ = 0;  // capture slice [first_, last_)
  bool open_ended_ = false;       // the slice runs to the end: patches continue past n_tokens
  std::vector<int64_t> queries_;  // absolute, sorted, unique
  std::vector<CaptureTensor> tensors_;
  std::vector<int64_t> tensor_of_;  // by (layer + 1) * kPointCount + point: index or -1
  std::vector<int64_t> query_pos_tensor_;  // per layer: index of pattern_query_pos or -1
  std::vector<std::vector<double>> key_mass_;  // per layer with key mass: [heads][n_tokens]
  std::vector<const Patch*> patch_of_;  // by (layer + 1) * kPointCount + point
  std::vector<bool> patch_rows_;        // the patch holds rows (else one row for the slice)
  std::vector<std::pair<int64_t, int64_t>> patch_span_;  // positions [a, b) of those rows
  std::vector<const Steer*> steer_of_;
  std::vector<float> rowbuf_;  // pattern rows of one query block
  CaptureSink* sink_ = nullptr;

  size_t slot(int layer, Point p) const {
    return static_cast<size_t>(layer + 1) * kPointCount + static_cast<size_t>(p);
  }
};

}  // namespace longctx::hooks
