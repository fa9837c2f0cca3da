// The compiled half of the Python package `longctx` (python/longctx/ is the other half): a thin
// layer over the engine facade (include/longctx/), DESIGN.md decision 8.
#include "common.h"

PYBIND11_MODULE(_longctx, m) {
  m.doc() = "longctx engine bindings (use the pure-Python package `longctx`)";
  longctx::py::init_errors(m);
  longctx::py::init_plan(m);
  longctx::py::init_model(m);
  longctx::py::init_quantize(m);
}
