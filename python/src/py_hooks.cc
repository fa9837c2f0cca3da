#include "py_hooks.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "hooks/hook_point.h"

namespace longctx::py {

using hooks::Point;

CompositeHooks::CompositeHooks(int n_layers, std::vector<hooks::ForwardHooks*> parts)
    : parts_(std::move(parts)) {
  reset_points(n_layers);
  for (int l = -1; l < n_layers; ++l)
    for (int p = 0; p < hooks::kPointCount; ++p)
      for (const hooks::ForwardHooks* h : parts_)
        if (h->on(l, static_cast<Point>(p))) turn_on({static_cast<Point>(p), l});
}

void CompositeHooks::fire(int layer, Point p, const hooks::Rows& rows) {
  for (hooks::ForwardHooks* h : parts_)
    if (h->on(layer, p)) h->fire(layer, p, rows);
}

void CompositeHooks::attention(int layer, const hooks::AttentionInputs& in) {
  for (hooks::ForwardHooks* h : parts_)
    if (h->any_pattern(layer)) h->attention(layer, in);
}

PyHooks::PyHooks(const ModelConfig& cfg, std::vector<PyHook> hooks)
    : cfg_(cfg), hooks_(std::move(hooks)) {
  reset_points(cfg.num_hidden_layers);
  for (const PyHook& h : hooks_) {
    if (hooks::is_pattern_point(h.id.point))
      throw Error(ErrorKind::kInvalidArg,
                  h.name + " is computed by the attention probe, not held as rows of positions, "
                           "so run_with_hooks cannot hook it; read it with run_with_cache "
                           "(pattern_queries chooses its rows)");
    turn_on(h.id);
  }
  range_ = py::module_::import("builtins").attr("range");
}

PyHooks::~PyHooks() = default;

void PyHooks::fire(int layer, Point p, const hooks::Rows& rows) {
  py::gil_scoped_acquire gil;
  std::vector<int64_t> shape = {1, rows.n};
  for (int64_t d : hooks::row_dims(p, cfg_)) shape.push_back(d);
  const bool read_only = p == Point::kLogits;
  for (PyHook& h : hooks_) {
    if (h.id.layer != layer || h.id.point != p) continue;
    py::array act;
    if (read_only) {
      // The logits rows live in a buffer of the head that is gone after this call: a copy,
      // read-only like the logits themselves.
      act = py::array_t<float>(std::vector<py::ssize_t>(shape.begin(), shape.end()));
      std::memcpy(act.mutable_data(), rows.data,
                  static_cast<size_t>(rows.n * rows.width) * sizeof(float));
      act.attr("flags").attr("writeable") = false;
    } else {
      act = view_array(py::dtype::of<float>(), shape, rows.data, owner_);
    }
    h.hook_point.attr("pos") = range_(rows.pos0, rows.pos0 + rows.n);
    py::object out = h.fn(act, py::arg("hook") = h.hook_point);
    if (!out.is_none() && !out.is(act)) {
      if (read_only)
        throw Error(ErrorKind::kInvalidArg,
                    "the hook on " + h.name + " returned an array, but the logits are read-only; "
                    "return None");
      auto rep = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(out);
      if (!rep) {
        PyErr_Clear();
        throw Error(ErrorKind::kShape, "the hook on " + h.name + " returned " +
                                           std::string(py::str(out.get_type())) +
                                           "; return None or an array of shape " +
                                           shape_str(shape));
      }
      std::vector<int64_t> got(rep.shape(), rep.shape() + rep.ndim());
      if (got != shape)
        throw Error(ErrorKind::kShape,
                    "the hook on " + h.name + " returned an array of shape " + shape_str(got) +
                        " but the activation it replaces has shape " + shape_str(shape) +
                        " (positions " + std::to_string(rows.pos0) + ".." +
                        std::to_string(rows.pos0 + rows.n - 1) +
                        "); return None after editing act in place, or an array of that shape");
      std::memcpy(rows.data, rep.data(), static_cast<size_t>(rows.n * rows.width) * sizeof(float));
    }
    out = py::object();  // `return act` holds a reference until here
    // A view kept past the call sees later chunks' values (its memory stays valid: the owner).
    if (!read_only && act.ref_count() > 1) {
      const std::string msg = "the hook on " + h.name +
                              " kept a reference to its activation, a view of the engine's buffer "
                              "that later chunks and layers overwrite; keep act.copy() instead";
      if (PyErr_WarnEx(PyExc_RuntimeWarning, msg.c_str(), 1) != 0) throw py::error_already_set();
    }
  }
}

LogitsCollector::LogitsCollector(const ModelConfig& cfg, float* logits,
                                 const std::vector<int32_t>* tokens)
    : vocab_(cfg.vocab_size), logits_(logits), tokens_(tokens) {
  reset_points(cfg.num_hidden_layers);
  turn_on({Point::kLogits, -1});
  if (tokens_ && tokens_->size() > 1) nll_.assign(tokens_->size() - 1, 0.0);
}

void LogitsCollector::fire(int layer, Point p, const hooks::Rows& rows) {
  if (layer != -1 || p != Point::kLogits) return;
  const int64_t V = vocab_;
  if (logits_)
    std::memcpy(logits_ + rows.pos0 * V, rows.data, static_cast<size_t>(rows.n * V) * sizeof(float));
  if (!tokens_) return;
  const int64_t n_tok = static_cast<int64_t>(tokens_->size());
  for (int64_t r = 0; r < rows.n; ++r) {
    const int64_t i = rows.pos0 + r;
    if (i + 1 >= n_tok) continue;
    const float* row = rows.data + r * V;
    const float mx = *std::max_element(row, row + V);
    double sum = 0;
    for (int64_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(row[v]) - mx);
    const int32_t next = (*tokens_)[static_cast<size_t>(i + 1)];
    nll_[static_cast<size_t>(i)] = std::log(sum) + mx - static_cast<double>(row[next]);
  }
}

NumpySink::NumpySink(const std::vector<hooks::CaptureTensor>& tensors) {
  for (const hooks::CaptureTensor& t : tensors) {
    std::vector<py::ssize_t> s(t.shape.begin(), t.shape.end());
    py::array a = t.is_int64 ? py::array(py::array_t<int64_t>(s)) : py::array(py::array_t<float>(s));
    data_.push_back(static_cast<char*>(a.mutable_data()));
    arrays_.push_back(std::move(a));
  }
}

void NumpySink::write(size_t index, int64_t offset, const float* data, int64_t count) {
  std::memcpy(data_[index] + offset * 4, data, static_cast<size_t>(count) * 4);
}

void NumpySink::write_i64(size_t index, int64_t offset, const int64_t* data, int64_t count) {
  std::memcpy(data_[index] + offset * 8, data, static_cast<size_t>(count) * 8);
}

}  // namespace longctx::py
