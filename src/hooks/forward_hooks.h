// What the decoder sees of hooks: which points are on, and one call per point that is. The
// decoder holds a ForwardHooks* that is null when nobody asked for anything, so a hook costs one
// predictable branch when unused (DESIGN.md decision 7).
#pragma once

#include <cstdint>
#include <vector>

#include "core/thread_pool.h"
#include "hooks/hook_point.h"
#include "kernels/ops.h"

namespace longctx::hooks {

// One chunk's activation at a hook point: positions [pos0, pos0 + n), row r at data + r * width.
// A hook may change the values (patching, steering): the decoder goes on with what it finds.
struct Rows {
  float* data;
  int64_t pos0;
  int64_t n;
  int64_t width;
};

// What the attention of one layer read for one chunk, for the pattern points: the rotated
// queries [n][n_heads][head_dim] of positions [pos0, pos0 + n) and the KV cache view they
// attended to (keys as stored: the probe reads the same, quantized or not).
struct AttentionInputs {
  ThreadPool* pool;
  const kernels::AttentionParams* params;
  const float* q;
  int64_t pos0;
  int64_t n;
  const kernels::KVView* kv;
};

class ForwardHooks {
 public:
  virtual ~ForwardHooks() = default;

  // Whether `layer` (-1: model-level) has point p on. Two loads and a test.
  bool on(int layer, Point p) const {
    return (bits_[static_cast<size_t>(layer + 1)] >> static_cast<int>(p)) & 1u;
  }
  // Whether any pattern point of `layer` is on.
  bool any_pattern(int layer) const {
    return (bits_[static_cast<size_t>(layer + 1)] & kPatternBits) != 0;
  }

  // Called for every point that is on(), in model order, once per forward chunk.
  virtual void fire(int layer, Point p, const Rows& rows) = 0;
  // Called after the attention of `layer` when any_pattern(layer).
  virtual void attention(int layer, const AttentionInputs& in) = 0;

 protected:
  // Sizes the table for a model of n_layers; every point starts off.
  void reset_points(int n_layers) { bits_.assign(static_cast<size_t>(n_layers) + 1, 0); }
  void turn_on(HookId id) {
    bits_.at(static_cast<size_t>(id.layer + 1)) |= uint64_t{1} << static_cast<int>(id.point);
  }

 private:
  static constexpr uint64_t kPatternBits =
      (uint64_t{1} << static_cast<int>(Point::kAttnScores)) |
      (uint64_t{1} << static_cast<int>(Point::kPattern)) |
      (uint64_t{1} << static_cast<int>(Point::kPatternKeyMass)) |
      (uint64_t{1} << static_cast<int>(Point::kPatternEntropy));
  std::vector<uint64_t> bits_;
};

}  // namespace longctx::hooks
