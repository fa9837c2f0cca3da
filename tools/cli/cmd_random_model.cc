// longctx random-model: write a deterministic random-weight checkpoint of a real shape.
#include <cstdio>
#include <string>

#include "commands.h"
#include "core/dtype.h"
#include "core/error.h"
#include "model/presets.h"
#include "model/random_checkpoint.h"

namespace longctx::cli {

Runner add_random_model_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "random-model",
      "Write a random-weight checkpoint with a real architecture's shape (meaningless text, real "
      "speed and memory)");
  struct Opts {
    std::string out, preset = "tinyllama-1.1b", dtype = "bf16";
    int layers = 0;
    int64_t max_pos = 0;
    uint64_t seed = 1;
    bool force = false;
  };
  auto o = std::make_shared<Opts>();
  std::string names;
  for (const auto& p : presets()) names += (names.empty() ? "" : ", ") + p.name;
  cmd->add_option("-o,--out", o->out, "Output folder")->required();
  cmd->add_option("--preset", o->preset, "Shape: " + names)->capture_default_str();
  cmd->add_option("--dtype", o->dtype, "Weight dtype: f32, f16, bf16")->capture_default_str();
  cmd->add_option("--layers", o->layers, "Keep only this many layers (0 = all)");
  cmd->add_option("--max-pos", o->max_pos, "Override max_position_embeddings");
  cmd->add_option("--seed", o->seed, "Random seed")->capture_default_str();
  cmd->add_flag("--force", o->force,
                "Replace the config.json, weights and tokenizer of a folder that is not empty");
  return [o] {
    RandomCheckpointOptions r;
    r.preset = o->preset;
    find_preset(r.preset);
    r.dtype = parse_dtype(o->dtype);
    if (o->layers < 0)
      throw Error(ErrorKind::kInvalidArg,
                  "--layers must be positive (0 = all the preset's "
                  "layers), not " +
                      std::to_string(o->layers));
    if (o->max_pos < 0)
      throw Error(ErrorKind::kInvalidArg, "--max-pos must be positive (0 = the preset's), not " +
                                              std::to_string(o->max_pos));
    r.layers = o->layers;
    r.max_position_embeddings = o->max_pos;
    r.overwrite = o->force;
    r.seed = o->seed;
    std::fprintf(stderr, "writing random-weight %s (%s) checkpoint to %s ...\n", r.preset.c_str(),
                 dtype_name(r.dtype), o->out.c_str());
    write_random_checkpoint(o->out, r);
    std::fprintf(stderr, "done\n");
    return 0;
  };
}

}  // namespace longctx::cli
