// longctx.Error and its subclasses, one per ErrorKind, carrying the engine's message; the
// translator that raises them for every longctx::Error crossing into Python.
#include <array>

#include "common.h"
#include "core/error.h"

namespace longctx::py {

namespace {

struct KindClass {
  ErrorKind kind;
  const char* name;
  PyObject* extra_base;  // a built-in class it also derives from (nullptr: none)
  const char* doc;
};

// Filled by init_errors; the module keeps the classes alive (they are its attributes).
std::array<PyObject*, 10> g_classes{};
PyObject* g_base = nullptr;

}  // namespace

void init_errors(py::module_& m) {
  const KindClass kinds[] = {
      {ErrorKind::kIo, "IoError", PyExc_OSError, "A file is missing, unreadable or truncated."},
      {ErrorKind::kFormat, "FormatError", nullptr, "A file is malformed."},
      {ErrorKind::kConfig, "ConfigError", nullptr,
       "config.json lacks a field or has an impossible value."},
      {ErrorKind::kUnsupported, "UnsupportedError", nullptr,
       "A valid input longctx does not handle."},
      {ErrorKind::kShape, "ShapeError", PyExc_ValueError,
       "Tensor shapes or dtypes disagree (a hook's returned array, a checkpoint)."},
      {ErrorKind::kInvalidArg, "InvalidArgumentError", PyExc_ValueError,
       "A bad argument (an unknown hook name, an out-of-range setting)."},
      {ErrorKind::kOutOfRange, "OutOfRangeError", PyExc_IndexError,
       "A token id, position or context outside what the model allows."},
      {ErrorKind::kMemory, "MemoryBudgetError", PyExc_MemoryError,
       "A request does not fit the memory budget (raised before anything runs)."},
      {ErrorKind::kBusy, "BusyError", nullptr, "The engine cannot take the request now; retry later."},
      {ErrorKind::kInternal, "InternalError", nullptr, "A broken invariant (a bug in longctx)."},
  };
  g_base = PyErr_NewExceptionWithDoc("longctx.Error",
                                     "Base class of every error the longctx engine raises.",
                                     PyExc_Exception, nullptr);
  if (!g_base) throw py::error_already_set();
  m.attr("Error") = py::reinterpret_steal<py::object>(g_base);
  for (const KindClass& k : kinds) {
    py::tuple bases = k.extra_base ? py::make_tuple(py::handle(g_base), py::handle(k.extra_base))
                                   : py::make_tuple(py::handle(g_base));
    std::string qual = std::string("longctx.") + k.name;
    PyObject* cls = PyErr_NewExceptionWithDoc(qual.c_str(), k.doc, bases.ptr(), nullptr);
    if (!cls) throw py::error_already_set();
    m.attr(k.name) = py::reinterpret_steal<py::object>(cls);
    g_classes[static_cast<size_t>(k.kind)] = cls;
  }
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      PyObject* cls = g_classes[static_cast<size_t>(e.kind())];
      py::object exc = py::reinterpret_borrow<py::object>(cls)(e.what());
      exc.attr("kind") = error_kind_name(e.kind());
      PyErr_SetObject(cls, exc.ptr());
    }
  });
}

}  // namespace longctx::py
