// longctx quantize: a Hugging Face model folder as one GGUF file (model/gguf_export.h) that
// llama.cpp and longctx both run, in llama-quantize's default tensor mixes.
#include <cstdio>
#include <memory>
#include <string>

#include "commands.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "model/gguf_export.h"

namespace longctx::cli {
namespace {

struct QuantizeOpts {
  std::string model, type, out;
};

}  // namespace

Runner add_quantize_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "quantize", "Write a Hugging Face model folder as a GGUF file (weights, config, tokenizer)");
  auto o = std::make_shared<QuantizeOpts>();
  cmd->add_option("-m,--model", o->model, "Hugging Face model folder")->required();
  cmd->add_option("--type", o->type, "Weight type: " + export_type_names())->required();
  cmd->add_option("-o,--output", o->out, "The .gguf file to write")->required();
  return [o]() {
    const std::optional<ExportType> t = parse_export_type(o->type);
    if (!t)
      throw Error(ErrorKind::kInvalidArg, "unknown --type '" + o->type +
                                              "'; valid types: " + export_type_names());
    GgufExportOptions opt;
    opt.type = *t;
    opt.progress = [](size_t k, size_t n, const std::string& name, TensorType type,
                      uint64_t bytes) {
      std::printf("[%3zu/%3zu] %-32s %-5s %10s\n", k + 1, n, name.c_str(), tensor_type_name(type),
                  io::format_bytes(bytes).c_str());
      std::fflush(stdout);
    };
    std::printf("quantize %s -> %s (%s)\n", o->model.c_str(), o->out.c_str(),
                export_type_name(*t));
    const GgufExportResult r = export_gguf(o->model, o->out, opt);
    std::printf("wrote %s: %zu tensors, %s\n", o->out.c_str(), r.tensors,
                io::format_bytes(r.file_bytes).c_str());
    return 0;
  };
}

}  // namespace longctx::cli
