// Shared pieces of the pybind11 module `longctx._longctx`: error translation, NumPy arrays over
// engine-owned buffers (handed over without a copy, the owner kept alive by the array's base),
// and the Ctrl-C check run between chunks.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace longctx::py {

namespace py = pybind11;

// errors.cc: the exception classes (longctx.Error and one subclass per ErrorKind) and the
// translator of longctx::Error into them.
void init_errors(py::module_& m);
// plan.cc: longctx._longctx.plan(...)
void init_plan(py::module_& m);
// model.cc: the Model class.
void init_model(py::module_& m);
// quantize.cc: longctx._longctx.quantize(...)
void init_quantize(py::module_& m);

// A NumPy array of `shape` over `data`, whose memory `owner` keeps alive (no copy). `owner` is
// any Python object (a capsule holding the C++ owner).
py::array view_array(const py::dtype& dt, const std::vector<int64_t>& shape, void* data,
                     const py::handle& owner);
// A capsule that owns `p` (deleted with the capsule).
template <class T>
py::capsule own(T* p) {
  return py::capsule(p, [](void* q) { delete static_cast<T*>(q); });
}
// A float32 / int64 array that owns `v` (moved, not copied).
py::array to_array(std::vector<float>&& v, const std::vector<int64_t>& shape);
py::array to_array(std::vector<int64_t>&& v, const std::vector<int64_t>& shape);

// Takes the GIL and runs the interpreter's signal handlers: a pending Ctrl-C raises
// KeyboardInterrupt as a C++ exception (py::error_already_set) that unwinds the engine's run.
// Call with the GIL released (between chunks).
void check_interrupt();

// "(1, 7, 64)"
std::string shape_str(const std::vector<int64_t>& shape);

}  // namespace longctx::py
