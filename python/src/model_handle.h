// The loaded model the Python class longctx._longctx.Model wraps: an Engine (plan -> load, once)
// shared with every array view that must keep its buffers alive.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common.h"
#include "longctx/engine.h"
#include "py_hooks.h"

namespace longctx::py {

struct ModelHandle {
  std::shared_ptr<Engine> engine;
  std::string path;
};

// What run_with_cache asked to capture.
struct CaptureSpec {
  std::string names;  // comma-separated names / globs (expand_hook_list)
  std::optional<int64_t> pos_start, pos_stop;
  std::vector<int64_t> pattern_queries;
  std::string cache_path;  // empty: in memory
};

// Keeps the engine and a session alive for as long as an array viewing its buffers lives.
struct KeepAlive {
  std::shared_ptr<Engine> engine;
  std::shared_ptr<Session> session;
};

// (name, fn, hook_point) triples from Python into PyHooks entries; Error(kInvalidArg) for an
// unknown name.
std::vector<PyHook> py_hooks_from(const ModelConfig& cfg, const py::list& hooks);

// A fresh session of the engine's plan for `planned_tokens`, firing `hooks` (may be null), with
// the Ctrl-C check after every prefill chunk.
std::shared_ptr<Session> make_session(Engine& e, int64_t planned_tokens,
                                      hooks::ForwardHooks* hooks);

// One forward pass over `tokens` (run.cc): logits and/or the loss, Python hooks, captures.
// Returns {"logits": array or None, "nll": float64 array [n-1] or None, "cache": list of
// (name, array) or None, "cache_path": str or None}.
py::dict run_forward(ModelHandle& m, const std::vector<int32_t>& tokens, bool want_logits,
                     bool want_loss, const py::list& hooks, const std::optional<CaptureSpec>& cap);

// Error(kOutOfRange) unless 0 < n <= the engine's context.
void check_fits_context(const Engine& e, int64_t n, int64_t extra_new = 0);

}  // namespace longctx::py
