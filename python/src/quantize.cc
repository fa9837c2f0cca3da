// longctx.quantize(): a Hugging Face model folder as a GGUF file, as `longctx quantize` does.
#include "common.h"
#include "core/error.h"
#include "model/gguf_export.h"

namespace longctx::py {

void init_quantize(py::module_& m) {
  m.def(
      "quantize",
      [](const std::string& model_dir, const std::string& type, const std::string& out) {
        const std::optional<ExportType> t = parse_export_type(type);
        if (!t)
          throw Error(ErrorKind::kInvalidArg,
                      "unknown type '" + type + "'; valid types: " + export_type_names());
        GgufExportOptions o;
        o.type = *t;
        GgufExportResult r;
        {
          py::gil_scoped_release release;  // taken back before Python objects are made
          r = export_gguf(model_dir, out, o);
        }
        return py::make_tuple(r.tensors, r.file_bytes);
      },
      py::arg("model_dir"), py::arg("type"), py::arg("out"),
      "Writes MODEL_DIR as the GGUF file OUT (type: q8_0, q4_0, q4_k_m, q5_0, q5_1, f16, f32); "
      "returns "
      "(tensor count, file bytes).");
}

}  // namespace longctx::py
