#include "common.h"

namespace longctx::py {

py::array view_array(const py::dtype& dt, const std::vector<int64_t>& shape, void* data,
                     const py::handle& owner) {
  std::vector<py::ssize_t> s(shape.begin(), shape.end());
  std::vector<py::ssize_t> strides(s.size());
  py::ssize_t step = dt.itemsize();
  for (size_t i = s.size(); i-- > 0;) {
    strides[i] = step;
    step *= s[i];
  }
  // A base object makes pybind11 wrap `data` instead of copying it.
  return py::array(dt, s, strides, data, owner);
}

namespace {

template <class T>
py::array vector_array(std::vector<T>&& v, const std::vector<int64_t>& shape) {
  auto* held = new std::vector<T>(std::move(v));
  py::capsule owner = own(held);
  return view_array(py::dtype::of<T>(), shape, held->data(), owner);
}

}  // namespace

py::array to_array(std::vector<float>&& v, const std::vector<int64_t>& shape) {
  return vector_array(std::move(v), shape);
}
py::array to_array(std::vector<int64_t>&& v, const std::vector<int64_t>& shape) {
  return vector_array(std::move(v), shape);
}

void check_interrupt() {
  py::gil_scoped_acquire gil;
  if (PyErr_CheckSignals() != 0) throw py::error_already_set();
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

}  // namespace longctx::py
