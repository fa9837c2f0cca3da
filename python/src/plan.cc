// longctx.plan(): price a configuration without loading weights, as `longctx plan --json` does.
#include <filesystem>

#include "common.h"
#include "core/error.h"
#include "longctx/engine.h"
#include "model/presets.h"
#include "model/decoder.h"
#include "plan/plan_json.h"

namespace longctx::py {

namespace {

std::string plan_dict_json(const std::string& path_or_preset, int64_t n_ctx,
                           const std::string& kv_dtype, int batch, const std::string& mem_budget,
                           int64_t prefill_chunk, const std::string& weights_dtype) {
  if (batch < 1) throw Error(ErrorKind::kInvalidArg, "batch must be >= 1");
  PlanModel m;
  if (std::filesystem::is_directory(path_or_preset) || is_gguf_path(path_or_preset)) {
    m = plan_model_from_path(path_or_preset);
  } else {
    if (path_or_preset.find('/') != std::string::npos)
      throw Error(ErrorKind::kIo, "no model folder or GGUF file at " + path_or_preset +
                                      "; give a Hugging Face model folder, a .gguf file or a "
                                      "preset name");
    const Preset& p = find_preset(path_or_preset);
    m = plan_model_from_config(parse_model_config(p.config_json, "preset " + p.name),
                               dtype_size(parse_dtype(weights_dtype)), p.name);
  }
  EngineOptions eo;
  eo.context = n_ctx;
  eo.force_ctx = true;
  eo.kv = parse_kv_type(kv_dtype);
  eo.prefill_chunk = prefill_chunk;
  eo.mem_budget = mem_budget;
  PlanRequest req = plan_request(eo, m.cfg);
  req.batch = batch;
  const MemoryBudget budget = memory_budget_from_flag(mem_budget);
  return plan_json(m, req, budget, make_plan(m, req, budget));
}

}  // namespace

void init_plan(py::module_& m) {
  m.def(
      "plan_json",
      [](const std::string& path, int64_t n_ctx, const std::string& kv, int batch,
         const std::string& budget, int64_t chunk, const std::string& wdtype) {
        py::gil_scoped_release release;
        return plan_dict_json(path, n_ctx, kv, batch, budget, chunk, wdtype);
      },
      py::arg("path_or_preset"), py::arg("n_ctx") = 0, py::arg("kv_dtype") = "f16",
      py::arg("batch") = 1, py::arg("mem_budget") = "auto", py::arg("prefill_chunk") = 0,
      py::arg("weights_dtype") = "bf16",
      "The plan of a configuration as `longctx plan --json` prints it (a JSON string).");
}

}  // namespace longctx::py
