// ForwardHooks of the Python module: Python callables on hook points (run_with_hooks, generate's
// fwd_hooks), the logits / loss collector (model(...) logits of every position without holding
// them twice), a CaptureSink into NumPy arrays, and a composite that runs several at once.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "config/model_config.h"
#include "hooks/forward_hooks.h"
#include "hooks/hook_runner.h"

namespace longctx::py {

// Runs several ForwardHooks in order on every point any of them turned on.
class CompositeHooks : public hooks::ForwardHooks {
 public:
  CompositeHooks(int n_layers, std::vector<hooks::ForwardHooks*> parts);
  void fire(int layer, hooks::Point p, const hooks::Rows& rows) override;
  void attention(int layer, const hooks::AttentionInputs& in) override;

 private:
  std::vector<hooks::ForwardHooks*> parts_;
};

// One Python hook: fn(act, hook=hook_point) on hook `id`.
struct PyHook {
  hooks::HookId id;
  std::string name;
  py::object fn;
  py::object hook_point;  // longctx.HookPoint; its `pos` is set to the positions of each call
};

// Calls Python callables on hook points. Each call gets a NumPy view of the chunk's rows in the
// engine's buffer, shape [1, n, row dims...] (no copy; the logits come as a read-only copy, being
// read-only in the engine), with the GIL held. A callable returns None (the view, maybe edited
// in place, stands) or an array of the same shape, copied into the buffer; anything else is a
// ShapeError. Exceptions propagate out of the forward pass.
class PyHooks : public hooks::ForwardHooks {
 public:
  // Error(kInvalidArg) for a pattern point (not rows of positions: use run_with_cache).
  PyHooks(const ModelConfig& cfg, std::vector<PyHook> hooks);
  // Call with the GIL held; drops the Python references.
  ~PyHooks() override;
  // The Python object that keeps the engine's buffers alive for any view a callable kept.
  void set_owner(py::object owner) { owner_ = std::move(owner); }
  void fire(int layer, hooks::Point p, const hooks::Rows& rows) override;
  void attention(int, const hooks::AttentionInputs&) override {}

 private:
  ModelConfig cfg_;
  std::vector<PyHook> hooks_;
  py::object owner_;
  py::object range_;  // builtins.range
};

// Collects the logits hook: rows into `logits` [n_tokens][vocab] when given, and the next-token
// log-likelihood of every position but the last when `tokens` are given (the loss).
class LogitsCollector : public hooks::ForwardHooks {
 public:
  LogitsCollector(const ModelConfig& cfg, float* logits, const std::vector<int32_t>* tokens);
  void fire(int layer, hooks::Point p, const hooks::Rows& rows) override;
  void attention(int, const hooks::AttentionInputs&) override {}
  // -log p(token i+1 | ..i) for i in [0, n_tokens - 1).
  const std::vector<double>& nll() const { return nll_; }

 private:
  int64_t vocab_;
  float* logits_;
  const std::vector<int32_t>* tokens_;
  std::vector<double> nll_;
};

// Writes captured tensors into NumPy arrays it allocates (float32 / int64) up front.
class NumpySink : public hooks::CaptureSink {
 public:
  // Call with the GIL held.
  explicit NumpySink(const std::vector<hooks::CaptureTensor>& tensors);
  void write(size_t index, int64_t offset, const float* data, int64_t count) override;
  void write_i64(size_t index, int64_t offset, const int64_t* data, int64_t count) override;
  const std::vector<py::array>& arrays() const { return arrays_; }

 private:
  std::vector<py::array> arrays_;
  std::vector<char*> data_;
};

}  // namespace longctx::py
